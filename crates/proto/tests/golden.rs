//! Golden bytes captured from a real ZooKeeper 3.8.0 (shared/reference/zookeeper-protocol.md).

use bytes::Bytes;
use corral_proto::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '|')
        .collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn connect_request_with_read_only_byte() {
    let frame = hex("0000002d 00000000 0000000000000000 00002710 0000000000000000 00000010 00000000000000000000000000000000 01");
    assert_eq!(frame.len(), 4 + 45);
    let req = ConnectRequest::from_bytes(Bytes::copy_from_slice(&frame[4..])).unwrap();
    assert_eq!(req.protocol_version, 0);
    assert_eq!(req.last_zxid_seen, 0);
    assert_eq!(req.timeout_ms, 10000);
    assert_eq!(req.session_id, 0);
    assert_eq!(req.passwd.len(), 16);
    assert_eq!(req.read_only, Some(true));
    assert_eq!(&req.to_bytes()[..], &frame[4..]);
}

#[test]
fn connect_request_without_read_only_byte() {
    let body = hex("00000000 0000000000000000 00002710 0000000000000000 00000010 00000000000000000000000000000000");
    assert_eq!(body.len(), 44);
    let req = ConnectRequest::from_bytes(Bytes::from(body)).unwrap();
    assert_eq!(req.read_only, None);
}

#[test]
fn connect_response() {
    let frame = hex(
        "00000025 00000000 00002710 01000006c8f80000 00000010 7acdebae7f4a0f5ae89d858c60f44438 00",
    );
    let resp = ConnectResponse {
        protocol_version: 0,
        timeout_ms: 10000,
        session_id: 0x01000006c8f80000,
        passwd: Bytes::from(hex("7acdebae7f4a0f5ae89d858c60f44438")),
        read_only: Some(false),
    };
    assert_eq!(&resp.to_bytes()[..], &frame[4..]);
    assert_eq!(
        ConnectResponse::from_bytes(Bytes::copy_from_slice(&frame[4..])).unwrap(),
        resp
    );
}

#[test]
fn ping_reply() {
    let bytes = hex("fffffffe 0000000000000019 00000000");
    let h = ReplyHeader {
        xid: -2,
        zxid: 0x19,
        err: 0,
    };
    assert_eq!(&h.to_bytes()[..], &bytes[..]);
}

#[test]
fn notification_frame() {
    let body = hex("ffffffff ffffffffffffffff 00000000 00000001 00000003 00000002 2f77");
    let mut w = Writer::new();
    ReplyHeader {
        xid: -1,
        zxid: -1,
        err: 0,
    }
    .write(&mut w);
    WatcherEvent {
        event_type: EventType::NodeCreated.code(),
        state: KeeperState::SyncConnected.code(),
        path: "/w".into(),
    }
    .write(&mut w);
    assert_eq!(w.as_slice(), &body[..]);
}

#[test]
fn failed_multi_response() {
    // create ok, then a failing op (-103 BadVersion), then one rolled back (-2).
    let body = hex(
        "ffffffff 00 00000000 00000000 | ffffffff 00 ffffff99 ffffff99 | ffffffff 00 fffffffe fffffffe | ffffffff 01 ffffffff",
    );
    let resp = Response::Multi(vec![
        MultiResult::Error(ErrorCode::Ok),
        MultiResult::Error(ErrorCode::BadVersion),
        MultiResult::Error(ErrorCode::RuntimeInconsistency),
    ]);
    let mut w = Writer::new();
    resp.encode(&mut w);
    assert_eq!(w.as_slice(), &body[..]);
    let back = Response::decode(OpCode::Multi, &mut Reader::from_slice(&body)).unwrap();
    assert_eq!(back, resp);
}

