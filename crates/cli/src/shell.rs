//! The shell proper: zkCli's `ZooKeeperMain` — command dispatch, history and `redo`,
//! `printwatches`, `connect`/`close`/`quit`, the exit status, and the "Not connected" rule —
//! on top of one corral-client session. The commands themselves are in
//! [`crate::commands`] and [`crate::quota`].
//!
//! Owns: the session (`Client`) and its connect string, the command history, the command
//! counter shown in the prompt, the last parsed command line (zkCli re-runs it for a line
//! that has no words), the exit status of the last command, and the event printer.
//!
//! The session runs with the Java client's rules where zkCli's output depends on them: an
//! [`corral_client::EventStream`] as its default watcher ([`crate::events`]), and requests
//! (and `close`) issued while disconnected fail with ConnectionLoss when the connection
//! attempt in progress fails ([`ClientOptions::fail_queued_on_connect_failure`]).
//!
//! Threading: a [`Shell`] lives in one tokio task; every method is `&mut self`, so commands
//! run one at a time, as in zkCli.

use crate::console::Console;
use crate::events::EventHub;
use crate::format;
use crate::java::{self, Uncaught};
use corral_client::{AddWatchMode, Client, ClientOptions, Error};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The version `version` prints: the ZooKeeper release whose behaviour corral implements,
/// then corral's own.
pub const CLI_VERSION: &str = concat!("3.8.4-corral-", env!("CARGO_PKG_VERSION"));

/// zkCli's default `-timeout` (the session timeout requested), in milliseconds.
pub const DEFAULT_TIMEOUT_MS: &str = "30000";

/// How many earlier commands `history` lists besides the current one.
pub const HISTORY_SHOWN: usize = 10;

/// Exit status of a failed command (`CliException`'s default).
pub const EXIT_ERROR: i32 = 1;
/// Exit status for an unknown command.
pub const EXIT_COMMAND_NOT_FOUND: i32 = 127;

/// The first line of zkCli's usage text.
const USAGE_HEAD: &str =
    "ZooKeeper -server host:port -client-configuration properties-file cmd args";

/// Every command zkCli knows, with its option string (`usage` prints them sorted).
pub const COMMANDS: &[(&str, &str)] = &[
    ("connect", "host:port"),
    ("history", ""),
    ("redo", "cmdno"),
    ("printwatches", "on|off"),
    ("quit", ""),
    ("close", ""),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("set", "[-s] [-v version] path data"),
    ("get", "[-s] [-w] path"),
    ("ls", "[-s] [-w] [-R] path"),
    ("getAcl", "[-s] path"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("setquota", "-n|-b|-N|-B val path"),
    ("listquota", "path"),
    ("delquota", "[-n|-b|-N|-B] path"),
    ("addauth", "scheme auth"),
    (
        "reconfig",
        "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | \
         [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
    ),
    ("config", "[-c] [-w] [-s]"),
    ("removewatches", "path [-c|-d|-a] [-l]"),
    ("getEphemerals", "path"),
    ("getAllChildrenNumber", "path"),
    ("version", ""),
    (
        "addWatch",
        "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default \
         is PERSISTENT_RECURSIVE",
    ),
    ("whoami", ""),
];

/// Command names in the order zkCli sorts them (Java's `String` order).
pub fn sorted_command_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = COMMANDS.iter().map(|(n, _)| *n).collect();
    names.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
    names
}

/// `cmd + " " + optionStr`.
pub fn usage_of(cmd: &str) -> String {
    let opts = COMMANDS
        .iter()
        .find(|(n, _)| *n == cmd)
        .map(|(_, o)| *o)
        .unwrap_or("");
    format!("{cmd} {opts}")
}

/// The command-line options zkCli takes before the command (`-server`, `-timeout`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellConfig {
    pub server: String,
    /// As given; parsed (Java `Integer.parseInt`) when connecting.
    pub timeout: String,
    pub read_only: bool,
    pub wait_for_connection: bool,
    pub client_configuration: Option<String>,
}

impl Default for ShellConfig {
    fn default() -> Self {
        ShellConfig {
            server: "localhost:2181".into(),
            timeout: DEFAULT_TIMEOUT_MS.into(),
            read_only: false,
            wait_for_connection: false,
            client_configuration: None,
        }
    }
}

/// What to do after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `quit`: stop with this status.
    Exit(i32),
}

/// Why a command did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A `CliException`: zkCli prints the message on stderr and sets the exit status.
    Cli { message: String, exit_code: i32 },
    /// An exception zkCli does not catch: the JVM would print it and exit with status 1.
    Uncaught(Uncaught),
}

impl Failure {
    pub fn cli(message: impl Into<String>) -> Failure {
        Failure::Cli {
            message: message.into(),
            exit_code: EXIT_ERROR,
        }
    }
}

impl From<Uncaught> for Failure {
    fn from(u: Uncaught) -> Failure {
        Failure::Uncaught(u)
    }
}

