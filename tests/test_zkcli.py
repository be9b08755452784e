"""End-to-end tests with Apache ZooKeeper's shell, zkCli.sh (the Java client, 3.8), against
the `server` fixture. Each test is one zkCli session (one JVM) fed a script on stdin; see
tests/zkcli.py for how the output is split per command.

Opcodes zkCli's commands send (Java client 3.8, recorded through tests/tcp_proxy.py):
create -> create(1) (-s/-e too; -c -> createContainer(19), -t -> createTTL(21)),
get/get -s/get -w -> getData(4), set -> setData(5), stat -> exists(3),
ls/ls -s/ls -w -> getChildren2(12) (never 8), ls -R -> getData(4) then getChildren2(12) per
node, delete -> delete(2), deleteall -> getChildren(8) walk then one multi(14) of deletes,
getAcl -> getACL(6), setAcl -> setACL(7), addauth -> auth(100) (seen twice), addWatch ->
addWatch(106), removewatches -> removeWatches(18), getEphemerals -> 103,
getAllChildrenNumber -> 104, whoami -> whoAmI(107), sync -> sync(9),
config -> getData(4) of /zookeeper/config, quit -> closeSession(-11).
"""

import base64
import hashlib
import os
import re
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zkcli  # noqa: E402

CTIME_RE = re.compile(r"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \w+ \d{4}$")  # java.util.Date


@pytest.fixture(scope="module", autouse=True)
def _zkcli_installed():
    zkcli.zkcli_path()  # fails loudly with the install command when missing


def unique(tag):
    return f"/zkcli-{tag}-{uuid.uuid4().hex[:8]}"


def digest_id(user, password):
    raw = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(raw).decode()}"


