"""End-to-end tests with kazoo (python-zk), a real third-party client, against the `server`
fixture (corral or Apache ZooKeeper, see tests/conftest.py).

Every test works under its own unique path so that the tests can share one server. What
kazoo sends for each API call (see kazoo/protocol/serialization.py):
create -> create(1), create(include_data=True) -> create2(15), delete -> delete(2),
exists -> exists(3), get -> getData(4), set -> setData(5), get_acls -> getACL(6),
set_acls -> setACL(7), get_children -> getChildren(8) or getChildren2(12) with
include_data, sync -> sync(9), transaction().commit() -> multi(14) with check(13) inside,
add_auth -> auth(100, xid -4), ping(11, xid -2), stop -> closeSession(-11).
kazoo 2.11 never sends setWatches, addWatch, removeWatches, multiRead, createContainer,
createTTL, getEphemerals, getAllChildrenNumber or whoAmI.
"""

import hashlib
import base64
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import EventType, ZnodeStat
from kazoo.security import ACL, Id, OPEN_ACL_UNSAFE, Permissions, make_acl, make_digest_acl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tcp_proxy import TcpProxy  # noqa: E402

EVENT_WAIT_S = 10.0


# --------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def clients(server):
    """Factory of started KazooClients against `server`; all are stopped and closed at the end."""
    made = []

    def make(hosts=None, **kwargs):
        kwargs.setdefault("timeout", 10.0)
        zk = KazooClient(hosts=hosts or server.connect_string, **kwargs)
        zk.start(timeout=15)
        made.append(zk)
        return zk

    yield make
    for zk in made:
        try:
            zk.stop()
            zk.close()
        except Exception:
            pass


@pytest.fixture
def zk(clients):
    return clients()


@pytest.fixture
def base(zk, request):
    """A fresh persistent node unique to this test; removed (recursively) afterwards."""
    name = request.node.name.replace("[", "_").replace("]", "").replace("/", "_")
    path = f"/kazoo-{name}-{uuid.uuid4().hex[:8]}"
    zk.create(path, b"base")
    yield path
    try:
        if zk.connected:
            zk.delete(path, recursive=True)
    except Exception:
        pass


def next_event(q, timeout=EVENT_WAIT_S):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no watch event within {timeout}s") from None


def assert_no_event(q, wait=0.5):
    try:
        ev = q.get(timeout=wait)
    except queue.Empty:
        return
    raise AssertionError(f"unexpected watch event {ev!r}")


def wait_until(pred, timeout=EVENT_WAIT_S, step=0.05, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def digest_of(user, password):
    raw = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(raw).decode()}"


# --------------------------------------------------------------------------------------------
# CRUD, stats, versions


def test_create_get_set_delete_with_stats(zk, base):
    before_ms = int(time.time() * 1000)
    path = zk.create(f"{base}/n", b"hello")
    assert path == f"{base}/n"
    data, st = zk.get(path)
    assert data == b"hello"
    assert isinstance(st, ZnodeStat)
    assert st.version == 0 and st.cversion == 0 and st.aversion == 0
    assert st.dataLength == 5 and st.numChildren == 0
    assert st.ephemeralOwner == 0
    assert st.czxid == st.mzxid == st.pzxid and st.czxid > 0
    assert st.ctime == st.mtime
    assert abs(st.ctime - before_ms) < 60_000

    st2 = zk.set(path, b"world!")
    assert st2.version == 1
    assert st2.mzxid > st2.czxid == st.czxid
    assert st2.dataLength == 6
    assert st2.mtime >= st2.ctime
    assert st2.pzxid == st.pzxid  # pzxid only moves with child changes
    assert zk.get(path) == (b"world!", st2)
    assert zk.exists(path) == st2

    assert zk.delete(path) is True
    assert zk.exists(path) is None
    with pytest.raises(NoNodeError):
        zk.get(path)
    with pytest.raises(NoNodeError):
        zk.set(path, b"x")
    with pytest.raises(NoNodeError):
        zk.delete(path)


