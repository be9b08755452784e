"""End-to-end tests with the ZooKeeper Java client (3.8, Debian package `zookeeper`) for what
kazoo cannot do: containers, TTL nodes, persistent and persistent-recursive watches,
removeWatches/checkWatches, multi and multiRead results, getEphemerals,
getAllChildrenNumber, whoAmI, getConfig, and setWatches after a reconnect.

test_java_client_on_an_ensemble runs the client against a 3-member ensemble of each target
in CORRAL_ENSEMBLE_TARGETS (tests/test_ensemble.py's fixture).

tests/java/CorralE2E.java is compiled once (cached under tests/.work) and run in one JVM
for all the scenarios; it prints a `key=value` transcript, asserted on here.

Opcodes the Java client sends (seen through tests/tcp_proxy.py with record=True):
create(path, data, acl, mode) -> create(1), with a Stat -> create2(15), CONTAINER mode ->
createContainer(19), with a TTL -> createTTL(21); getData -> 4; exists -> 3;
getChildren(path, watcher) -> 8, with a Stat -> 12; addWatch -> 106;
removeWatches(path, watcher, type, false) -> checkWatches(17);
removeAllWatches(path, type, false) -> removeWatches(18); multi of reads -> multiRead(22),
otherwise multi(14); getEphemerals -> 103; getAllChildrenNumber -> 104; whoAmI -> 107;
getConfig -> getData(4) of /zookeeper/config; on reconnect -> setWatches2(105) carrying an
ordinary, increasing xid (the client overwrites the -8 it builds the header with), then
pings with xid -2; close -> closeSession(-11).
"""

import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import java_client  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402
from test_ensemble import CONVERGE_TIMEOUT_S, ELECT_TIMEOUT_S, make_ensemble  # noqa: E402,F401
from test_ensemble_sync import expected_config  # noqa: E402


@pytest.fixture(scope="module")
def classes():
    return java_client.compiled()  # fails loudly if javac or the jars are missing