def test_create_modes_get_set_stat_ls_delete(server):
    b = unique("crud")
    cmds = [
        f"create {b}",  # 0
        f"create {b}/p pdata",  # 1
        f"create -s {b}/s sdata",  # 2
        f"create -e {b}/e edata",  # 3
        f"create -s -e {b}/se",  # 4
        f"create -c {b}/c",  # 5
        f"create -t 5000 {b}/t tdata",  # 6
        f"create -t 100 -s {b}/ts",  # 7
        f"create {b}/p dup",  # 8
        f"get -s {b}/p",  # 9
        f"get {b}/c",  # 10
        f"stat {b}/e",  # 11
        f"stat {b}/c",  # 12
        f"stat {b}/t",  # 13
        f"ls {b}",  # 14
        f"ls -s {b}",  # 15
        f"ls -R {b}",  # 16
        f"set {b}/p newdata",  # 17
        f"set -s {b}/p newdata2",  # 18
        f"set -v 0 {b}/p bad",  # 19
        f"get {b}/p",  # 20
        f"delete {b}/nope",  # 21
        f"create {b}/d",  # 22
        f"create {b}/d/x",  # 23
        f"create {b}/d/x/y",  # 24
        f"delete {b}/d",  # 25
        f"delete -v 5 {b}/p",  # 26
        f"delete -v 2 {b}/p",  # 27
        f"deleteall {b}/d",  # 28
        f"ls {b}",  # 29
        f"stat {b}/nope",  # 30
        f'create {b}/q "hello world"',  # 31
        f"get {b}/q",  # 32
        f"get -s {b}/nope",  # 33
        f"ls {b}/nope",  # 34
        f"create {b}/missing/child",  # 35
        f"get {b}/t",  # 36
        "ls /",  # 37
        "ls /zookeeper",  # 38
        f"stat {b}",  # 39
    ]
    t = zkcli.run_script(server.connect_string, cmds)
    ctx = t.describe()

    assert t.out(0) == [f"Created {b}"], ctx
    assert t.out(1) == [f"Created {b}/p"], ctx
    assert t.out(2) == [f"Created {b}/s0000000001"], ctx
    assert t.out(3) == [f"Created {b}/e"], ctx
    assert t.out(4) == [f"Created {b}/se0000000003"], ctx
    assert t.out(5) == [f"Created {b}/c"], ctx
    assert t.out(6) == [f"Created {b}/t"], ctx
    assert t.out(7) == [f"Created {b}/ts0000000006"], ctx
    assert t.out(8) == [f"Node already exists: {b}/p"], ctx

    # get -s: the data line then the 11 stat lines
    assert t.out(9)[0] == "pdata", ctx
    st = zkcli.parse_stat(t.out(9)[1:])
    assert len(t.out(9)) == 12, ctx
    assert st["cZxid"] == st["mZxid"] == st["pZxid"] and st["cZxid"].startswith("0x"), ctx
    assert CTIME_RE.match(st["ctime"]) and st["ctime"] == st["mtime"], ctx
    assert (st["cversion"], st["dataVersion"], st["aclVersion"]) == ("0", "0", "0"), ctx
    assert (st["ephemeralOwner"], st["dataLength"], st["numChildren"]) == ("0x0", "5", "0"), ctx

    assert t.out(10) == ["null"], ctx  # a container created without data has null data

    e = zkcli.parse_stat(t.out(11))
    assert int(e["ephemeralOwner"], 16) != 0, ctx
    # containers and TTL nodes show ephemeralOwner 0 to clients
    assert zkcli.parse_stat(t.out(12))["ephemeralOwner"] == "0x0", ctx
    ttl = zkcli.parse_stat(t.out(13))
    assert ttl["ephemeralOwner"] == "0x0" and ttl["dataLength"] == "5", ctx

    kids = ["c", "e", "p", "s0000000001", "se0000000003", "t", "ts0000000006"]
    assert len(t.out(14)) == 1 and sorted(zkcli.parse_list(t.out(14)[0])) == kids, ctx
    assert sorted(zkcli.parse_list(t.out(15)[0])) == kids, ctx
    parent = zkcli.parse_stat(t.out(15)[1:])
    assert parent["numChildren"] == "7" and parent["cversion"] == "7", ctx
    assert sorted(t.out(16)) == sorted([b] + [f"{b}/{k}" for k in kids]), ctx

    assert t.out(17) == [], ctx  # set prints nothing
    s18 = zkcli.parse_stat(t.out(18))
    assert s18["dataVersion"] == "2" and s18["dataLength"] == "8", ctx
    assert int(s18["mZxid"], 16) > int(s18["cZxid"], 16), ctx
    assert t.out(19) == [f"version No is not valid : {b}/p"], ctx
    assert t.out(20) == ["newdata2"], ctx
    assert t.out(21) == [f"Node does not exist: {b}/nope"], ctx
    assert t.out(25) == [f"Node not empty: {b}/d"], ctx
    assert t.out(26) == [f"version No is not valid : {b}/p"], ctx
    assert t.out(27) == [], ctx
    assert t.out(28) == [], ctx  # deleteall removes the whole subtree quietly
    assert sorted(zkcli.parse_list(t.out(29)[0])) == sorted(set(kids) - {"p"}), ctx
    assert t.out(30) == [f"Node does not exist: {b}/nope"], ctx
    assert t.out(31) == [f"Created {b}/q"], ctx
    assert t.out(32) == ["hello world"], ctx
    assert t.out(33) == [f"Node does not exist: {b}/nope"], ctx
    assert t.out(34) == [f"Node does not exist: {b}/nope"], ctx
    assert t.out(35) == [f"Node does not exist: {b}/missing/child"], ctx
    assert t.out(36) == ["tdata"], ctx
    root = zkcli.parse_list(t.out(37)[0])
    assert "zookeeper" in root and b[1:] in root, ctx
    assert {"config", "quota"} <= set(zkcli.parse_list(t.out(38)[0])), ctx
    top = zkcli.parse_stat(t.out(39))
    # creations: p s e se c t ts d q = 9; children left: 7 -> reported cversion 2*9-7
    assert top["numChildren"] == "7" and top["cversion"] == "11", ctx