def test_null_and_empty_data_are_distinct(zk, base):
    zk.create(f"{base}/null", None)
    zk.create(f"{base}/empty", b"")
    data, st = zk.get(f"{base}/null")
    assert data is None and st.dataLength == 0
    data, st = zk.get(f"{base}/empty")
    assert data == b"" and st.dataLength == 0
    zk.set(f"{base}/empty", None)
    assert zk.get(f"{base}/empty")[0] is None


def test_large_value_roundtrip(zk, base):
    value = os.urandom(512 * 1024)
    zk.create(f"{base}/big", value)
    data, st = zk.get(f"{base}/big")
    assert data == value and st.dataLength == len(value)


def test_unicode_path_and_data(zk, base):
    path = f"{base}/ünïcødé-节点"
    zk.create(path, "данные".encode())
    assert zk.get(path)[0] == "данные".encode()
    assert zk.get_children(base) == ["ünïcødé-节点"]


def test_create_errors(zk, base):
    zk.create(f"{base}/a")
    with pytest.raises(NodeExistsError):
        zk.create(f"{base}/a")
    with pytest.raises(NoNodeError):
        zk.create(f"{base}/missing/child")
    zk.create(f"{base}/a/b")
    with pytest.raises(NotEmptyError):
        zk.delete(f"{base}/a")
    zk.create(f"{base}/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{base}/eph/child")
    with pytest.raises(NodeExistsError):
        zk.create("/")
    # The server itself validates paths (kazoo normalises slashes but sends NUL through).
    with pytest.raises(BadArgumentsError):
        zk.create(f"{base}/nul\u0000byte")
    with pytest.raises(BadArgumentsError):
        zk.delete("/")
    with pytest.raises(BadArgumentsError):
        zk.delete("/zookeeper")


def test_versions_and_bad_version(zk, base):
    path = zk.create(f"{base}/v", b"0")
    with pytest.raises(BadVersionError):
        zk.set(path, b"x", version=1)
    assert zk.set(path, b"1", version=0).version == 1
    assert zk.set(path, b"2", version=1).version == 2
    assert zk.set(path, b"3", version=-1).version == 3
    with pytest.raises(BadVersionError):
        zk.delete(path, version=2)
    # A missing node wins over a bad version.
    with pytest.raises(NoNodeError):
        zk.set(f"{base}/nope", b"", version=7)
    # setACL checks the ACL version (aversion), not the data version.
    with pytest.raises(BadVersionError):
        zk.set_acls(path, OPEN_ACL_UNSAFE, version=3)
    st = zk.set_acls(path, OPEN_ACL_UNSAFE, version=0)
    assert st.aversion == 1 and st.version == 3
    assert st.mzxid == zk.exists(path).mzxid  # setACL does not touch mzxid
    assert zk.delete(path, version=3) is True


def test_children_and_parent_stat(zk, base):
    st0 = zk.exists(base)
    assert zk.get_children(base) == []
    for name in ("c", "a", "b"):
        zk.create(f"{base}/{name}", name.encode())
    assert sorted(zk.get_children(base)) == ["a", "b", "c"]
    children, st = zk.get_children(base, include_data=True)
    assert sorted(children) == ["a", "b", "c"]
    assert st.numChildren == 3 and st.cversion == 3
    assert st.version == st0.version  # children do not bump the data version
    assert st.pzxid == zk.exists(f"{base}/b").czxid  # pzxid = zxid of the last child change
    zk.delete(f"{base}/a")
    st = zk.exists(base)
    assert st.numChildren == 2 and st.cversion == 4  # deletes bump the reported cversion
    assert st.pzxid > zk.exists(f"{base}/b").czxid
    # ZooKeeper stores only the count of child creations (3 here) and reports
    # cversion = 2 * creations - numChildren; sequence numbers use the stored count.
    assert zk.create(f"{base}/s-", sequence=True) == f"{base}/s-0000000003"
    assert zk.exists(base).cversion == 5
    zk.delete(f"{base}/b")
    zk.delete(f"{base}/c")
    assert zk.exists(base).cversion == 2 * 4 - 1
    with pytest.raises(NoNodeError):
        zk.get_children(f"{base}/nope")
    root = zk.get_children("/")
    assert "zookeeper" in root
    assert {"config", "quota"} <= set(zk.get_children("/zookeeper"))


