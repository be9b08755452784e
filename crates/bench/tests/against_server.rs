//! The bench against a real server process: Apache ZooKeeper 3.8 by default,
//! `CORRAL_TEST_TARGET=corral` for corral (see `corral_client::testing`).
//!
//! No timing assertions: only that the runs produce sane numbers (ops > 0, ordered
//! percentiles, no errors) and leave no namespace behind.

use corral_bench::args::{self, Parsed, Settings};
use corral_bench::compare::CompareReport;
use corral_bench::{Outcome, EXIT_OK, EXIT_USAGE};
use corral_client::testing::{TempDir, TestServer};
use corral_client::Client;

fn settings(words: &[String]) -> Settings {
    match args::parse(words).expect("valid arguments") {
        Parsed::Run(s) => *s,
        Parsed::Info(t) => panic!("unexpected info output: {t}"),
    }
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn namespace_exists(server: &TestServer) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = Client::connect(&server.connect_string())
            .await
            .expect("connect");
        let e = c.exists(corral_bench::run::ROOT).await.expect("exists");
        let _ = c.close().await;
        e.is_some()
    })
}

#[test]
fn one_second_of_read_and_write() {
    let server = TestServer::start();
    let dir = TempDir::new("bench-json");
    let json = dir.path().join("out.json");
    let mut w = words(&[
        "--server",
        &server.connect_string(),
        "--workload",
        "read",
        "--workload",
        "write",
        "--warmup",
        "200ms",
        "--duration",
        "1s",
        "--sessions",
        "2",
        "--inflight",
        "4",
        "--keys",
        "200",
        "--seed",
        "1",
        "--quiet",
        "--json",
    ]);
    w.push(json.display().to_string());
    let s = settings(&w);
    let Outcome::Single(rows) = corral_bench::run(&s).expect("bench run") else {
        panic!("not a single run");
    };
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["read", "write"]);
    for r in &rows {
        r.hist.check_invariants();
        assert!(r.ops > 0, "{}: no ops", r.name);
        assert_eq!(r.errors, 0, "{}: {:?}", r.name, r.first_error);
        assert_eq!(r.hist.count(), r.ops);
        assert!(r.ops_per_sec() > 0.0);
        let (p50, p99, p999) = (r.latency_us(0.5), r.latency_us(0.99), r.latency_us(0.999));
        assert!(r.hist.min() <= p50, "{}: min > p50", r.name);
        assert!(p50 <= p99 && p99 <= p999, "{}: {p50} {p99} {p999}", r.name);
        assert!(p999 <= r.hist.max());
    }
    let text = std::fs::read_to_string(&json).expect("json written");
    for needle in [
        "\"mode\": \"single\"",
        "\"workload\": \"read\"",
        "\"workload\": \"write\"",
        "\"ops_per_sec\"",
        "\"p99\"",
    ] {
        assert!(text.contains(needle), "JSON lacks {needle}:\n{text}");
    }
    assert!(!namespace_exists(&server), "the bench left /corral-bench");
}

#[test]
fn every_other_workload_runs_briefly() {
    let server = TestServer::start();
    let s = settings(&words(&[
        "--server",
        &server.connect_string(),
        "--workload",
        "mixed,create-delete,lock,session,watch-fanout,serial",
        "--warmup",
        "0s",
        "--duration",
        "500ms",
        "--sessions",
        "2",
        "--inflight",
        "2",
        "--keys",
        "50",
        "--watchers",
        "20",
        "--quiet",
    ]));
    let Outcome::Single(rows) = corral_bench::run(&s).expect("bench run") else {
        panic!("not a single run");
    };
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mixed",
            "create-delete",
            "lock",
            "session",
            "watch-fanout",
            "serial-read",
            "serial-write"
        ]
    );
    for r in &rows {
        assert!(r.ops > 0, "{}: no ops ({:?})", r.name, r.first_error);
        assert_eq!(r.errors, 0, "{}: {:?}", r.name, r.first_error);
        assert!(r.latency_us(0.5) <= r.latency_us(0.99), "{}", r.name);
    }
    assert_eq!(rows[4].events_per_op, 20);
    assert!(!namespace_exists(&server), "the bench left /corral-bench");
}

#[test]
fn open_loop_paces_the_rate_driven_workloads() {
    let server = TestServer::start();
    let s = settings(&words(&[
        "--server",
        &server.connect_string(),
        "--workload",
        "read,create-delete,lock,session,serial",
        "--rate",
        "400",
        "--warmup",
        "0s",
        "--duration",
        "500ms",
        "--sessions",
        "2",
        "--inflight",
        "2",
        "--keys",
        "50",
        "--quiet",
    ]));
    let Outcome::Single(rows) = corral_bench::run(&s).expect("bench run") else {
        panic!("not a single run");
    };
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "read",
            "create-delete",
            "lock",
            "session",
            "serial-read",
            "serial-write"
        ]
    );
    for r in &rows {
        assert!(r.ops > 0, "{}: no ops ({:?})", r.name, r.first_error);
        assert_eq!(r.errors, 0, "{}: {:?}", r.name, r.first_error);
        match (r.name.as_str(), r.open_loop) {
            ("serial-read" | "serial-write", o) => assert_eq!(o, None, "serial is closed-loop"),
            (_, None) => panic!("{}: not run open-loop", r.name),
            (_, Some(o)) => {
                // No claim about how many were missed or late: that depends on the machine.
                assert_eq!(o.rate, 400, "{}", r.name);
                assert!(o.offered > 0, "{}: {o:?}", r.name);
                assert!(o.missed + o.late <= o.offered, "{}: {o:?}", r.name);
                assert!(
                    r.ops + r.errors <= o.offered - o.missed,
                    "{}: {o:?}",
                    r.name
                );
            }
        }
    }
    assert!(!namespace_exists(&server), "the bench left /corral-bench");
}

