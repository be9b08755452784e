//! Scenario tests of the standalone pipeline: inputs in, frames out, no sockets.

use bytes::Bytes;
use corral_node::{ConnId, Node, NodeConfig, Now, Output};
use corral_proto::request::{CreateRequest, PathVersion, PathWatch};
use corral_proto::*;
use corral_tree::{DataTree, TreeConfig};

fn now(ms: i64) -> Now {
    Now {
        mono_ms: 1_000_000 + ms,
        wall_ms: 1_700_000_000_000 + ms,
    }
}

fn node() -> Node {
    let tree = DataTree::new(TreeConfig {
        extended_types_enabled: true,
        ..TreeConfig::default()
    });
    Node::new(NodeConfig::standalone(2000), tree, 0, now(0))
}

/// What one connection received, decoded.
#[derive(Debug, PartialEq)]
enum Got {
    Connect(ConnectResponse),
    Reply(ReplyHeader, Bytes),
    Event(WatcherEvent),
    Close,
}

fn frames_for(out: &[Output], conn: ConnId, handshake: bool) -> Vec<Got> {
    let mut v = Vec::new();
    let mut first = handshake;
    for o in out {
        match o {
            Output::Send { conn: c, frame, .. } if *c == conn => {
                let body = frame.slice(4..);
                assert_eq!(
                    body.len() as i32,
                    i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]])
                );
                if first {
                    first = false;
                    v.push(Got::Connect(ConnectResponse::from_bytes(body).unwrap()));
                    continue;
                }
                let mut r = Reader::new(body);
                let h = ReplyHeader::read(&mut r).unwrap();
                if h.xid == -1 {
                    v.push(Got::Event(WatcherEvent::read(&mut r).unwrap()));
                } else {
                    v.push(Got::Reply(h, r.rest()));
                }
            }
            Output::Close { conn: c } if *c == conn => v.push(Got::Close),
            _ => {}
        }
    }
    v
}

fn connect_req(session_id: i64, passwd: Bytes, last_zxid: i64) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: last_zxid,
        timeout_ms: 1000,
        session_id,
        passwd,
        read_only: Some(false),
    }
}

fn open(n: &mut Node, conn: ConnId, t: i64) -> ConnectResponse {
    let mut out = Vec::new();
    n.connect(
        conn,
        "127.0.0.1",
        &connect_req(0, Bytes::from_static(&[0; 16]), 0),
        now(t),
        &mut out,
    );
    match frames_for(&out, conn, true).remove(0) {
        Got::Connect(c) => c,
        other => panic!("expected a ConnectResponse, got {other:?}"),
    }
}

fn send(n: &mut Node, conn: ConnId, xid: i32, req: Request, t: i64) -> Vec<Output> {
    let mut out = Vec::new();
    let op = req.op().code();
    n.request(conn, xid, op, Ok(req), now(t), &mut out);
    n.check_invariants();
    out
}

fn create(path: &str, flags: i32) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"d")),
        acl: Some(Acl::open_unsafe()),
        flags,
        ttl: None,
    })
}