def test_create_modes(zk, base):
    # sequential: 10-digit zero-padded counter = number of child *creations* so far under
    # the parent (deletes do not count, whatever the reported cversion says)
    p1 = zk.create(f"{base}/seq-", b"", sequence=True)
    assert p1 == f"{base}/seq-0000000000"
    zk.create(f"{base}/plain")  # any child create bumps the counter
    p2 = zk.create(f"{base}/other-", b"", sequence=True)
    assert p2 == f"{base}/other-0000000002"
    zk.delete(f"{base}/plain")  # a child delete does not
    assert zk.exists(base).cversion == 4  # but the reported cversion counts it
    p3 = zk.create(f"{base}/", b"", sequence=True)  # empty prefix
    assert p3 == f"{base}/0000000003"

    # ephemeral: owned by our session
    e = zk.create(f"{base}/eph", b"e", ephemeral=True)
    assert zk.exists(e).ephemeralOwner == zk.client_id[0]
    # ephemeral + sequential
    es = zk.create(f"{base}/es-", b"", ephemeral=True, sequence=True)
    assert es == f"{base}/es-0000000005"
    assert zk.exists(es).ephemeralOwner == zk.client_id[0]
    # persistent nodes have no owner
    assert zk.exists(p1).ephemeralOwner == 0

    # makepath creates the missing parents (persistent, via kazoo's ensure_path)
    deep = zk.create(f"{base}/x/y/z", b"deep", makepath=True)
    assert deep == f"{base}/x/y/z"
    assert zk.exists(f"{base}/x/y").ephemeralOwner == 0

    # include_data -> create2 returns the new node's stat
    path, st = zk.create(f"{base}/withstat", b"abc", include_data=True)
    assert path == f"{base}/withstat"
    assert isinstance(st, ZnodeStat) and st.dataLength == 3 and st.version == 0
    assert st == zk.exists(path)
    path, st = zk.create(f"{base}/s2-", b"", sequence=True, include_data=True)
    assert path.startswith(f"{base}/s2-") and st.czxid == zk.exists(path).czxid


def test_ephemerals_vanish_when_session_closes(clients, zk, base):
    other = clients()
    other.create(f"{base}/e1", ephemeral=True)
    other.create(f"{base}/e2-", ephemeral=True, sequence=True)
    other.create(f"{base}/p")
    events = queue.Queue()
    zk.exists(f"{base}/e1", watch=events.put)
    other.stop()  # closeSession: ephemerals go at once, no timeout wait
    ev = next_event(events)
    assert ev.type == EventType.DELETED and ev.path == f"{base}/e1"
    assert zk.get_children(base) == ["p"]


# --------------------------------------------------------------------------------------------
# multi


def test_transaction_success(zk, base):
    zk.create(f"{base}/t", b"0")
    t = zk.transaction()
    t.check(f"{base}/t", 0)
    t.create(f"{base}/t/a", b"a")
    t.set_data(f"{base}/t", b"1", version=0)
    t.create(f"{base}/t/s-", b"", sequence=True)
    t.create(f"{base}/t/e", b"", ephemeral=True)
    t.delete(f"{base}/t/a")
    results = t.commit()
    assert results[0] is True
    assert results[1] == f"{base}/t/a"
    assert isinstance(results[2], ZnodeStat) and results[2].version == 1
    assert results[3] == f"{base}/t/s-0000000001"
    assert results[4] == f"{base}/t/e"
    assert results[5] is True
    assert sorted(zk.get_children(f"{base}/t")) == ["e", "s-0000000001"]
    # all ops of one multi share one zxid
    st = zk.exists(f"{base}/t")
    assert st.mzxid == zk.exists(f"{base}/t/e").czxid == results[2].mzxid
    assert zk.transaction().commit() == []


