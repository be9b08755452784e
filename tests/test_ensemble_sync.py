"""Ensemble members' local state and learner sync, checked on real processes of both targets
(CORRAL_ENSEMBLE_TARGETS, as tests/test_ensemble.py; Apache ZooKeeper 3.8 is the referee).

* `/zookeeper/config` on an ensemble member holds that member's own membership text, as
  ZooKeeper 3.8 writes it locally (`ZKDatabase.initConfigInZKDatabase`: a setData of
  `QuorumVerifier.toString()` with version -1, mzxid = the config version, mtime = the
  member's wall clock) when it starts and every time it syncs with a leader. Observed on
  3.8.0 with a static zoo.cfg (no client part in the `server.N` lines, no `version=` key):
  data `server.1=127.0.0.1:<q>:<e>:participant\\n...server.4=...:observer\\nversion=0`,
  Stat czxid 0, mzxid 0, ctime 0, mtime = wall clock, version -1, cversion 0, aversion -1,
  ephemeralOwner 0, numChildren 0, pzxid 0. The digest skips it (DigestCalculator ignores
  `/zookeeper/`), and snapshots carry it. Every member sees the others through its own link
  proxies here, so each member's text differs: it is built from that member's zoo.cfg.
* TRUNC: a leader that logged proposals no quorum acknowledged, and then crashed, must lose
  them when it rejoins the ensemble that moved on without it.
* DIFF from the txn log: a follower that missed more txns than the leader's committed log
  holds (500) is synced from the leader's on-disk txn log when the log files to read are
  below `snapshotSizeFactor` (0.33) × the newest snapshot (`LearnerHandler.syncFollower`,
  `ZKDatabase.getProposalsFromTxnLog`), not by SNAP.
"""

from __future__ import annotations

import subprocess

import harness
import zkwire
from ensemble import Ensemble
from harness import HOST
from test_ensemble import (  # noqa: F401  (make_ensemble is a fixture)
    CONVERGE_TIMEOUT_S,
    ELECT_TIMEOUT_S,
    connect,
    make_ensemble,
    ok,
    write_until_ok,
)

CONFIG_PATH = "/zookeeper/config"


def expected_config(ens: Ensemble, i: int) -> bytes:
    """`QuorumMaj.toString()` for member i's zoo.cfg: sids ascending (a HashMap of small
    Long keys), no client part, then the config version (0: none in the file)."""
    lines = []
    for j, mj in enumerate(ens.members):
        q, e = ens.server_address(i, j)
        kind = "observer" if mj.observer else "participant"
        lines.append(f"server.{mj.myid}={HOST}:{q}:{e}:{kind}")
    return ("\n".join(lines) + "\nversion=0").encode()


def check_config_node(ens: Ensemble, when: str) -> dict[int, int]:
    """Checks /zookeeper/config on every member; returns {member: mtime}."""
    mtimes = {}
    for i in range(ens.n):
        c = connect(ens, i)
        try:
            rep = ok(c.get_data(CONFIG_PATH), f"{when}: getData {CONFIG_PATH} on {i + 1}")
            st = rep.body["stat"]
            want = expected_config(ens, i)
            assert rep.body["data"] == want, \
                f"{when}: member {i + 1} ({ens.mode(i)}) has {rep.body['data']!r}, want {want!r}"
            assert (st.czxid, st.mzxid, st.ctime, st.version, st.cversion, st.aversion,
                    st.ephemeralOwner, st.dataLength, st.numChildren, st.pzxid) == \
                (0, 0, 0, -1, 0, -1, 0, len(want), 0, 0), f"{when}: member {i + 1}: {st}"
            # the member's wall clock when it wrote the node (no bound on how recent)
            assert st.mtime > 1_500_000_000_000, f"{when}: member {i + 1}: {st}"
            mtimes[i] = st.mtime
            # what `conf` prints after "membership: " is the same text
            conf = ens.members[i].four_letter("conf")
            assert conf.split("membership: \n", 1)[1].rstrip("\n").encode() == want, conf
        finally:
            c.close()
    return mtimes