def test_java_client_scenarios(server, classes):
    base = f"/java-{uuid.uuid4().hex[:8]}"
    with TcpProxy(server.host, server.port, record=True) as proxy:
        sync_requests = []

        def on_sync(what):
            sync_requests.append(what)
            if what == "pause-proxy":
                proxy.pause()
            elif what == "resume-proxy":
                proxy.clear_record()
                proxy.resume()
            else:
                raise AssertionError(f"unknown SYNC request {what!r}")

        t = java_client.run(["main", server.connect_string, proxy.connect_string, base], on_sync)
        reconnect_opcodes = proxy.opcodes()
    ctx = "\n" + t.text()
    assert t["end"] == "ok" and t.returncode == 0, ctx
    for name in ("create", "persistent", "remove", "multi", "misc", "reconnect"):
        assert t[f"scenario.{name}"] == "done", ctx
    assert sync_requests == ["pause-proxy", "resume-proxy"], ctx

    def ev(*pairs):
        return "; ".join(f"{typ} {base}{path}" for typ, path in pairs)

    # --- create modes: create2 / createContainer / createTTL
    assert t["create2.path"] == f"{base}/c2", ctx
    assert t["create2.stat"] == "version=0,cversion=0,aversion=0,ephemeralOwner=0,dataLength=3,numChildren=0", ctx
    assert t["container.path"] == f"{base}/cont", ctx
    # containers and TTL nodes report ephemeralOwner 0 to clients
    assert t["container.stat"] == "version=0,cversion=0,aversion=0,ephemeralOwner=0,dataLength=1,numChildren=0", ctx
    assert t["container.exists"] == t["container.stat"], ctx
    assert t["container.children"] == "[child]", ctx
    assert t["ttl.path"] == f"{base}/ttl", ctx
    assert t["ttl.stat"] == "version=0,cversion=0,aversion=0,ephemeralOwner=0,dataLength=1,numChildren=0", ctx
    assert t["ttlseq.path"] == f"{base}/ttlseq-0000000003", ctx
    assert t["ttl.zero"] == "IllegalArgumentException(client)", ctx
    assert t["container.under_ephemeral"] == "NOCHILDRENFOREPHEMERALS(-108)", ctx
    assert t["container.exists_again"] == "NODEEXISTS(-110)", ctx
    assert t["ttl.no_parent"] == "NONODE(-101)", ctx
    assert t["ephseq.path"] == f"{base}/es-0000000005", ctx
    assert t["ephseq.owner_is_session"] == "true", ctx

    # --- persistent watches: node events on the path and child events of the path; they
    # survive the node's deletion. Grandchildren and data changes of children are not seen.
    assert t["persistent.events"] == ev(
        ("NodeCreated", "/pw"),
        ("NodeDataChanged", "/pw"),
        ("NodeChildrenChanged", "/pw"),  # create pw/c
        ("NodeChildrenChanged", "/pw"),  # delete pw/c
        ("NodeDeleted", "/pw"),
        ("NodeCreated", "/pw"),
    ), ctx
    # persistent recursive: created/changed/deleted for the node and every descendant, never
    # NodeChildrenChanged; a sibling sharing the name prefix (/rwx) is not a descendant
    assert t["recursive.events"] == ev(
        ("NodeCreated", "/rw"),
        ("NodeCreated", "/rw/a"),
        ("NodeCreated", "/rw/a/b"),
        ("NodeDataChanged", "/rw/a/b"),
        ("NodeDataChanged", "/rw"),
        ("NodeDeleted", "/rw/a/b"),
    ), ctx
    assert t["mixed.persistent"] == ev(("NodeDataChanged", "/pw")), ctx
    assert t["mixed.oneshot"] == ev(("NodeDataChanged", "/pw")), ctx
    assert t["mixed.oneshot2"] == "", ctx
    # ZooKeeper 3.8.0 keeps one watch mode per (session, path), so the one-shot getData
    # watch replaced the persistent one (ZOOKEEPER-4466, fixed in later releases): both
    # outcomes are accepted
    assert t["mixed.persistent2"] in ("", ev(("NodeDataChanged", "/pw"))), ctx
    assert t["addwatch.missing_parent"] == "ok", ctx  # addWatch needs no node

    # --- removing watches: the Java client synthesises the *WatchRemoved events
    assert t["remove.data.event"] == ev(("DataWatchRemoved", "/rm")), ctx
    assert t["remove.data.after"] == "", ctx
    assert t["remove.children.event"] == ev(("ChildWatchRemoved", "/rm")), ctx
    assert t["remove.unknown"] == "NOWATCHER(-121)", ctx
    assert t["removeall.any.events"] == ev(("ChildWatchRemoved", "/rm"), ("DataWatchRemoved", "/rm")), ctx
    assert t["removeall.persistent.event"] == ev(("PersistentWatchRemoved", "/rm")), ctx
    assert t["removeall.persistent.after"] == "", ctx
    assert t["remove.recursive.event"] == ev(("PersistentWatchRemoved", "/rm")), ctx
    assert t["remove.recursive.after"] == "", ctx
    assert t["removeall.nothing"] == "NOWATCHER(-121)", ctx
    assert t["remove.exists.event"] == ev(("DataWatchRemoved", "/rm-missing")), ctx
    assert t["remove.exists.after"] == "", ctx

    # --- multi / multiRead
    m = f"{base}/multi"
    assert t["multi.ok"] == (
        f"create {m}/a nostat; create {m}/s-0000000001 nostat; create {m}/cont stat.version=0; "
        f"create {m}/ttl stat.version=0; setData version=1; check; delete"
    ), ctx
    assert t["multi.empty"] == "", ctx
    # the exception carries the first failing op's code; results: 0 (rolled back) before
    # it, its own code, -2 (RuntimeInconsistency) after it
    assert t["multi.fail.code"] == "BADVERSION(-103)", ctx
    assert t["multi.fail.results"] == "error 0; error -103; error -2", ctx
    assert t["multi.fail.rolled_back"] == "true", ctx
    assert t["multi.dup.code"] == "NODEEXISTS(-110)", ctx
    assert t["multi.dup.results"] == "error 0; error -110", ctx
    # multiRead is not atomic: each read answers for itself, errors included
    assert t["multiread"] == (
        "getData m version=0; getChildren [cont, locked, s-0000000001, ttl]; "
        "error -101; error -102; error -101"
    ), ctx
    assert t["multi.watch"] == ev(("NodeChildrenChanged", "/multi")), ctx

    # --- getEphemerals / getAllChildrenNumber / whoAmI / getConfig / ordering
    e = f"{base}/misc"
    assert t["ephemerals.prefix"] == f"[{e}/e1, {e}/p/e2]", ctx  # only this session's
    assert t["ephemerals.subprefix"] == f"[{e}/p/e2]", ctx
    assert t["ephemerals.stringprefix"] == f"[{e}/e1]", ctx  # a plain string prefix match
    assert t["ephemerals.all_under_base"] == (
        f"[{base}/eph, {base}/es-0000000005, {e}/e1, {e}/p/e2]"
    ), ctx
    assert t["allchildren.base_misc"] == "4", ctx
    assert t["allchildren.leaf"] == "0", ctx
    assert t["allchildren.missing"] == "NONODE(-101)", ctx
    assert t["whoami.before"] == "[ip:127.0.0.1]", ctx
    assert t["whoami.after"] == "[digest:alice, ip:127.0.0.1]", ctx
    assert t["config.data"] == "", ctx  # standalone: /zookeeper/config is empty
    assert t["config.stat"] == "version=0,cversion=0,aversion=-1,ephemeralOwner=0,dataLength=0,numChildren=0", ctx
    assert t["order.watch_vs_reply"] == "[event NodeDataChanged, reply 0]", ctx
    assert t["sync"] == f"0 {e}", ctx
    # tickTime=2000: min session timeout 4000 ms, max 40000 ms
    assert t["timeout.requested_1000"] == "4000", ctx
    assert t["timeout.requested_100000"] == "40000", ctx
    assert t["error.setData_missing"] == "NONODE(-101)", ctx
    assert t["zookeeper_config.readable"] == "true", ctx

    # --- reconnect through the proxy with the same session; setWatches2
    r = "/reconnect"
    assert t["reconnect.disconnected"] == "true", ctx
    assert t["reconnect.eph_while_away"] == "true", ctx
    assert t["reconnect.connected"] == "true", ctx
    assert t["reconnect.same_session"] == "true", ctx
    assert t["reconnect.data"] == ev(("NodeDataChanged", f"{r}/data")), ctx
    assert t["reconnect.exist"] == ev(("NodeCreated", f"{r}/missing")), ctx
    assert t["reconnect.child"] == ev(("NodeChildrenChanged", r)), ctx
    assert t["reconnect.gone"] == ev(("NodeDeleted", f"{r}/gone")), ctx
    assert t["reconnect.quiet"] == "", ctx
    # persistent watches are re-registered, but what they missed is not replayed
    assert t["reconnect.pers_missed"] == "", ctx
    assert t["reconnect.rec_missed"] == "", ctx
    assert t["reconnect.quiet_after"] == ev(("NodeDataChanged", f"{r}/quiet")), ctx
    assert t["reconnect.pers_after"] == ev(("NodeDataChanged", f"{r}/pers")), ctx
    assert t["reconnect.rec_after"] == ev(("NodeCreated", f"{r}/rec/y")), ctx
    assert t["reconnect.eph_owner_same"] == "true", ctx
    assert t["reconnect.eph_data"] == "mine", ctx
    assert t["reconnect.eph_after_close"] == "true", ctx
    # after the reconnect the first request is setWatches2 (105)
    assert reconnect_opcodes[:1] == [105], (reconnect_opcodes, ctx)