def test_acls_auth_whoami(server):
    b = unique("acl")
    u1 = digest_id("u1", "p1")
    u2 = digest_id("u2", "p2")
    cmds = [
        f"create {b}",  # 0
        f"create {b}/ro data world:anyone:r",  # 1
        f"getAcl {b}/ro",  # 2
        f"set {b}/ro x",  # 3
        "whoami",  # 4
        "addauth digest u1:p1",  # 5
        "whoami",  # 6
        f"create {b}/au x auth::cdrwa",  # 7
        f"getAcl {b}/au",  # 8
        f"create {b}/dg x digest:{u2}:r",  # 9
        f"get {b}/dg",  # 10
        f"getAcl {b}/dg",  # 11
        f"create {b}/ip x ip:127.0.0.1:cdrwa",  # 12
        f"get {b}/ip",  # 13
        f"getAcl {b}/ip",  # 14
        f"create {b}/far x ip:10.0.0.0/8:cdrwa",  # 15
        f"get {b}/far",  # 16
        f"setAcl {b}/ro world:anyone:cdrwa",  # 17
        f"setAcl -v 5 {b}/au world:anyone:cdrwa",  # 18
        f"setAcl -s {b}/au world:anyone:cdrwa",  # 19
        f"getAcl -s {b}/au",  # 20
        f"create {b}/r",  # 21
        f"create {b}/r/r1",  # 22
        f"create {b}/r/r1/r11",  # 23
        f"setAcl -R {b}/r world:anyone:rw",  # 24
        f"getAcl {b}/r/r1/r11",  # 25
        f"delete {b}/r/r1/r11",  # 26
        "addauth digest u2:p2",  # 27
        f"get {b}/dg",  # 28
        "whoami",  # 29
        f"create {b}/multi x digest:{u1}:cd,digest:{u2}:rwa",  # 30
        f"getAcl {b}/multi",  # 31
        f"create {b}/bad x digest:nohash:r",  # 32
        f"get {b}/ro",  # 33
    ]
    t = zkcli.run_script(server.connect_string, cmds)
    ctx = t.describe()
    assert t.out(1) == [f"Created {b}/ro"], ctx
    assert t.out(2) == ["'world,'anyone", ": r"], ctx
    assert t.out(3) == [f"Insufficient permission : {b}/ro"], ctx
    assert t.out(4) == ["Auth scheme: User", "ip: 127.0.0.1"], ctx
    assert t.out(5) == [], ctx
    assert t.out(6) == ["Auth scheme: User", "digest: u1", "ip: 127.0.0.1"], ctx
    assert t.out(7) == [f"Created {b}/au"], ctx
    assert t.out(8) == [f"'digest,'{u1}", ": cdrwa"], ctx  # auth:: expands to our digest id
    assert t.out(9) == [f"Created {b}/dg"], ctx
    assert t.out(10) == [f"Insufficient permission : {b}/dg"], ctx
    assert t.out(11) == [f"Insufficient permission : {b}/dg"], ctx
    assert t.out(13) == ["x"], ctx
    assert t.out(14) == ["'ip,'127.0.0.1", ": cdrwa"], ctx
    assert t.out(16) == [f"Insufficient permission : {b}/far"], ctx
    assert t.out(17) == [f"Insufficient permission : {b}/ro"], ctx
    assert t.out(18) == [f"version No is not valid : {b}/au"], ctx
    s19 = zkcli.parse_stat(t.out(19))
    assert s19["aclVersion"] == "1" and s19["dataVersion"] == "0", ctx
    assert t.out(20)[:2] == ["'world,'anyone", ": cdrwa"], ctx
    assert zkcli.parse_stat(t.out(20)[2:])["aclVersion"] == "1", ctx
    assert t.out(25) == ["'world,'anyone", ": rw"], ctx  # -R reached the grandchild
    assert t.out(26) == [f"Insufficient permission : {b}/r/r1/r11"], ctx  # parent lacks d
    assert t.out(28) == ["x"], ctx
    # the order of the identities is not insertion order on ZooKeeper: compare as a set
    assert t.out(29)[0] == "Auth scheme: User", ctx
    assert sorted(t.out(29)[1:]) == ["digest: u1", "digest: u2", "ip: 127.0.0.1"], ctx
    assert t.out(31) == [f"'digest,'{u1}", ": cd", f"'digest,'{u2}", ": rwa"], ctx
    assert t.out(32) == [
        f"KeeperErrorCode = InvalidACL for {b}/bad",
        f"Acl is not valid : {b}/bad",
    ], ctx
    assert t.out(33) == ["data"], ctx


