//! The shell against a real server (Apache ZooKeeper 3.8 by default, corral with
//! `CORRAL_TEST_TARGET=corral`): outputs of scripted lines, null data, event printing (one
//! line per notification however many watches match), connection-state events through a
//! proxy that drops connections, session expiry, refused connections, tab completion, and
//! zkCli's uncaught exceptions.
//!
//! The differential comparison with zkCli.sh itself is in tests/test_cli_corral.py.

use corral_cli::console::{CaptureConsole, Stream};
use corral_cli::repl::completions;
use corral_cli::{Flow, Shell, ShellConfig};
use corral_client::testing::{Proxy, TestServer};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

static SHARED: Mutex<Weak<TestServer>> = Mutex::new(Weak::new());

/// One server for the tests of this binary, stopped when the last one finishes.
fn shared_server() -> Arc<TestServer> {
    let mut g = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = g.upgrade() {
        return s;
    }
    let s = Arc::new(TestServer::start());
    *g = Arc::downgrade(&s);
    s
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("/cli-{tag}-{}-{nanos}", std::process::id())
}

struct Session {
    shell: Shell,
    console: CaptureConsole,
}

impl Session {
    async fn start(server: &str, timeout_ms: u32) -> Session {
        let console = CaptureConsole::new();
        let config = ShellConfig {
            server: server.to_owned(),
            timeout: timeout_ms.to_string(),
            ..ShellConfig::default()
        };
        let shell = Shell::start(config, Arc::new(console.clone()))
            .await
            .expect("start");
        let s = Session { shell, console };
        assert_eq!(s.console.merged(), format!("Connecting to {server}\n"));
        s.console.take();
        s
    }

    /// Runs a line; returns (stdout+stderr text, event text).
    async fn run(&mut self, line: &str) -> (String, String) {
        let flow = self
            .shell
            .execute_line(line)
            .await
            .expect("no uncaught exception");
        assert_eq!(flow, Flow::Continue, "{line}");
        self.take()
    }

    fn take(&self) -> (String, String) {
        let mut text = String::new();
        let mut events = String::new();
        for (stream, piece) in self.console.take() {
            match stream {
                Stream::Event => events.push_str(&piece),
                _ => text.push_str(&piece),
            }
        }
        (text, events)
    }

    /// Waits (bounded) until the printed events contain `needle`; returns them.
    async fn events_until(&self, needle: &str, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = String::new();
        while Instant::now() < deadline {
            seen.push_str(&self.console.stream(Stream::Event));
            self.console.take();
            if seen.contains(needle) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}; events so far: {seen:?}");
    }
}

fn event(state: &str, kind: &str, path: &str) -> String {
    format!("\nWATCHER::\n\nWatchedEvent state:{state} type:{kind} path:{path}\n")
}

