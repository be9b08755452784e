//! Recipes across real processes.
//!
//! * The lock: three child processes (`examples/lock_worker.rs`, built by `cargo test`)
//!   contend for one lock. Mutual exclusion is checked
//!   through the file system: a holder creates `holder` with `create_new`, which fails if
//!   another process holds it too.
//! * The master–worker example (`examples/master_worker.rs`, built by `cargo test`): two
//!   masters, two workers and clients as separate processes; the active master and a worker
//!   are killed midway and every task still completes.

use corral_client::testing::TestServer;
use corral_client::ClientOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILDREN: usize = 3;
const ROUNDS: usize = 5;

/// Kills the children it holds (by PID) if the test fails midway.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn lock_is_exclusive_across_processes() {
    let srv = TestServer::start();
    let dir = corral_client::testing::TempDir::new("mp-lock");
    let worker = example_binary("lock_worker");
    let mut kids = Children(Vec::new());
    for i in 0..CHILDREN {
        let child = Command::new(&worker)
            .env("CORRAL_MP_CONNECT", srv.connect_string())
            .env("CORRAL_MP_DIR", dir.path())
            .env("CORRAL_MP_ID", i.to_string())
            .stdout(Stdio::null())
            .stderr(log_file(&dir.path().join(format!("child-{i}.log"))))
            .spawn()
            .expect("spawn child");
        kids.0.push(child);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    for c in &mut kids.0 {
        loop {
            match c.try_wait().expect("wait child") {
                Some(status) => {
                    assert!(
                        status.success(),
                        "child failed: {status}; see logs in {}",
                        dir.path().display()
                    );
                    break;
                }
                None if Instant::now() > deadline => panic!("child did not finish in time"),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    assert!(
        !dir.path().join("VIOLATION").exists(),
        "two processes held the lock at once: {}",
        std::fs::read_to_string(dir.path().join("VIOLATION")).unwrap_or_default()
    );
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert_eq!(log.lines().count(), CHILDREN * ROUNDS, "{log}");
    for i in 0..CHILDREN {
        let n = log.lines().filter(|l| *l == format!("{i}")).count();
        assert_eq!(n, ROUNDS, "child {i} acquired {n} times");
    }
}

fn log_file(p: &std::path::Path) -> Stdio {
    Stdio::from(std::fs::File::create(p).expect("create log file"))
}

/// The example binary cargo builds next to this test (`target/<profile>/examples/`).
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "example binary {} not found: run the tests with `cargo test -p corral-recipes` (which \
         builds examples) or `cargo build -p corral-recipes --examples`",
        bin.display()
    );
    bin
}

fn wait_exit(c: &mut Child, secs: u64, what: &str, logs: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match c.try_wait().expect("wait") {
            Some(st) => {
                assert!(
                    st.success(),
                    "{what} failed: {st}; logs in {}",
                    logs.display()
                );
                return;
            }
            None if Instant::now() > deadline => {
                panic!(
                    "{what} did not finish in {secs}s; logs in {}",
                    logs.display()
                )
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn master_worker_example_survives_master_and_worker_death() {
    let srv = TestServer::start();
    let bin = example_binary("master_worker");
    let dir = corral_client::testing::TempDir::new("mw");
    let cs = srv.connect_string();
    let spawn = |args: &[&str], log: &str| -> Child {
        Command::new(&bin)
            .args(["--connect", &cs, "--max-seconds", "80"])
            .args(args)
            .stdout(log_file(&dir.path().join(log)))
            .stderr(log_file(&dir.path().join(format!("{log}.err"))))
            .spawn()
            .expect("spawn example")
    };
    let mut roles = Children(vec![
        spawn(&["master", "m1"], "m1.log"),
        spawn(&["worker", "w1"], "w1.log"),
        spawn(&["worker", "w2"], "w2.log"),
    ]);
    // m1 wins /master before m2 starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while srv
        .four_letter("stat")
        .is_some_and(|s| !s.contains("Node count"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let master_name = || {
        rt.block_on(async {
            let zk = ClientOptions::new().connect(&cs).await.expect("connect");
            let r = zk
                .get_data("/master")
                .await
                .ok()
                .map(|(d, _)| String::from_utf8_lossy(&d).into_owned());
            zk.close().await.expect("close");
            r
        })
    };
    while master_name().is_none() {
        assert!(Instant::now() < deadline, "no master elected");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(master_name().as_deref(), Some("m1"));
    roles.0.push(spawn(&["master", "m2"], "m2.log"));

    let mut c1 = spawn(&["client", "6"], "client1.log");
    wait_exit(&mut c1, 60, "first client", dir.path());
    // Kill the active master and a worker (by PID, SIGKILL: their sessions expire).
    roles.0[0].kill().expect("kill m1");
    roles.0[1].kill().expect("kill w1");
    let mut c2 = spawn(&["client", "4"], "client2.log");
    wait_exit(&mut c2, 60, "second client", dir.path());
    assert_eq!(master_name().as_deref(), Some("m2"), "standby took over");
    let out = std::fs::read_to_string(dir.path().join("client2.log")).expect("client log");
    assert_eq!(out.matches(": done ").count(), 4, "{out}");
    assert!(
        out.lines()
            .filter(|l| l.contains(": done "))
            .all(|l| l.contains("done w2")),
        "{out}"
    );
}