def test_transaction_failure_is_atomic(zk, base):
    zk.create(f"{base}/t", b"0")
    t = zk.transaction()
    t.create(f"{base}/t/new", b"")
    t.set_data(f"{base}/t", b"changed")
    t.check(f"{base}/t", 5)  # fails: version is 1 after the set above... or 0; never 5
    t.create(f"{base}/t/after", b"")
    t.delete(f"{base}/nonexistent")
    results = t.commit()
    # ops before the failing one: RolledBack (err 0); the failing op: its own error;
    # ops after it: RuntimeInconsistency (err -2)
    assert [type(r) for r in results] == [
        RolledBackError,
        RolledBackError,
        BadVersionError,
        RuntimeInconsistency,
        RuntimeInconsistency,
    ]
    assert zk.get_children(f"{base}/t") == []
    assert zk.get(f"{base}/t")[0] == b"0"

    t = zk.transaction()
    t.create(f"{base}/t/dup")
    t.create(f"{base}/t/dup")
    assert [type(r) for r in t.commit()] == [RolledBackError, NodeExistsError]
    t = zk.transaction()
    t.check(f"{base}/t/missing", 0)
    assert [type(r) for r in t.commit()] == [NoNodeError]
    t = zk.transaction()
    t.create(f"{base}/t/eph", ephemeral=True)
    t.create(f"{base}/t/eph/child")
    assert [type(r) for r in t.commit()] == [RolledBackError, NoChildrenForEphemeralsError]
    t = zk.transaction()
    t.delete(base)
    assert [type(r) for r in t.commit()] == [NotEmptyError]
    assert zk.exists(f"{base}/t/eph") is None


def test_transaction_sees_its_own_earlier_ops(zk, base):
    t = zk.transaction()
    t.create(f"{base}/m", b"1")
    t.check(f"{base}/m", 0)
    t.set_data(f"{base}/m", b"2", version=0)
    t.check(f"{base}/m", 1)
    t.create(f"{base}/m/child")
    t.delete(f"{base}/m/child")
    t.delete(f"{base}/m", version=1)
    results = t.commit()
    assert results[0] == f"{base}/m" and results[-1] is True
    assert zk.exists(f"{base}/m") is None


# --------------------------------------------------------------------------------------------
# one-shot watches


def test_data_watch_events(clients, zk, base):
    other = clients()
    path = zk.create(f"{base}/w", b"0")
    events = queue.Queue()

    zk.get(path, watch=events.put)
    other.set(path, b"1")
    ev = next_event(events)
    assert (ev.type, ev.state, ev.path) == (EventType.CHANGED, KazooState.CONNECTED, path)
    other.set(path, b"2")  # one-shot: no second event
    assert_no_event(events)

    zk.get(path, watch=events.put)
    other.create(f"{base}/w/child")  # child changes do not fire data watches
    assert_no_event(events, 0.3)
    other.delete(f"{base}/w/child")
    other.delete(path)
    ev = next_event(events)
    assert (ev.type, ev.path) == (EventType.DELETED, path)


def test_exists_watch_events(clients, zk, base):
    other = clients()
    path = f"{base}/later"
    events = queue.Queue()
    assert zk.exists(path, watch=events.put) is None  # watch on a missing node
    other.create(path, b"")
    ev = next_event(events)
    assert (ev.type, ev.path) == (EventType.CREATED, path)

    assert zk.exists(path, watch=events.put) is not None
    other.set(path, b"x")
    assert next_event(events).type == EventType.CHANGED

    zk.exists(path, watch=events.put)
    other.delete(path)
    ev = next_event(events)
    assert (ev.type, ev.path) == (EventType.DELETED, path)
    assert_no_event(events, 0.3)


def test_child_watch_events(clients, zk, base):
    other = clients()
    events = queue.Queue()
    zk.get_children(base, watch=events.put)
    other.set(base, b"data change")  # not a child event
    assert_no_event(events, 0.3)
    other.create(f"{base}/c1")
    ev = next_event(events)
    assert (ev.type, ev.path) == (EventType.CHILD, base)  # path is the parent

    zk.get_children(base, watch=events.put)
    other.create(f"{base}/c1/grandchild")  # only direct children count
    assert_no_event(events, 0.3)
    other.delete(f"{base}/c1/grandchild")
    other.delete(f"{base}/c1")
    assert next_event(events).type == EventType.CHILD

    # deleting the watched node itself fires the child watch with DELETED
    node = other.create(f"{base}/gone")
    zk.get_children(node, include_data=True, watch=events.put)
    other.delete(node)
    ev = next_event(events)
    assert (ev.type, ev.path) == (EventType.DELETED, node)