def test_config_node_holds_each_members_membership(make_ensemble):
    """Leader, followers and an observer, at start, after a follower restarts (DIFF) and
    after the leader is killed and comes back (a new epoch, it rejoins as a learner)."""
    ens = make_ensemble(voters=3, observers=1)
    check_config_node(ens, "start")
    c = connect(ens, 0)
    ok(c.create("/cfg", b"1"))
    c.close()
    leader = ens.leader(ELECT_TIMEOUT_S)
    follower = next(i for i in ens.voters if i != leader)
    ens.restart(follower, timeout=ELECT_TIMEOUT_S)
    write_until_ok(ens, [follower], "/cfg/after-follower")
    check_config_node(ens, "after a follower restart")
    ens.kill(leader)
    survivors = [i for i in range(ens.n) if i != leader]
    ens.leader(ELECT_TIMEOUT_S, among=[i for i in ens.voters if i != leader])
    write_until_ok(ens, survivors, "/cfg/after-leader")
    ens.restart(leader, timeout=ELECT_TIMEOUT_S)
    ens.wait_serving(timeout=ELECT_TIMEOUT_S)
    check_config_node(ens, "after the leader was killed and restarted")
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    assert "/cfg/after-leader" in state


# --------------------------------------------------------------------------------------------
# TRUNC

UNACKED_WRITES = 5


