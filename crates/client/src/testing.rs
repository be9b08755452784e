//! Test harness (feature `testing`): a real server process and a fault-injecting TCP proxy.
//!
//! Owns: [`TestServer`] — starts Apache ZooKeeper 3.8 (`CORRAL_TEST_TARGET=zookeeper`, the
//! default) or corral (`CORRAL_TEST_TARGET=corral`, binary `target/release/corral` or
//! `$CORRAL_BIN`) on 127.0.0.1 with a free port and a fresh data directory, waits until it
//! serves (`ruok`, then a mode in `srvr`), and kills it by PID when dropped (also on panic);
//! [`Proxy`] — forwards TCP to a server and can drop every connection, stop forwarding (a
//! network partition that keeps sockets open) or refuse new connections; [`TestEnsemble`] —
//! a replicated ensemble (ZooKeeper's `QuorumPeerMain` by default, or corral members with
//! [`TestEnsemble::start_target`]) whose members can be killed and restarted one by one.
//!
//! Invariants: a missing binary is a panic with the install hint, never a skipped test; every
//! wait here is bounded in time; only the processes started here are ever killed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server gets to start serving.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which server the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Zookeeper,
    Corral,
}

impl Target {
    /// From `CORRAL_TEST_TARGET` (`zookeeper` when unset).
    pub fn from_env() -> Target {
        match std::env::var("CORRAL_TEST_TARGET").as_deref() {
            Ok("corral") => Target::Corral,
            Ok("zookeeper") | Ok("") | Err(_) => Target::Zookeeper,
            Ok(other) => panic!("CORRAL_TEST_TARGET={other:?}: expected zookeeper or corral"),
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; a small race is accepted).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Sends a four-letter word to `addr` and returns the answer (None if unreachable).
pub fn four_letter_at(addr: SocketAddr, cmd: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(cmd.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// `java ... <main_class> <cfg>` for Apache ZooKeeper, logging to `<dir>/zookeeper.log`.
/// Panics with the install hint when ZooKeeper or java is missing. Public for other crates'
/// tests that run ZooKeeper members of their own (the election transport's interop tests).
pub fn zookeeper_command(dir: &Path, main_class: &str, cfg: &Path) -> Command {
    let classpath = match std::env::var("ZOOKEEPER_CLASSPATH") {
        Ok(cp) => cp,
        Err(_) if Path::new("/usr/share/java/zookeeper.jar").exists() => {
            // zookeeper.jar's manifest lists its dependencies; slf4j-simple is
            // the one logging binding, told below to write to a file.
            "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar".into()
        }
        Err(_) if Path::new("/usr/share/zookeeper/lib").exists() => {
            "/usr/share/zookeeper/lib/*:/usr/share/zookeeper/*".into()
        }
        Err(_) => panic!(
            "Apache ZooKeeper not found (no /usr/share/java/zookeeper.jar): install \
             it with `apt-get install -y zookeeper`, or set ZOOKEEPER_CLASSPATH, or \
             run against corral with CORRAL_TEST_TARGET=corral"
        ),
    };
    if Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!("`java` not found: install a JRE (`apt-get install -y zookeeper` pulls one in)");
    }
    let mut c = Command::new("java");
    c.arg("-cp")
        .arg(classpath)
        .arg("-Xmx256m")
        .arg("-XX:+UseSerialGC")
        .arg("-XX:TieredStopAtLevel=1")
        .arg(format!(
            "-Dorg.slf4j.simpleLogger.logFile={}",
            dir.join("zookeeper.log").display()
        ))
        .arg("-Dzookeeper.admin.enableServer=false")
        .arg("-Dzookeeper.4lw.commands.whitelist=*")
        .arg(main_class)
        .arg(cfg);
    c
}

/// `corral server --config <cfg>`, the binary being `$CORRAL_BIN` or the workspace's
/// `target/release/corral`. Panics with the build hint when it is missing.
fn corral_command(cfg: &Path) -> Command {
    let bin = std::env::var_os("CORRAL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/corral"));
    if !bin.exists() {
        panic!(
            "corral binary not found at {}: build it with `cargo build --release -p \
             corral`, set CORRAL_BIN, or use CORRAL_TEST_TARGET=zookeeper",
            bin.display()
        );
    }
    let mut c = Command::new(bin);
    c.arg("server").arg("--config").arg(cfg);
    c
}

/// The last `n` lines of each log file of a server directory, for failure messages.
fn log_tail_of(dir: &Path, n: usize) -> String {
    let mut out = String::new();
    for f in ["stdout.log", "zookeeper.log"] {
        if let Ok(s) = std::fs::read_to_string(dir.join(f)) {
            let lines: Vec<&str> = s.lines().collect();
            let from = lines.len().saturating_sub(n);
            out.push_str(&format!("--- {f}\n{}\n", lines[from..].join("\n")));
        }
    }
    out
}

static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system temp dir, removed by [`TempDir`]'s drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("corral-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("CORRAL_TEST_KEEP_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A server process for tests. Dropping it kills the process.
#[derive(Debug)]
pub struct TestServer {
    target: Target,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    extra_config: Vec<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

impl TestServer {
    /// Starts the server chosen by `CORRAL_TEST_TARGET` on a free port.
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// Same, with extra `zoo.cfg` lines (`key=value`).
    pub fn start_with(extra_config: &[&str]) -> TestServer {
        TestServer::start_target(Target::from_env(), extra_config)
    }

    /// A server of the given kind, whatever `CORRAL_TEST_TARGET` says.
    pub fn start_target(target: Target, extra_config: &[&str]) -> TestServer {
        let mut s = TestServer {
            target,
            port: free_port(),
            dir: TempDir::new("server"),
            child: None,
            extra_config: extra_config.iter().map(|s| s.to_string()).collect(),
        };
        s.launch();
        s
    }

    pub fn target(&self) -> Target {
        self.target
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `127.0.0.1:<port>`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's PID while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn write_config(&self) -> PathBuf {
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).expect("create data dir");
        let mut cfg = format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
             clientPortAddress=127.0.0.1\nextendedTypesEnabled=true\n\
             4lw.commands.whitelist=*\nadmin.enableServer=false\nmaxClientCnxns=0\n",
            data.display(),
            self.port
        );
        for l in &self.extra_config {
            cfg.push_str(l);
            cfg.push('\n');
        }
        let p = self.dir.path().join("zoo.cfg");
        std::fs::write(&p, cfg).expect("write zoo.cfg");
        p
    }

    fn command(&self, cfg: &Path) -> Command {
        match self.target {
            Target::Zookeeper => zookeeper_command(
                self.dir.path(),
                "org.apache.zookeeper.server.ZooKeeperServerMain",
                cfg,
            ),
            Target::Corral => corral_command(cfg),
        }
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let cfg = self.write_config();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stdout.log"))
            .expect("open stdout.log");
        let err = out.try_clone().expect("clone log handle");
        let mut cmd = self.command(&cfg);
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?} server: {e}", self.target));
        self.child = Some(child);
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    panic!(
                        "{:?} server exited during startup ({status}); log:\n{}",
                        self.target,
                        self.log_tail()
                    );
                }
            }
            if self.is_serving() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{:?} server did not start serving within {:?}; log:\n{}",
                    self.target,
                    SERVER_START_TIMEOUT,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the server takes sessions: it answers `ruok`, and `srvr` reports its mode.
    /// (ZooKeeper answers `imok` while it is still loading, and closes client connections
    /// with "ZooKeeperServer not running" until it serves; `srvr` then says "This ZooKeeper
    /// instance is not currently serving requests".)
    fn is_serving(&self) -> bool {
        self.four_letter("ruok").as_deref() == Some("imok")
            && self
                .four_letter("srvr")
                .is_some_and(|s| s.lines().any(|l| l.starts_with("Mode: ")))
    }

    /// The last lines of the server's logs, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail_of(self.dir.path(), 40)
    }

    /// Sends a four-letter word and returns the answer (None if the server is unreachable).
    pub fn four_letter(&self, cmd: &str) -> Option<String> {
        four_letter_at(self.addr(), cmd)
    }

    /// Kills the process (SIGKILL) and waits for it. The data directory stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops and starts again on the same port and data directory (sessions survive on
    /// ZooKeeper, which persists them).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        // The port may linger briefly; retry the launch until it binds.
        while TcpListener::bind(self.addr()).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.launch();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long an ensemble gets to elect a leader and serve on every member.