def test_own_write_fires_own_watch_before_reply(zk, base):
    """ZooKeeper sends the watch event before the reply of the write that triggered it."""
    path = zk.create(f"{base}/self", b"")
    seen = []
    zk.get(path, watch=lambda ev: seen.append(ev))
    zk.set(path, b"x")
    wait_until(lambda: seen, what="own data watch")
    assert seen[0].type == EventType.CHANGED


def test_watches_fire_once_per_client(clients, zk, base):
    other = clients()
    path = zk.create(f"{base}/multi", b"")
    events = queue.Queue()
    zk.get(path, watch=lambda ev: events.put(("get", ev.type)))
    zk.exists(path, watch=lambda ev: events.put(("exists", ev.type)))
    zk.exists(path, watch=lambda ev: events.put(("exists2", ev.type)))
    other.set(path, b"x")
    # one notification reaches the client; kazoo hands it to every callback registered
    # for that path
    got = sorted([next_event(events), next_event(events), next_event(events)])
    assert got == [
        ("exists", EventType.CHANGED),
        ("exists2", EventType.CHANGED),
        ("get", EventType.CHANGED),
    ]
    other.set(path, b"y")
    assert_no_event(events, 0.3)


def test_data_watch_recipe(clients, zk, base):
    other = clients()
    path = f"{base}/dw"
    calls = queue.Queue()

    @zk.DataWatch(path)
    def _watch(data, stat, event):
        calls.put((data, stat.version if stat else None, event.type if event else None))

    assert next_event(calls) == (None, None, None)  # first call: node missing
    other.create(path, b"a")
    assert next_event(calls) == (b"a", 0, EventType.CREATED)
    other.set(path, b"b")
    assert next_event(calls) == (b"b", 1, EventType.CHANGED)
    other.delete(path)
    assert next_event(calls) == (None, None, EventType.DELETED)


def test_children_watch_recipe(clients, zk, base):
    other = clients()
    calls = queue.Queue()

    @zk.ChildrenWatch(base)
    def _watch(children):
        calls.put(sorted(children))

    assert next_event(calls) == []
    other.create(f"{base}/x")
    assert next_event(calls) == ["x"]
    other.create(f"{base}/y", ephemeral=True)
    assert next_event(calls) == ["x", "y"]
    other.stop()  # the ephemeral goes with the session
    assert next_event(calls) == ["x"]


# --------------------------------------------------------------------------------------------
# ACLs and auth


def test_digest_acl_and_auth(clients, zk, base):
    acl = make_digest_acl("alice", "secret", all=True)
    assert acl.id.id == digest_of("alice", "secret")
    path = zk.create(f"{base}/d", b"private", acl=[acl])

    # no credentials: NoAuth for reads, writes, ACL reads, children, deletes below it
    with pytest.raises(NoAuthError):
        zk.get(path)
    with pytest.raises(NoAuthError):
        zk.set(path, b"x")
    with pytest.raises(NoAuthError):
        zk.get_children(path)
    with pytest.raises(NoAuthError):
        zk.get_acls(path)
    with pytest.raises(NoAuthError):
        zk.create(f"{path}/child")
    with pytest.raises(NoAuthError):
        zk.set_acls(path, OPEN_ACL_UNSAFE)
    # the ACL check comes before the version check
    with pytest.raises(NoAuthError):
        zk.set(path, b"x", version=99)
    # exists never checks ACLs
    assert zk.exists(path).dataLength == 7
    # delete needs DELETE on the parent, not on the node: the parent is open
    # (checked later, after the node has no children)

    alice = clients(auth_data=[("digest", "alice:secret")])
    assert alice.get(path)[0] == b"private"
    assert alice.set(path, b"new").version == 1
    alice.create(f"{path}/child")
    with pytest.raises(NoAuthError):
        zk.delete(f"{path}/child")  # parent /d denies DELETE to the world
    acls, st = alice.get_acls(path)
    assert acls == [acl] and st.aversion == 0

    # add_auth on a live connection works too; a wrong password gives no access
    mallory = clients()
    mallory.add_auth("digest", "alice:wrong")
    with pytest.raises(NoAuthError):
        mallory.get(path)
    late = clients()
    late.add_auth("digest", "alice:secret")
    assert late.get(path)[0] == b"new"

    alice.delete(f"{path}/child")
    assert zk.delete(path) is True  # world has DELETE on the parent