#[test]
fn multi_request_round_trip() {
    let req = Request::Multi(vec![
        Request::Create(request::CreateRequest {
            path: "/a".into(),
            data: Some(Bytes::from_static(b"x")),
            acl: Some(Acl::open_unsafe()),
            flags: 0,
            ttl: None,
        }),
        Request::Check(request::PathVersion {
            path: "/a".into(),
            version: 0,
        }),
        Request::Delete(request::PathVersion {
            path: "/a".into(),
            version: -1,
        }),
    ]);
    let mut w = Writer::new();
    req.encode_body(&mut w);
    let back =
        Request::decode(OpCode::Multi.code(), &mut Reader::from_slice(w.as_slice())).unwrap();
    assert_eq!(back, req);
}

#[test]
fn multi_read_rejects_write_ops() {
    let req = Request::Multi(vec![Request::Delete(request::PathVersion {
        path: "/a".into(),
        version: -1,
    })]);
    let mut w = Writer::new();
    req.encode_body(&mut w);
    let err = Request::decode(
        OpCode::MultiRead.code(),
        &mut Reader::from_slice(w.as_slice()),
    )
    .unwrap_err();
    assert_eq!(err, RequestError::BadMulti(ErrorCode::MarshallingError));
}

#[test]
fn txn_round_trip_every_type() {
    let c = CreateTxn {
        path: "/n".into(),
        data: None,
        acl: Acl::open_unsafe(),
        ephemeral: true,
        parent_cversion: 3,
        ttl: 0,
    };
    let txns = vec![
        Txn::CreateSession { timeout_ms: 30000 },
        Txn::CloseSession {
            paths_to_delete: vec!["/e".into()],
        },
        Txn::Create(c.clone()),
        Txn::Create2(c.clone()),
        Txn::CreateContainer(CreateTxn {
            ephemeral: false,
            ..c.clone()
        }),
        Txn::CreateTtl(CreateTxn {
            ephemeral: false,
            ttl: 5000,
            ..c.clone()
        }),
        Txn::Delete { path: "/n".into() },
        Txn::DeleteContainer { path: "/n".into() },
        Txn::SetData {
            path: "/n".into(),
            data: Some(Bytes::from_static(b"d")),
            version: 2,
        },
        Txn::SetAcl {
            path: "/n".into(),
            acl: Acl::read_unsafe(),
            version: 1,
        },
        Txn::Check {
            path: "/n".into(),
            version: 1,
        },
        Txn::Error(ErrorCode::NoNode),
        Txn::Multi(vec![
            Txn::Create(c),
            Txn::Error(ErrorCode::RuntimeInconsistency),
        ]),
    ];
    for t in txns {
        let entry = TxnEntry {
            header: TxnHeader {
                session_id: 7,
                cxid: 1,
                zxid: 0x100000001,
                time_ms: 1,
                op: t.op().code(),
            },
            txn: t,
            digest: Some(TxnDigest {
                version: 2,
                tree_digest: 42,
            }),
        };
        let back = TxnEntry::decode(&mut Reader::new(entry.to_bytes())).unwrap();
        assert_eq!(back, entry);
    }
}

#[test]
fn frame_check() {
    use corral_proto::frame::{check, FrameCheck};
    assert_eq!(check(&[0, 0], 100), FrameCheck::Incomplete);
    assert_eq!(check(&[0, 0, 0, 2, 1], 100), FrameCheck::Incomplete);
    assert_eq!(
        check(&[0, 0, 0, 2, 1, 2], 100),
        FrameCheck::Complete { len: 2 }
    );
    assert_eq!(
        check(&[0xff, 0xff, 0xff, 0xff], 100),
        FrameCheck::TooLarge { len: -1 }
    );
    assert_eq!(check(&[0, 0, 1, 0], 100), FrameCheck::TooLarge { len: 256 });
}

#[test]
fn strings_outside_the_bmp_are_written_as_java_does() {
    // U+1F600 as two CESU-8 surrogates, as ZooKeeper's jute writes it.
    let mut w = Writer::new();
    w.write_string("/\u{1F600}");
    assert_eq!(w.as_slice(), &hex("00000007 2f eda0bd edb880")[..]);
    let mut w = Writer::new();
    w.write_string("/ab");
    assert_eq!(w.as_slice(), &hex("00000003 2f6162")[..]);
}
