//! Start a real server process for end-to-end tests: corral or Apache ZooKeeper.
//!
//! Owns: choosing the target (`CORRAL_TEST_TARGET=corral|zookeeper`, default `corral`),
//! picking a free port on 127.0.0.1, writing a `zoo.cfg` into a fresh directory, starting the
//! process, waiting until it serves, and stopping it by PID.
//!
//! Invariants: a [`ServerProcess`] always ends its child: on drop (including while a test
//! panics) it kills the child by PID, waits for it, and prints the tail of the server log if
//! the test is failing. The child also asks the kernel to SIGKILL it if the thread that
//! started it dies (`PR_SET_PDEATHSIG`), so a killed test binary leaves no server behind.
//! Every wait is bounded.
//!
//! When the corral binary is missing the start fails with a message saying how to build it:
//! the tests never skip.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to start serving.
pub const READY_TIMEOUT: Duration = Duration::from_secs(40);
/// Attempts to start when the chosen port turns out to be taken.
const START_ATTEMPTS_MAX: u32 = 3;
/// Apache ZooKeeper's jar (Debian package `zookeeper`); its manifest pulls in the rest.
pub const ZK_JARS: &[&str] = &[
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/slf4j-simple.jar",
];
const ZK_MAIN: &str = "org.apache.zookeeper.server.ZooKeeperServerMain";

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// Which server the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Corral,
    ZooKeeper,
}

impl Target {
    /// From `CORRAL_TEST_TARGET` (default `corral`). Panics on an unknown value.
    pub fn from_env() -> Target {
        match std::env::var("CORRAL_TEST_TARGET").as_deref() {
            Err(_) | Ok("") | Ok("corral") => Target::Corral,
            Ok("zookeeper") => Target::ZooKeeper,
            Ok(other) => panic!("CORRAL_TEST_TARGET={other:?}: expected `corral` or `zookeeper`"),
        }
    }
}

/// A running server process; killed (by PID) when dropped.
pub struct ServerProcess {
    pub target: Target,
    pub port: u16,
    pub dir: PathBuf,
    pub log_path: PathBuf,
    child: Child,
}

impl ServerProcess {
    /// Start the server chosen by `CORRAL_TEST_TARGET`, with the standard test config.
    pub fn start() -> ServerProcess {
        Self::start_with(Target::from_env(), &[])
    }

    /// Start `target` with extra `zoo.cfg` lines (`key`, `value`).
    pub fn start_with(target: Target, extra_cfg: &[(&str, &str)]) -> ServerProcess {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS_MAX {
            match Self::try_start(target, extra_cfg) {
                Ok(server) => return server,
                Err(e) => {
                    let retry = e.contains("Address already in use");
                    last_error = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        panic!("could not start {target:?}: {last_error}");
    }

    fn try_start(target: Target, extra_cfg: &[(&str, &str)]) -> Result<ServerProcess, String> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "corral-e2e-{}-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed),
            port
        ));
        let data_dir = dir.join("data");
        fs::create_dir_all(&data_dir).map_err(|e| format!("create {}: {e}", data_dir.display()))?;
        let mut cfg = format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             4lw.commands.whitelist=*\nextendedTypesEnabled=true\nadmin.enableServer=false\n",
            data_dir.display()
        );
        for (k, v) in extra_cfg {
            cfg.push_str(&format!("{k}={v}\n"));
        }
        let cfg_path = dir.join("zoo.cfg");
        fs::write(&cfg_path, cfg).map_err(|e| format!("write {}: {e}", cfg_path.display()))?;
        let log_path = dir.join("server.log");
        let log = fs::File::create(&log_path).map_err(|e| format!("create log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("clone log: {e}"))?;

        let mut cmd = match target {
            Target::Corral => {
                let bin = corral_bin();
                if !bin.is_file() {
                    panic!(
                        "corral binary not found at {}: build it with `cargo build --release -p corral` \
                         (or set CORRAL_BIN), or run these tests against Apache ZooKeeper with \
                         CORRAL_TEST_TARGET=zookeeper",
                        bin.display()
                    );
                }
                let mut c = Command::new(bin);
                c.arg("server").arg("--config").arg(&cfg_path);
                c
            }
            Target::ZooKeeper => {
                for jar in ZK_JARS {
                    if !Path::new(jar).exists() {
                        panic!(
                            "{jar} is missing: install Apache ZooKeeper with \
                             `apt-get update && apt-get install -y zookeeper`"
                        );
                    }
                }
                let mut c = Command::new(java_bin());
                c.args([
                    "-Xmx256m",
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    "-Djava.net.preferIPv4Stack=true",
                    "-Dzookeeper.extendedTypesEnabled=true",
                    "-Dzookeeper.admin.enableServer=false",
                    "-Dzookeeper.4lw.commands.whitelist=*",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                ]);
                for (k, v) in extra_cfg {
                    if k.starts_with("znode.container.") {
                        c.arg(format!("-D{k}={v}"));
                    }
                }
                c.arg("-cp")
                    .arg(ZK_JARS.join(":"))
                    .arg(ZK_MAIN)
                    .arg(&cfg_path);
                c
            }
        };
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("spawn {target:?}: {e}"))?;
        let mut server = ServerProcess {
            target,
            port,
            dir,
            log_path,
            child,
        };
        match server.wait_ready(READY_TIMEOUT) {
            Ok(()) => Ok(server),
            Err(e) => Err(format!(
                "{e}\nlog {}:\n{}",
                server.log_path.display(),
                server.log_tail(40)
            )),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT`, the connect string for clients.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Poll until `srvr` shows a `Mode:` line (ZooKeeper answers `ruok` before it serves).
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{:?} exited with {status} during startup",
                    self.target
                ));
            }
            match self.four_letter("srvr") {
                Ok(out) if out.contains("Mode:") => return Ok(()),
                Ok(out) => last = format!("srvr answered {out:?}"),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{:?} not ready after {timeout:?} ({last})",
            self.target
        ))
    }

    /// Send a four-letter word and read the answer until the server closes.
    pub fn four_letter(&self, word: &str) -> Result<String, String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut s =
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(word.as_bytes()).map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {:?} on port {} (pid {}), log {} (tail):\n{}",
                self.target,
                self.port,
                self.child.id(),
                self.log_path.display(),
                self.log_tail(40)
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// `CORRAL_BIN`, else `<target dir>/release/corral` of this workspace.
pub fn corral_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("CORRAL_BIN") {
        return PathBuf::from(bin);
    }
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target_dir.join("release").join("corral")
}

fn java_bin() -> PathBuf {
    if let Ok(home) = std::env::var("JAVA_HOME") {
        let java = Path::new(&home).join("bin/java");
        if java.exists() {
            return java;
        }
    }
    PathBuf::from("java")
}

#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    extern "C" {
        fn prctl(option: i32, ...) -> i32;
    }
    const PR_SET_PDEATHSIG: i32 = 1;
    const SIGKILL: i64 = 9;
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}