def test_container_and_ttl_reaping(server, classes):
    """Containers that had a child and lost it, and expired TTL nodes without children,
    are deleted by the server's reaper. ZooKeeper checks every
    `znode.container.checkIntervalMs` (a Java system property, default 60 s), so the server
    is restarted with a short interval: a JVM flag for ZooKeeper, the same key in zoo.cfg
    for corral."""
    server.stop()
    server.extra_cfg["znode.container.checkIntervalMs"] = "300"
    server.jvm_flags = server.jvm_flags + ["-Dznode.container.checkIntervalMs=300"]
    server.start()
    base = f"/reap-{uuid.uuid4().hex[:8]}"
    t = java_client.run(["reap", server.connect_string, base])
    ctx = "\n" + t.text()
    assert t["end"] == "ok", ctx
    assert t["reap.used"] == f"NodeDeleted {base}/used", ctx
    assert t["reap.ttl_gone"] == "true", ctx
    assert t["reap.unused_kept"] == "true", ctx  # never had a child: kept
    assert t["reap.ttl_with_child_kept"] == "true", ctx
    assert t["reap.ttl_long_kept"] == "true", ctx


def test_java_client_on_an_ensemble(make_ensemble, classes):
    """The Java client with every member in its connect string (tried in the order given:
    see CorralE2E's OrderedHosts), `zk` starting on the leader and `other` on a follower:
    CRUD, watches and multi across members, ephemerals, sync, getConfig (each member's own
    membership), and a session that moves twice, first when its member (the leader) is
    killed, then when its next member is stopped: same session, its ephemerals and
    watches kept, and no read older than what it saw."""
    ens = make_ensemble()
    leader = ens.leader(ELECT_TIMEOUT_S)
    order = [leader] + [i for i in range(ens.n) if i != leader]
    by_port = {m.port: m.index for m in ens.members}
    victims: dict[str, tuple[int, str | None]] = {}

    def on_sync(what):
        verb, arg = what.split()
        if verb in ("kill", "stop"):
            i = by_port[int(arg)]
            victims[f"move{len(victims) + 1}"] = (i, ens.mode(i))
            if verb == "kill":
                ens.kill(i)
            else:
                ens.stop(i)
        elif verb == "restart":
            ens.restart(victims[arg][0], timeout=ELECT_TIMEOUT_S)
        else:
            raise AssertionError(f"unknown SYNC request {what!r}")

    base = f"/jens-{uuid.uuid4().hex[:8]}"
    t = java_client.run(["ensemble", ens.connect_string(order), base], on_sync)
    ctx = f"\nvictims {victims}\n" + t.text()
    assert t["end"] == "ok" and t.returncode == 0, ctx
    assert t["scenario.ensemble"] == "done", ctx
    port = {i: str(ens.members[i].port) for i in range(ens.n)}
    assert t["ens.zk.port"] == port[leader], ctx
    assert t["ens.other.port"] == port[order[-1]], ctx

    assert t["ens.create"] == f"{base}/a", ctx
    assert t["ens.create.stat"] == "version=0,cversion=0,aversion=0,ephemeralOwner=0,dataLength=1,numChildren=0", ctx
    assert t["ens.setData.version"] == "1", ctx
    assert t["ens.sync"] == f"0 {base}/a", ctx
    assert t["ens.other.read"] == "2", ctx
    assert t["ens.other.deleted"] == "true", ctx
    assert t["ens.badversion"] == "BADVERSION(-103)", ctx
    assert t["ens.watch.data"] == f"NodeDataChanged {base}/a", ctx
    assert t["ens.watch.child"] == f"NodeChildrenChanged {base}", ctx
    assert t["ens.watch.exists"] == f"NodeCreated {base}/c", ctx
    assert t["ens.watch.deleted"] == f"NodeDeleted {base}/c", ctx
    assert t["ens.multi"] == (f"create {base}/m nostat; setData version=3; check; "
                              f"create {base}/m/s-0000000000 nostat"), ctx
    assert t["ens.multi.fail"] == "BADVERSION(-103) error 0; error -103", ctx
    assert t["ens.multi.other"] == "true", ctx
    assert t["ens.ephseq"].startswith(f"{base}/es-"), ctx
    assert t["ens.eph.owner"] == "true", ctx

    for who, i in (("zk", leader), ("other", order[-1])):
        want = expected_config(ens, i)
        assert t[f"ens.config.{who}"] == want.decode().replace("\n", "\\n"), ctx
        assert t[f"ens.config.{who}.stat"] == (
            "czxid=0,mzxid=0,ctime=0,mtime_set=true,pzxid=0,version=-1,cversion=0,aversion=-1,"
            f"ephemeralOwner=0,dataLength={len(want)},numChildren=0"), ctx

    assert victims["move1"] == (leader, "leader"), ctx
    assert t["move1.from"] == port[leader], ctx
    assert t["move2.from"] == t["move1.to"], ctx
    assert t["move2.from"] == port[victims["move2"][0]], ctx
    for m in ("move1", "move2"):
        d = f"{base}/{m}"
        assert t[f"{m}.to"] not in (t[f"{m}.from"], "-1"), ctx
        for key, want in (("disconnected", "true"), ("reconnected", "true"),
                          ("expired", "false"), ("same_session", "true"), ("own_write", m),
                          ("own_write_not_older", "true"),
                          ("data", f"NodeDataChanged {d}/data"),
                          ("exist", f"NodeCreated {d}/missing"),
                          ("child", f"NodeChildrenChanged {d}"),
                          ("eph_kept", "true"), ("first_eph_kept", "true"), ("eph_data", m)):
            assert t[f"{m}.{key}"] == want, f"{m}.{key}" + ctx
    assert t["ens.eph_after_close"] == "true", ctx
    ens.restart(victims["move2"][0], timeout=ELECT_TIMEOUT_S)
    ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    print(f"moves: {victims}")