pub const ENSEMBLE_START_TIMEOUT: Duration = Duration::from_secs(30);

/// One member of a [`TestEnsemble`].
#[derive(Debug)]
struct Member {
    client_port: u16,
    observer: bool,
    dir: TempDir,
    cfg_path: PathBuf,
    child: Option<Child>,
}

/// A replicated ensemble on 127.0.0.1 — Apache ZooKeeper 3.8 (`QuorumPeerMain`, the default)
/// or corral (`corral server --config`, binary found as for [`TestServer`]) — each member with
/// its own data directory, `myid`, `zoo.cfg`, client port and quorum/election ports
/// (tickTime=200, initLimit=10, syncLimit=5). Observers, if any, come after the voters and
/// have `peerType=observer`. Every member still running is killed by PID when the ensemble is
/// dropped (also on panic).
///
/// Fault injection between members (partitions through per-link proxies) lives in the Python
/// harness, `tests/ensemble.py`.
#[derive(Debug)]
pub struct TestEnsemble {
    target: Target,
    members: Vec<Member>,
}

/// `n` distinct free ports.
fn distinct_free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::with_capacity(n);
    while ports.len() < n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

impl TestEnsemble {
    /// Starts `n` Apache ZooKeeper members (whatever `CORRAL_TEST_TARGET` says) and waits (at
    /// most [`ENSEMBLE_START_TIMEOUT`]) until each reports `Mode: leader` or `follower`.
    pub fn start(n: usize) -> TestEnsemble {
        TestEnsemble::start_target(Target::Zookeeper, n)
    }