#[test]
fn exit_statuses_of_the_entry_point() {
    assert_eq!(corral_bench::main_with_args(words(&["--help"])), EXIT_OK);
    assert_eq!(
        corral_bench::main_with_args(words(&["--workload", "nope"])),
        EXIT_USAGE
    );
    assert_eq!(
        corral_bench::main_with_args(words(&["--compare", "--a", "x"])),
        EXIT_USAGE
    );
}

/// The launch command of the server `CORRAL_TEST_TARGET` selects, for `--compare`.
fn launch_command() -> String {
    launch_command_with("org.apache.zookeeper.server.ZooKeeperServerMain")
}

/// Same, starting ZooKeeper with `zk_main_class` (`QuorumPeerMain` for ensemble members).
fn launch_command_with(zk_main_class: &str) -> String {
    match corral_client::testing::Target::from_env() {
        corral_client::testing::Target::Zookeeper => format!(
            "java -Xmx256m -XX:+UseSerialGC -cp \
             /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar {zk_main_class} {{cfg}}"
        ),
        corral_client::testing::Target::Corral => {
            let bin = std::env::var("CORRAL_BIN").unwrap_or_else(|_| {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/corral").into()
            });
            format!("{bin} server --config {{cfg}}")
        }
    }
}

/// Runs a `--compare` setting to its report.
fn compare_report(s: &Settings) -> Box<CompareReport> {
    match corral_bench::run(s).expect("compare run") {
        Outcome::Compare(rep) => rep,
        Outcome::Single(_) => panic!("not a compare run"),
    }
}

#[test]
fn compare_starts_two_servers_and_stops_them() {
    let cmd = launch_command();
    let s = settings(&words(&[
        "--compare",
        "--a",
        &cmd,
        "--b",
        &cmd,
        "--label-a",
        "one",
        "--label-b",
        "two",
        "--rounds",
        "1",
        "--workload",
        "read,write",
        "--warmup",
        "0s",
        "--duration",
        "300ms",
        "--sessions",
        "2",
        "--inflight",
        "2",
        "--keys",
        "20",
        "--quiet",
    ]));
    let rep = compare_report(&s);
    assert_eq!(rep.rounds.len(), 1);
    let round = &rep.rounds[0];
    for side in [&round.a, &round.b] {
        let names: Vec<&str> = side.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["read", "write"]);
        assert!(side.rows.iter().all(|r| r.ops > 0 && r.errors == 0));
        assert!(
            side.rows.iter().all(|r| r.server_cpu_s.is_some()),
            "server CPU not measured"
        );
        assert!(
            side.rss_kib.unwrap_or(0) > 0,
            "no VmRSS for {}",
            rep.a.label
        );
    }
    assert!(!rep.a.version.is_empty() && rep.a.version != "unknown");
    let ratios = rep.ratios();
    assert_eq!(ratios.len(), 2);
    assert!(ratios.iter().all(|r| r.throughput.is_some()));
}

#[test]
fn compare_runs_two_ensembles_and_spreads_the_sessions() {
    let cmd = launch_command_with("org.apache.zookeeper.server.quorum.QuorumPeerMain");
    let s = settings(&words(&[
        "--compare",
        "--ensemble",
        "3",
        "--a",
        &cmd,
        "--b",
        &cmd,
        "--rounds",
        "1",
        "--workload",
        "read,write,session,watch-fanout",
        "--watchers",
        "6",
        "--warmup",
        "0s",
        "--duration",
        "300ms",
        "--sessions",
        "3",
        "--inflight",
        "2",
        "--keys",
        "20",
        "--quiet",
    ]));
    let rep = compare_report(&s);
    for info in [&rep.a, &rep.b] {
        assert_eq!((info.voters, info.observers), (3, 0));
        let modes: Vec<&str> = info.members.iter().map(|m| m.mode.as_str()).collect();
        assert_eq!(modes.len(), 3, "{modes:?}");
        assert_eq!(
            modes.iter().filter(|m| **m == "leader").count(),
            1,
            "{modes:?}"
        );
        assert!(
            modes.iter().all(|m| matches!(*m, "leader" | "follower")),
            "{modes:?}"
        );
        let pids: Vec<Option<u32>> = info.members.iter().map(|m| m.pid).collect();
        assert!(pids.iter().all(Option::is_some), "{pids:?}");
    }
    let round = &rep.rounds[0];
    for side in [&round.a, &round.b] {
        let names: Vec<&str> = side.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["read", "write", "session", "watch-fanout"]);
        assert!(
            side.rows.iter().all(|r| r.ops > 0 && r.errors == 0),
            "{:?}",
            side.rows
        );
        // CPU is measured for each of the three members. (That load session i goes to
        // member i mod 3 is run::member_for's unit test; this run cannot tell.)
        let read = &side.rows[0];
        assert_eq!(read.member_cpu_s.len(), 3);
        assert!(read.server_cpu_s.is_some());
        assert_eq!(side.member_rss_kib.len(), 3);
        assert!(side.member_rss_kib.iter().all(|k| k.unwrap_or(0) > 0));
        assert_eq!(side.rss_kib, side.member_rss_kib.iter().copied().sum());
        assert_eq!(side.member_modes.len(), 3);
    }
    // The members were stopped by PID.
    for m in rep.a.members.iter().chain(&rep.b.members) {
        let pid = m.pid.expect("pid");
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .map(|s| s.contains("State:\tZ"))
                    .unwrap_or(true),
            "member pid {pid} still running"
        );
    }
    assert!(rep.summary_table().contains("3 voters, leader myid"));
}