#[test]
fn new_session_negotiates_timeout_and_echoes_read_only_byte() {
    let mut n = node();
    let c = open(&mut n, 1, 0);
    assert_eq!(
        c.timeout_ms, 4000,
        "1000 ms is clamped to minSessionTimeout = 2 ticks"
    );
    assert_ne!(c.session_id, 0);
    assert_eq!(c.passwd.len(), 16);
    assert_eq!(c.read_only, Some(false));
    // A pre-3.4 client without the trailing byte gets a response without it.
    let mut out = Vec::new();
    let mut req = connect_req(0, Bytes::from_static(&[0; 16]), 0);
    req.read_only = None;
    n.connect(2, "127.0.0.1", &req, now(0), &mut out);
    match &frames_for(&out, 2, true)[0] {
        Got::Connect(c) => assert_eq!(c.read_only, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_ahead_of_server_is_refused_without_response() {
    let mut n = node();
    let mut out = Vec::new();
    n.connect(
        1,
        "127.0.0.1",
        &connect_req(0, Bytes::from_static(&[0; 16]), 99),
        now(0),
        &mut out,
    );
    assert_eq!(frames_for(&out, 1, true), vec![Got::Close]);
}

#[test]
fn reconnect_with_wrong_password_is_told_expired() {
    let mut n = node();
    let c = open(&mut n, 1, 0);
    let mut out = Vec::new();
    n.connect(
        2,
        "127.0.0.1",
        &connect_req(c.session_id, Bytes::from_static(&[7; 16]), 0),
        now(10),
        &mut out,
    );
    let got = frames_for(&out, 2, true);
    match &got[0] {
        Got::Connect(r) => assert_eq!((r.timeout_ms, r.session_id), (0, 0)),
        other => panic!("{other:?}"),
    }
    assert_eq!(got[1], Got::Close);
}

#[test]
fn reconnect_moves_the_session_and_closes_the_old_connection() {
    let mut n = node();
    let c = open(&mut n, 1, 0);
    let mut out = Vec::new();
    n.connect(
        2,
        "127.0.0.1",
        &connect_req(c.session_id, c.passwd.clone(), 1),
        now(10),
        &mut out,
    );
    assert_eq!(frames_for(&out, 1, false), vec![Got::Close]);
    match &frames_for(&out, 2, true)[0] {
        Got::Connect(r) => assert_eq!(r.session_id, c.session_id),
        other => panic!("{other:?}"),
    }
    assert_eq!(n.session_of(2), Some(c.session_id));
    assert_eq!(n.session_of(1), None);
}

#[test]
fn ping_and_unknown_opcode() {
    let mut n = node();
    open(&mut n, 1, 0);
    let out = send(&mut n, 1, -2, Request::Ping, 5);
    match &frames_for(&out, 1, false)[0] {
        Got::Reply(h, body) => {
            assert_eq!((h.xid, h.zxid, h.err), (-2, n.last_zxid(), 0));
            assert!(body.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let mut out = Vec::new();
    n.request(1, 5, 99, Err(RequestError::UnknownOp(99)), now(6), &mut out);
    let got = frames_for(&out, 1, false);
    assert_eq!(
        got[0],
        Got::Reply(
            ReplyHeader {
                xid: 5,
                zxid: -1,
                err: -6
            },
            Bytes::new()
        )
    );
    assert_eq!(got[1], Got::Close);
}

#[test]
fn digest_auth_shows_in_who_am_i_and_unknown_scheme_fails() {
    let mut n = node();
    open(&mut n, 1, 0);
    let auth = Request::Auth(request::AuthPacket {
        kind: 0,
        scheme: "digest".into(),
        auth: Some(Bytes::from_static(b"alice:secret")),
    });
    let out = send(&mut n, 1, -4, auth, 1);
    assert_eq!(
        frames_for(&out, 1, false),
        vec![Got::Reply(
            ReplyHeader {
                xid: -4,
                zxid: 0,
                err: 0
            },
            Bytes::new()
        )]
    );
    let out = send(&mut n, 1, 1, Request::WhoAmI, 2);
    let Got::Reply(h, body) = &frames_for(&out, 1, false)[0] else {
        panic!()
    };
    assert_eq!(h.err, 0);
    let Response::WhoAmI { infos } =
        Response::decode(OpCode::WhoAmI, &mut Reader::new(body.clone())).unwrap()
    else {
        panic!()
    };
    let pairs: Vec<(String, String)> = infos.into_iter().map(|i| (i.auth_scheme, i.user)).collect();
    assert_eq!(
        pairs,
        vec![
            ("digest".into(), "alice".into()),
            ("ip".into(), "127.0.0.1".into())
        ]
    );

    let bad = Request::Auth(request::AuthPacket {
        kind: 0,
        scheme: "nope".into(),
        auth: Some(Bytes::new()),
    });
    let out = send(&mut n, 1, -4, bad, 3);
    assert_eq!(
        frames_for(&out, 1, false),
        vec![
            Got::Reply(
                ReplyHeader {
                    xid: -4,
                    zxid: 0,
                    err: -115
                },
                Bytes::new()
            ),
            Got::Close
        ]
    );
}

#[test]
fn notification_precedes_the_reply_of_the_write_that_fired_it() {
    let mut n = node();
    open(&mut n, 1, 0);
    let out = send(
        &mut n,
        1,
        1,
        Request::Exists(PathWatch {
            path: "/w".into(),
            watch: true,
        }),
        1,
    );
    assert!(
        matches!(&frames_for(&out, 1, false)[0], Got::Reply(h, _) if h.err == ErrorCode::NoNode.code())
    );
    let out = send(&mut n, 1, 2, create("/w", 0), 2);
    let got = frames_for(&out, 1, false);
    assert_eq!(
        got[0],
        Got::Event(WatcherEvent {
            event_type: 1,
            state: 3,
            path: "/w".into()
        })
    );
    assert!(matches!(&got[1], Got::Reply(h, _) if h.xid == 2 && h.err == 0));
    // The write was logged before its reply.
    let append_at = out
        .iter()
        .position(|o| matches!(o, Output::Append(_)))
        .unwrap();
    let reply_at = out
        .iter()
        .rposition(|o| matches!(o, Output::Send { .. }))
        .unwrap();
    assert!(append_at < reply_at);
}

#[test]
fn failed_write_consumes_a_zxid() {
    let mut n = node();
    open(&mut n, 1, 0);
    let before = n.last_zxid();
    let out = send(
        &mut n,
        1,
        1,
        Request::Delete(PathVersion {
            path: "/missing".into(),
            version: -1,
        }),
        1,
    );
    let Got::Reply(h, _) = &frames_for(&out, 1, false)[0] else {
        panic!()
    };
    assert_eq!(h.err, ErrorCode::NoNode.code());
    assert_eq!(h.zxid, before + 1);
    assert_eq!(n.last_zxid(), before + 1);
}

#[test]
fn expiry_removes_ephemerals_and_closes_the_connection() {
    let mut n = node();
    open(&mut n, 1, 0);
    open(&mut n, 2, 0);
    send(&mut n, 1, 1, create("/e", 1), 1);
    send(
        &mut n,
        2,
        1,
        Request::Exists(PathWatch {
            path: "/e".into(),
            watch: true,
        }),
        1,
    );
    // Session 2 keeps pinging; session 1 goes silent.
    let mut out = Vec::new();
    for t in (500..=7000).step_by(500) {
        out.extend(send(&mut n, 2, -2, Request::Ping, t));
        n.tick(now(t), &mut out);
    }
    assert!(frames_for(&out, 1, false).contains(&Got::Close));
    assert!(
        frames_for(&out, 2, false).contains(&Got::Event(WatcherEvent {
            event_type: 2,
            state: 3,
            path: "/e".into()
        }))
    );
    let out = send(
        &mut n,
        2,
        2,
        Request::Exists(PathWatch {
            path: "/e".into(),
            watch: false,
        }),
        7001,
    );
    assert!(
        matches!(&frames_for(&out, 2, false)[0], Got::Reply(h, _) if h.err == ErrorCode::NoNode.code())
    );
    assert_eq!(n.counters().sessions_expired, 1);
}

#[test]
fn close_session_replies_then_closes() {
    let mut n = node();
    open(&mut n, 1, 0);
    send(&mut n, 1, 1, create("/e", 1), 1);
    let out = send(&mut n, 1, 2, Request::CloseSession, 2);
    let got = frames_for(&out, 1, false);
    assert!(matches!(&got[0], Got::Reply(h, b) if h.xid == 2 && h.err == 0 && b.is_empty()));
    assert_eq!(got[1], Got::Close);
    assert!(n.tree().ephemerals_of(0).is_empty());
    assert_eq!(n.sessions().len(), 0);
}

/// The reply header zxid and `after` of the last frame sent to `conn`.
fn last_reply(out: &[Output], conn: ConnId) -> (ReplyHeader, i64) {
    out.iter()
        .rev()
        .find_map(|o| match o {
            Output::Send {
                conn: c,
                frame,
                after,
            } if *c == conn => Some((
                ReplyHeader::read(&mut Reader::new(frame.slice(4..))).unwrap(),
                *after,
            )),
            _ => None,
        })
        .expect("a frame for the connection")
}

fn get_data(path: &str) -> Request {
    Request::GetData(PathWatch {
        path: path.into(),
        watch: false,
    })
}

fn get_children(path: &str) -> Request {
    Request::GetChildren(PathWatch {
        path: path.into(),
        watch: false,
    })
}

#[test]
fn early_reads_are_stamped_with_what_they_depend_on_and_never_go_backwards() {
    let mut n = node();
    open(&mut n, 1, 0);
    open(&mut n, 2, 0);
    send(&mut n, 1, 1, create("/a", 0), 0);
    let settled = n.last_zxid();
    // Everything so far is durable; /b's create is not.
    n.set_durable_zxid(settled);
    send(&mut n, 1, 2, create("/b", 0), 0);
    let unsynced = n.last_zxid();
    assert!(unsynced > settled);

    // A read of settled data is stamped with the durable zxid and may go at once.
    let out = send(&mut n, 2, 1, get_data("/a"), 0);
    let (h, after) = last_reply(&out, 2);
    assert_eq!((h.zxid, after), (settled, settled));

    // A read that observed the unsynced create waits for it (the root's pzxid moved).
    let out = send(&mut n, 2, 2, get_children("/"), 0);
    let (h, after) = last_reply(&out, 2);
    assert_eq!((h.zxid, after), (unsynced, unsynced));
    let out = send(&mut n, 2, 3, get_data("/b"), 0);
    assert_eq!(last_reply(&out, 2).0.zxid, unsynced);

    // The connection saw `unsynced`: a later read of settled data is not stamped lower.
    let out = send(&mut n, 2, 4, get_data("/a"), 0);
    assert_eq!(last_reply(&out, 2).0.zxid, unsynced);

    // An answer whose cause may be a recent txn (NoNode) waits for everything applied.
    let out = send(&mut n, 1, 3, get_data("/none"), 0);
    let (h, after) = last_reply(&out, 1);
    assert_eq!((h.err, after), (ErrorCode::NoNode.code(), unsynced));

    // A write's reply depends on its own txn.
    let out = send(&mut n, 1, 4, create("/c", 0), 0);
    let (h, after) = last_reply(&out, 1);
    assert_eq!((h.zxid, after), (n.last_zxid(), n.last_zxid()));
}

#[test]
fn early_reads_wait_for_an_unsynced_acl_change() {
    let mut n = node();
    open(&mut n, 1, 0);
    open(&mut n, 2, 0);
    send(&mut n, 1, 1, create("/a", 0), 0);
    send(&mut n, 1, 2, create("/other", 0), 0);
    n.set_durable_zxid(n.last_zxid());
    send(
        &mut n,
        1,
        3,
        Request::SetAcl(corral_proto::request::SetAclRequest {
            path: "/other".into(),
            acl: Some(Acl::open_unsafe()),
            version: -1,
        }),
        0,
    );
    // The stat of /a does not show it, but an access check may depend on an ACL change.
    let out = send(&mut n, 2, 1, get_data("/a"), 0);
    assert_eq!(last_reply(&out, 2).1, n.last_zxid());
}

#[test]
fn without_early_reads_every_reply_is_stamped_with_the_last_zxid() {
    let mut n = node();
    open(&mut n, 1, 0);
    send(&mut n, 1, 1, create("/a", 0), 0);
    send(&mut n, 1, 2, create("/b", 0), 0);
    let out = send(&mut n, 1, 3, get_data("/a"), 0);
    let (h, after) = last_reply(&out, 1);
    assert_eq!((h.zxid, after), (n.last_zxid(), n.last_zxid()));
}

#[test]
fn one_event_for_many_watchers_shares_one_encoded_frame() {
    let mut n = node();
    for c in 1..=3 {
        open(&mut n, c, 0);
    }
    send(&mut n, 1, 1, create("/w", 0), 0);
    for c in 1..=3 {
        send(
            &mut n,
            c,
            10,
            Request::GetData(PathWatch {
                path: "/w".into(),
                watch: true,
            }),
            0,
        );
    }
    let out = send(
        &mut n,
        1,
        11,
        Request::SetData(corral_proto::request::SetDataRequest {
            path: "/w".into(),
            data: Some(Bytes::from_static(b"x")),
            version: -1,
        }),
        0,
    );
    let events: Vec<&Bytes> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { frame, .. } if frame[4..8] == (-1i32).to_be_bytes() => Some(frame),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|f| f.as_ptr() == events[0].as_ptr()));
    for c in 1..=3 {
        assert!(
            frames_for(&out, c, false).contains(&Got::Event(WatcherEvent {
                event_type: EventType::NodeDataChanged.code(),
                state: KeeperState::SyncConnected.code(),
                path: "/w".into(),
            }))
        );
    }
}
