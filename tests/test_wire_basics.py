"""Client wire protocol basics, byte for byte, against the `server` fixture.

Every assertion here was checked against Apache ZooKeeper 3.8.0
(CORRAL_TEST_TARGETS=zookeeper); see shared/reference/zookeeper-protocol.md
sections 1, 2 and 7.
"""

from __future__ import annotations

import struct

import pytest

import zkwire
from zkwire import Connection, Err, Op


def frame_body(data: bytes) -> bytes:
    (n,) = struct.unpack(">i", data[:4])
    assert n == len(data) - 4
    return data[4:]


# -- handshake ---------------------------------------------------------------


def test_handshake_with_readonly_byte(server):
    conn = Connection(server.host, server.port)
    req = zkwire.connect_request(timeout_ms=10000, read_only=False)
    assert len(req) == 45
    conn.send_frame(req)
    frame = conn.recv_frame()
    assert len(frame) == 37, frame.hex()
    r = zkwire.Reader(frame)
    assert r.int32() == 0  # protocolVersion
    assert r.int32() == 10000  # negotiated timeout
    session_id = r.int64()
    assert session_id != 0
    assert r.buffer() is not None
    assert frame[16:20] == b"\x00\x00\x00\x10"  # 16-byte password
    assert frame[36:] == b"\x00"  # readOnly: false
    conn.close()


def test_handshake_without_readonly_byte_gets_no_readonly_byte(server):
    conn = Connection(server.host, server.port)
    req = zkwire.connect_request(read_only=None)
    assert len(req) == 44
    conn.send_frame(req)
    frame = conn.recv_frame()
    assert len(frame) == 36, frame.hex()
    resp = conn._parse_connect_response(frame)
    assert resp.read_only is None and resp.timeout_ms == 30000 and resp.session_id != 0
    conn.ping()  # the session works
    conn.close()


@pytest.mark.parametrize("asked,granted", [(1000, 4000), (4000, 4000), (30000, 30000),
                                           (40000, 40000), (100000, 40000)])
def test_session_timeout_is_clamped_to_2_and_20_ticks(server, asked, granted):
    conn = Connection(server.host, server.port)
    assert conn.handshake(timeout_ms=asked).timeout_ms == granted
    conn.close()


def test_sessions_get_distinct_ids_and_passwords(server):
    a, b = server.client(), server.client()
    assert a.session_id != b.session_id
    assert len(a.passwd) == 16 and a.passwd != b.passwd
    a.close()
    b.close()


def test_reconnect_with_id_and_password_keeps_session(server):
    a = server.client()
    a.create("/eph", b"", flags=zkwire.CreateMode.EPHEMERAL)
    sid, pw, last = a.session_id, a.passwd, a.last_zxid
    a.close()
    b = Connection(server.host, server.port)
    resp = b.handshake(session_id=sid, passwd=pw, last_zxid=last)
    assert (resp.session_id, resp.passwd, resp.timeout_ms) == (sid, pw, 30000)
    rep = b.exists("/eph")
    assert rep.ok and rep.body["stat"].ephemeralOwner == sid
    b.close()


def test_wrong_password_gets_invalid_session_response_and_close(server):
    a = server.client()
    bad = Connection(server.host, server.port)
    bad.send_frame(zkwire.connect_request(session_id=a.session_id, passwd=b"\x01" * 16))
    frame = bad.recv_frame()
    assert frame == bytes(4 + 4 + 8) + b"\x00\x00\x00\x10" + bytes(16) + b"\x00"
    assert bad.wait_closed(5)
    a.close()


def test_unknown_session_gets_invalid_session_response_and_close(server):
    conn = Connection(server.host, server.port)
    resp = conn.handshake(session_id=0x12345678, passwd=bytes(16))
    assert (resp.timeout_ms, resp.session_id, resp.passwd) == (0, 0, bytes(16))
    assert conn.wait_closed(5)


