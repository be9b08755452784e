//! Golden bytes for the quorum wire formats: every election header, election message and
//! quorum packet captured from a real Apache ZooKeeper 3.8.0 ensemble (3 voters and an
//! observer, see `fixtures/quorum/capture.py`) decodes, and re-encodes to the same bytes.

#[path = "fixtures/quorum/capture.rs"]
mod capture;

use bytes::Bytes;
use capture::{Kind, Stream};
use corral_proto::quorum::*;
use corral_proto::{Reader, Record, TxnEntry};
use std::collections::BTreeMap;

fn all_streams() -> Vec<Stream> {
    capture::streams(&capture::parse(capture::ENSEMBLE_3_8_0))
}

/// Splits an election stream with the codec, checking each item re-encodes identically.
fn election_stream(s: &Stream) -> (Option<ElectionHeader>, Vec<Notification>) {
    let mut pos = 0;
    let mut header = None;
    if s.forward {
        let (h, n) = ElectionHeader::decode(&s.bytes)
            .expect("header decodes")
            .expect("header complete");
        assert_eq!(&h.to_bytes()[..], &s.bytes[..n], "conn {} header", s.conn);
        header = Some(h);
        pos = n;
    }
    let mut out = Vec::new();
    while pos < s.bytes.len() {
        let len = match check_election_frame(&s.bytes[pos..]).expect("frame") {
            Check::Complete { len } => len,
            Check::Incomplete => panic!("conn {} ends inside a frame", s.conn),
        };
        let payload = &s.bytes[pos + 4..pos + len];
        let n = Notification::decode(payload).expect("notification decodes");
        assert_eq!(
            &n.to_frame()[..],
            &s.bytes[pos..pos + len],
            "conn {}",
            s.conn
        );
        out.push(n);
        pos += len;
    }
    (header, out)
}

fn quorum_stream(s: &Stream) -> Vec<QuorumPacket> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < s.bytes.len() {
        let (p, n) = QuorumPacket::decode(&s.bytes[pos..], QUORUM_BUFFER_BYTES_MAX_DEFAULT)
            .expect("packet decodes")
            .unwrap_or_else(|| panic!("conn {} ends inside a packet", s.conn));
        assert_eq!(&p.to_bytes()[..], &s.bytes[pos..pos + n], "conn {}", s.conn);
        assert_ne!(
            p.packet_type,
            PacketType::Snap,
            "a SNAP would need the snapshot codec"
        );
        out.push(p);
        pos += n;
    }
    out
}

#[test]
fn every_election_frame_round_trips() {
    let mut headers = 0;
    let mut notifications = 0;
    let mut states = BTreeMap::new();
    for s in all_streams().iter().filter(|s| s.kind == Kind::Election) {
        let (h, ns) = election_stream(s);
        if let Some(h) = h {
            headers += 1;
            let ElectionHeader::Versioned {
                protocol_version,
                sid,
                ..
            } = &h
            else {
                panic!("3.8 sends a versioned header")
            };
            assert_eq!(*protocol_version, ELECTION_PROTOCOL_VERSION_V1);
            assert!((1..=4).contains(sid));
            let addr = &h.address_list()[0];
            assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        }
        for n in ns {
            notifications += 1;
            *states.entry(n.state.code()).or_insert(0) += 1;
            assert_eq!(n.version(), NOTIFICATION_VERSION);
            assert!(n.trailing.is_empty());
            let config = String::from_utf8(n.config.clone().expect("config").to_vec()).unwrap();
            assert!(config.starts_with("server.1=127.0.0.1:"), "{config}");
            assert!(config.contains(":participant\nserver.2="), "{config}");
            assert!(config.contains(":observer\nversion=0"), "{config}");
            assert!(config.ends_with("version=0"), "{config}");
            if n.leader == i64::MIN {
                // An observer's own vote.
                assert_eq!((n.zxid, n.peer_epoch), (i64::MIN, i64::MIN));
                assert_eq!(n.state, ServerState::Looking);
            }
        }
    }
    assert!(headers >= 12, "{headers} headers");
    assert!(notifications >= 80, "{notifications} notifications");
    for state in 0..=2 {
        assert!(
            states.contains_key(&state),
            "no notification in state {state}"
        );
    }
}

