//! Running the shell: one command from the command line, lines from a pipe, or an
//! interactive terminal with line editing, history and tab completion (rustyline).
//!
//! Threading: the [`Shell`] runs in a task on a current-thread tokio runtime owned by a
//! dedicated thread (the session's pings and the event printer must go on while the user
//! types). The calling thread reads input and hands each line to the shell over a channel,
//! waiting for the next prompt before reading again, so commands run one at a time and the
//! prompt shows the state after the last one. Tab completion asks the shell task for
//! children while it is idle between lines.
//!
//! Exit statuses follow zkCli: the status of the last command at end of input or `quit`,
//! 1 when an exception zkCli does not catch would have killed the JVM, 130 for Ctrl-C.

use crate::console::{Console, StdConsole};
use crate::shell::{sorted_command_names, Flow, Shell, ShellConfig};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Status after Ctrl-C at the prompt (a shell's 128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;
/// Status when zkCli would have died of an uncaught exception.
pub const EXIT_UNCAUGHT: i32 = 1;
/// How long a tab completion waits for the shell task.
const COMPLETION_REPLY_WAIT: Duration = Duration::from_secs(3);

enum Input {
    Line(String),
    Eof,
    Interrupted,
    Complete {
        line: String,
        pos: usize,
        reply: std_mpsc::Sender<(usize, Vec<String>)>,
    },
}

enum Output {
    Prompt(String),
    Exit(i32),
}

/// How lines reach the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    /// A terminal: rustyline with prompt, history and completion ("JLine support is enabled").
    Terminal,
    /// A pipe or file: plain lines, no prompt ("JLine support is disabled").
    Plain,
}

/// Prints events that arrive while a prompt is shown on a line of their own and shows the
/// prompt again after them (rustyline redraws the line being edited at the next key).
///
/// rustyline's own external printer is not used: with it, rustyline waits in `select` on
/// the terminal without looking at bytes it has already buffered, so pasted text shows up one
/// key press late.
struct TerminalConsole {
    reading: AtomicBool,
    prompt: Mutex<String>,
    std: StdConsole,
}

impl Console for TerminalConsole {
    fn out(&self, text: &str) {
        self.std.out(text);
    }
    fn err(&self, text: &str) {
        self.std.err(text);
    }
    fn event(&self, text: &str) {
        if self.reading.load(Ordering::SeqCst) {
            let prompt = self
                .prompt
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            self.std.out(&format!("{text}{prompt}"));
        } else {
            self.std.out(text);
        }
    }
}

