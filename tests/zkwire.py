"""A small raw-protocol ZooKeeper client for tests.

It speaks the client wire protocol described in
shared/reference/zookeeper-protocol.md (sections 1 and 2) directly over a
socket, with no retries, no reconnects and no hidden traffic: what a test
sends is exactly what goes on the wire, and every frame the server sends back
(replies and xid -1 notifications) is returned to the caller in arrival order.

Layout of this module:
  * constants: opcodes (`Op`), error codes (`Err`), event types, permissions
  * `Writer` / `Reader`: jute binary encoding (big-endian, -1 = null)
  * request body encoders (`create_body`, `multi_body`, ...)
  * reply body decoders (`decode_body(op, bytes)`), including multi results
  * `Connection`: one TCP connection, framing, handshake, request/reply
"""

from __future__ import annotations

import base64
import hashlib
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

FRAME_BYTES_MAX = 0xFFFFF  # jute.maxbuffer default, 1 MiB - 1
PASSWD_BYTES = 16


class Op:
    NOTIFICATION = 0
    CREATE = 1
    DELETE = 2
    EXISTS = 3
    GET_DATA = 4
    SET_DATA = 5
    GET_ACL = 6
    SET_ACL = 7
    GET_CHILDREN = 8
    SYNC = 9
    PING = 11
    GET_CHILDREN2 = 12
    CHECK = 13
    MULTI = 14
    CREATE2 = 15
    RECONFIG = 16
    CHECK_WATCHES = 17
    REMOVE_WATCHES = 18
    CREATE_CONTAINER = 19
    DELETE_CONTAINER = 20
    CREATE_TTL = 21
    MULTI_READ = 22
    AUTH = 100
    SET_WATCHES = 101
    SASL = 102
    GET_EPHEMERALS = 103
    GET_ALL_CHILDREN_NUMBER = 104
    SET_WATCHES2 = 105
    ADD_WATCH = 106
    WHO_AM_I = 107
    CREATE_SESSION = -10
    CLOSE_SESSION = -11
    ERROR = -1


OP_NAMES = {v: k.lower() for k, v in vars(Op).items() if k.isupper()}


class Xid:
    NOTIFICATION = -1
    PING = -2
    AUTH = -4
    SET_WATCHES = -8


class Err:
    OK = 0
    SYSTEMERROR = -1
    RUNTIMEINCONSISTENCY = -2
    DATAINCONSISTENCY = -3
    CONNECTIONLOSS = -4
    MARSHALLINGERROR = -5
    UNIMPLEMENTED = -6
    OPERATIONTIMEOUT = -7
    BADARGUMENTS = -8
    UNKNOWNSESSION = -12
    NEWCONFIGNOQUORUM = -13
    RECONFIGINPROGRESS = -14
    APIERROR = -100
    NONODE = -101
    NOAUTH = -102
    BADVERSION = -103
    NOCHILDRENFOREPHEMERALS = -108
    NODEEXISTS = -110
    NOTEMPTY = -111
    SESSIONEXPIRED = -112
    INVALIDCALLBACK = -113
    INVALIDACL = -114
    AUTHFAILED = -115
    SESSIONMOVED = -118
    NOTREADONLY = -119
    EPHEMERALONLOCALSESSION = -120
    NOWATCHER = -121
    REQUESTTIMEOUT = -122
    RECONFIGDISABLED = -123
    SESSIONCLOSEDREQUIRESASLAUTH = -124
    QUOTAEXCEEDED = -125
    THROTTLEDOP = -127


ERR_NAMES = {v: k for k, v in vars(Err).items() if k.isupper()}


def err_name(code: int) -> str:
    return ERR_NAMES.get(code, str(code))


class EventType:
    NONE = -1
    NODE_CREATED = 1
    NODE_DELETED = 2
    NODE_DATA_CHANGED = 3
    NODE_CHILDREN_CHANGED = 4


class KeeperState:
    SYNC_CONNECTED = 3


class WatcherType:
    CHILDREN = 1
    DATA = 2
    ANY = 3
    PERSISTENT = 4
    PERSISTENT_RECURSIVE = 5


class AddWatchMode:
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class CreateMode:
    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6


class Perms:
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


class Id(NamedTuple):
    scheme: str
    id: str


