//! Four-letter words: recognising them and rendering their text as ZooKeeper 3.8 does,
//! since operational tooling parses these formats.
//!
//! The server's [`Role`] (set by the core in [`ServerStats`]) decides the `Mode:` line of
//! `srvr`/`stat`, `zk_server_state` and the quorum rows of `mntr`, and whether the server
//! answers at all: while it is not serving ([`Role::Looking`]) the commands that read server
//! state answer [`NOT_SERVING`] (ZooKeeper's `isZKServerRunning()` checks in
//! `org.apache.zookeeper.server.command`).

use crate::core::Core;
use crate::settings::QuorumSettings;
use crate::stats::{Role, ServerStats};
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

/// The version corral reports: the ZooKeeper version whose behaviour it implements, then
/// its own (clients parse the leading numbers to pick features).
pub const VERSION_STRING: &str = concat!("3.8.4-corral-", env!("CARGO_PKG_VERSION"));
/// Fixed build stamp in ZooKeeper's format (we have no build-time clock; keeps builds
/// reproducible).
pub const BUILT_ON: &str = "built on 2026-11-22 00:00 UTC";

/// Every command ZooKeeper 3.8 knows.
pub const COMMANDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro", "mntr", "ruok", "srst",
    "srvr", "stat", "stmk", "wchc", "wchp", "wchs",
];

/// What ZooKeeper answers (`AbstractFourLetterCommand.ZK_NOT_SERVING`) while it has no
/// running server, i.e. during leader election and sync.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// The answer to `cmd` while the server is not serving, or `None` when `cmd` answers as
/// usual (`ruok`, `envi`, `gtmk`, `stmk` do not look at the server). `hash` prints the text
/// without a newline and `isro` prints `null`, as ZooKeeper 3.8 does.
pub fn not_serving_answer(cmd: &str) -> Option<String> {
    match cmd {
        "conf" | "cons" | "crst" | "dirs" | "dump" | "mntr" | "srst" | "srvr" | "stat" | "wchs"
        | "wchc" | "wchp" => Some(format!("{NOT_SERVING}\n")),
        "hash" => Some(NOT_SERVING.to_owned()),
        "isro" => Some("null".to_owned()),
        _ => None,
    }
}

/// The command named by the first 4 bytes of a connection, if they are one.
pub fn recognise(first4: &[u8]) -> Option<&'static str> {
    COMMANDS.iter().copied().find(|c| c.as_bytes() == first4)
}

/// The full version line.
pub fn version_line() -> String {
    format!("{VERSION_STRING}, {BUILT_ON}")
}