#[test]
fn every_quorum_packet_round_trips_with_typed_payloads() {
    let mut seen = BTreeMap::new();
    for s in all_streams().iter().filter(|s| s.kind == Kind::Quorum) {
        for p in quorum_stream(s) {
            let code = p.packet_type.code();
            *seen.entry(code).or_insert(0) += 1;
            let data = p.data_bytes();
            match (p.packet_type, s.forward) {
                (PacketType::FollowerInfo | PacketType::ObserverInfo, true) => {
                    let li = LearnerInfo::decode(data).unwrap();
                    assert_eq!(li, LearnerInfo::new(li.server_id, 0));
                    assert_eq!(&li.to_bytes()[..], data);
                    assert_eq!(counter_of(p.zxid), 0, "zxid = acceptedEpoch << 32");
                }
                (PacketType::LeaderInfo, false) => {
                    let li = LeaderInfo::decode(data).unwrap();
                    assert_eq!(li.protocol_version, QUORUM_PROTOCOL_VERSION);
                    assert_eq!(&li.to_bytes()[..], data);
                    assert_eq!(counter_of(p.zxid), 0, "zxid = newEpoch << 32");
                }
                (PacketType::AckEpoch, true) => {
                    let a = AckEpoch::decode(data).unwrap();
                    assert!(a.current_epoch >= 0);
                    assert_eq!(&a.to_bytes()[..], data);
                }
                (PacketType::Request, true) => {
                    let r = LearnerRequest::decode(data).unwrap();
                    assert_eq!(&r.to_bytes()[..], data);
                    assert_eq!(p.zxid, -1);
                    if r.op == -10 {
                        assert_eq!(p.authinfo, None, "createSession carries null authinfo");
                    } else {
                        let ids = p.authinfo.clone().expect("client ids");
                        assert_eq!(ids[0].scheme, "ip");
                    }
                }
                (PacketType::Ping, true) => {
                    let d = p.data.as_ref().expect("a PING reply has data, maybe empty");
                    let touches = decode_ping_touches(d).unwrap();
                    assert_eq!(&encode_ping_touches(&touches)[..], &d[..]);
                }
                (PacketType::Ping, false) => assert_eq!(p.data, None),
                (PacketType::Revalidate, true) => {
                    let r = RevalidateRequest::decode(data).unwrap();
                    assert_eq!(&r.to_bytes()[..], data);
                    assert_eq!(p.zxid, -1);
                }
                (PacketType::Revalidate, false) => {
                    let r = RevalidateReply::decode(data).unwrap();
                    assert!(r.valid);
                    assert_eq!(&r.to_bytes()[..], data);
                }
                (PacketType::Proposal | PacketType::Inform, false) => {
                    let e = TxnEntry::decode(&mut Reader::new(Bytes::copy_from_slice(data)))
                        .expect("txn entry");
                    assert_eq!(e.header.zxid, p.zxid);
                    assert_eq!(&e.to_bytes()[..], data);
                }
                (PacketType::NewLeader, false) => {
                    let text = std::str::from_utf8(data).unwrap();
                    assert!(text.ends_with("version=0"), "{text}");
                    assert_eq!(counter_of(p.zxid), 0);
                }
                (
                    PacketType::Ack
                    | PacketType::Commit
                    | PacketType::UpToDate
                    | PacketType::Diff
                    | PacketType::Sync,
                    _,
                ) => {
                    assert_eq!(p.data, None, "{:?}", p.packet_type);
                }
                (t, fwd) => panic!("unexpected {t:?} (initiator to acceptor: {fwd})"),
            }
            assert!(p.authinfo.is_none() || p.packet_type == PacketType::Request);
        }
    }
    // What the scenario exercises: everything but reconfig, TRUNC and SNAP.
    for code in [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 16, 17, 18] {
        assert!(
            seen.contains_key(&code),
            "no packet of type {code}: {seen:?}"
        );
    }
}

/// Feeding a stream in small pieces finds the same items as feeding it whole.
#[test]
fn streams_split_anywhere_decode_the_same() {
    for s in all_streams().iter().take(40) {
        let mut buf: Vec<u8> = Vec::new();
        let mut items = 0;
        let mut header_done = !(s.kind == Kind::Election && s.forward);
        for piece in s.bytes.chunks(7) {
            buf.extend_from_slice(piece);
            loop {
                let consumed = if !header_done {
                    ElectionHeader::decode(&buf).unwrap().map(|(_, n)| {
                        header_done = true;
                        n
                    })
                } else if s.kind == Kind::Election {
                    match check_election_frame(&buf).unwrap() {
                        Check::Complete { len } => Some(len),
                        Check::Incomplete => None,
                    }
                } else {
                    QuorumPacket::decode(&buf, QUORUM_BUFFER_BYTES_MAX_DEFAULT)
                        .unwrap()
                        .map(|(_, n)| n)
                };
                match consumed {
                    Some(n) => {
                        buf.drain(..n);
                        items += 1;
                    }
                    None => break,
                }
            }
        }
        assert!(buf.is_empty(), "conn {}: {} bytes left", s.conn, buf.len());
        let whole = match s.kind {
            Kind::Election => {
                let (h, ns) = election_stream(s);
                ns.len() + h.map_or(0, |_| 1)
            }
            Kind::Quorum => quorum_stream(s).len(),
        };
        assert_eq!(items, whole, "conn {}", s.conn);
    }
}

#[test]
fn packet_and_record_encodings_agree() {
    let p = QuorumPacket::new(PacketType::Commit, 0x1_0000_0003, None);
    let mut w = corral_proto::Writer::new();
    p.write(&mut w);
    assert_eq!(&w.into_bytes()[..], &p.to_bytes()[..]);
    assert_eq!(p.to_bytes().len(), 4 + 8 + 4 + 4);
}