def test_client_zxid_ahead_of_server_is_refused_without_response(server):
    conn = Connection(server.host, server.port)
    conn.send_frame(zkwire.connect_request(last_zxid=1 << 40))
    with pytest.raises(zkwire.ConnectionClosed):
        conn.recv_frame(timeout=5)


# -- pings, close, errors -------------------------------------------------------


def test_ping_reply_is_bare_header(server):
    conn = server.client()
    conn.create("/p", b"")
    conn.send_request(Op.PING)
    frame = conn.recv_frame()
    assert len(frame) == 16
    xid, zxid, err = struct.unpack(">iqi", frame)
    assert (xid, err) == (-2, 0)
    assert zxid == conn.last_zxid  # lastProcessedZxid: the create's zxid
    conn.close()


def test_unknown_opcode_gets_unimplemented_then_close(server):
    conn = server.client()
    conn.send_frame(struct.pack(">ii", 7, 99))
    frame = conn.recv_frame()
    assert frame == struct.pack(">iqi", 7, -1, Err.UNIMPLEMENTED)
    assert conn.wait_closed(5)


def test_close_session_replies_then_closes(server):
    conn = server.client()
    conn.create("/e1", b"", flags=zkwire.CreateMode.EPHEMERAL)
    sid, pw = conn.session_id, conn.passwd
    conn.send_request(Op.CLOSE_SESSION)
    frame = conn.recv_frame()
    xid, zxid, err = struct.unpack(">iqi", frame)
    assert len(frame) == 16 and err == 0 and zxid > conn.last_zxid
    assert conn.wait_closed(5)
    other = server.client()
    assert other.exists("/e1").err == Err.NONODE  # its ephemeral is gone
    again = Connection(server.host, server.port)
    assert again.handshake(session_id=sid, passwd=pw).timeout_ms == 0
    assert again.wait_closed(5)
    other.close()


def test_oversized_frame_closes_only_that_connection(server):
    victim, bystander = server.client(), server.client()
    victim.send_raw(struct.pack(">i", zkwire.FRAME_BYTES_MAX + 1) + bytes(64))
    assert victim.wait_closed(5)
    assert bystander.ping().ok
    bystander.close()


def test_negative_frame_length_closes_connection(server):
    conn = server.client()
    conn.send_raw(struct.pack(">i", -5))
    assert conn.wait_closed(5)


def test_large_data_just_under_the_limit_is_accepted(server):
    conn = server.client()
    data = b"x" * (zkwire.FRAME_BYTES_MAX - 200)
    assert conn.create("/big", data).ok
    rep = conn.get_data("/big")
    assert rep.ok and rep.body["data"] == data
    conn.close()


def test_error_reply_is_header_only(server):
    conn = server.client()
    xid = conn.send_request(Op.GET_DATA, zkwire.path_watch_body("/missing", False))
    frame = conn.recv_frame()
    assert len(frame) == 16
    rxid, _zxid, err = struct.unpack(">iqi", frame)
    assert (rxid, err) == (xid, Err.NONODE)
    conn.close()


def test_failed_auth_scheme_gets_authfailed_then_close(server):
    conn = server.client()
    conn.send_request(Op.AUTH, zkwire.auth_body("nosuchscheme", b"x"))
    frame = conn.recv_frame()
    assert frame == struct.pack(">iqi", -4, 0, Err.AUTHFAILED)
    assert conn.wait_closed(5)


def test_digest_auth_reply_and_whoami(server):
    conn = server.client()
    assert conn.who_am_i().body == {"client_info": [("ip", "127.0.0.1")]}
    conn.send_request(Op.AUTH, zkwire.auth_body("digest", b"alice:secret"))
    assert conn.recv_frame() == struct.pack(">iqi", -4, 0, 0)
    info = conn.who_am_i().body["client_info"]
    assert sorted(info) == [("digest", "alice"), ("ip", "127.0.0.1")]
    conn.close()