def test_get_acl_redacts_digest_without_admin(clients, zk, base):
    alice_acl = make_digest_acl("alice", "secret", all=True)
    path = zk.create(
        f"{base}/r", b"", acl=[make_acl("world", "anyone", read=True), alice_acl]
    )
    acls, _ = zk.get_acls(path)  # READ is enough for getACL ...
    assert acls[0] == make_acl("world", "anyone", read=True)
    assert acls[1].perms == Permissions.ALL
    assert acls[1].id == Id("digest", "alice:x")  # ... but digests are masked without ADMIN
    alice = clients(auth_data=[("digest", "alice:secret")])
    assert alice.get_acls(path)[0][1] == alice_acl

    admin_only = zk.create(f"{base}/ao", b"", acl=[make_acl("world", "anyone", admin=True)])
    assert zk.get_acls(admin_only)[0] == [make_acl("world", "anyone", admin=True)]
    with pytest.raises(NoAuthError):
        zk.get(admin_only)

    nothing = zk.create(f"{base}/none", b"", acl=[ACL(0, Id("world", "anyone"))])
    with pytest.raises(NoAuthError):
        zk.get_acls(nothing)
    zk.delete(nothing)


def test_auth_scheme_acl(clients, zk, base):
    # "auth" without any authenticated identity is invalid
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/a", b"", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    u = clients(auth_data=[("digest", "alice:secret"), ("digest", "bob:pw")])
    path = u.create(f"{base}/a", b"", acl=[ACL(Permissions.READ, Id("auth", "ignored"))])
    acls, _ = u.get_acls(path)
    # expanded to one entry per digest identity of the session, masked (READ only, no ADMIN)
    assert sorted(a.id.id for a in acls) == ["alice:x", "bob:x"]
    assert all(a.perms == Permissions.READ and a.id.scheme == "digest" for a in acls)
    with pytest.raises(NoAuthError):
        zk.get(path)
    assert u.get(path)[0] == b""
    bob = clients(auth_data=[("digest", "bob:pw")])
    assert bob.get(path)[0] == b""


def test_ip_and_world_acls(zk, base):
    mine = zk.create(f"{base}/ip", b"", acl=[make_acl("ip", "127.0.0.1", all=True)])
    assert zk.get(mine)[0] == b""
    cidr = zk.create(f"{base}/cidr", b"", acl=[make_acl("ip", "127.0.0.0/8", all=True)])
    assert zk.get(cidr)[0] == b""
    elsewhere = zk.create(f"{base}/far", b"", acl=[make_acl("ip", "10.1.2.0/24", all=True)])
    with pytest.raises(NoAuthError):
        zk.get(elsewhere)
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/badip", b"", acl=[make_acl("ip", "999.1.2.3", all=True)])

    ro = zk.create(f"{base}/ro", b"r", acl=[make_acl("world", "anyone", read=True)])
    assert zk.get(ro)[0] == b"r"
    with pytest.raises(NoAuthError):
        zk.set(ro, b"w")
    with pytest.raises(NoAuthError):
        zk.create(f"{ro}/child")
    with pytest.raises(NoAuthError):
        zk.set_acls(ro, OPEN_ACL_UNSAFE)
    acls, st = zk.get_acls(ro)
    assert acls == [make_acl("world", "anyone", read=True)]


def test_invalid_acls(zk, base):
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/x", b"", acl=[ACL(Permissions.ALL, Id("digest", "no-hash"))])
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/x", b"", acl=[ACL(Permissions.ALL, Id("nosuchscheme", "x"))])
    zk.create(f"{base}/x")
    with pytest.raises(InvalidACLError):
        zk.set_acls(f"{base}/x", [])
    # create_async sends an empty ACL list as is (create() would substitute the default)
    with pytest.raises(InvalidACLError):
        zk.create_async(f"{base}/empty", b"", acl=[]).get(timeout=10)