#[tokio::test]
async fn commands_print_what_zkcli_prints() {
    let srv = shared_server();
    let mut s = Session::start(&srv.connect_string(), 10_000).await;
    let b = unique("cmds");
    let (out, events) = s.run(&format!("create {b} top")).await;
    assert_eq!(out, format!("Created {b}\n"));
    assert_eq!(events, event("SyncConnected", "None", "null"));
    assert_eq!(s.console.stream(Stream::Out), "");
    assert!(
        s.shell.prompt().ends_with("(CONNECTED) 1] "),
        "{}",
        s.shell.prompt()
    );

    s.run(&format!("create -s {b}/s- x")).await;
    let (out, _) = s.run(&format!("create -s {b}/s- x")).await;
    assert_eq!(out, format!("Created {b}/s-0000000001\n"));
    let (out, _) = s.run(&format!("create {b}")).await;
    assert_eq!(out, format!("Node already exists: {b}\n"));
    assert_eq!(s.shell.exit_code(), 1);

    let (out, _) = s.run(&format!("get -s {b}")).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "top");
    assert_eq!(lines.len(), 12);
    assert!(lines[1].starts_with("cZxid = 0x"));
    assert!(lines[2].starts_with("ctime = ") && lines[2].len() > 20);
    assert_eq!(lines[6], "cversion = 2");
    assert_eq!(lines[11], "numChildren = 2");
    assert_eq!(s.shell.exit_code(), 0);

    let (out, _) = s.run(&format!("ls {b}")).await;
    assert_eq!(out, "[s-0000000000, s-0000000001]\n");
    let (out, _) = s.run(&format!("ls -R {b}")).await;
    assert_eq!(out, format!("{b}\n{b}/s-0000000000\n{b}/s-0000000001\n"));
    let (out, _) = s.run(&format!("set -v 7 {b} x")).await;
    assert_eq!(out, format!("version No is not valid : {b}\n"));
    let (out, _) = s.run(&format!("get {b}/nope")).await;
    assert_eq!(out, format!("Node does not exist: {b}/nope\n"));
    let (out, _) = s.run(&format!("create {b}/acl x world:anyone:r")).await;
    assert_eq!(out, format!("Created {b}/acl\n"));
    let (out, _) = s.run(&format!("getAcl {b}/acl")).await;
    assert_eq!(out, "'world,'anyone\n: r\n");
    let (out, _) = s.run(&format!("set {b}/acl y")).await;
    assert_eq!(out, format!("Insufficient permission : {b}/acl\n"));
    let (out, _) = s.run(&format!("create {b}/bad x world:anyone")).await;
    assert_eq!(
        out,
        "world:anyone does not have the form scheme:id:perm\nKeeperErrorCode = InvalidACL\n\
         Acl is not valid : null\n"
    );
    let (out, _) = s.run("create nope").await;
    assert_eq!(out, "Path must start with / character\n");
    let (out, _) = s.run("nosuch").await;
    assert!(out.starts_with("ZooKeeper -server host:port"), "{out}");
    assert!(
        out.ends_with("Command not found: Command not found nosuch\n"),
        "{out}"
    );
    assert_eq!(s.shell.exit_code(), 127);

    // history, redo (which replaces its own history entry) and the exit status
    let n = s.shell.command_count();
    let (out, _) = s.run(&format!("redo {}", n - 1)).await;
    assert!(out.ends_with("Command not found: Command not found nosuch\n"));
    let (out, _) = s.run("history").await;
    assert!(
        out.ends_with(&format!(
            "{} - nosuch\n{} - nosuch\n{} - history\n",
            n - 1,
            n,
            n + 1
        )),
        "{out}"
    );
    assert_eq!(s.shell.exit_code(), 0);

    // No data is null data (zkCli prints "null"), watched or not.
    let (out, _) = s.run(&format!("create {b}/null")).await;
    assert_eq!(out, format!("Created {b}/null\n"));
    let (out, _) = s.run(&format!("get {b}/null")).await;
    assert_eq!(out, "null\n");
    let (out, _) = s.run(&format!("get -w {b}/null")).await;
    assert_eq!(out, "null\n");
    let (out, events) = s.run(&format!("set {b}/null \"\"")).await;
    assert_eq!(out, "");
    assert_eq!(
        events,
        event("SyncConnected", "NodeDataChanged", &format!("{b}/null"))
    );
    let (out, _) = s.run(&format!("get {b}/null")).await;
    assert_eq!(out, "\n");

    let (out, _) = s.run(&format!("deleteall {b}")).await;
    assert_eq!(out, "");
    let flow = s.shell.execute_line("quit").await.expect("quit");
    assert_eq!(flow, Flow::Exit(0));
    let (_, events) = s.take();
    assert_eq!(events, event("Closed", "None", "null"));
}

