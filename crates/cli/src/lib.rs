//! corral-cli: a shell for ZooKeeper-compatible servers with the commands, options, output
//! and exit statuses of Apache ZooKeeper 3.8's `zkCli.sh`, so that scripts and habits built
//! on zkCli keep working against corral (and against ZooKeeper itself).
//!
//! ```text
//! corral cli [-server host:port[,host:port...][/chroot]] [-timeout ms] [-r]
//!            [-waitforconnection] [-client-configuration file] [cmd args...]
//! ```
//!
//! Without a command it reads commands from stdin: at a terminal with a
//! `[zk: host:port(CONNECTED) 0] ` prompt, line editing, history and tab completion of
//! command names and znode paths; from a pipe without prompt, like zkCli with JLine absent
//! (as Debian ships it). With a command it runs that one and exits with its status.
//!
//! Modules, lowest first: [`java`] (the Java behaviours the output depends on), [`cmdline`]
//! (commons-cli option parsing), [`format`] (output texts), [`console`] (output sinks),
//! [`events`] (watch and connection events), [`shell`] (dispatch, history, exit status),
//! [`commands`] and [`quota`] (the commands), [`repl`] (input loops and threads).

pub mod cmdline;
pub mod commands;
pub mod console;
pub mod events;
pub mod format;
pub mod java;
pub mod quota;
pub mod repl;
pub mod shell;

pub use console::{CaptureConsole, Console, StdConsole, Stream};
pub use shell::{Flow, Shell, ShellConfig};

use std::io::IsTerminal;

/// Exit status when the client configuration file cannot be read (`INVALID_INVOCATION`).
pub const EXIT_INVALID_INVOCATION: i32 = 2;

/// zkCli's `MyCommandOptions.parseOptions`: options until the first word not starting with
/// `-`, which begins the command (taken verbatim, with all words after it). Unknown options
/// are ignored; an option missing its value stops option parsing with a message.
pub fn parse_options(args: &[String]) -> (ShellConfig, Option<Vec<String>>) {
    let mut config = ShellConfig::default();
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        let needs_value = matches!(
            opt.as_str(),
            "-server" | "-timeout" | "-client-configuration"
        );
        if needs_value {
            let Some(value) = it.next() else {
                eprintln!("Error: no argument found for option {opt}");
                return (config, None);
            };
            match opt.as_str() {
                "-server" => config.server = value.clone(),
                "-timeout" => config.timeout = value.clone(),
                _ => config.client_configuration = Some(value.clone()),
            }
        } else if opt == "-r" {
            config.read_only = true;
        } else if opt == "-waitforconnection" {
            config.wait_for_connection = true;
        }
        if !opt.starts_with('-') {
            let mut words = vec![opt.clone()];
            words.extend(it.cloned());
            return (config, Some(words));
        }
    }
    (config, None)
}

/// The `corral cli` entry point. `args` are the words after `cli` (no program name).
/// Returns the process exit status.
pub fn main_with_args(args: Vec<String>) -> i32 {
    let (config, command) = parse_options(&args);
    if let Some(file) = &config.client_configuration {
        // Only checked for readability: corral's client has no settings zkCli's file could
        // change (SASL and TLS are not supported).
        if let Err(e) = std::fs::metadata(file) {
            eprintln!(
                "org.apache.zookeeper.server.quorum.QuorumPeerConfig$ConfigException: \
                 Error processing {file}: {e}"
            );
            return EXIT_INVALID_INVOCATION;
        }
    }
    match command {
        Some(words) => repl::run_command(config, words),
        None => {
            let mode = if std::io::stdin().is_terminal() {
                repl::InputMode::Terminal
            } else {
                repl::InputMode::Plain
            };
            repl::run_lines(config, mode)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_like_zookeeper_main() {
        let (c, cmd) = parse_options(&v("-server h:1 -timeout 5000 -r get -s /x"));
        assert_eq!(c.server, "h:1");
        assert_eq!(c.timeout, "5000");
        assert!(c.read_only && !c.wait_for_connection);
        assert_eq!(cmd, Some(v("get -s /x")));
        let (c, cmd) = parse_options(&v("-waitforconnection -bogus"));
        assert!(c.wait_for_connection);
        assert_eq!(c.server, "localhost:2181");
        assert_eq!(cmd, None);
        let (c, cmd) = parse_options(&v("-server"));
        assert_eq!((c.server.as_str(), cmd), ("localhost:2181", None));
        let (_, cmd) = parse_options(&v("ls -server x"));
        assert_eq!(cmd, Some(v("ls -server x")));
    }
}