    /// Starts `n` voting members of `target`.
    pub fn start_target(target: Target, n: usize) -> TestEnsemble {
        TestEnsemble::start_with(target, n, 0, &[])
    }

    /// Starts `voters` voting members and `observers` observers of `target`, with extra
    /// `zoo.cfg` lines (`key=value`) for every member.
    pub fn start_with(
        target: Target,
        voters: usize,
        observers: usize,
        extra_config: &[&str],
    ) -> TestEnsemble {
        let n = voters + observers;
        assert!(voters >= 1, "an ensemble needs a voting member");
        let ports = distinct_free_ports(3 * n);
        let servers: String = (0..n)
            .map(|i| {
                format!(
                    "server.{}=127.0.0.1:{}:{}{}\n",
                    i + 1,
                    ports[n + 2 * i],
                    ports[n + 2 * i + 1],
                    if i >= voters { ":observer" } else { "" }
                )
            })
            .collect();
        let extra: String = extra_config.iter().map(|l| format!("{l}\n")).collect();
        let mut ens = TestEnsemble {
            target,
            members: Vec::with_capacity(n),
        };
        for (i, &client_port) in ports.iter().enumerate().take(n) {
            let observer = i >= voters;
            let dir = TempDir::new("ensemble");
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).expect("create data dir");
            std::fs::write(data.join("myid"), format!("{}\n", i + 1)).expect("write myid");
            let cfg = format!(
                "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\nmaxSessionTimeout=60000\n\
                 4lw.commands.whitelist=*\nadmin.enableServer=false\nmaxClientCnxns=0\n\
                 standaloneEnabled=false\nreconfigEnabled=false\n{}{}{}",
                data.display(),
                client_port,
                if observer { "peerType=observer\n" } else { "" },
                extra,
                servers
            );
            let cfg_path = dir.path().join("zoo.cfg");
            std::fs::write(&cfg_path, cfg).expect("write zoo.cfg");
            ens.members.push(Member {
                client_port,
                observer,
                dir,
                cfg_path,
                child: None,
            });
            ens.launch(i);
        }
        let all: Vec<usize> = (0..n).collect();
        ens.wait_serving(&all, ENSEMBLE_START_TIMEOUT);
        ens
    }

    fn launch(&mut self, i: usize) {
        let m = &self.members[i];
        assert!(m.child.is_none(), "member {} already running", i + 1);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.path().join("stdout.log"))
            .expect("open stdout.log");
        let err = out.try_clone().expect("clone log handle");
        let mut cmd = match self.target {
            Target::Zookeeper => zookeeper_command(
                m.dir.path(),
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                &m.cfg_path,
            ),
            Target::Corral => corral_command(&m.cfg_path),
        };
        cmd.current_dir(m.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {:?} ensemble member {}: {e}",
                self.target,
                i + 1
            )
        });
        self.members[i].child = Some(child);
    }

    pub fn target(&self) -> Target {
        self.target
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether member `i` was configured as an observer.
    pub fn is_observer(&self, i: usize) -> bool {
        self.members[i].observer
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.members[i].client_port))
    }

    /// `127.0.0.1:<port>` of member `i` (0-based).
    pub fn host(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// Every member, comma-separated.
    pub fn connect_string(&self) -> String {
        self.connect_string_of(&(0..self.len()).collect::<Vec<_>>())
    }

    /// The given members, comma-separated.
    pub fn connect_string_of(&self, members: &[usize]) -> String {
        members
            .iter()
            .map(|&i| self.host(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The member whose `host:port` this is.
    pub fn index_of(&self, host: &str) -> Option<usize> {
        (0..self.len()).find(|&i| self.host(i) == host)
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(|c| c.id())
    }

    pub fn dir(&self, i: usize) -> &Path {
        self.members[i].dir.path()
    }

    pub fn four_letter(&self, i: usize, cmd: &str) -> Option<String> {
        four_letter_at(self.addr(i), cmd)
    }

    /// `leader`, `follower`, `observer` from `srvr` (None while not serving).
    pub fn mode(&self, i: usize) -> Option<String> {
        self.four_letter(i, "srvr")?
            .lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(|m| m.trim().to_string()))
    }

    /// The member that reports `Mode: leader`, waiting up to `timeout` for exactly one.
    pub fn leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let leaders: Vec<usize> = (0..self.len())
                .filter(|&i| self.mode(i).as_deref() == Some("leader"))
                .collect();
            if leaders.len() == 1 {
                return leaders[0];
            }
            if Instant::now() > deadline {
                let modes: Vec<_> = (0..self.len()).map(|i| self.mode(i)).collect();
                panic!("no single leader within {timeout:?}: modes {modes:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills member `i` (SIGKILL) and waits for it. Its data directory stays.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills member `i` if it runs, starts it again on the same ports and data directory and
    /// waits (at most [`ENSEMBLE_START_TIMEOUT`]) until it serves.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpListener::bind(self.addr(i)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.launch(i);
        self.wait_serving(&[i], ENSEMBLE_START_TIMEOUT);
    }

    /// Waits until each of `members` reports leader, follower or observer (panics after
    /// `timeout`, or at once if one exited).
    pub fn wait_serving(&mut self, members: &[usize], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            for &i in members {
                if let Some(c) = self.members[i].child.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        self.members[i].child = None;
                        panic!(
                            "ensemble member {} exited ({status}); log:\n{}",
                            i + 1,
                            self.log_tail(i)
                        );
                    }
                }
            }
            if members.iter().all(|&i| {
                matches!(
                    self.mode(i).as_deref(),
                    Some("leader" | "follower" | "observer")
                )
            }) {
                return;
            }
            if Instant::now() > deadline {
                let logs: String = members.iter().map(|&i| self.log_tail(i)).collect();
                panic!(
                    "ensemble members {members:?} not serving within {timeout:?}; logs:\n{logs}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of member `i`'s logs, for failure messages.
    pub fn log_tail(&self, i: usize) -> String {
        format!("=== member {}\n{}", i + 1, log_tail_of(self.dir(i), 30))
    }
}

impl Drop for TestEnsemble {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

#[derive(Debug)]
struct ProxyShared {
    target: Mutex<SocketAddr>,
    paused: AtomicBool,
    /// Only the server-to-client direction is held (requests still reach the server).
    replies_paused: AtomicBool,
    refuse: AtomicBool,
    conns: Mutex<Vec<tokio::task::AbortHandle>>,
    accepted: AtomicU64,
}

/// A TCP forwarder between clients and a server, for fault injection. Dropping it closes
/// everything.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept_task: tokio::task::JoinHandle<()>,
}

/// Granularity of the forwarding loop while paused.
const PROXY_PAUSE_POLL: Duration = Duration::from_millis(10);

impl Proxy {
    /// Listens on a free 127.0.0.1 port and forwards each connection to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(ProxyShared {
            target: Mutex::new(target),
            paused: AtomicBool::new(false),
            replies_paused: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
        });
        let sh = shared.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                sh.accepted.fetch_add(1, Ordering::Relaxed);
                if sh.refuse.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                let sh2 = sh.clone();
                let target = *sh.target.lock().unwrap_or_else(|e| e.into_inner());
                let h = tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let a = pump(cr, sw, sh2.clone(), false);
                    let b = pump(sr, cw, sh2, true);
                    tokio::select! { _ = a => {}, _ = b => {} }
                });
                let mut conns = sh.conns.lock().unwrap_or_else(|e| e.into_inner());
                conns.retain(|c| !c.is_finished());
                conns.push(h.abort_handle());
            }
        });
        Proxy {
            addr,
            shared,
            accept_task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// Closes every forwarded connection now (new ones are still accepted).
    pub fn kill_connections(&self) {
        let mut conns = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        for c in conns.drain(..) {
            c.abort();
        }
    }

    /// Forwards new connections to `target` from now on.
    pub fn set_target(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }

    /// Stops forwarding bytes in both directions; sockets stay open (a silent partition).
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
        self.shared.replies_paused.store(false, Ordering::SeqCst);
    }

    /// Holds server-to-client bytes only: requests are applied, their replies do not arrive
    /// (until [`Proxy::resume`] or [`Proxy::kill_connections`]).
    pub fn pause_replies(&self) {
        self.shared.replies_paused.store(true, Ordering::SeqCst);
    }

    /// Accept and immediately close new connections while set.
    pub fn set_refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    sh: Arc<ProxyShared>,
    is_reply_direction: bool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while sh.paused.load(Ordering::SeqCst)
            || (is_reply_direction && sh.replies_paused.load(Ordering::SeqCst))
        {
            tokio::time::sleep(PROXY_PAUSE_POLL).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.kill_connections();
    }
}