def test_multi_noauth(zk, base):
    path = zk.create(f"{base}/locked", b"", acl=[make_digest_acl("alice", "secret", all=True)])
    t = zk.transaction()
    t.set_data(path, b"x")
    assert [type(r) for r in t.commit()] == [NoAuthError]


def test_auth_failure_unknown_scheme(clients):
    zk = clients()
    states = []
    zk.add_listener(states.append)
    with pytest.raises(AuthFailedError):
        zk.add_auth("nosuchscheme", "whatever")
    # the server answers AUTH_FAILED and closes the connection; kazoo gives up the session
    wait_until(lambda: KazooState.LOST in states, what="LOST after auth failure")


# --------------------------------------------------------------------------------------------
# misc


def test_sync_and_server_info(zk, base, server):
    assert zk.sync(base) == base
    assert zk.sync(f"{base}/missing") == f"{base}/missing"  # sync does not check existence
    assert zk.command(b"ruok") == "imok"
    version = zk.server_version()
    assert version[0] == 3 and version[1] >= 8, version
    assert "Zookeeper version:" in zk.command(b"srvr")


# --------------------------------------------------------------------------------------------
# session expiry, client kill, reconnect with the same session


def test_session_expiry_seen_by_listener(clients, zk, base, server):
    """The client is cut off (proxy refuses connections) for longer than its session
    timeout: the server expires the session, drops its ephemerals, and when the client
    comes back the server tells it the session is expired (kazoo: LOST), after which kazoo
    starts a new session."""
    with TcpProxy(server.host, server.port) as proxy:
        victim = clients(
            hosts=proxy.connect_string,
            timeout=4.0,
            connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 1, "max_delay": 0.2},
        )
        old_session = victim.client_id[0]
        states = []
        victim.add_listener(states.append)
        eph = victim.create(f"{base}/eph", ephemeral=True)
        events = queue.Queue()
        zk.exists(eph, watch=events.put)

        t0 = time.monotonic()
        proxy.pause()
        ev = next_event(events, timeout=20)  # the server expires the session
        elapsed = time.monotonic() - t0
        assert (ev.type, ev.path) == (EventType.DELETED, eph)
        assert elapsed >= 2.0, f"ephemeral went after {elapsed:.1f}s, before the session timeout"
        assert zk.exists(eph) is None

        proxy.resume()
        wait_until(
            lambda: KazooState.LOST in states and states[-1] == KazooState.CONNECTED,
            timeout=20,
            what=f"LOST then CONNECTED, got {states}",
        )
        assert states[0] == KazooState.SUSPENDED
        assert victim.client_id[0] != old_session
        assert victim.exists(base) is not None  # the new session works