def test_watches_ephemerals_counts_sync(server):
    b = unique("watch")
    cmds = [
        f"create {b}",  # 0
        f"create {b}/a adata",  # 1
        f"get -w {b}/a",  # 2
        f"set {b}/a v1",  # 3  -> NodeDataChanged a (one-shot data watch)
        f"set {b}/a v1b",  # 4  -> nothing
        f"ls -w {b}",  # 5
        f"create {b}/b",  # 6  -> NodeChildrenChanged b
        f"stat -w {b}/c",  # 7  (missing: exist watch)
        f"create {b}/c",  # 8  -> NodeCreated c
        f"addWatch {b}",  # 9  default mode PERSISTENT_RECURSIVE
        f"create {b}/c/deep",  # 10 -> NodeCreated c/deep
        f"set {b}/c/deep x",  # 11 -> NodeDataChanged c/deep
        f"delete {b}/c/deep",  # 12 -> NodeDeleted c/deep
        f"addWatch -m PERSISTENT {b}/a",  # 13
        f"set {b}/a v2",  # 14 -> NodeDataChanged a, once although two watches match
        f"create {b}/a/kid",  # 15 -> NodeChildrenChanged a (persistent), NodeCreated a/kid
        f"removewatches {b}",  # 16 removes the recursive watch
        f"set {b}/a v3",  # 17 -> NodeDataChanged a (persistent on a still there)
        f"set {b}/b bdata",  # 18 -> nothing
        f"create -e {b}/e1",  # 19
        f"create -e -s {b}/e2-",  # 20
        f"getEphemerals {b}",  # 21
        f"getEphemerals {b}/nope",  # 22
        f"getAllChildrenNumber {b}",  # 23
        f"getAllChildrenNumber {b}/nope",  # 24
        f"sync {b}",  # 25
        f"removewatches {b}/b",  # 26 nothing registered there any more
        "printwatches off",  # 27
        f"set {b}/a v4",  # 28 event arrives but is not printed
    ]
    t = zkcli.run_script(server.connect_string, cmds)
    ctx = t.describe()
    assert t.out(2) == ["adata"], ctx
    assert sorted(zkcli.parse_list(t.out(5)[0])) == ["a"], ctx
    assert t.out(7) == [f"Node does not exist: {b}/c"], ctx
    assert t.out(9) == [] and t.out(13) == [], ctx
    assert t.out(16) == [], ctx
    eph = zkcli.parse_list(t.out(21)[0])
    assert sorted(eph) == [f"{b}/e1", f"{b}/e2-0000000004"], ctx  # full paths
    assert t.out(22) == ["[]"], ctx  # a missing prefix is no error
    assert t.out(23) == ["6"], ctx  # all descendants: a b c a/kid e1 e2
    assert t.out(24) == [f"Node does not exist: {b}/nope"], ctx
    assert t.out(25) == ["Sync is OK"], ctx
    assert any("No such watcher" in line for line in t.out(26)), ctx

    states = {s for (s, _, p) in t.events if p.startswith(b)}
    assert states == {"SyncConnected"}, ctx
    got = [e for e in t.events_under(b) if e[0] != "PersistentWatchRemoved"]
    expected = [
        ("NodeDataChanged", f"{b}/a"),
        ("NodeChildrenChanged", b),
        ("NodeCreated", f"{b}/c"),
        ("NodeCreated", f"{b}/c/deep"),
        ("NodeDataChanged", f"{b}/c/deep"),
        ("NodeDeleted", f"{b}/c/deep"),
        ("NodeDataChanged", f"{b}/a"),
    ]
    assert got[: len(expected)] == expected, ctx
    rest = got[len(expected):]
    # create a/kid: the persistent watch on a sees NodeChildrenChanged, the recursive one
    # on b sees NodeCreated; the server sends them in that order
    assert sorted(rest[:2]) == sorted(
        [("NodeChildrenChanged", f"{b}/a"), ("NodeCreated", f"{b}/a/kid")]
    ), ctx
    assert rest[2:] == [("NodeDataChanged", f"{b}/a")], ctx


def test_single_command_mode_and_exit_codes(server):
    b = unique("single")
    rc, out = zkcli.run_command(server.connect_string, "create", b, "one-shot")
    assert rc == 0 and out[-1] == f"Created {b}", out
    rc, out = zkcli.run_command(server.connect_string, "get", f"{b}/missing")
    assert rc != 0 and out[-1] == f"Node does not exist: {b}/missing", out
    rc, out = zkcli.run_command(server.connect_string, "deleteall", b)
    assert rc == 0, out


def test_auth_failure_and_reserved_nodes(server):
    cmds = [
        "get /zookeeper/config",  # 0 empty data in standalone mode
        "stat /zookeeper/config",  # 1
        "delete /zookeeper/quota",  # 2
        "delete /zookeeper",  # 3
        "addauth nosuchscheme secret",  # 4 -> AUTH_FAILED, the server drops the connection
        "ls /",  # 5
    ]
    t = zkcli.run_script(server.connect_string, cmds, partial=True)
    ctx = t.describe()
    config = zkcli.parse_stat(t.out(1))
    assert config["aclVersion"] == "-1" and config["cZxid"] == "0x0", ctx
    assert config["ctime"] == "Thu Jan 01 00:00:00 UTC 1970", ctx
    assert t.out(2) == ["Arguments are not valid : /zookeeper/quota"], ctx
    assert t.out(3) == ["Arguments are not valid : /zookeeper"], ctx
    assert ("AuthFailed", "None", "null") in t.events, ctx
    # What zkCli prints for the next command races with its own event thread: if the
    # AuthFailed event has already been handled it says "Not connected", otherwise the
    # client library throws AuthFailed. Both happen against ZooKeeper as well.
    after = t.out(5) + t.out(4)
    assert ("KeeperErrorCode = AuthFailed for /zkcli-mark-4" in after
            or "Not connected" in after), ctx
