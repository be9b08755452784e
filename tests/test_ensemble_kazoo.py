"""kazoo recipes (lock, election, counter) and watches on a 3-member ensemble, with every client
given all members in its connect string (kazoo picks one at random), once per target in
CORRAL_ENSEMBLE_TARGETS (see tests/test_ensemble.py). One ensemble per target serves the
module; the watch-failover test kills a member and restarts it before it ends.

Nothing asserts a duration; every wait is bounded.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import EventType
from kazoo.retry import KazooRetry

import harness
from ensemble import Ensemble
from test_ensemble import ensemble_targets

TICK_MS = 100
WAIT_S = 30.0
CLIENTS = 3


@pytest.fixture(scope="module", params=ensemble_targets())
def shared_ensemble(request: pytest.FixtureRequest):
    problem = None
    ens = None
    try:
        ens = Ensemble(request.param, 3, tick_ms=TICK_MS, name="kazoo")
        ens.start()
    except harness.HarnessError as e:
        problem = f"could not start a {request.param} ensemble: {e}"
    if problem:
        if ens:
            ens.close()
        pytest.fail(problem, pytrace=False)
    yield ens
    ens.close()
    if not getattr(ens, "failed", False):
        shutil.rmtree(ens.dir, ignore_errors=True)


@pytest.fixture
def ens(shared_ensemble: Ensemble, request: pytest.FixtureRequest):
    """The module's ensemble, serving on every member; its logs go in a failing test's
    report (tests/conftest.py) and its directory is then kept."""
    if not hasattr(request.node, "servers"):
        request.node.servers = []
    request.node.servers.extend(shared_ensemble.members)
    shared_ensemble.wait_serving(timeout=WAIT_S * 2)
    yield shared_ensemble
    if any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False)
           for w in ("setup", "call")):
        shared_ensemble.failed = True


@pytest.fixture
def clients(ens: Ensemble):
    made: list[KazooClient] = []

    def make(hosts: str | None = None, randomize: bool = True) -> KazooClient:
        zk = KazooClient(hosts=hosts or ens.connect_string(), timeout=10.0,
                         randomize_hosts=randomize,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5),
                         command_retry=KazooRetry(max_tries=100, delay=0.05, max_delay=0.5,
                                                  deadline=WAIT_S))
        zk.start(timeout=WAIT_S)
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
def base(clients) -> str:
    path = f"/kz-{uuid.uuid4().hex[:8]}"
    clients().create(path, b"")
    return path


def _run_threads(fns: list, what: str) -> None:
    errors: list[BaseException] = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(fn,), daemon=True) for fn in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=WAIT_S * 2)
    assert not any(t.is_alive() for t in ts), f"{what}: threads still running"
    assert not errors, f"{what}: {errors[0]!r}"


def test_lock_excludes_across_members(clients, base):
    zks = [clients() for _ in range(CLIENTS)]
    zks[0].create(f"{base}/value", b"0")
    holders = [0]
    overlap = []
    guard = threading.Lock()
    rounds = 8

    def worker(zk: KazooClient):
        lock = zk.Lock(f"{base}/lock", identifier=str(id(zk)))
        for _ in range(rounds):
            assert lock.acquire(timeout=WAIT_S), "lock not acquired"
            try:
                with guard:
                    holders[0] += 1
                    if holders[0] > 1:
                        overlap.append(holders[0])
                # a non-atomic read-modify-write, safe only under the lock
                v, _ = zk.get(f"{base}/value")
                zk.set(f"{base}/value", b"%d" % (int(v) + 1))
                with guard:
                    holders[0] -= 1
            finally:
                lock.release()

    _run_threads([lambda zk=zk: worker(zk) for zk in zks], "lock")
    assert not overlap, f"two holders at once: {overlap}"
    zks[0].sync(base)
    assert zks[0].get(f"{base}/value")[0] == b"%d" % (rounds * CLIENTS)


def test_counter_from_every_client(clients, base):
    zks = [clients() for _ in range(CLIENTS)]
    per_client = 25

    def worker(zk: KazooClient):
        counter = zk.Counter(f"{base}/counter")
        for _ in range(per_client):
            counter += 1

    _run_threads([lambda zk=zk: worker(zk) for zk in zks], "counter")
    for zk in zks:
        zk.sync(f"{base}/counter")
        assert zk.Counter(f"{base}/counter").value == per_client * CLIENTS


def test_election_one_leader_and_succession(clients, base):
    zks = [clients() for _ in range(CLIENTS)]
    leaders: queue.Queue = queue.Queue()
    release = {i: threading.Event() for i in range(CLIENTS)}
    current = [0]
    max_concurrent = [0]
    guard = threading.Lock()

    def lead(i: int):
        with guard:
            current[0] += 1
            max_concurrent[0] = max(max_concurrent[0], current[0])
        leaders.put(i)
        release[i].wait(WAIT_S * 2)
        with guard:
            current[0] -= 1

    elections = [zk.Election(f"{base}/election", identifier=f"c{i}")
                 for i, zk in enumerate(zks)]
    threads = [threading.Thread(target=e.run, args=(lead, i), daemon=True)
               for i, e in enumerate(elections)]
    for t in threads:
        t.start()
    order = []
    try:
        for _ in range(CLIENTS):
            i = leaders.get(timeout=WAIT_S)
            order.append(i)
            contenders = elections[i].contenders()
            assert contenders[0] == f"c{i}", f"leader c{i}, contenders {contenders}"
            release[i].set()  # abdicate; the next contender takes over
    finally:
        for ev in release.values():
            ev.set()
        for e in elections:
            e.cancel()
        for t in threads:
            t.join(timeout=WAIT_S)
    assert sorted(order) == list(range(CLIENTS)), order
    assert max_concurrent[0] == 1, f"{max_concurrent[0]} leaders at once"


def _next(q: queue.Queue, what: str):
    try:
        return q.get(timeout=WAIT_S)
    except queue.Empty:
        raise AssertionError(f"no {what} within {WAIT_S}s") from None


def test_watches_fire_for_writes_through_other_members(clients, base, ens):
    watchers = [clients(hosts=ens.connect_string([i]), randomize=False) for i in range(ens.n)]
    writer = clients()
    writer.create(f"{base}/w", b"0")
    data_q = [queue.Queue() for _ in watchers]
    child_q = [queue.Queue() for _ in watchers]
    for i, zk in enumerate(watchers):
        zk.sync(f"{base}/w")  # the create may not have reached this member yet
        zk.DataWatch(f"{base}/w", lambda data, stat, event, q=data_q[i]: q.put(data))
        zk.ChildrenWatch(f"{base}/w", lambda children, q=child_q[i]: q.put(sorted(children)))
        assert _next(data_q[i], "initial data") == b"0"
        assert _next(child_q[i], "initial children") == []
    # one-shot watches, explicitly, on every member
    events = [queue.Queue() for _ in watchers]
    for i, zk in enumerate(watchers):
        zk.get(f"{base}/w", watch=events[i].put)
    writer.set(f"{base}/w", b"1")
    writer.create(f"{base}/w/c1", b"")
    for i in range(ens.n):
        ev = _next(events[i], f"data-changed event on member {i + 1}")
        assert ev.type == EventType.CHANGED and ev.path == f"{base}/w"
        # the DataWatch sees the new value (possibly after intermediate ones)
        for _ in range(10):
            if _next(data_q[i], f"data on member {i + 1}") == b"1":
                break
        else:
            raise AssertionError(f"member {i + 1}: DataWatch never saw b'1'")
        for _ in range(10):
            if _next(child_q[i], f"children on member {i + 1}") == ["c1"]:
                break
        else:
            raise AssertionError(f"member {i + 1}: ChildrenWatch never saw ['c1']")


def test_watch_survives_the_loss_of_its_member(clients, base, ens):
    """The watcher is connected to member 1 first; member 1 is killed, kazoo resumes the
    session on another member with its watches (setWatches), and a change made meanwhile
    through yet another member still fires."""
    victim = 0
    watcher = clients(hosts=ens.connect_string([0, 1, 2]), randomize=False)
    writer = clients(hosts=ens.connect_string([2]))
    writer.create(f"{base}/x", b"before")
    states = queue.Queue()
    watcher.add_listener(states.put)
    seen = queue.Queue()
    watcher.sync(f"{base}/x")
    watcher.DataWatch(f"{base}/x", lambda data, stat, event: seen.put(data))
    assert _next(seen, "initial data") == b"before"
    try:
        ens.kill(victim)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if _next(states, "kazoo state change") == "SUSPENDED":
                break
        writer.retry(writer.set, f"{base}/x", b"after")
        for _ in range(10):
            if _next(seen, "data after the member's loss") == b"after":
                break
        else:
            raise AssertionError("DataWatch never saw b'after'")
        assert watcher.connected
    finally:
        ens.restart(victim, timeout=WAIT_S * 2)
