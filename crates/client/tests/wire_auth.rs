//! Raw bytes on the wire, no client library: what a server answers to an auth packet whose
//! credential is a null buffer (length -1), as Java's `addAuthInfo("digest", null)` and
//! zkCli's `addauth digest` send it. ZooKeeper 3.8's digest provider cannot read it: the
//! server answers the auth xid (-4) with AuthFailed (-115) and closes the connection.

mod common;

use common::shared_server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Reads one length-prefixed frame (`None` when the server closed the connection).
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len).ok().filter(|&n| n <= 1 << 20)?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

#[test]
fn null_digest_credential_is_auth_failed_and_closes_the_connection() {
    let srv = shared_server();
    let mut s = TcpStream::connect(srv.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    #[rustfmt::skip]
    let connect: &[u8] = &[
        0, 0, 0, 45,                    // frame length
        0, 0, 0, 0,                     // protocolVersion
        0, 0, 0, 0, 0, 0, 0, 0,         // lastZxidSeen
        0, 0, 0x75, 0x30,               // timeOut 30000
        0, 0, 0, 0, 0, 0, 0, 0,         // sessionId
        0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // passwd
        0,                              // readOnly
    ];
    s.write_all(connect).expect("send ConnectRequest");
    let answer = read_frame(&mut s).expect("ConnectResponse");
    assert!(
        answer.len() >= 36,
        "ConnectResponse of {} bytes",
        answer.len()
    );
    #[rustfmt::skip]
    let auth: &[u8] = &[
        0, 0, 0, 26,                    // frame length
        0xff, 0xff, 0xff, 0xfc,         // xid -4 (auth)
        0, 0, 0, 100,                   // type 100 (auth)
        0, 0, 0, 0,                     // AuthPacket.type 0
        0, 0, 0, 6, b'd', b'i', b'g', b'e', b's', b't', // scheme "digest"
        0xff, 0xff, 0xff, 0xff,         // auth: null buffer
    ];
    s.write_all(auth).expect("send auth");
    let reply = read_frame(&mut s).expect("an answer to the auth packet");
    assert_eq!(reply.len(), 16, "ReplyHeader only: {reply:?}");
    assert_eq!(&reply[0..4], &[0xff, 0xff, 0xff, 0xfc], "xid -4");
    let err = i32::from_be_bytes([reply[12], reply[13], reply[14], reply[15]]);
    assert_eq!(err, -115, "AuthFailed");
    let mut rest = [0u8; 64];
    let n = s
        .read(&mut rest)
        .expect("the server closes the connection (no timeout)");
    assert_eq!(
        n,
        0,
        "the server closes the connection; got {:?}",
        &rest[..n]
    );
}