/// The shared server of one test binary: started on first use and reference-counted, so
/// it is killed (by PID, when the last `Arc` drops) once no running test holds it.
pub fn shared_server() -> std::sync::Arc<TestServer> {
    use std::sync::{Arc, Mutex, Weak};
    static SHARED: Mutex<Weak<TestServer>> = Mutex::new(Weak::new());
    let mut g = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = g.upgrade() {
        return s;
    }
    let s = Arc::new(TestServer::start());
    *g = Arc::downgrade(&s);
    s
}

/// Client options the integration tests use: a 6 s session, generous connect and request
/// timeouts for a loaded 2-core machine.
pub fn test_options() -> crate::ClientOptions {
    crate::ClientOptions::new()
        .session_timeout(Duration::from_secs(6))
        .connect_timeout(Duration::from_secs(20))
        .request_timeout(Some(Duration::from_secs(20)))
}

/// A client chrooted at `/<ns>` on `cs` (the namespace node is created first), so tests
/// sharing one server do not collide.
pub async fn chrooted(cs: &str, ns: &str) -> crate::Client {
    let root = test_options().connect(cs).await.expect("connect");
    match root
        .create(
            &format!("/{ns}"),
            b"",
            &crate::acls::open(),
            crate::CreateMode::Persistent,
        )
        .await
    {
        Ok(_) | Err(crate::Error::NodeExists) => {}
        Err(e) => panic!("create namespace /{ns}: {e}"),
    }
    root.close().await.expect("close");
    test_options()
        .connect(&format!("{cs}/{ns}"))
        .await
        .expect("connect chrooted")
}
