"""Replicated ensembles: agreement, failover, catch-up, partitions, quorum arithmetic, observers.

Every test starts its own ensemble (tests/ensemble.py) of real processes on 127.0.0.1, once per
target in CORRAL_ENSEMBLE_TARGETS (a comma list of `corral`, `zookeeper`; default `zookeeper`
until corral's ensemble lands, then `corral,zookeeper`). Apache ZooKeeper 3.8 is the referee:
every test here passes against it.

Clients are the raw-protocol client tests/zkwire.py (what the test sends is what goes on the
wire) and kazoo where a real client library's reconnect logic is the point. Nothing here
asserts a duration: waits are bounded (generous timeouts), speed is the job of
bench/failover.py. A write counts as acknowledged only when its reply said OK; such writes
must survive every fault below. Failed writes have an unknown outcome and are never counted.

Config: tickTime 100 ms, initLimit 10, syncLimit 5 (a follower that hears nothing from its
leader for 500 ms gives up on it).
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

import ensemble
import harness
import zkwire
from ensemble import Ensemble, Writer
from zkwire import Err, Op

TICK_MS = 100
# Generous bounds (a loaded 2-core machine, a JVM); none is a performance expectation.
ELECT_TIMEOUT_S = 60.0
CONVERGE_TIMEOUT_S = 60.0
ACK_TIMEOUT_S = 60.0
ATTEMPT_TIMEOUT_S = 2.0


def ensemble_targets() -> list[str]:
    raw = os.environ.get("CORRAL_ENSEMBLE_TARGETS", "zookeeper")
    out = [t.strip() for t in raw.split(",") if t.strip()]
    bad = [t for t in out if t not in ensemble.KINDS]
    if bad or not out:
        raise pytest.UsageError(
            f"CORRAL_ENSEMBLE_TARGETS={raw!r}: expected a comma list of {', '.join(ensemble.KINDS)}")
    return out


def _failed(node: pytest.Item) -> bool:
    return any(getattr(getattr(node, f"rep_{w}", None), "failed", False)
               for w in ("setup", "call"))


@pytest.fixture(params=ensemble_targets())
def make_ensemble(request: pytest.FixtureRequest):
    """Factory: make_ensemble(voters=3, observers=0, **Ensemble kwargs) -> a started Ensemble.
    Every member is stopped by PID at teardown; a failing test's report carries each member's
    log tail (tests/conftest.py) and its directory under tests/.work/ is kept."""
    target = request.param
    made: list[Ensemble] = []
    if not hasattr(request.node, "servers"):
        request.node.servers = []

    def make(voters: int = 3, observers: int = 0, **kw) -> Ensemble:
        kw.setdefault("tick_ms", TICK_MS)
        problem = None
        try:
            ens = Ensemble(target, voters, observers, name=request.node.name[:40], **kw)
            made.append(ens)
            request.node.servers.extend(ens.members)
            ens.start()
        except harness.HarnessError as e:
            problem = f"could not start a {target} ensemble: {e}"
        if problem:
            pytest.fail(problem, pytrace=False)
        return ens

    yield make
    failed = _failed(request.node)
    for ens in made:
        ens.close()
        if not failed:
            shutil.rmtree(ens.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# helpers


def connect(ens: Ensemble, i: int, **kw) -> zkwire.Connection:
    kw.setdefault("timeout", 10.0)
    return ens.client(i, **kw)


def ok(rep: zkwire.Reply, what: str = "") -> zkwire.Reply:
    assert rep.err == 0, f"{what}: {zkwire.err_name(rep.err)} ({rep})"
    return rep


def try_write(ens: Ensemble, i: int, path: str, timeout: float = ATTEMPT_TIMEOUT_S) -> str:
    """One create through member i on a new session: 'ok', or why not."""
    m = ens.members[i]
    try:
        conn = zkwire.connect(m.host, m.port, timeout=timeout)
    except (OSError, zkwire.ConnectionClosed, zkwire.FrameTimeout) as e:
        return f"connect: {type(e).__name__}"
    try:
        rep = conn.create(path, b"")
        return "ok" if rep.err == 0 else zkwire.err_name(rep.err)
    except (OSError, zkwire.ConnectionClosed, zkwire.FrameTimeout) as e:
        return f"create: {type(e).__name__}"
    finally:
        conn.close()


def write_until_ok(ens: Ensemble, members: list[int], path: str,
                   timeout: float = ACK_TIMEOUT_S) -> int:
    """Creates `path` through the first of `members` that acknowledges it (trying them in
    turn, bounded); returns that member. NODEEXISTS counts as done only if a previous attempt
    may have gone through."""
    deadline = time.monotonic() + timeout
    results = []
    for attempt in range(10_000):
        i = members[attempt % len(members)]
        r = try_write(ens, i, path)
        results.append((i + 1, r))
        if r == "ok" or (r == "NODEEXISTS" and attempt > 0):
            return i
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise AssertionError(f"no member of {[i + 1 for i in members]} acknowledged {path} within "
                         f"{timeout}s; last attempts {results[-6:]}; modes {ens.modes()}")


def pipelined_creates(conn: zkwire.Connection, paths: list[str], depth: int = 64) -> None:
    """Creates every path, `depth` requests in flight; all must succeed."""
    inflight: list[tuple[int, str]] = []
    it = iter(paths)
    done = False
    for _ in range(10 * len(paths) + 10):
        while not done and len(inflight) < depth:
            p = next(it, None)
            if p is None:
                done = True
                break
            inflight.append((conn.send_request(Op.CREATE, zkwire.create_body(p, b"v")), p))
        if not inflight:
            return
        xid, p = inflight.pop(0)
        _, rep = conn.read_until_reply(xid, timeout=30.0)
        ok(rep, f"create {p}")


def assert_acked_present(state: dict, writers: list[Writer]) -> int:
    acked = [p for w in writers for (p, _, _) in w.acked]
    missing = [p for p in acked if p not in state]
    assert not missing, (f"{len(missing)} of {len(acked)} acknowledged writes lost, e.g. "
                         f"{missing[:5]}")
    return len(acked)


def kazoo_client(hosts: str) -> KazooClient:
    zk = KazooClient(hosts=hosts, timeout=10.0,
                     connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5),
                     command_retry=KazooRetry(max_tries=200, delay=0.05, max_delay=0.5,
                                              deadline=ACK_TIMEOUT_S))
    zk.start(timeout=30)
    return zk


def kazoo_close(zk: KazooClient) -> None:
    try:
        zk.stop()
        zk.close()
    except Exception:
        pass


# --------------------------------------------------------------------------------------------
# three members, no faults


def test_writes_through_each_member_visible_on_all_after_sync(make_ensemble):
    ens = make_ensemble()
    setup = connect(ens, 0)
    ok(setup.create("/each", b""))
    for i in range(ens.n):
        c = connect(ens, i)
        ok(c.create(f"/each/m{i + 1}", b"from %d" % (i + 1)), f"create via member {i + 1}")
        ok(c.set_data("/each", b"last %d" % (i + 1)), f"setData via member {i + 1}")
        c.close()
    for j in range(ens.n):
        c = connect(ens, j)
        ok(c.sync("/each"), f"sync on member {j + 1}")
        for i in range(ens.n):
            rep = ok(c.get_data(f"/each/m{i + 1}"), f"read m{i + 1} on member {j + 1}")
            assert rep.body["data"] == b"from %d" % (i + 1)
        rep = ok(c.get_data("/each"))
        assert rep.body["data"] == b"last %d" % ens.n
        assert rep.body["stat"].version == ens.n
        assert sorted(ok(c.get_children("/each")).body["children"]) == \
            [f"m{i + 1}" for i in range(ens.n)]
        c.close()
    ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)


def _move(ens: Ensemble, sid: int, pw: bytes, last_zxid: int, to: int) -> zkwire.Connection:
    """Resumes session `sid` on member `to` once (raises if refused or closed)."""
    m = ens.members[to]
    conn = zkwire.Connection(m.host, m.port, timeout=5.0)
    try:
        resp = conn.handshake(session_id=sid, passwd=pw, timeout_ms=30000, last_zxid=last_zxid)
    except Exception:
        conn.close()
        raise
    if resp.timeout_ms <= 0:
        conn.close()
        raise zkwire.ConnectionClosed(f"member {to + 1} refused the session: {resp}")
    assert resp.session_id == sid
    conn.last_zxid = last_zxid
    return conn


MOVE_ATTEMPTS_MAX = 200


def _move_retrying(ens: Ensemble, sid: int, pw: bytes, last_zxid: int, to: int,
                   refusals: list[int]) -> zkwire.Connection:
    """Like a client library: a member that has not yet applied the session's lastZxidSeen
    closes the connection ("client must try another server"); try again (bounded)."""
    for attempt in range(MOVE_ATTEMPTS_MAX):
        try:
            return _move(ens, sid, pw, last_zxid, to)
        except (OSError, zkwire.ConnectionClosed, zkwire.FrameTimeout):
            refusals[0] += 1
            if attempt == MOVE_ATTEMPTS_MAX - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def test_session_moves_between_members_and_reads_its_own_writes(make_ensemble):
    """A session hops member to member (without sync) and always reads what it wrote last;
    then a member cut off from its leader while the session writes elsewhere must refuse the
    session (its lastZxidSeen is ahead) or serve the newest data, never older."""
    ens = make_ensemble()
    conn = connect(ens, 0, timeout_ms=30000)
    sid, pw = conn.session_id, conn.passwd
    ok(conn.create("/moving", b"0"))
    at = 0
    refusals = [0]
    for k in range(1, 10):
        ok(conn.set_data("/moving", b"%d" % k), f"write {k} on member {at + 1}")
        last = conn.last_zxid
        conn.close()  # the socket only: the session lives on
        at = (at + 1) % ens.n
        conn = _move_retrying(ens, sid, pw, last, at, refusals)
        rep = ok(conn.get_data("/moving"), f"read after moving to member {at + 1}")
        assert rep.body["data"] == b"%d" % k, \
            f"member {at + 1} served {rep.body['data']!r} after the session wrote {k}"
        assert rep.zxid >= last, f"reply zxid {rep.zxid:#x} older than lastZxidSeen {last:#x}"
    conn.close()
    print(f"{refusals[0]} refusals of a member behind the session while moving")

    # A follower falls behind: its links are blackholed (silently dropping bytes) while the
    # session writes through the leader.
    leader = ens.leader(ELECT_TIMEOUT_S)
    lagging = next(i for i in range(ens.n) if i != leader)
    conn = _move_retrying(ens, sid, pw, last, leader, refusals)
    ens.partition(lagging, mode="blackhole")
    ok(conn.set_data("/moving", b"newest"), "write while a follower lags")
    newest = conn.last_zxid
    conn.close()
    try:
        c = _move(ens, sid, pw, newest, lagging)
        try:
            rep = c.get_data("/moving")
            print(f"lagging member {lagging + 1} took the session and answered "
                  f"{zkwire.err_name(rep.err)} {rep.body}")
            assert rep.err != 0 or rep.body["data"] == b"newest", \
                f"lagging member {lagging + 1} served {rep.body['data']!r}, older than the " \
                f"session's own write"
        except (OSError, zkwire.ConnectionClosed, zkwire.FrameTimeout) as e:
            print(f"lagging member {lagging + 1} dropped the session's read: {e!r}")
        finally:
            c.close()
    except (OSError, zkwire.ConnectionClosed, zkwire.FrameTimeout) as e:
        # refused: the expected answer of a member behind the client
        print(f"lagging member {lagging + 1} refused the session: {e!r}")
    ens.heal()
    ens.wait_serving(timeout=ELECT_TIMEOUT_S)
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    for _ in range(1000):
        try:
            c = _move(ens, sid, pw, newest, lagging)
            rep = ok(c.get_data("/moving"))
            c.close()
            assert rep.body["data"] == b"newest"
            break
        except (OSError, zkwire.ConnectionClosed, zkwire.FrameTimeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)


def test_ephemeral_of_expired_session_disappears_on_every_member(make_ensemble):
    ens = make_ensemble()
    owner = connect(ens, 0, timeout_ms=1000)  # the minimum is 2 ticks
    ok(owner.create("/eph", b"mine", flags=zkwire.CreateMode.EPHEMERAL))
    sid = owner.session_id
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    assert state["/eph"][5] == sid, f"ephemeralOwner {state['/eph'][5]:#x} != {sid:#x}"
    owner.close()  # no closeSession: the session must expire
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    remaining = list(range(ens.n))
    for _ in range(10_000):
        remaining = [i for i in remaining if "/eph" in ens.state(i)]
        if not remaining or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not remaining, f"/eph still on members {[i + 1 for i in remaining]}"
    ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)


# --------------------------------------------------------------------------------------------
# crashes


def test_leader_killed_new_leader_keeps_every_acknowledged_write(make_ensemble):
    ens = make_ensemble()
    leader = ens.leader(ELECT_TIMEOUT_S)
    survivors = [i for i in range(ens.n) if i != leader]
    writer = Writer(ens, "/failover", members=survivors).start()
    zk = kazoo_client(ens.connect_string(survivors))
    try:
        zk.create("/kazoo-before", b"1")
        writer.wait_acks(50, ACK_TIMEOUT_S)
        t_kill = time.monotonic()
        ens.kill(leader)
        new_leader = ens.leader(ELECT_TIMEOUT_S, among=survivors)
        writer.wait_acks(50, ACK_TIMEOUT_S, since=t_kill)
        # the kazoo client reconnects to a survivor and carries on
        zk.retry(zk.create, "/kazoo-after", b"2")
        assert zk.retry(zk.get, "/kazoo-before")[0] == b"1"
        assert zk.retry(zk.get, "/kazoo-after")[0] == b"2"
    finally:
        writer.stop()
        kazoo_close(zk)
    state = ens.wait_converged(survivors, timeout=CONVERGE_TIMEOUT_S)
    n = assert_acked_present(state, [writer])
    # The writer's session (30 s timeout) moved to a survivor; the failover must not expire it.
    assert writer.expired == 0, f"the writer's session expired: {writer.errors}"
    ens.restart(leader, timeout=ELECT_TIMEOUT_S)
    assert ens.mode(leader) == "follower", \
        f"restarted old leader is {ens.mode(leader)} (leader is member {new_leader + 1})"
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    assert_acked_present(state, [writer])
    print(f"{n} acknowledged writes ({writer.failed} failed attempts) all present on every "
          f"member; new leader member {new_leader + 1}")


def test_follower_killed_while_writing_catches_up(make_ensemble):
    ens = make_ensemble()
    leader = ens.leader(ELECT_TIMEOUT_S)
    follower = next(i for i in range(ens.n) if i != leader)
    others = [i for i in range(ens.n) if i != follower]
    writer = Writer(ens, "/diff", members=others).start()
    try:
        writer.wait_acks(50, ACK_TIMEOUT_S)
        ens.kill(follower)
        writer.wait_acks(100, ACK_TIMEOUT_S)
        ens.restart(follower, timeout=ELECT_TIMEOUT_S)
        writer.wait_acks(50, ACK_TIMEOUT_S)
    finally:
        writer.stop()
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    n = assert_acked_present(state, [writer])
    if ens.target == "zookeeper":
        log = ens.members[follower].log_path.read_text(errors="replace")
        print("follower sync:", [l.split(" - ")[-1] for l in log.splitlines()
                                 if "Getting a " in l][-1:])
    print(f"{n} acknowledged writes present on every member")


FAR_BEHIND_WRITES = 700  # > ZooKeeper's in-memory committed log (500): no DIFF possible


def test_member_far_behind_catches_up_from_a_snapshot(make_ensemble):
    ens = make_ensemble(extra_cfg={"snapCount": 50})
    leader = ens.leader(ELECT_TIMEOUT_S)
    behind = next(i for i in range(ens.n) if i != leader)
    c = connect(ens, leader)
    ok(c.create("/far", b""))
    pipelined_creates(c, [f"/far/a{k:04d}" for k in range(50)])
    ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    ens.stop(behind)
    pipelined_creates(c, [f"/far/b{k:04d}" for k in range(FAR_BEHIND_WRITES)])
    for k in range(0, FAR_BEHIND_WRITES, 7):
        ok(c.set_data(f"/far/b{k:04d}", b"changed"))
    ok(c.delete("/far/a0000"))
    c.close()
    ens.restart(behind, timeout=ELECT_TIMEOUT_S)
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    assert len([p for p in state if p.startswith("/far/")]) == 50 - 1 + FAR_BEHIND_WRITES
    assert state["/far/b0007"][0] == b"changed"
    if ens.target == "zookeeper":
        log = ens.members[behind].log_path.read_text(errors="replace")
        syncs = [l.split(" - ")[-1] for l in log.splitlines() if "Getting a " in l]
        assert syncs and "snapshot" in syncs[-1], f"ZooKeeper synced with {syncs}"
    else:
        log = ens.members[behind].log_path.read_text(errors="replace")
        assert "snapshot from the leader loaded" in log, "corral did not sync by SNAP"


# --------------------------------------------------------------------------------------------
# pauses and partitions


def test_leader_paused_longer_than_sync_limit(make_ensemble):
    """SIGSTOP the leader for well over syncLimit, then SIGCONT: the followers elect a new
    leader and commit; the old leader must not commit on its own (it has no quorum), must
    give up leadership, and no acknowledged write (either side) may be lost."""
    ens = make_ensemble()
    old = ens.leader(ELECT_TIMEOUT_S)
    followers = [i for i in range(ens.n) if i != old]
    on_old = Writer(ens, "/old", members=[old]).start()
    on_new = Writer(ens, "/new", members=followers).start()
    try:
        on_old.wait_acks(20, ACK_TIMEOUT_S)
        on_new.wait_acks(20, ACK_TIMEOUT_S)
        ens.pause(old)
        t_pause = time.monotonic()
        new = ens.leader(ELECT_TIMEOUT_S, among=followers)
        on_new.wait_acks(50, ACK_TIMEOUT_S, since=t_pause)
        old_acked_before_resume = len(on_old.acks_since(t_pause))
        ens.resume(old)
        # the old leader rejoins as a follower, and one leader remains
        deadline = time.monotonic() + ELECT_TIMEOUT_S
        for _ in range(10_000):
            if ens.mode(old) == "follower" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert ens.mode(old) == "follower", f"old leader: modes {ens.modes()}"
        assert ens.leader(ELECT_TIMEOUT_S) == new
        on_old.wait_acks(10, ACK_TIMEOUT_S)
    finally:
        on_old.stop()
        on_new.stop()
    assert old_acked_before_resume == 0, "the paused leader acknowledged writes"
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    n = assert_acked_present(state, [on_old, on_new])
    print(f"{n} acknowledged writes present; new leader member {new + 1}")


def test_partitioned_minority_stops_serving_and_catches_up_when_healed(make_ensemble):
    ens = make_ensemble()
    leader = ens.leader(ELECT_TIMEOUT_S)
    minority = next(i for i in range(ens.n) if i != leader)
    majority = [i for i in range(ens.n) if i != minority]
    before = connect(ens, minority)
    ok(before.create("/split", b""))
    writer = Writer(ens, "/split/majority", members=majority).start()
    try:
        writer.wait_acks(20, ACK_TIMEOUT_S)
        ens.partition(minority)
        ens.wait_not_serving([minority], ELECT_TIMEOUT_S)
        assert before.wait_closed(timeout=30.0), "the cut-off member kept a client connection"
        r = try_write(ens, minority, "/split/minority")
        assert r.startswith("connect") or r.startswith("create"), \
            f"cut-off member answered a write: {r}"
        t_cut = time.monotonic()
        writer.wait_acks(50, ACK_TIMEOUT_S, since=t_cut)
        ens.heal()
        ens.wait_serving(timeout=ELECT_TIMEOUT_S)
        writer.wait_acks(20, ACK_TIMEOUT_S)
    finally:
        writer.stop()
        before.close()
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    assert "/split/minority" not in state
    assert_acked_present(state, [writer])


# --------------------------------------------------------------------------------------------
# quorum arithmetic


def _assert_no_commit(ens: Ensemble, members: list[int], path: str) -> None:
    for i in members:
        r = try_write(ens, i, path)
        assert r != "ok", f"member {i + 1} committed {path} without a quorum (modes {ens.modes()})"


def test_five_members_survive_two_failures_not_three(make_ensemble):
    ens = make_ensemble(voters=5)
    leader = ens.leader(ELECT_TIMEOUT_S)
    victims = [leader] + [i for i in range(ens.n) if i != leader][:2]
    ens.kill(victims[0])
    ens.kill(victims[1])
    alive = [i for i in range(ens.n) if i not in victims[:2]]
    ens.leader(ELECT_TIMEOUT_S, among=alive)
    write_until_ok(ens, alive, "/two-down")
    ens.kill(victims[2])
    alive = [i for i in alive if i != victims[2]]
    ens.wait_not_serving(alive, ELECT_TIMEOUT_S)
    _assert_no_commit(ens, alive, "/three-down")
    ens.restart(victims[2], wait=False)
    ens.wait_serving(alive + [victims[2]], ELECT_TIMEOUT_S)
    write_until_ok(ens, alive + [victims[2]], "/back")
    for v in victims[:2]:
        ens.restart(v, wait=False)
    ens.wait_serving(timeout=ELECT_TIMEOUT_S)
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    assert "/two-down" in state and "/back" in state


def test_observer_serves_and_forwards_but_is_not_counted(make_ensemble):
    ens = make_ensemble(voters=2, observers=1)
    obs = 2
    assert ens.mode(obs) == "observer", ens.modes()
    assert sorted(ens.mode(i) for i in (0, 1)) == ["follower", "leader"]
    c = connect(ens, obs)
    ok(c.create("/via-observer", b"forwarded"), "write through the observer")
    rep = ok(c.get_data("/via-observer"), "read on the observer")
    assert rep.body["data"] == b"forwarded"
    c.close()
    for i in (0, 1):
        v = connect(ens, i)
        ok(v.sync("/"))
        assert ok(v.get_data("/via-observer")).body["data"] == b"forwarded"
        v.close()
    # one voter dies: 1 of 2 voters is no quorum, whatever the observer does
    follower = next(i for i in (0, 1) if ens.mode(i) == "follower")
    ens.kill(follower)
    remaining = [i for i in (0, 1, obs) if i != follower]
    ens.wait_not_serving(remaining, ELECT_TIMEOUT_S)
    _assert_no_commit(ens, remaining, "/no-quorum")
    ens.restart(follower, wait=False)
    ens.wait_serving(timeout=ELECT_TIMEOUT_S)
    assert ens.mode(obs) == "observer"
    write_until_ok(ens, [obs], "/quorum-again")
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    assert "/quorum-again" in state
