//! `corral`: a ZooKeeper-compatible coordination service.
//!
//! `corral server [--config zoo.cfg]` runs a server (the embedded standalone default when no
//! config is given: 127.0.0.1:2181, tickTime 2000, data under ./corral-data).
//! `corral cli [zkCli.sh options and command]` runs the zkCli-compatible shell.
//! `corral log dump`, `corral snapshot dump|verify` and `corral purge` are the operator
//! tools on data directories (see `tools`).
//! `corral bench [options]` runs the load generator (`corral bench --help`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod tools;

#[derive(Parser)]
#[command(
    name = "corral",
    version,
    about = "A ZooKeeper-compatible coordination service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server.
    Server {
        /// A ZooKeeper zoo.cfg; without it, the embedded standalone default is used.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// The zkCli.sh-compatible shell: `corral cli -server host:port [cmd args...]`.
    #[command(disable_help_flag = true)]
    Cli {
        /// zkCli.sh's options and command, passed on verbatim.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Load generator for ZooKeeper-compatible servers: `corral bench --help`.
    #[command(disable_help_flag = true)]
    Bench {
        /// The bench's options, passed on verbatim.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Operator tools on data directories (log, snapshot, purge).
    #[command(flatten)]
    Tools(tools::ToolCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The shell prints only what zkCli prints: no log lines unless CORRAL_LOG asks.
    let default_filter = match cli.command {
        Command::Cli { .. } | Command::Tools(_) => "off",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    match cli.command {
        Command::Server { config } => run_server(config),
        Command::Tools(t) => tools::run(t),
        Command::Cli { args } => {
            ExitCode::from(corral_cli::main_with_args(args).clamp(0, 255) as u8)
        }
        Command::Bench { args } => {
            ExitCode::from(corral_bench::main_with_args(args).clamp(0, 255) as u8)
        }
    }
}

fn run_server(config: Option<PathBuf>) -> ExitCode {
    let settings = match corral_server::settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("corral: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let mut server = match corral_server::run::start(settings).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::select! {
            _ = wait_for_signal() => {}
            msg = server.failure() => {
                eprintln!("corral: stopped serving: {msg}");
                server.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
        tracing::info!("shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