/// Java's `Double.toString` for the 4-decimal averages ZooKeeper prints (`1.0067`, `0.0`).
fn java_double(v: f64) -> String {
    let r = (v * 10_000.0).round() / 10_000.0;
    let s = format!("{r}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn hex_zxid(z: i64) -> String {
    format!("0x{z:x}")
}

/// Renders `cmd` (already recognised) against the core's state.
pub fn render(cmd: &str, core: &Core) -> String {
    if !core.settings.four_letter_allowed(cmd) {
        return format!("{cmd} is not executed because it is not in the whitelist.\n");
    }
    if !core.stats.role().is_serving() {
        if let Some(answer) = not_serving_answer(cmd) {
            return answer;
        }
    }
    match cmd {
        "ruok" => "imok".to_owned(),
        "isro" => "rw".to_owned(),
        "gtmk" => "306".to_owned(),
        "stmk" => "306".to_owned(),
        "srvr" => srvr(core, false),
        "stat" => srvr(core, true),
        "conf" => core.settings.conf_text.clone(),
        "cons" => cons(core),
        "crst" => {
            core.reset_connection_stats();
            "Connection stats reset.\n".to_owned()
        }
        "srst" => {
            core.stats.reset();
            "Server stats reset.\n".to_owned()
        }
        "envi" => envi(),
        "mntr" => mntr(core),
        "wchs" => wchs(core),
        "wchc" => wchc(core),
        "wchp" => wchp(core),
        "dump" => dump(core),
        "dirs" => dirs(core),
        "hash" => String::new(),
        _ => String::new(),
    }
}

fn srvr(core: &Core, with_clients: bool) -> String {
    srvr_text(
        &core.stats,
        core.node().last_zxid(),
        core.node().tree().node_count(),
        with_clients,
    )
}

/// `srvr` (and `stat` with `with_clients`) from the counters, the last zxid and the node
/// count. `Mode:` is the role; a leader adds its proposal sizes (`StatCommand`).
fn srvr_text(stats: &ServerStats, last_zxid: i64, node_count: usize, with_clients: bool) -> String {
    let (min, avg, max, _) = stats.latency.snapshot();
    let mut s = String::new();
    let _ = writeln!(s, "Zookeeper version: {}", version_line());
    if with_clients {
        s.push_str("Clients:\n");
        for (_, c) in stats.connection_list() {
            let _ = writeln!(
                s,
                " /{}[{}](queued={},recved={},sent={})",
                c.peer,
                if c.session_id.load(Relaxed) != 0 {
                    1
                } else {
                    0
                },
                c.queued.load(Relaxed).max(0),
                c.received.load(Relaxed),
                c.sent.load(Relaxed)
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "Latency min/avg/max: {min}/{}/{max}", java_double(avg));
    let _ = writeln!(s, "Received: {}", stats.packets_received.load(Relaxed));
    let _ = writeln!(s, "Sent: {}", stats.packets_sent.load(Relaxed));
    let _ = writeln!(s, "Connections: {}", stats.connection_list().len());
    let _ = writeln!(s, "Outstanding: {}", stats.outstanding.load(Relaxed).max(0));
    let _ = writeln!(s, "Zxid: {}", hex_zxid(last_zxid));
    let role = stats.role();
    let _ = writeln!(s, "Mode: {}", role.as_str());
    let _ = writeln!(s, "Node count: {node_count}");
    if role == Role::Leader {
        let (last, min, max) = stats.proposal_sizes.snapshot();
        let _ = writeln!(s, "Proposal sizes last/min/max: {last}/{min}/{max}");
    }
    s
}

fn cons(core: &Core) -> String {
    let mut s = String::new();
    for (_, c) in core.stats.connection_list() {
        let sid = c.session_id.load(Relaxed);
        let _ = write!(
            s,
            " /{}[{}](queued={},recved={},sent={}",
            c.peer,
            if sid != 0 { 1 } else { 0 },
            c.queued.load(Relaxed).max(0),
            c.received.load(Relaxed),
            c.sent.load(Relaxed)
        );
        if sid != 0 {
            let (minlat, avglat, maxlat, _) = c.latency.snapshot();
            let lop = *c.last_op.lock().unwrap_or_else(|e| e.into_inner());
            let _ = write!(
                s,
                ",sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
                sid,
                lop,
                c.established_ms,
                c.timeout_ms.load(Relaxed),
                c.last_cxid.load(Relaxed),
                c.last_zxid.load(Relaxed),
                c.last_response_ms.load(Relaxed),
                c.last_latency_ms.load(Relaxed),
                minlat,
                avglat.round() as i64,
                maxlat
            );
        }
        s.push_str(")\n");
    }
    s.push('\n');
    s
}

fn envi() -> String {
    let mut s = String::from("Environment:\n");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    let _ = writeln!(s, "zookeeper.version={}", version_line());
    let _ = writeln!(s, "host.name={host}");
    let _ = writeln!(s, "java.version=none (corral is written in Rust)");
    let _ = writeln!(s, "java.vendor=none");
    let _ = writeln!(s, "java.home=none");
    let _ = writeln!(s, "java.class.path=none");
    let _ = writeln!(s, "java.library.path=none");
    let _ = writeln!(s, "java.io.tmpdir={}", std::env::temp_dir().display());
    let _ = writeln!(s, "java.compiler=<NA>");
    let _ = writeln!(
        s,
        "os.name={}",
        if cfg!(target_os = "linux") {
            "Linux"
        } else {
            std::env::consts::OS
        }
    );
    let _ = writeln!(
        s,
        "os.arch={}",
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            a => a,
        }
    );
    let _ = writeln!(
        s,
        "os.version={}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    );
    let _ = writeln!(s, "user.name={user}");
    let _ = writeln!(s, "user.home={home}");
    let _ = writeln!(s, "user.dir={cwd}");
    s
}

fn mntr(core: &Core) -> String {
    let st = &core.stats;
    let tree = core.node().tree();
    let (min, avg, max, _) = st.latency.snapshot();
    let uptime = core.clock().wall_ms() - st.started_ms;
    let (open_fds, max_fds) = fd_counts();
    let rows: Vec<(&str, String)> = vec![
        ("zk_ephemerals_count", tree.ephemeral_count().to_string()),
        (
            "zk_num_alive_connections",
            st.connection_list().len().to_string(),
        ),
        ("zk_avg_latency", java_double(avg)),
        (
            "zk_outstanding_requests",
            st.outstanding.load(Relaxed).max(0).to_string(),
        ),
        ("zk_znode_count", tree.node_count().to_string()),
        (
            "zk_global_sessions",
            core.node().sessions().len().to_string(),
        ),
        ("zk_non_mtls_remote_conn_count", "0".into()),
        (
            "zk_last_client_response_size",
            st.last_response_bytes.load(Relaxed).to_string(),
        ),
        ("zk_packets_sent", st.packets_sent.load(Relaxed).to_string()),
        (
            "zk_packets_received",
            st.packets_received.load(Relaxed).to_string(),
        ),
        (
            "zk_max_client_response_size",
            st.max_response_bytes.load(Relaxed).to_string(),
        ),
        ("zk_connection_drop_probability", "0.0".into()),
        ("zk_watch_count", tree.watch_count().to_string()),
        (
            "zk_auth_failed_count",
            core.node().counters().auth_failed.to_string(),
        ),
        ("zk_min_latency", min.to_string()),
        ("zk_max_file_descriptor_count", max_fds.to_string()),
        (
            "zk_approximate_data_size",
            tree.approximate_data_size().to_string(),
        ),
        ("zk_open_file_descriptor_count", open_fds.to_string()),
        ("zk_local_sessions", "0".into()),
        ("zk_uptime", uptime.to_string()),
        ("zk_max_latency", max.to_string()),
        ("zk_outstanding_tls_handshake", "0".into()),
        ("zk_throttled_ops", "0".into()),
        ("zk_sessionless_connections_expired", "0".into()),
        (
            "zk_stale_sessions_expired",
            core.node().counters().sessions_expired.to_string(),
        ),
        (
            "zk_txn_count",
            core.node().counters().txns_applied.to_string(),
        ),
        ("zk_last_zxid", core.node().last_zxid().to_string()),
    ];
    let (head, tail) = mntr_role_rows(st, core.settings.quorum.as_ref());
    let mut s = String::new();
    for (k, v) in head.into_iter().chain(rows).chain(tail) {
        let _ = writeln!(s, "{k}\t{v}");
    }
    s
}

/// One `mntr` line: key and value.
type MntrRow = (&'static str, String);

/// The `mntr` rows that depend on the role: `head` goes first (ZooKeeper's
/// `dumpMonitorValues`: version, server state, then in a quorum the detailed peer state and
/// on an observer its master's id), `tail` last (the quorum gauges of the metrics provider:
/// the voter count everywhere, synced observers on leader and follower, the learner counts
/// and proposal sizes on the leader).
fn mntr_role_rows(
    st: &ServerStats,
    quorum: Option<&QuorumSettings>,
) -> (Vec<MntrRow>, Vec<MntrRow>) {
    let role = st.role();
    let mut head = vec![
        ("zk_version", version_line()),
        ("zk_server_state", role.as_str().to_owned()),
    ];
    let mut tail = Vec::new();
    if let Some(peer_state) = role.peer_state() {
        // Served only in broadcast (NOT_SERVING before), so the Zab phase is always that.
        head.push(("zk_peer_state", format!("{peer_state} - broadcast")));
    }
    if role == Role::Observer {
        head.push((
            "zk_observer_master_id",
            st.leader_sid()
                .map_or_else(|| "null".to_owned(), |s| s.to_string()),
        ));
    }
    if let Some(q) = quorum {
        tail.push(("zk_quorum_size", q.voters().count().to_string()));
    }
    let counts = st.learner_counts();
    match role {
        Role::Leader => {
            let (last, min, max) = st.proposal_sizes.snapshot();
            tail.extend([
                ("zk_learners", counts.learners.to_string()),
                ("zk_synced_followers", counts.synced_followers.to_string()),
                (
                    "zk_synced_non_voting_followers",
                    counts.synced_non_voting_followers.to_string(),
                ),
                ("zk_synced_observers", counts.synced_observers.to_string()),
                ("zk_pending_syncs", counts.pending_syncs.to_string()),
                ("zk_last_proposal_size", last.to_string()),
                ("zk_max_proposal_size", max.to_string()),
                ("zk_min_proposal_size", min.to_string()),
            ]);
        }
        Role::Follower => {
            tail.push(("zk_synced_observers", counts.synced_observers.to_string()));
        }
        _ => {}
    }
    (head, tail)
}

fn fd_counts() -> (usize, u64) {
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    let max = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0);
    (open, max)
}

fn wchs(core: &Core) -> String {
    // 3.8 summarises the data-watch table only (getData, exists, addWatch).
    let (connections, paths, total) = core.node().tree().watch_summary();
    format!("{connections} connections watching {paths} paths\nTotal watches:{total}\n")
}

fn wchc(core: &Core) -> String {
    let mut s = String::new();
    for (sid, paths) in core.node().tree().watches_by_session() {
        let _ = writeln!(s, "0x{sid:x}");
        for p in paths {
            let _ = writeln!(s, "\t{p}");
        }
    }
    s
}

fn wchp(core: &Core) -> String {
    let mut s = String::new();
    for (path, sids) in core.node().tree().watches_by_path() {
        let _ = writeln!(s, "{path}");
        for sid in sids {
            let _ = writeln!(s, "\t0x{sid:x}");
        }
    }
    s
}

fn dump(core: &Core) -> String {
    let mut s = String::from("SessionTracker dump:\n");
    let buckets: Vec<_> = core.node().sessions().buckets().collect();
    let _ = writeln!(
        s,
        "Session Sets ({})/({}):",
        buckets.len(),
        core.node().sessions().len()
    );
    for (at, ids) in buckets {
        let _ = writeln!(s, "{} expire at {}:", ids.len(), at);
        for id in ids {
            let _ = writeln!(s, "\t0x{id:x}");
        }
    }
    s.push_str("ephemeral nodes dump:\n");
    let mut with_eph: Vec<(i64, Vec<String>)> = core
        .node()
        .tree()
        .sessions()
        .map(|(id, _)| (id, core.node().tree().ephemerals_of(id)))
        .filter(|(_, e)| !e.is_empty())
        .collect();
    with_eph.sort();
    let _ = writeln!(s, "Sessions with Ephemerals ({}):", with_eph.len());
    for (id, paths) in with_eph {
        let _ = writeln!(s, "0x{id:x}:");
        for p in paths {
            let _ = writeln!(s, "\t{p}");
        }
    }
    let conns: Vec<_> = core.node().connections().collect();
    s.push_str("Connections dump:\n");
    let _ = writeln!(s, "Connections Sets (1)/({})", conns.len());
    for (_, sid) in conns {
        let _ = writeln!(s, "\t0x{sid:x}");
    }
    s
}

fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn dirs(core: &Core) -> String {
    format!(
        "datadir_size: {}\nlogdir_size: {}\n",
        dir_size(&core.settings.data_dir.join("version-2")),
        dir_size(&core.settings.data_log_dir.join("version-2"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::QuorumMember;

    fn quorum() -> QuorumSettings {
        let member = |sid: i64, observer: bool| QuorumMember {
            sid,
            quorum_addr: format!("127.0.0.{sid}:2888").parse().unwrap(),
            election_addr: format!("127.0.0.{sid}:3888").parse().unwrap(),
            observer,
            client_addr: None,
        };
        QuorumSettings {
            my_sid: 1,
            members: vec![
                member(1, false),
                member(2, false),
                member(3, false),
                member(4, true),
            ],
            init_limit_ticks: 5,
            sync_limit_ticks: 2,
            cnx_timeout_ms: 5000,
            config_text: String::new(),
            config_version: 0,
            snapshot_size_factor: 0.33,
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn srvr_mode_line_for_each_role() {
        let st = ServerStats::new(0);
        for (role, mode) in [
            (Role::Standalone, "Mode: standalone"),
            (Role::Leader, "Mode: leader"),
            (Role::Follower, "Mode: follower"),
            (Role::Observer, "Mode: observer"),
        ] {
            st.set_role(role);
            for with_clients in [false, true] {
                let text = srvr_text(&st, 0x57, 26, with_clients);
                let l = lines(&text);
                assert!(l.contains(&mode), "{role:?}:\n{text}");
                let at = l.iter().position(|x| *x == mode).unwrap();
                assert_eq!(l[at - 1], "Zxid: 0x57");
                assert_eq!(l[at + 1], "Node count: 26");
                assert!(text.ends_with('\n'));
            }
        }
    }

    #[test]
    fn srvr_on_the_leader_adds_proposal_sizes() {
        let st = ServerStats::new(0);
        st.set_role(Role::Leader);
        let text = srvr_text(&st, 0, 5, false);
        assert!(
            text.ends_with("Mode: leader\nNode count: 5\nProposal sizes last/min/max: -1/-1/-1\n"),
            "{text}"
        );
        st.record_proposal_size(120);
        st.record_proposal_size(36);
        let text = srvr_text(&st, 0, 5, false);
        assert!(
            text.ends_with("Proposal sizes last/min/max: 36/36/120\n"),
            "{text}"
        );
        st.set_role(Role::Follower);
        assert!(!srvr_text(&st, 0, 5, false).contains("Proposal"));
    }

    #[test]
    fn not_serving_answers() {
        let serving_anyway = ["ruok", "envi", "gtmk", "stmk"];
        for cmd in COMMANDS {
            let answer = not_serving_answer(cmd);
            match *cmd {
                "isro" => assert_eq!(answer.as_deref(), Some("null")),
                "hash" => assert_eq!(
                    answer.as_deref(),
                    Some("This ZooKeeper instance is not currently serving requests")
                ),
                c if serving_anyway.contains(&c) => assert_eq!(answer, None, "{c}"),
                c => assert_eq!(
                    answer.as_deref(),
                    Some("This ZooKeeper instance is not currently serving requests\n"),
                    "{c}"
                ),
            }
        }
        assert!(!Role::Looking.is_serving());
        for role in [
            Role::Standalone,
            Role::Leader,
            Role::Follower,
            Role::Observer,
        ] {
            assert!(role.is_serving());
        }
    }

    fn keys(rows: &[MntrRow]) -> Vec<&'static str> {
        rows.iter().map(|(k, _)| *k).collect()
    }

    fn value<'a>(rows: &'a [MntrRow], key: &str) -> &'a str {
        &rows.iter().find(|(k, _)| *k == key).unwrap().1
    }

    #[test]
    fn mntr_rows_for_each_role() {
        let st = ServerStats::new(0);
        let (head, tail) = mntr_role_rows(&st, None);
        assert_eq!(keys(&head), ["zk_version", "zk_server_state"]);
        assert_eq!(value(&head, "zk_server_state"), "standalone");
        assert!(tail.is_empty());

        let q = quorum();
        st.set_role(Role::Follower);
        st.set_learner_counts(crate::stats::LearnerCounts {
            learners: 3,
            synced_followers: 2,
            synced_non_voting_followers: 0,
            synced_observers: 1,
            pending_syncs: 0,
        });
        let (head, tail) = mntr_role_rows(&st, Some(&q));
        assert_eq!(value(&head, "zk_server_state"), "follower");
        assert_eq!(value(&head, "zk_peer_state"), "following - broadcast");
        assert_eq!(keys(&tail), ["zk_quorum_size", "zk_synced_observers"]);
        assert_eq!(value(&tail, "zk_quorum_size"), "3");

        st.set_role(Role::Observer);
        st.set_leader_sid(Some(3));
        let (head, tail) = mntr_role_rows(&st, Some(&q));
        assert_eq!(value(&head, "zk_server_state"), "observer");
        assert_eq!(value(&head, "zk_peer_state"), "observing - broadcast");
        assert_eq!(value(&head, "zk_observer_master_id"), "3");
        assert_eq!(keys(&tail), ["zk_quorum_size"]);

        st.set_role(Role::Leader);
        let (head, tail) = mntr_role_rows(&st, Some(&q));
        assert_eq!(value(&head, "zk_server_state"), "leader");
        assert_eq!(value(&head, "zk_peer_state"), "leading - broadcast");
        assert_eq!(value(&tail, "zk_learners"), "3");
        assert_eq!(value(&tail, "zk_synced_followers"), "2");
        assert_eq!(value(&tail, "zk_synced_non_voting_followers"), "0");
        assert_eq!(value(&tail, "zk_synced_observers"), "1");
        assert_eq!(value(&tail, "zk_pending_syncs"), "0");
        assert_eq!(value(&tail, "zk_last_proposal_size"), "-1");
        assert_eq!(value(&tail, "zk_min_proposal_size"), "-1");
        assert_eq!(value(&tail, "zk_max_proposal_size"), "-1");
    }
}
