//! `corral bench --compare` stopped by SIGTERM (a `kill`, a CI job's timeout) stops the
//! servers it started, as Ctrl-C does, instead of leaving them running.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// PIDs of the live (not zombie) children of `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, state)) = stat(pid) {
            if ppid == parent && state != 'Z' {
                out.push(pid);
            }
        }
    }
    out
}

/// (parent PID, state) of a process, if it exists.
fn stat(pid: u32) -> Option<(u32, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((ppid, state))
}

fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, state)| state != 'Z')
}

#[test]
fn sigterm_stops_the_servers_a_compare_run_started() {
    let bin = env!("CARGO_BIN_EXE_corral");
    assert!(Path::new(bin).exists());
    let server = format!("{bin} server --config {{cfg}}");
    let mut bench = Command::new(bin)
        .args([
            "bench",
            "--compare",
            "--a",
            &server,
            "--b",
            &server,
            "--workload",
            "read",
            "--keys",
            "100",
            "--warmup",
            "0s",
            "--duration",
            "120s",
            "--rounds",
            "1",
            "-q",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start corral bench");
    let pid = bench.id();
    // The first server is up once the bench has a child.
    let deadline = Instant::now() + Duration::from_secs(60);
    let servers = loop {
        let c = children(pid);
        if !c.is_empty() {
            break c;
        }
        assert!(Instant::now() < deadline, "the bench started no server");
        assert!(bench.try_wait().unwrap().is_none(), "the bench ended early");
        std::thread::sleep(Duration::from_millis(50));
    };
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while bench.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = bench.kill();
            panic!("the bench did not stop within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for s in &servers {
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(*s) {
            if Instant::now() > deadline {
                let _ = Command::new("kill")
                    .args(["-KILL", &s.to_string()])
                    .status();
                panic!("server {s} outlived the bench it was started by");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