/// The result of one command.
pub type CmdResult = Result<(), Failure>;

/// One zkCli session.
pub struct Shell {
    pub(crate) console: Arc<dyn Console>,
    pub(crate) config: ShellConfig,
    pub(crate) events: EventHub,
    host: String,
    client: Option<Client>,
    history: HashMap<usize, String>,
    command_count: usize,
    exit_code: i32,
    /// zkCli's `MyCommandOptions` words: a line without words runs these again.
    last_words: Option<Vec<String>>,
    /// `addWatch -m` is remembered by zkCli's single AddWatchCommand object.
    pub(crate) add_watch_mode: AddWatchMode,
}

impl Shell {
    /// Prints `Connecting to <server>` and starts the session (without waiting for it unless
    /// `-waitforconnection`). Must run inside the shell's tokio runtime.
    pub async fn start(config: ShellConfig, console: Arc<dyn Console>) -> Result<Shell, Uncaught> {
        console.out(&format!("Connecting to {}\n", config.server));
        let events = EventHub::start(console.clone(), Arc::new(AtomicBool::new(true)));
        let mut shell = Shell {
            console,
            host: config.server.clone(),
            config,
            events,
            client: None,
            history: HashMap::new(),
            command_count: 0,
            exit_code: 0,
            last_words: None,
            add_watch_mode: AddWatchMode::PersistentRecursive,
        };
        let host = shell.host.clone();
        shell.connect_to(host).await?;
        Ok(shell)
    }

    /// `[zk: host:port(CONNECTED) 3] `.
    pub fn prompt(&self) -> String {
        format!(
            "[zk: {}({}) {}] ",
            self.host,
            self.state_name(),
            self.command_count
        )
    }