def logged_paths(ens: Ensemble, i: int) -> str:
    """Every txn in member i's txn logs, as `corral log dump` prints them (it reads
    ZooKeeper's logs as well as corral's)."""
    out = []
    for f in sorted((ens.members[i].data_dir / "version-2").glob("log.*")):
        p = subprocess.run([str(harness.corral_bin()), "log", "dump", str(f)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        out.append(p.stdout)
    return "\n".join(out)


def test_old_leader_with_unacknowledged_proposals_is_truncated_on_rejoin(make_ensemble):
    """The leader is cut off from both followers (quorum and election links blackholed)
    and at once sent creates: it proposes and logs them, but no quorum acknowledges, so no
    client sees them succeed. It is killed; the followers elect a new leader and commit
    other writes; the old leader restarts and must drop its uncommitted txns (TRUNC; for
    ZooKeeper TRUNC or SNAP, only the end state is checked) and end equal to the others."""
    ens = make_ensemble()
    old = ens.leader(ELECT_TIMEOUT_S)
    followers = [i for i in range(ens.n) if i != old]
    c = connect(ens, old)
    ok(c.create("/trunc", b""))
    ok(c.create("/trunc/committed", b"before"))
    ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)

    ens.partition(old, mode="blackhole")
    unacked = [f"/trunc/unacked-{k}" for k in range(UNACKED_WRITES)]
    xids = [(c.send_request(zkwire.Op.CREATE, zkwire.create_body(p, b"lost")), p)
            for p in unacked]
    answers = []
    for xid, p in xids:
        try:
            _, rep = c.read_until_reply(xid, timeout=30.0)
            answers.append((p, zkwire.err_name(rep.err) if rep.err else "OK"))
        except (OSError, zkwire.ConnectionClosed, zkwire.FrameTimeout) as e:
            answers.append((p, type(e).__name__))
            break  # the connection is gone: no later reply can come
    c.close()
    assert all(a != "OK" for _, a in answers), \
        f"a leader without a quorum acknowledged writes: {answers}"

    new = ens.leader(ELECT_TIMEOUT_S, among=followers)
    ens.kill(old)
    log = logged_paths(ens, old)
    logged = [p for p in unacked if f"create {p}," in log]
    assert logged, f"the old leader logged none of the unacknowledged creates:\n{log[-2000:]}"
    for k in range(3):
        write_until_ok(ens, followers, f"/trunc/new-{k}")

    ens.heal()
    ens.restart(old, timeout=ELECT_TIMEOUT_S)
    assert ens.mode(old) == "follower", ens.modes()
    assert ens.leader(ELECT_TIMEOUT_S) == new
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    assert not [p for p in unacked if p in state], (answers, sorted(state))
    assert state["/trunc/committed"][0] == b"before"
    assert all(f"/trunc/new-{k}" in state for k in range(3)), sorted(state)
    member_log = ens.members[old].log_path.read_text(errors="replace")
    if ens.target == "corral":
        assert "truncating the log (TRUNC)" in member_log, "corral did not sync by TRUNC"
        assert "snapshot from the leader loaded" not in member_log
        how = "TRUNC"
    else:
        syncs = [l.split(" - ")[-1] for l in member_log.splitlines()
                 if "Getting a " in l or "Truncating log" in l]
        how = syncs[-1:] if syncs else "?"
    print(f"old leader {old + 1} had logged {len(logged)} of {UNACKED_WRITES} unacknowledged "
          f"creates ({answers}); synced by {how}; new leader {new + 1}")
    # nothing of the lost txns is left on disk after a restart either
    ens.restart(old, timeout=ELECT_TIMEOUT_S)
    state2 = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    assert state2 == state


# --------------------------------------------------------------------------------------------
# DIFF from the on-disk txn log

BIG_NODES = 8
BIG_NODE_BYTES = 400_000  # 3.2 MB of data: the snapshot's size, the limit's base
SNAP_COUNT = 200  # a snapshot (and a log roll) every 100-200 txns
SMALL_BEFORE = 250  # > SNAP_COUNT: a snapshot with the big nodes, and a roll, follow them
MISSED = 600  # > the committed log's 500 txns


def create_many(ens: Ensemble, i: int, paths: list[str], batch: int = 100) -> None:
    """Creates `paths` through member i, pipelined `batch` at a time; each must succeed."""
    c = connect(ens, i, timeout=30.0)
    try:
        for k in range(0, len(paths), batch):
            xids = [(c.send_request(zkwire.Op.CREATE, zkwire.create_body(p, b"x" * 40)), p)
                    for p in paths[k:k + batch]]
            for xid, p in xids:
                _, rep = c.read_until_reply(xid, timeout=30.0)
                assert rep.err == 0, f"create {p}: {zkwire.err_name(rep.err)}"
    finally:
        c.close()


def test_follower_behind_the_committed_log_is_synced_by_diff_from_the_txn_log(make_ensemble):
    """A follower is stopped while more txns than the committed log holds are written; the
    log files holding them are far below a third of the leader's snapshot (a few big nodes
    make it large, small preallocation keeps the log files small). Restarted, it must end
    equal to the others; corral's leader must have synced it by DIFF from its txn log (its
    log says so, and the follower loaded no snapshot). For ZooKeeper only the end state is
    checked (its leader's choice is printed)."""
    ens = make_ensemble(extra_cfg={"preAllocSize": "64", "snapCount": str(SNAP_COUNT)})
    leader = ens.leader(ELECT_TIMEOUT_S)
    follower = next(i for i in ens.voters if i != leader)
    c = connect(ens, leader, timeout=30.0)
    ok(c.create("/big", b""))
    for k in range(BIG_NODES):
        ok(c.create(f"/big/{k}", bytes([65 + k]) * BIG_NODE_BYTES), f"big node {k}")
    c.close()
    create_many(ens, leader, ["/before"] + [f"/before/{k}" for k in range(SMALL_BEFORE)])
    ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)

    ens.stop(follower)
    create_many(ens, leader, ["/missed"] + [f"/missed/{k}" for k in range(MISSED)])
    ens.restart(follower, timeout=ELECT_TIMEOUT_S)
    state = ens.wait_converged(timeout=CONVERGE_TIMEOUT_S)
    assert len([p for p in state if p.startswith("/missed/")]) == MISSED
    assert state["/big/0"][0] == b"A" * BIG_NODE_BYTES

    leader_log = ens.members[leader].log_path.read_text(errors="replace")
    follower_log = ens.members[follower].log_path.read_text(errors="replace")
    if ens.target == "corral":
        lines = [l for l in leader_log.splitlines() if "from the txn log" in l
                 or "the learner gets SNAP" in l or "cannot sync a learner" in l]
        assert any("syncing a learner by DIFF from the txn log" in l for l in lines), \
            f"the leader did not sync by DIFF from its txn log: {lines}"
        assert "snapshot from the leader loaded" not in follower_log, lines
        how = lines[-1].split("INFO")[-1].strip() if lines else "?"
    else:
        how = [l.split(" - ")[-1] for l in leader_log.splitlines()
               if "txnlog" in l or "Sending SNAP" in l or "Sending DIFF" in l][-3:]
    print(f"follower {follower + 1} missed {MISSED + 1} txns; leader {leader + 1}: {how}")
