//! Differential test against a real Apache ZooKeeper 3.8.0.
//!
//! `data/record_zk380.py` drove a standalone 3.8.0 server (extendedTypesEnabled, a super
//! digest for `super:secret`) with five sessions through creates of every kind, errors,
//! ACLs, watches, multi, quotas, reads, setWatches and session close, recording every
//! request, reply and event (`data/zk380-transcript.txt`); the server's own txn log of that
//! run is `data/zk380-workload.log` (header + `crc, len, entry, 'B'` records).
//!
//! Replaying the transcript through a `DataTree` must give, step by step: the same txn as
//! ZooKeeper logged (prep), the same tree digest as the log's TxnDigest after every txn
//! (apply + digest), the same reply (err and body; child lists compared as sets), and the
//! same watch events per session, in order.

use bytes::Bytes;
use corral_proto::{ErrorCode, Id, MultiResult, OpCode, Reader, Request, Response, Txn, TxnEntry};
use corral_tree::{Caller, DataTree, TreeConfig, WatchNotification};
use std::collections::BTreeMap;

const SUPER_DIGEST: &str = "super:lK75jTNcA+U9vtVEw5vB51mj/w4=";

fn data(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn read_log(bytes: &[u8]) -> Vec<TxnEntry> {
    assert_eq!(&bytes[..4], b"ZKLG");
    let mut off = 16;
    let mut out = Vec::new();
    while off + 12 <= bytes.len() {
        let len = i32::from_be_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        let payload = Bytes::copy_from_slice(&bytes[off + 12..off + 12 + len]);
        assert_eq!(bytes[off + 12 + len], b'B');
        out.push(TxnEntry::decode(&mut Reader::new(payload)).expect("log entry"));
        off += 12 + len + 1;
    }
    out
}

/// The digest ids the recorded auth packets produce (`user:base64(sha1(user:password))`).
fn digest_id(plain: &str) -> String {
    match plain {
        "alice:secret" => "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=".into(),
        "super:secret" => SUPER_DIGEST.into(),
        other => panic!("unknown auth {other}"),
    }
}

/// Child lists are hash-set ordered in ZooKeeper: compare them sorted.
fn normalise(r: Response) -> Response {
    match r {
        Response::GetChildren { mut children } => {
            children.sort();
            Response::GetChildren { children }
        }
        Response::GetChildren2 { mut children, stat } => {
            children.sort();
            Response::GetChildren2 { children, stat }
        }
        Response::GetEphemerals { mut paths } => {
            paths.sort();
            Response::GetEphemerals { paths }
        }
        Response::Multi(results) => Response::Multi(
            results
                .into_iter()
                .map(|m| match m {
                    MultiResult::GetChildren { mut children } => {
                        children.sort();
                        MultiResult::GetChildren { children }
                    }
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

struct Replay {
    tree: DataTree,
    log: Vec<TxnEntry>,
    next: usize,
    sessions: Vec<i64>,
    auth: Vec<Vec<Id>>,
    expected: BTreeMap<usize, Vec<(i32, String)>>,
    produced: BTreeMap<usize, Vec<(i32, String)>>,
    last_zxid: i64,
    line: usize,
}

impl Replay {
    fn idx_of(&self, session: i64) -> usize {
        self.sessions
            .iter()
            .position(|&s| s == session)
            .unwrap_or_else(|| panic!("event for unknown session {session:#x}"))
    }

    fn produce(&mut self, notes: &[WatchNotification]) {
        for n in notes {
            let i = self.idx_of(n.session_id);
            self.produced
                .entry(i)
                .or_default()
                .push((n.event_type.code(), n.path.clone()));
        }
    }

    fn flush_events(&mut self) {
        let expected = std::mem::take(&mut self.expected);
        let produced = std::mem::take(&mut self.produced);
        assert_eq!(
            produced, expected,
            "transcript line {}: watch events differ (session idx -> [(type, path)])",
            self.line
        );
    }

    fn next_entry(&mut self) -> TxnEntry {
        let e = self
            .log
            .get(self.next)
            .unwrap_or_else(|| panic!("line {}: log ended", self.line))
            .clone();
        self.next += 1;
        self.last_zxid = e.header.zxid;
        e
    }

    fn apply_logged(&mut self, entry: &TxnEntry) -> Result<Response, ErrorCode> {
        let applied = self.tree.apply(&entry.header, &entry.txn);
        self.tree.check_invariants();
        // ZooKeeper logs error txns without a digest (prep failed before computing one).
        match entry.digest {
            Some(d) => assert_eq!(
                self.tree.digest(),
                d.tree_digest,
                "line {}: digest after zxid {:#x} ({:?})",
                self.line,
                entry.header.zxid,
                entry.txn
            ),
            None => assert!(
                matches!(entry.txn, Txn::Error(_)),
                "line {}: no digest on {entry:?}",
                self.line
            ),
        }
        self.produce(&applied.notifications);
        applied.result
    }

    fn check_reply(&self, op: i32, mine: Result<Response, ErrorCode>, err: i32, body: &[u8]) {
        let line = self.line;
        if err != 0 {
            assert_eq!(
                mine.map(normalise),
                Err(ErrorCode::from_i32(err).unwrap()),
                "line {line}: reply"
            );
            return;
        }
        let code = OpCode::from_i32(op).unwrap();
        let theirs = Response::decode(code, &mut Reader::from_slice(body)).expect("reply body");
        let mine = mine.unwrap_or_else(|e| panic!("line {line}: expected success, got {e}"));
        assert_eq!(
            normalise(mine),
            normalise(theirs),
            "line {line}: reply body"
        );
    }
}

#[test]
fn replays_a_real_zookeeper_3_8_0_run() {
    let transcript = String::from_utf8(data("zk380-transcript.txt")).unwrap();
    let mut r = Replay {
        tree: DataTree::new(TreeConfig {
            extended_types_enabled: true,
            skip_acl: false,
            super_digest: Some(SUPER_DIGEST.into()),
        }),
        log: read_log(&data("zk380-workload.log")),
        next: 0,
        sessions: Vec::new(),
        auth: Vec::new(),
        expected: BTreeMap::new(),
        produced: BTreeMap::new(),
        last_zxid: 0,
        line: 0,
    };
    let mut writes = 0;
    let mut reads = 0;
    for (n, line) in transcript.lines().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        if f[0] != "E" {
            r.flush_events();
        }
        r.line = n + 1;
        match f[0] {
            "S" => {
                let session: i64 = f[2].parse().unwrap();
                r.sessions.push(session);
                r.auth.push(vec![Id::new("ip", "127.0.0.1")]);
                let mine = r.tree.prep_create_session(200_000);
                let entry = r.next_entry();
                assert_eq!(entry.header.session_id, session);
                assert_eq!(mine, entry.txn, "line {}: createSession txn", r.line);
                assert_eq!(r.apply_logged(&entry), Ok(Response::Empty));
                assert!(r.tree.session_exists(session));
            }
            "A" => {
                let idx: usize = f[1].parse().unwrap();
                assert_eq!(f[2], "digest");
                assert_eq!(f[4], "0");
                let id = digest_id(std::str::from_utf8(&unhex(f[3])).unwrap());
                if id == SUPER_DIGEST {
                    r.auth[idx].push(Id::new("super", ""));
                }
                r.auth[idx].push(Id::new("digest", id));
                let (s, a) = (r.sessions[idx], r.auth[idx].clone());
                r.tree.set_watcher_auth(s, &a);
            }
            "R" => {
                let idx: usize = f[1].parse().unwrap();
                let op: i32 = f[2].parse().unwrap();
                let body = unhex(f[3]);
                let err: i32 = f[4].parse().unwrap();
                let reply = unhex(f[5]);
                let req = Request::decode(op, &mut Reader::from_slice(&body)).expect("request");
                let session = r.sessions[idx];
                let auth = r.auth[idx].clone();
                let caller = Caller {
                    session_id: session,
                    auth: &auth,
                };
                let code = OpCode::from_i32(op).unwrap();
                if code.is_write() {
                    writes += 1;
                    let mine = r.tree.prep(&caller, &req, 0);
                    let entry = r.next_entry();
                    assert_eq!(entry.header.session_id, session, "line {}", r.line);
                    assert_eq!(
                        entry.header.op,
                        mine.op().code(),
                        "line {}: txn type of {mine:?}",
                        r.line
                    );
                    // ZooKeeper lists a closing session's ephemerals in hash-set order; we sort.
                    let mut logged = entry.txn.clone();
                    if let Txn::CloseSession { paths_to_delete } = &mut logged {
                        paths_to_delete.sort();
                    }
                    assert_eq!(mine, logged, "line {}: prep", r.line);
                    let result = r.apply_logged(&entry);
                    r.check_reply(op, result, err, &reply);
                } else if matches!(
                    code,
                    OpCode::SetWatches
                        | OpCode::SetWatches2
                        | OpCode::AddWatch
                        | OpCode::CheckWatches
                        | OpCode::RemoveWatches
                ) {
                    let z = r.last_zxid;
                    let (result, notes) = r.tree.watch_op(&caller, &req, z);
                    r.tree.check_invariants();
                    r.produce(&notes);
                    r.check_reply(op, result, err, &reply);
                } else {
                    reads += 1;
                    let result = r.tree.read(&caller, &req);
                    r.tree.check_invariants();
                    r.check_reply(op, result, err, &reply);
                }
                if op == OpCode::CloseSession.code() {
                    assert!(!r.tree.session_exists(session));
                }
            }
            "E" => {
                let idx: usize = f[1].parse().unwrap();
                let ty: i32 = f[2].parse().unwrap();
                let path = String::from_utf8(unhex(f[3])).unwrap();
                r.expected.entry(idx).or_default().push((ty, path));
            }
            other => panic!("bad transcript line {other}"),
        }
    }
    r.flush_events();
    assert_eq!(r.next, r.log.len(), "log entries left over");
    assert!(writes > 80 && reads > 40, "writes {writes} reads {reads}");
}