class ACL(NamedTuple):
    perms: int
    scheme: str
    id: str


OPEN_ACL_UNSAFE = [ACL(Perms.ALL, "world", "anyone")]
READ_ACL_UNSAFE = [ACL(Perms.READ, "world", "anyone")]
CREATOR_ALL_ACL = [ACL(Perms.ALL, "auth", "")]


def digest_id(user: str, password: str) -> str:
    """The ACL id the digest scheme derives from `user:password`."""
    raw = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(raw).decode()}"


class Stat(NamedTuple):
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int
    dataLength: int
    numChildren: int
    pzxid: int


# ---------------------------------------------------------------------------
# jute encoding


class Writer:
    """Jute BinaryOutputArchive."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def byte(self, v: int) -> "Writer":
        self._parts.append(struct.pack(">b", v))
        return self

    def boolean(self, v: bool) -> "Writer":
        self._parts.append(b"\x01" if v else b"\x00")
        return self

    def int32(self, v: int) -> "Writer":
        self._parts.append(struct.pack(">i", v))
        return self

    def int64(self, v: int) -> "Writer":
        self._parts.append(struct.pack(">q", v))
        return self

    def buffer(self, v: bytes | None) -> "Writer":
        if v is None:
            return self.int32(-1)
        self.int32(len(v))
        self._parts.append(bytes(v))
        return self

    def ustring(self, v: str | bytes | None) -> "Writer":
        if v is None:
            return self.int32(-1)
        if isinstance(v, str):
            v = v.encode("utf-8", "surrogatepass")
        return self.buffer(v)

    def vector(self, items: list | None, put: Callable[["Writer", Any], Any]) -> "Writer":
        if items is None:
            return self.int32(-1)
        self.int32(len(items))
        for item in items:
            put(self, item)
        return self

    def acl(self, a: ACL) -> "Writer":
        return self.int32(a.perms).ustring(a.scheme).ustring(a.id)

    def acls(self, acls: list[ACL] | None) -> "Writer":
        return self.vector(acls, Writer.acl)

    def strings(self, items: list[str] | None) -> "Writer":
        return self.vector(items, Writer.ustring)

    def raw(self, b: bytes) -> "Writer":
        self._parts.append(bytes(b))
        return self

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class DecodeError(Exception):
    pass


class Reader:
    """Jute BinaryInputArchive over one frame's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(f"need {n} bytes at {self.pos}, frame has {len(self.data)}")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def byte(self) -> int:
        return struct.unpack(">b", self._take(1))[0]

    def boolean(self) -> bool:
        return self._take(1) != b"\x00"

    def int32(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def buffer(self) -> bytes | None:
        n = self.int32()
        if n == -1:
            return None
        if n < -1:
            raise DecodeError(f"negative length {n}")
        return self._take(n)

    def ustring(self) -> str | None:
        b = self.buffer()
        if b is None:
            return None
        return b.decode("utf-8", "surrogateescape")

    def vector(self, get: Callable[["Reader"], Any]) -> list | None:
        n = self.int32()
        if n == -1:
            return None
        if n < -1 or n > len(self.data):
            raise DecodeError(f"bad vector length {n}")
        return [get(self) for _ in range(n)]

    def stat(self) -> Stat:
        return Stat(
            self.int64(), self.int64(), self.int64(), self.int64(),
            self.int32(), self.int32(), self.int32(), self.int64(),
            self.int32(), self.int32(), self.int64(),
        )

    def acl(self) -> ACL:
        return ACL(self.int32(), self.ustring(), self.ustring())

    def acls(self) -> list[ACL] | None:
        return self.vector(Reader.acl)

    def strings(self) -> list[str] | None:
        return self.vector(Reader.ustring)

    def remaining(self) -> bytes:
        return self.data[self.pos :]

    def at_end(self) -> bool:
        return self.pos == len(self.data)


# ---------------------------------------------------------------------------
# request bodies (section 2.3)


def create_body(path: str, data: bytes | None = b"", acl: list[ACL] | None = None,
                flags: int = 0, ttl: int | None = None) -> bytes:
    w = Writer().ustring(path).buffer(data).acls(OPEN_ACL_UNSAFE if acl is None else acl)
    w.int32(flags)
    if ttl is not None:
        w.int64(ttl)
    return w.bytes()


def path_body(path: str) -> bytes:
    return Writer().ustring(path).bytes()


def path_watch_body(path: str, watch: bool = False) -> bytes:
    return Writer().ustring(path).boolean(watch).bytes()


def path_version_body(path: str, version: int = -1) -> bytes:
    """DeleteRequest and CheckVersionRequest."""
    return Writer().ustring(path).int32(version).bytes()


def set_data_body(path: str, data: bytes | None, version: int = -1) -> bytes:
    return Writer().ustring(path).buffer(data).int32(version).bytes()


def set_acl_body(path: str, acl: list[ACL] | None, version: int = -1) -> bytes:
    return Writer().ustring(path).acls(acl).int32(version).bytes()


def path_int_body(path: str, value: int) -> bytes:
    """CheckWatchesRequest, RemoveWatchesRequest, AddWatchRequest."""
    return Writer().ustring(path).int32(value).bytes()


def auth_body(scheme: str, auth: bytes, auth_type: int = 0) -> bytes:
    return Writer().int32(auth_type).ustring(scheme).buffer(auth).bytes()


def set_watches_body(relative_zxid: int, data: list[str], exist: list[str], child: list[str],
                     persistent: list[str] | None = None,
                     recursive: list[str] | None = None) -> bytes:
    """SetWatches when persistent and recursive are None, else SetWatches2."""
    w = Writer().int64(relative_zxid).strings(data).strings(exist).strings(child)
    if persistent is not None or recursive is not None:
        w.strings(persistent or []).strings(recursive or [])
    return w.bytes()


def multi_body(ops: list[tuple[int, bytes]]) -> bytes:
    """MultiRequest: (MultiHeader{type, false, -1} + body)* + MultiHeader{-1, true, -1}."""
    w = Writer()
    for op, body in ops:
        w.int32(op).boolean(False).int32(-1).raw(body)
    w.int32(-1).boolean(True).int32(-1)
    return w.bytes()


def connect_request(session_id: int = 0, passwd: bytes = bytes(PASSWD_BYTES),
                    timeout_ms: int = 30000, last_zxid: int = 0,
                    read_only: bool | None = False, protocol_version: int = 0) -> bytes:
    """ConnectRequest body; read_only=None omits the optional trailing byte."""
    w = Writer().int32(protocol_version).int64(last_zxid).int32(timeout_ms)
    w.int64(session_id).buffer(passwd)
    if read_only is not None:
        w.boolean(read_only)
    return w.bytes()


# ---------------------------------------------------------------------------
# reply bodies


@dataclass
class MultiResult:
    type: int
    err: int
    body: Any = None


def _decode_multi(r: Reader) -> list[MultiResult]:
    results = []
    for _ in range(100_000):
        typ, done, err = r.int32(), r.boolean(), r.int32()
        if done:
            break
        if typ == Op.ERROR:
            results.append(MultiResult(typ, err, {"err": r.int32()}))
        else:
            dec = _MULTI_DECODERS.get(typ)
            if dec is None:
                raise DecodeError(f"unknown multi result type {typ}")
            results.append(MultiResult(typ, err, dec(r)))
    else:
        raise DecodeError("multi response has no end marker")
    return results


def _path(r: Reader) -> dict:
    return {"path": r.ustring()}


def _path_stat(r: Reader) -> dict:
    return {"path": r.ustring(), "stat": r.stat()}


def _stat(r: Reader) -> dict:
    return {"stat": r.stat()}


def _data_stat(r: Reader) -> dict:
    return {"data": r.buffer(), "stat": r.stat()}


def _acl_stat(r: Reader) -> dict:
    return {"acl": r.acls(), "stat": r.stat()}


def _children(r: Reader) -> dict:
    return {"children": r.strings()}


def _children_stat(r: Reader) -> dict:
    return {"children": r.strings(), "stat": r.stat()}


def _empty(r: Reader) -> None:
    return None


_MULTI_DECODERS: dict[int, Callable[[Reader], Any]] = {
    Op.CREATE: _path,
    Op.CREATE2: _path_stat,
    Op.DELETE: _empty,
    Op.SET_DATA: _stat,
    Op.CHECK: _empty,
    Op.GET_DATA: _data_stat,
    Op.GET_CHILDREN: _children,
}

BODY_DECODERS: dict[int, Callable[[Reader], Any]] = {
    Op.CREATE: _path,
    Op.CREATE2: _path_stat,
    Op.CREATE_CONTAINER: _path_stat,
    Op.CREATE_TTL: _path_stat,
    Op.DELETE: _empty,
    Op.EXISTS: _stat,
    Op.GET_DATA: _data_stat,
    Op.SET_DATA: _stat,
    Op.GET_ACL: _acl_stat,
    Op.SET_ACL: _stat,
    Op.GET_CHILDREN: _children,
    Op.GET_CHILDREN2: _children_stat,
    Op.SYNC: _path,
    Op.PING: _empty,
    Op.MULTI: _decode_multi,
    Op.MULTI_READ: _decode_multi,
    Op.CHECK_WATCHES: _empty,
    Op.REMOVE_WATCHES: _empty,
    Op.AUTH: _empty,
    Op.SET_WATCHES: _empty,
    Op.SET_WATCHES2: _empty,
    Op.GET_EPHEMERALS: lambda r: {"ephemerals": r.strings()},
    Op.GET_ALL_CHILDREN_NUMBER: lambda r: {"total": r.int32()},
    Op.ADD_WATCH: lambda r: {"err": r.int32()},
    Op.WHO_AM_I: lambda r: {"client_info": r.vector(lambda rr: (rr.ustring(), rr.ustring()))},
    Op.CLOSE_SESSION: _empty,
}


def decode_body(op: int, body: bytes) -> tuple[Any, bytes]:
    """Decode a reply body for `op`; returns (value, undecoded trailing bytes)."""
    dec = BODY_DECODERS.get(op)
    if dec is None:
        return None, bytes(body)
    r = Reader(body)
    value = dec(r)
    return value, r.remaining()


# ---------------------------------------------------------------------------
# frames read from a connection


@dataclass
class Event:
    """A watch notification (xid -1)."""

    type: int
    state: int
    path: str | None
    zxid: int
    err: int = 0
    raw: bytes = b""


@dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    op: int | None = None
    body: Any = None
    extra: bytes = b""  # bytes after the decoded body (should be empty)
    raw: bytes = b""

    @property
    def ok(self) -> bool:
        return self.err == 0


@dataclass
class ConnectResponse:
    protocol_version: int
    timeout_ms: int
    session_id: int
    passwd: bytes | None
    read_only: bool | None  # None: the optional byte was absent
    raw: bytes = b""
    extra: bytes = b""


class ConnectionClosed(Exception):
    """The server closed the connection (EOF or reset)."""


class FrameTimeout(Exception):
    """No complete frame arrived in time."""


def parse_frame(frame: bytes, op_for_xid: Callable[[int], int | None] | None = None) -> Event | Reply:
    r = Reader(frame)
    xid, zxid, err = r.int32(), r.int64(), r.int32()
    if xid == Xid.NOTIFICATION:
        ev = Event(r.int32(), r.int32(), r.ustring(), zxid, err, frame)
        return ev
    op = op_for_xid(xid) if op_for_xid else None
    rep = Reply(xid, zxid, err, op, raw=frame)
    rest = r.remaining()
    if err == 0 and op is not None:
        rep.body, rep.extra = decode_body(op, rest)
    elif op == Op.MULTI and rest:
        # a failed multi still carries results in 3.8 (err 0); be tolerant
        rep.body, rep.extra = decode_body(op, rest)
    else:
        rep.extra = rest
    return rep


class Connection:
    """One TCP connection to a ZooKeeper-protocol server.

    Nothing is sent implicitly: no pings, no reconnects. `call` sends one
    request and returns the notifications that arrived before its reply plus
    the reply itself.
    """

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._eof = False
        self._xid = 0
        self._pending: dict[int, int] = {}  # xid -> op, for decoding replies
        self.session_id: int | None = None
        self.passwd: bytes | None = None
        self.timeout_ms: int | None = None
        self.last_zxid = 0
        self.events: list[Event] = []  # notifications kept by `request`

    # -- framing ----------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ConnectionClosed(str(e)) from e

    def send_frame(self, payload: bytes) -> None:
        self.send_raw(struct.pack(">i", len(payload)) + payload)

    def _fill(self, deadline: float) -> None:
        if self._eof:
            raise ConnectionClosed("EOF")
        left = deadline - time.monotonic()
        if left <= 0:
            raise FrameTimeout()
        ready, _, _ = select.select([self.sock], [], [], left)
        if not ready:
            raise FrameTimeout()
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError) as e:
            self._eof = True
            raise ConnectionClosed(str(e)) from e
        except socket.timeout as e:
            raise FrameTimeout() from e
        if not chunk:
            self._eof = True
            raise ConnectionClosed("EOF")
        self._buf += chunk

    def recv_frame(self, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self._buf) >= 4:
                n = struct.unpack(">i", self._buf[:4])[0]
                if n < 0 or n > 64 * 1024 * 1024:
                    raise DecodeError(f"bad frame length {n}")
                if len(self._buf) >= 4 + n:
                    frame = bytes(self._buf[4 : 4 + n])
                    del self._buf[: 4 + n]
                    return frame
            self._fill(deadline)

    def read_to_eof(self, timeout: float = 5.0) -> bytes:
        """Read everything until the server closes; raises FrameTimeout if it doesn't."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
            except ConnectionClosed:
                out = bytes(self._buf)
                self._buf.clear()
                return out

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection within `timeout` (any
        unread bytes are discarded)."""
        try:
            self.read_to_eof(timeout)
            return True
        except FrameTimeout:
            return False

    @property
    def eof(self) -> bool:
        return self._eof

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- session handshake ------------------------------------------------

    def handshake(self, session_id: int = 0, passwd: bytes = bytes(PASSWD_BYTES),
                  timeout_ms: int = 30000, last_zxid: int = 0,
                  read_only: bool | None = False, protocol_version: int = 0,
                  timeout: float | None = None) -> ConnectResponse:
        self.send_frame(connect_request(session_id, passwd, timeout_ms, last_zxid,
                                        read_only, protocol_version))
        frame = self.recv_frame(timeout)
        return self._parse_connect_response(frame)

    def _parse_connect_response(self, frame: bytes) -> ConnectResponse:
        r = Reader(frame)
        resp = ConnectResponse(r.int32(), r.int32(), r.int64(), r.buffer(), None, raw=frame)
        if not r.at_end():
            resp.read_only = r.boolean()
        resp.extra = r.remaining()
        if resp.timeout_ms > 0:
            self.session_id = resp.session_id
            self.passwd = resp.passwd
            self.timeout_ms = resp.timeout_ms
        return resp

    # -- requests ---------------------------------------------------------

    def next_xid(self) -> int:
        self._xid = self._xid + 1 if self._xid < 0x7FFFFFFF else 1
        return self._xid

    def send_request(self, op: int, body: bytes = b"", xid: int | None = None) -> int:
        if xid is None:
            xid = {Op.PING: Xid.PING, Op.AUTH: Xid.AUTH, Op.SET_WATCHES: Xid.SET_WATCHES,
                   Op.SET_WATCHES2: Xid.SET_WATCHES}.get(op)
            if xid is None:
                xid = self.next_xid()
        self._pending[xid] = op
        self.send_frame(struct.pack(">ii", xid, op) + body)
        return xid

    def read_frame(self, timeout: float | None = None) -> Event | Reply:
        frame = self.recv_frame(timeout)
        msg = parse_frame(frame, self._pending.get)
        if isinstance(msg, Reply):
            self._pending.pop(msg.xid, None)
            if msg.zxid > self.last_zxid:
                self.last_zxid = msg.zxid
        return msg

    def read_until_reply(self, xid: int, timeout: float | None = None,
                         strict_xid: bool = True) -> tuple[list[Event], Reply]:
        """Read frames until the reply to `xid`; returns (events before it, reply).
        A reply with another xid is an error (replies are in request order),
        unless strict_xid is False: then the first reply is returned as is."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        events: list[Event] = []
        for _ in range(1_000_000):
            msg = self.read_frame(max(0.0, deadline - time.monotonic()))
            if isinstance(msg, Event):
                events.append(msg)
                continue
            if msg.xid != xid:
                if strict_xid:
                    raise DecodeError(f"expected reply to xid {xid}, got {msg}")
                self._pending.pop(xid, None)
            return events, msg
        raise DecodeError("too many frames")

    def call(self, op: int, body: bytes = b"", xid: int | None = None,
             timeout: float | None = None) -> tuple[list[Event], Reply]:
        xid = self.send_request(op, body, xid)
        return self.read_until_reply(xid, timeout)

    def request(self, op: int, body: bytes = b"", timeout: float | None = None) -> Reply:
        """Like `call` but returns only the reply; notifications that arrive
        before it are kept in `self.events`."""
        events, rep = self.call(op, body, timeout=timeout)
        self.events.extend(events)
        return rep

    def drain_events(self, timeout: float = 0.05) -> list[Event]:
        """Collect notifications that arrive within `timeout` (plus any kept)."""
        out = list(self.events)
        self.events.clear()
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            try:
                msg = self.read_frame(max(0.0, deadline - time.monotonic()))
            except FrameTimeout:
                break
            if isinstance(msg, Event):
                out.append(msg)
            else:
                raise DecodeError(f"unexpected reply while draining: {msg}")
        return out

    # -- conveniences -----------------------------------------------------

    def ping(self) -> Reply:
        return self.request(Op.PING)

    def create(self, path: str, data: bytes | None = b"", acl: list[ACL] | None = None,
               flags: int = 0, op: int = Op.CREATE, ttl: int | None = None) -> Reply:
        if op == Op.CREATE_TTL and ttl is None:
            raise ValueError("createTTL needs ttl")
        return self.request(op, create_body(path, data, acl, flags, ttl))

    def delete(self, path: str, version: int = -1) -> Reply:
        return self.request(Op.DELETE, path_version_body(path, version))

    def exists(self, path: str, watch: bool = False) -> Reply:
        return self.request(Op.EXISTS, path_watch_body(path, watch))

    def get_data(self, path: str, watch: bool = False) -> Reply:
        return self.request(Op.GET_DATA, path_watch_body(path, watch))

    def set_data(self, path: str, data: bytes | None, version: int = -1) -> Reply:
        return self.request(Op.SET_DATA, set_data_body(path, data, version))

    def get_children(self, path: str, watch: bool = False) -> Reply:
        return self.request(Op.GET_CHILDREN, path_watch_body(path, watch))

    def get_children2(self, path: str, watch: bool = False) -> Reply:
        return self.request(Op.GET_CHILDREN2, path_watch_body(path, watch))

    def get_acl(self, path: str) -> Reply:
        return self.request(Op.GET_ACL, path_body(path))

    def set_acl(self, path: str, acl: list[ACL] | None, version: int = -1) -> Reply:
        return self.request(Op.SET_ACL, set_acl_body(path, acl, version))

    def sync(self, path: str) -> Reply:
        return self.request(Op.SYNC, path_body(path))

    def add_auth(self, scheme: str, auth: bytes) -> Reply:
        return self.request(Op.AUTH, auth_body(scheme, auth))

    def add_watch(self, path: str, mode: int) -> Reply:
        return self.request(Op.ADD_WATCH, path_int_body(path, mode))

    def remove_watches(self, path: str, watcher_type: int) -> Reply:
        return self.request(Op.REMOVE_WATCHES, path_int_body(path, watcher_type))

    def check_watches(self, path: str, watcher_type: int) -> Reply:
        return self.request(Op.CHECK_WATCHES, path_int_body(path, watcher_type))

    def who_am_i(self) -> Reply:
        return self.request(Op.WHO_AM_I)

    def close_session(self) -> Reply:
        return self.request(Op.CLOSE_SESSION)


def connect(host: str, port: int, timeout_ms: int = 30000, read_only: bool | None = False,
            timeout: float = 10.0, **kw: Any) -> Connection:
    """Open a connection and create a new session; raises on an invalid answer."""
    conn = Connection(host, port, timeout)
    try:
        resp = conn.handshake(timeout_ms=timeout_ms, read_only=read_only, **kw)
    except Exception:
        conn.close()
        raise
    if resp.timeout_ms <= 0:
        conn.close()
        raise ConnectionClosed(f"session refused: {resp}")
    return conn


def four_letter(host: str, port: int, cmd: str, timeout: float = 5.0) -> str:
    """Send a four-letter word and read the answer to EOF."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(cmd.encode("ascii"))
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode("utf-8", "replace")