#[tokio::test]
async fn one_event_per_notification_however_many_watches() {
    let srv = shared_server();
    let mut s = Session::start(&srv.connect_string(), 10_000).await;
    let b = unique("events");
    s.run(&format!("create {b}")).await;
    s.run(&format!("create {b}/a x")).await;
    s.take();
    // data, exist and child watches on one node, twice each: zkCli's single watcher object
    // is told once
    for cmd in ["get -w", "get -w", "stat -w", "ls -w", "ls -w"] {
        s.run(&format!("{cmd} {b}/a")).await;
    }
    let (out, events) = s.run(&format!("delete {b}/a")).await;
    assert_eq!(out, "");
    assert_eq!(
        events,
        event("SyncConnected", "NodeDeleted", &format!("{b}/a"))
    );

    // a persistent and a one-shot watch on one node: one event. (ZooKeeper 3.8 keeps one
    // watch mode per session and path, so the one-shot registration replaces the persistent
    // one on the server.)
    s.run(&format!("create {b}/p x")).await;
    s.run(&format!("addWatch -m PERSISTENT {b}/p")).await;
    s.run(&format!("get -w {b}/p")).await;
    let changed = event("SyncConnected", "NodeDataChanged", &format!("{b}/p"));
    let (_, events) = s.run(&format!("set {b}/p 1")).await;
    assert_eq!(events, changed);

    // a persistent watch alone: one event per change
    s.run(&format!("create {b}/q x")).await;
    s.run(&format!("addWatch -m PERSISTENT {b}/q")).await;
    let q_changed = event("SyncConnected", "NodeDataChanged", &format!("{b}/q"));
    let (_, events) = s.run(&format!("set {b}/q 1")).await;
    assert_eq!(events, q_changed);
    let (_, events) = s.run(&format!("set {b}/q 2")).await;
    assert_eq!(events, q_changed);

    // removing a watch prints its *WatchRemoved event; printwatches off silences events
    let (out, events) = s.run(&format!("removewatches {b}/p")).await;
    assert_eq!(out, "");
    assert_eq!(
        events,
        event("SyncConnected", "PersistentWatchRemoved", &format!("{b}/p"))
    );
    let (out, _) = s.run(&format!("removewatches {b}/p")).await;
    assert_eq!(
        out,
        format!("KeeperErrorCode = No such watcher for {b}/p\n")
    );
    s.run("printwatches off").await;
    s.run(&format!("get -w {b}/p")).await;
    let (_, events) = s.run(&format!("set {b}/p 3")).await;
    assert_eq!(events, "");
    let (out, _) = s.run("printwatches").await;
    assert_eq!(out, "printwatches is off\n");
    s.run("printwatches on").await;

    // an event that arrives between commands is printed by itself
    s.run(&format!("get -w {b}/p")).await;
    let other = corral_client::Client::connect(&srv.connect_string())
        .await
        .expect("second client");
    other
        .set_data(&format!("{b}/p"), b"4", -1)
        .await
        .expect("set");
    s.events_until(&changed, "the other client's change").await;
    other.close().await.expect("close");
    s.run(&format!("deleteall {b}")).await;
}

#[tokio::test]
async fn connection_events_and_expiry() {
    let srv = shared_server();
    let proxy = Proxy::start(srv.addr()).await;
    let cs = proxy.connect_string();
    let mut s = Session::start(&cs, 4_000).await;
    let (out, events) = s.run("ls /zookeeper").await;
    assert_eq!(out, "[config, quota]\n");
    assert_eq!(events, event("SyncConnected", "None", "null"));

    // a dropped connection: Disconnected, then SyncConnected on the same session
    proxy.kill_connections();
    let seen = s
        .events_until(&event("SyncConnected", "None", "null"), "reconnect")
        .await;
    assert_eq!(
        seen,
        event("Disconnected", "None", "null") + &event("SyncConnected", "None", "null")
    );
    assert!(s.shell.prompt().contains("(CONNECTED)"));

    // a partition longer than the session: Expired, then "Not connected"
    proxy.pause();
    s.events_until(&event("Disconnected", "None", "null"), "disconnect")
        .await;
    assert!(
        s.shell.prompt().contains("(CONNECTING)"),
        "{}",
        s.shell.prompt()
    );
    tokio::time::sleep(Duration::from_secs(7)).await;
    proxy.resume();
    s.events_until(&event("Expired", "None", "null"), "expiry")
        .await;
    assert!(
        s.shell.prompt().contains("(CLOSED)"),
        "{}",
        s.shell.prompt()
    );
    let (out, _) = s.run("ls /").await;
    assert_eq!(out, "Not connected\n");

    // connect starts a new session
    let (_, _) = s.run(&format!("connect {}", srv.connect_string())).await;
    let (out, events) = s.run("ls /zookeeper").await;
    assert_eq!(out, "[config, quota]\n");
    assert_eq!(events, event("SyncConnected", "None", "null"));
}