def test_killed_client_ephemerals_expire_after_timeout(zk, base, server):
    script = (
        "import sys, time\n"
        "from kazoo.client import KazooClient\n"
        "zk = KazooClient(hosts=sys.argv[1], timeout=4.0)\n"
        "zk.start(timeout=15)\n"
        "zk.create(sys.argv[2], b'', ephemeral=True)\n"
        "print(zk.client_id[0], flush=True)\n"
        "time.sleep(60)\n"
    )
    eph = f"{base}/killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, server.connect_string, eph],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"child client failed: {line!r}"
        assert zk.exists(eph).ephemeralOwner == int(line)
        events = queue.Queue()
        zk.exists(eph, watch=events.put)
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        ev = next_event(events, timeout=20)
        elapsed = time.monotonic() - t0
        assert (ev.type, ev.path) == (EventType.DELETED, eph)
        # A dropped TCP connection does not end the session: it lives for its timeout.
        assert elapsed >= 2.0, f"ephemeral went after {elapsed:.1f}s"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_reconnect_keeps_session_and_ephemerals(clients, zk, base, server):
    """Drop the TCP connection: kazoo reconnects with the same session id and password and
    the server resumes the session with its ephemerals. (kazoo 2.11 sends no setWatches:
    it fires a NONE event at its raw watch callbacks on connection loss and forgets them;
    its DataWatch/ChildrenWatch recipes re-read on reconnect. setWatches is covered by the
    Java client test.)"""
    with TcpProxy(server.host, server.port) as proxy:
        c = clients(
            hosts=proxy.connect_string,
            timeout=10.0,
            connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 1, "max_delay": 0.2},
        )
        session = c.client_id
        states = []
        c.add_listener(states.append)
        eph = c.create(f"{base}/eph", b"mine", ephemeral=True)
        raw = queue.Queue()
        c.get(eph, watch=raw.put)
        data_node = zk.create(f"{base}/data", b"0")
        seen = queue.Queue()

        @c.DataWatch(data_node)
        def _dw(data, stat, event):
            seen.put(data)

        assert next_event(seen) == b"0"

        # 1. a plain drop: reconnect at once with the same session
        proxy.drop_all()
        wait_until(lambda: states[-2:] == [KazooState.SUSPENDED, KazooState.CONNECTED],
                   what=f"SUSPENDED then CONNECTED, got {states}")
        assert c.client_id == session
        assert zk.exists(eph).ephemeralOwner == session[0]
        assert next_event(raw).type == EventType.NONE  # kazoo's own, not the server's

        # 2. a change made while the client is away is seen after it reconnects
        proxy.pause()
        wait_until(lambda: states[-1] == KazooState.SUSPENDED, what="SUSPENDED")
        zk.set(data_node, b"1")
        proxy.resume()
        wait_until(lambda: states[-1] == KazooState.CONNECTED, what="CONNECTED")
        assert c.client_id == session
        deadline = time.monotonic() + EVENT_WAIT_S
        latest = None
        while latest != b"1" and time.monotonic() < deadline:
            latest = next_event(seen)
        assert latest == b"1"
        zk.set(data_node, b"2")
        assert next_event(seen) == b"2"
        assert c.get(eph)[0] == b"mine"
        assert zk.exists(eph).ephemeralOwner == session[0]


# --------------------------------------------------------------------------------------------
# recipes (smoke tests)


def test_lock_recipe(clients, zk, base):
    other = clients()
    lock_a = zk.Lock(f"{base}/lock", "a")
    lock_b = other.Lock(f"{base}/lock", "b")
    assert lock_a.acquire(timeout=10)
    assert lock_b.acquire(blocking=False) is False
    assert lock_a.contenders() == ["a"]
    got = threading.Event()

    def waiter():
        if lock_b.acquire(timeout=15):
            got.set()

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    time.sleep(0.3)
    assert not got.is_set()
    lock_a.release()
    assert got.wait(10), "second contender never got the lock"
    lock_b.release()
    t.join(5)


def test_election_recipe(clients, zk, base):
    other = clients()
    won = queue.Queue()
    release = threading.Event()
    e1 = zk.Election(f"{base}/election", "one")
    e2 = other.Election(f"{base}/election", "two")

    def leader(name):
        won.put(name)
        release.wait(10)

    t1 = threading.Thread(target=e1.run, args=(leader, "one"), daemon=True)
    t1.start()
    assert next_event(won) == "one"
    t2 = threading.Thread(target=e2.run, args=(leader, "two"), daemon=True)
    t2.start()
    wait_until(lambda: len(e2.contenders()) == 2, what="two contenders")
    assert e2.contenders() == ["one", "two"]
    release.set()  # leader one returns and steps down
    assert next_event(won) == "two"
    t1.join(10)
    t2.join(10)


def test_counter_and_queue_recipes(clients, zk, base):
    counter = zk.Counter(f"{base}/counter")
    counter += 5
    other = clients().Counter(f"{base}/counter")
    other += 2
    counter -= 1
    assert counter.value == 6

    q = zk.Queue(f"{base}/queue")
    for item in (b"one", b"two", b"three"):
        q.put(item)
    assert len(q) == 3
    assert [q.get(), q.get(), q.get()] == [b"one", b"two", b"three"]
    assert q.get() is None


def test_reconfig_is_disabled_in_standalone(zk):
    from kazoo.exceptions import ReconfigDisabledError

    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining=None, leaving=None, new_members=None)
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining="server.2=127.0.0.1:2888:3888;2182", leaving=None, new_members=None)
    assert zk.connected  # an error reply, not a dropped connection