def test_digest_acl_id(server):
    assert zkwire.digest_id("alice", "secret") == "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
    conn = server.client()
    acl = [zkwire.ACL(zkwire.Perms.ALL, "digest", zkwire.digest_id("alice", "secret"))]
    assert conn.create("/locked", b"s", acl=acl).ok
    assert conn.get_data("/locked").err == Err.NOAUTH
    conn.add_auth("digest", b"alice:secret")
    assert conn.get_data("/locked").body["data"] == b"s"
    conn.close()


# -- notifications and multi ---------------------------------------------------


def test_notification_precedes_the_reply_that_caused_it(server):
    conn = server.client()
    assert conn.exists("/w", watch=True).err == Err.NONODE
    xid = conn.send_request(Op.CREATE, zkwire.create_body("/w", b""))
    first, second = conn.recv_frame(), conn.recv_frame()
    # xid -1, zxid -1 (3.8), err 0, NodeCreated, SyncConnected, "/w"
    assert first == bytes.fromhex("ffffffff ffffffffffffffff 00000000 00000001 00000003 00000002 2f77")
    assert struct.unpack(">i", second[:4])[0] == xid
    conn.close()


def test_failed_multi_layout(server):
    conn = server.client()
    conn.create("/m", b"")
    body = zkwire.multi_body([
        (Op.CHECK, zkwire.path_version_body("/m", 0)),
        (Op.SET_DATA, zkwire.set_data_body("/m", b"x", 5)),
        (Op.DELETE, zkwire.path_version_body("/m", -1)),
    ])
    xid = conn.send_request(Op.MULTI, body)
    frame = conn.recv_frame()
    rxid, zxid, err = struct.unpack(">iqi", frame[:16])
    assert (rxid, err) == (xid, 0)  # the header says OK even though the multi failed
    assert zxid > conn.last_zxid  # and the failed multi consumed a zxid
    assert frame[16:] == bytes.fromhex(
        "ffffffff 00 00000000 00000000"
        "ffffffff 00 ffffff99 ffffff99"
        "ffffffff 00 fffffffe fffffffe"
        "ffffffff 01 ffffffff"
    )
    assert conn.get_data("/m").body["data"] == b""
    conn.close()


def test_top_level_node_stats(server):
    conn = server.client()
    rep = conn.get_children2("/zookeeper")
    assert sorted(rep.body["children"]) == ["config", "quota"]
    st = rep.body["stat"]
    assert (st.czxid, st.mzxid, st.ctime, st.version, st.cversion, st.numChildren) == (0, 0, 0, 0, -2, 2)
    rep = conn.get_acl("/zookeeper/config")
    assert rep.body["acl"] == [zkwire.ACL(zkwire.Perms.READ, "world", "anyone")]
    assert rep.body["stat"].aversion == -1
    conn.close()


# -- four-letter words -----------------------------------------------------------


def test_4lw_ruok(server):
    assert server.four_letter("ruok") == "imok"


def test_4lw_isro(server):
    assert server.four_letter("isro") == "rw"


def test_4lw_srvr(server):
    conn = server.client()
    conn.create("/s", b"")
    out = server.four_letter("srvr")
    lines = out.splitlines()
    assert lines[0].startswith("Zookeeper version: 3.8."), out
    keys = [line.split(":")[0] for line in lines]
    assert keys == ["Zookeeper version", "Latency min/avg/max", "Received", "Sent",
                    "Connections", "Outstanding", "Zxid", "Mode", "Node count"], out
    assert "Mode: standalone" in lines
    assert f"Zxid: 0x{conn.last_zxid:x}" in lines
    # 5 real nodes (/, /zookeeper, /zookeeper/config, /zookeeper/quota, /s), but
    # ZooKeeper's node map holds the root under both "" and "/", so it says 6
    assert "Node count: 6" in lines
    conn.close()