#[tokio::test]
async fn refused_connections_fail_requests_at_once() {
    // Nothing listens on this port: every connection attempt is refused.
    let server = format!("127.0.0.1:{}", corral_client::testing::free_port());
    let mut s = Session::start(&server, 30_000).await;
    // Each request fails when the attempt in progress fails, as zkCli's do, not when its
    // deadline (60 s here) passes.
    let (out, events) = tokio::time::timeout(Duration::from_secs(20), s.run("ls /"))
        .await
        .expect("ConnectionLoss before the deadline");
    assert_eq!(out, "KeeperErrorCode = ConnectionLoss for /\n");
    assert_eq!(events, "");
    assert!(
        s.shell.prompt().contains("(CONNECTING)"),
        "{}",
        s.shell.prompt()
    );
    let (out, _) = s.run("get /x").await;
    assert_eq!(out, "KeeperErrorCode = ConnectionLoss for /x\n");
    // quit: the close waits for an attempt too, then the session is closed.
    let flow = s.shell.execute_line("quit").await.expect("quit");
    assert_eq!(flow, Flow::Exit(1));
    let (_, events) = s.take();
    assert_eq!(events, event("Closed", "None", "null"));
}

#[tokio::test]
async fn tab_completion_and_uncaught_exceptions() {
    let srv = shared_server();
    let mut s = Session::start(&srv.connect_string(), 10_000).await;
    let b = unique("complete");
    s.run(&format!("create {b}")).await;
    s.run(&format!("create {b}/child-one")).await;
    s.run(&format!("create {b}/child-two")).await;
    s.run(&format!("create {b}/other")).await;

    let line = format!("get -s {b}/chi");
    let (start, names) = completions(&s.shell, &line, line.len()).await;
    assert_eq!(names, ["child-one", "child-two"]);
    assert_eq!(start, line.len() - 3);
    let line = format!("ls {b}/x");
    let (start, names) = completions(&s.shell, &line, line.len()).await;
    assert!(names.is_empty());
    assert_eq!(start, line.len());
    let (start, names) = completions(&s.shell, "ls /", 4).await;
    assert!(names.contains(&"zookeeper".to_owned()), "{names:?}");
    assert_eq!(start, 4);
    let (start, names) = completions(&s.shell, "getA", 4).await;
    assert_eq!(
        (start, names),
        (0, vec!["getAcl".into(), "getAllChildrenNumber".into()])
    );
    let (start, names) = completions(&s.shell, "ls -s ", 6).await;
    assert_eq!(start, 6);
    assert_eq!(names.len(), corral_cli::shell::COMMANDS.len());

    // exceptions zkCli leaves uncaught end a scripted session with status 1
    let err = s
        .shell
        .execute_line(&format!("set -v abc {b} x"))
        .await
        .expect_err("NumberFormatException");
    assert_eq!(
        err.line(),
        "Exception in thread \"main\" java.lang.NumberFormatException: For input string: \"abc\""
    );
    let err = s
        .shell
        .execute_line("addWatch relative")
        .await
        .expect_err("IllegalArgumentException");
    assert_eq!(
        err.line(),
        "Exception in thread \"main\" java.lang.IllegalArgumentException: Path must start with / character"
    );
    s.run(&format!("deleteall {b}")).await;
}