/// Completes command names and znode paths (`JLineZNodeCompleter`).
struct ShellHelper {
    tx: mpsc::Sender<Input>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (reply_tx, reply_rx) = std_mpsc::channel();
        let asked = self.tx.blocking_send(Input::Complete {
            line: line.to_owned(),
            pos,
            reply: reply_tx,
        });
        if asked.is_err() {
            return Ok((pos, Vec::new()));
        }
        let (start, names) = reply_rx
            .recv_timeout(COMPLETION_REPLY_WAIT)
            .unwrap_or((pos, Vec::new()));
        let pairs = names
            .into_iter()
            .map(|n| Pair {
                display: n.clone(),
                replacement: n,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// The candidates for the word before `pos` in `line`, and where that word starts.
pub async fn completions(shell: &Shell, line: &str, pos: usize) -> (usize, Vec<String>) {
    let buf = line.get(..pos).unwrap_or(line);
    let token = if buf.ends_with(' ') {
        ""
    } else {
        buf.rsplit(' ').next().unwrap_or("")
    };
    if token.starts_with('/') {
        let idx = token.rfind('/').map(|i| i + 1).unwrap_or(1);
        let prefix = &token[idx..];
        let dir = if idx == 1 { "/" } else { &token[..idx - 1] };
        let mut names: Vec<String> = shell
            .children_for_completion(dir)
            .await
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect();
        crate::commands::java_sort(&mut names);
        let start = if names.is_empty() {
            buf.len()
        } else {
            buf.rfind('/').map(|i| i + 1).unwrap_or(0)
        };
        return (start, names);
    }
    let names = sorted_command_names()
        .into_iter()
        .filter(|c| c.starts_with(token))
        .map(str::to_owned)
        .collect();
    (buf.rfind(' ').map(|i| i + 1).unwrap_or(0), names)
}

/// Runs one command given on the command line (`corral cli -server h get /x`).
pub fn run_command(config: ShellConfig, words: Vec<String>) -> i32 {
    let console: Arc<dyn Console> = Arc::new(StdConsole);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            console.err(&format!("cannot start the runtime: {e}\n"));
            return EXIT_UNCAUGHT;
        }
    };
    let task = rt.spawn(async move {
        let mut shell = match Shell::start(config, console.clone()).await {
            Ok(s) => s,
            Err(u) => {
                console.err(&format!("{}\n", u.line()));
                return (EXIT_UNCAUGHT, None);
            }
        };
        let code = match shell.run_words(words).await {
            Ok(Flow::Exit(code)) => code,
            Ok(Flow::Continue) => shell.exit_code(),
            Err(u) => {
                console.err(&format!("{}\n", u.line()));
                EXIT_UNCAUGHT
            }
        };
        (code, Some(shell))
    });
    let (code, shell) = rt.block_on(task).unwrap_or((EXIT_UNCAUGHT, None));
    // Like zkCli's System.exit: the session is not closed, the connection just goes away.
    rt.shutdown_background();
    drop(shell);
    code
}

/// Runs the shell on lines from stdin (a terminal or not).
pub fn run_lines(config: ShellConfig, mode: InputMode) -> i32 {
    let std_console = StdConsole;
    let terminal = Arc::new(TerminalConsole {
        reading: AtomicBool::new(false),
        prompt: Mutex::new(String::new()),
        std: StdConsole,
    });
    let mut editor = if mode == InputMode::Terminal {
        let cfg = Config::builder()
            .completion_type(CompletionType::List)
            .auto_add_history(false)
            .build();
        match Editor::<ShellHelper, rustyline::history::DefaultHistory>::with_config(cfg) {
            Ok(ed) => Some(ed),
            Err(e) => {
                std_console.err(&format!("cannot open the terminal: {e}\n"));
                None
            }
        }
    } else {
        None
    };
    let mode = if editor.is_some() {
        InputMode::Terminal
    } else {
        InputMode::Plain
    };
    let console: Arc<dyn Console> = match mode {
        InputMode::Terminal => terminal.clone(),
        InputMode::Plain => Arc::new(StdConsole),
    };

    let (in_tx, in_rx) = mpsc::channel::<Input>(1);
    let (out_tx, out_rx) = std_mpsc::channel::<Output>();
    let shell_thread =
        std::thread::spawn(move || shell_thread(config, console, mode, in_rx, out_tx));
    if let Some(ed) = editor.as_mut() {
        ed.set_helper(Some(ShellHelper { tx: in_tx.clone() }));
    }

    let mut stdin = std::io::stdin().lock();
    let code = loop {
        let prompt = match out_rx.recv() {
            Ok(Output::Prompt(p)) => p,
            Ok(Output::Exit(code)) => break code,
            Err(_) => break EXIT_UNCAUGHT,
        };
        let input = match editor.as_mut() {
            Some(ed) => {
                *terminal.prompt.lock().unwrap_or_else(|e| e.into_inner()) = prompt.clone();
                terminal.reading.store(true, Ordering::SeqCst);
                let r = ed.readline(&prompt);
                terminal.reading.store(false, Ordering::SeqCst);
                match r {
                    Ok(line) => {
                        if !line.is_empty() {
                            let _ = ed.add_history_entry(line.as_str());
                        }
                        Input::Line(line)
                    }
                    Err(ReadlineError::Interrupted) => Input::Interrupted,
                    Err(_) => Input::Eof,
                }
            }
            None => match read_java_line(&mut stdin) {
                Some(line) => Input::Line(line),
                None => Input::Eof,
            },
        };
        if in_tx.blocking_send(input).is_err() {
            break EXIT_UNCAUGHT;
        }
    };
    drop(in_tx);
    if let Some(ed) = editor.as_mut() {
        ed.set_helper(None);
    }
    let _ = shell_thread.join();
    code
}

/// `BufferedReader.readLine`: a line ends at `\n`, `\r` or `\r\n`; `None` at end of input.
fn read_java_line(r: &mut impl BufRead) -> Option<String> {
    let mut bytes = Vec::new();
    let mut saw_any = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if buf.is_empty() {
            break;
        }
        saw_any = true;
        match buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) => {
                let cr = buf[i] == b'\r';
                bytes.extend_from_slice(&buf[..i]);
                r.consume(i + 1);
                if cr {
                    // swallow the \n of a \r\n
                    if let Ok(next) = r.fill_buf() {
                        if next.first() == Some(&b'\n') {
                            r.consume(1);
                        }
                    }
                }
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            None => {
                let n = buf.len();
                bytes.extend_from_slice(buf);
                r.consume(n);
            }
        }
    }
    saw_any.then(|| String::from_utf8_lossy(&bytes).into_owned())
}