    fn state_name(&self) -> &'static str {
        match &self.client {
            Some(c) => format::state_name(c.state()),
            None => "CLOSED",
        }
    }

    /// The status zkCli would exit with now (that of the last command).
    pub fn exit_code(&self) -> i32 {
        self.exit_code
    }

    pub fn command_count(&self) -> usize {
        self.command_count
    }

    /// The session, if one was started (it may have ended).
    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    pub(crate) fn out(&self, text: &str) {
        self.console.out(text);
    }

    pub(crate) fn err(&self, text: &str) {
        self.console.err(text);
    }

    pub(crate) fn outln(&self, text: &str) {
        self.console.out(&format!("{text}\n"));
    }

    pub(crate) fn errln(&self, text: &str) {
        self.console.err(&format!("{text}\n"));
    }

    /// The live session (commands only run after the "Not connected" check).
    pub(crate) fn live(&self) -> Result<Client, Failure> {
        self.client.clone().ok_or_else(|| {
            Failure::cli(format::keeper_message(
                corral_client::proto::ErrorCode::SessionExpired,
                None,
            ))
        })
    }

    /// Runs one request, then prints every event that arrived before its reply. (The
    /// session fails a request made while disconnected with ConnectionLoss when the
    /// connection attempt in progress fails, as the Java client does.)
    pub(crate) async fn request<T, F>(&self, fut: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let r = fut.await;
        self.events.flush().await;
        r
    }

    /// zkCli's `connectToZK`: closes a live session, then starts one to `new_host`.
    async fn connect_to(&mut self, new_host: String) -> Result<(), Uncaught> {
        self.close_session().await;
        self.host = new_host;
        let timeout_ms = java::parse_int(&self.config.timeout)?;
        let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
        let options = ClientOptions::new()
            .session_timeout(timeout)
            .can_be_read_only(self.config.read_only)
            .fail_queued_on_connect_failure(true)
            // A backstop only: the Java client has no request deadline, but a request must
            // not outlive a session that can no longer answer it.
            .request_timeout(Some(timeout.saturating_mul(2).max(Duration::from_secs(1))));
        // The only way starting fails: a connect string without hosts.
        let (client, events) = options
            .start_with_events(&self.host)
            .map_err(|_| Uncaught::illegal_argument("A HostProvider may not be empty!"))?;
        self.events.attach(events).await;
        self.client = Some(client.clone());
        if self.config.wait_for_connection {
            let ok = client
                .wait_for_state(timeout, |s| s.is_connected() || s.is_terminal())
                .await
                .is_ok_and(|s| s.is_connected());
            if !ok {
                let _ = client.close().await;
                self.events.flush().await;
                return Err(Uncaught(
                    "java.io.IOException: org.apache.zookeeper.KeeperException$\
                     ConnectionLossException: KeeperErrorCode = ConnectionLoss"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// Closes the session (`close`, `quit`) and prints its Closed event. (While
    /// disconnected the close waits for the attempt in progress, as Java's does.)
    pub(crate) async fn close_session(&mut self) {
        if let Some(c) = self.client.clone() {
            if !c.state().is_terminal() {
                let _ = c.close().await;
            }
        }
        self.events.flush().await;
    }

    /// `ZooKeeperMain.executeLine`: one line typed at the shell.
    pub async fn execute_line(&mut self, line: &str) -> Result<Flow, Uncaught> {
        if line.is_empty() {
            return Ok(Flow::Continue);
        }
        let words = java::tokenize(line);
        if !words.is_empty() {
            self.last_words = Some(words);
        }
        self.history.insert(self.command_count, line.to_owned());
        let flow = match self.last_words.clone() {
            Some(words) => self.process_cmd(words).await,
            // zkCli would dereference its empty command line.
            None => Err(Uncaught("java.lang.NullPointerException".into())),
        };
        self.command_count += 1;
        flow
    }

    /// Runs one command given as words (`corral cli -server h cmd args...`), without
    /// history. Returns the exit status zkCli would have.
    pub async fn run_words(&mut self, words: Vec<String>) -> Result<Flow, Uncaught> {
        self.last_words = Some(words.clone());
        self.process_cmd(words).await
    }

    /// `processCmd`: runs a command and records its exit status.
    async fn process_cmd(&mut self, words: Vec<String>) -> Result<Flow, Uncaught> {
        match Box::pin(self.process_zk_cmd(words)).await {
            Ok(flow) => {
                self.exit_code = 0;
                Ok(flow)
            }
            Err(Failure::Cli { message, exit_code }) => {
                self.exit_code = exit_code;
                self.errln(&message);
                Ok(Flow::Continue)
            }
            Err(Failure::Uncaught(u)) => Err(u),
        }
    }

    fn usage(&self) {
        let mut text = format!("{USAGE_HEAD}\n");
        for name in sorted_command_names() {
            text.push_str(&format!("\t{}\n", usage_of(name)));
        }
        self.err(&text);
    }

    /// `processZKCmd`.
    async fn process_zk_cmd(&mut self, words: Vec<String>) -> Result<Flow, Failure> {
        let Some(cmd) = words.first().cloned() else {
            self.usage();
            return Err(Failure::cli("No command entered"));
        };
        if !COMMANDS.iter().any(|(n, _)| *n == cmd) {
            self.usage();
            return Err(Failure::Cli {
                message: format!("Command not found: Command not found {cmd}"),
                exit_code: EXIT_COMMAND_NOT_FOUND,
            });
        }
        match cmd.as_str() {
            "quit" => {
                self.close_session().await;
                return Ok(Flow::Exit(self.exit_code));
            }
            "redo" if words.len() >= 2 => {
                let i = java::decode_int(&words[1])?;
                if i < 0 || self.command_count <= i as usize {
                    return Err(Failure::cli("Command index out of range"));
                }
                let line = self.history.get(&(i as usize)).cloned().unwrap_or_default();
                let redo_words = java::tokenize(&line);
                if !redo_words.is_empty() {
                    self.last_words = Some(redo_words);
                }
                let Some(redo_words) = self.last_words.clone() else {
                    return Err(Failure::Uncaught(Uncaught(
                        "java.lang.NullPointerException".into(),
                    )));
                };
                if redo_words.first().map(String::as_str) == Some("redo") {
                    return Err(Failure::cli("No redoing redos"));
                }
                self.history.insert(self.command_count, line);
                if let Flow::Exit(code) = self.process_cmd(redo_words).await? {
                    return Ok(Flow::Exit(code));
                }
            }
            "history" => {
                let from = self.command_count.saturating_sub(HISTORY_SHOWN);
                let mut text = String::new();
                for i in from..=self.command_count {
                    let line = self.history.get(&i).map(String::as_str).unwrap_or("null");
                    text.push_str(&format!("{i} - {line}\n"));
                }
                self.out(&text);
            }
            "printwatches" => {
                if words.len() == 1 {
                    let on = if self.events.printing() { "on" } else { "off" };
                    self.outln(&format!("printwatches is {on}"));
                } else {
                    self.events.set_print(words[1] == "on");
                }
            }
            "connect" => {
                let host = words.get(1).cloned().unwrap_or_else(|| self.host.clone());
                self.connect_to(host).await?;
            }
            _ => {}
        }
        let alive = self
            .client
            .as_ref()
            .is_some_and(|c| !c.state().is_terminal());
        if !alive {
            self.outln("Not connected");
            return Ok(Flow::Continue);
        }
        self.run_cli_command(&cmd, words).await?;
        Ok(Flow::Continue)
    }

    /// Children of `dir` for tab completion (empty on any error).
    pub async fn children_for_completion(&self, dir: &str) -> Vec<String> {
        let Some(client) = &self.client else {
            return Vec::new();
        };
        if !client.state().is_connected() {
            return Vec::new();
        }
        match tokio::time::timeout(COMPLETION_WAIT, client.get_children(dir)).await {
            Ok(Ok(children)) => children,
            _ => Vec::new(),
        }
    }
}

/// How long tab completion waits for the server.
pub const COMPLETION_WAIT: Duration = Duration::from_secs(2);