fn shell_thread(
    config: ShellConfig,
    console: Arc<dyn Console>,
    mode: InputMode,
    in_rx: mpsc::Receiver<Input>,
    out_tx: std_mpsc::Sender<Output>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            console.err(&format!("cannot start the runtime: {e}\n"));
            let _ = out_tx.send(Output::Exit(EXIT_UNCAUGHT));
            return;
        }
    };
    let task = rt.spawn(shell_loop(config, console, mode, in_rx, out_tx));
    let shell = rt.block_on(task).ok().flatten();
    // A session still open at the end of input is not closed (zkCli just exits).
    rt.shutdown_background();
    drop(shell);
}

async fn shell_loop(
    config: ShellConfig,
    console: Arc<dyn Console>,
    mode: InputMode,
    mut in_rx: mpsc::Receiver<Input>,
    out_tx: std_mpsc::Sender<Output>,
) -> Option<Shell> {
    let mut shell = match Shell::start(config, console.clone()).await {
        Ok(s) => s,
        Err(u) => {
            console.err(&format!("{}\n", u.line()));
            let _ = out_tx.send(Output::Exit(EXIT_UNCAUGHT));
            return None;
        }
    };
    console.out("Welcome to ZooKeeper!\n");
    console.out(match mode {
        InputMode::Terminal => "JLine support is enabled\n",
        InputMode::Plain => "JLine support is disabled\n",
    });
    let _ = out_tx.send(Output::Prompt(shell.prompt()));
    while let Some(input) = in_rx.recv().await {
        match input {
            Input::Line(line) => match shell.execute_line(&line).await {
                Ok(Flow::Continue) => {
                    let _ = out_tx.send(Output::Prompt(shell.prompt()));
                }
                Ok(Flow::Exit(code)) => {
                    let _ = out_tx.send(Output::Exit(code));
                    return Some(shell);
                }
                Err(u) => {
                    console.err(&format!("{}\n", u.line()));
                    if mode == InputMode::Plain {
                        let _ = out_tx.send(Output::Exit(EXIT_UNCAUGHT));
                        return Some(shell);
                    }
                    // At a terminal a typo should not end the session.
                    let _ = out_tx.send(Output::Prompt(shell.prompt()));
                }
            },
            Input::Eof => {
                let _ = out_tx.send(Output::Exit(shell.exit_code()));
                return Some(shell);
            }
            Input::Interrupted => {
                let _ = out_tx.send(Output::Exit(EXIT_INTERRUPTED));
                return Some(shell);
            }
            Input::Complete { line, pos, reply } => {
                let _ = reply.send(completions(&shell, &line, pos).await);
            }
        }
    }
    Some(shell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_line_endings() {
        let mut r = std::io::Cursor::new(b"a\nb\r\nc\rd".to_vec());
        assert_eq!(read_java_line(&mut r).as_deref(), Some("a"));
        assert_eq!(read_java_line(&mut r).as_deref(), Some("b"));
        assert_eq!(read_java_line(&mut r).as_deref(), Some("c"));
        assert_eq!(read_java_line(&mut r).as_deref(), Some("d"));
        assert_eq!(read_java_line(&mut r), None);
        let mut r = std::io::Cursor::new(b"\n\n".to_vec());
        assert_eq!(read_java_line(&mut r).as_deref(), Some(""));
        assert_eq!(read_java_line(&mut r).as_deref(), Some(""));
        assert_eq!(read_java_line(&mut r), None);
    }
}
