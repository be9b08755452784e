#!/usr/bin/env python3
"""Leader failover benchmark for a 3-member ensemble (corral and/or Apache ZooKeeper 3.8).

What is measured (the "failover window"), per round:

    t0 = time.monotonic() immediately before os.kill(leader_pid, SIGKILL)
    t1 = time.monotonic() when the OK reply arrives for the first create that was
         *sent* at or after t0
    window = t1 - t0

Writes come from one writer thread in this process (tests/ensemble.py's `Writer`): it creates
small znodes (16 bytes of data) one at a time, with tests/zkwire.py's raw-protocol client, so
no client library's reconnect back-off is measured. Before the kill it is connected to a
follower (never the leader); after the kill it may use only the two survivors. On any error
(connection closed, refused, an error reply, or no reply within --attempt-timeout) it
reconnects to the next survivor, resuming its session (session id, password, lastZxidSeen)
and retries with a new znode name, pausing --retry-pause between failed attempts. The window
therefore covers: the followers noticing the leader's death, the election, the new leader's
discovery and sync with the other survivor, session revalidation, and one create committed
by the new quorum, as seen by a client that retries promptly. Writes already in flight at t0
do not count (a reply from the dying leader cannot end the window).

Then the killed member is restarted and the round ends when every member serves again (srvr
shows a mode) and the writer has had a few more writes acknowledged. At the end every
acknowledged write is checked to be present on every member (a benchmark that lost writes
would be measuring nothing); a loss is reported and makes the exit code 1, and so does an expiry of the writer's session
(its timeout is 30 s; a failover must not expire it).

Config of every member: tickTime 50 ms, initLimit 10, syncLimit 5, maxSessionTimeout 60 s,
the same for corral and ZooKeeper; members talk directly (no fault-injection proxies).

With --targets corral,zookeeper both ensembles run side by side and rounds alternate between
them (the idle one's writer is paused), so machine load drifts affect both alike; the ratio
corral/zookeeper of median and p90 is printed.

Output: per target a human line (median / p90 / max in ms) and one JSON line starting with
`{"bench": "failover"`.

Run:  .venv/bin/python bench/failover.py --targets zookeeper --rounds 20
      CORRAL_BIN=target/release/corral .venv/bin/python bench/failover.py --targets corral,zookeeper
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import ensemble  # noqa: E402
from ensemble import Ensemble, HarnessError, Writer  # noqa: E402

ROUNDS_MAX = 1000
ROUND_TIMEOUT_S = 120.0
TICK_MS = 50
INIT_LIMIT = 10
SYNC_LIMIT = 5


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


class Bench:
    def __init__(self, target: str, args: argparse.Namespace) -> None:
        self.target = target
        self.args = args
        self.ens = Ensemble(target, 3, tick_ms=TICK_MS, init_limit=INIT_LIMIT,
                            sync_limit=SYNC_LIMIT, proxy=False, name="failover")
        self.writer: Writer | None = None
        self.windows_ms: list[float] = []
        self.failed_attempts: list[tuple[int, int]] = []  # (writes, connects) per round

    def start(self) -> None:
        self.ens.start()
        leader = self.ens.leader(60.0)
        followers = [i for i in range(3) if i != leader]
        self.writer = Writer(self.ens, "/failover", members=followers,
                             attempt_timeout=self.args.attempt_timeout,
                             retry_pause=self.args.retry_pause)
        self.writer.start()
        self.writer.wait_acks(5, 60.0)
        self.writer.pause()

    def round(self, r: int) -> float:
        ens, w = self.ens, self.writer
        assert w is not None
        leader = ens.leader(60.0)
        followers = [i for i in range(3) if i != leader]
        w.retarget(followers)
        w.resume()
        w.wait_acks(5, 60.0)  # flowing, through a follower
        failed_before = (w.failed, w.connect_failures)
        t0 = time.monotonic()
        ens.kill(leader)
        first = w.wait_first_ack_since(t0, ROUND_TIMEOUT_S)
        if first is None:
            raise HarnessError(f"{self.target} round {r}: no write acknowledged within "
                               f"{ROUND_TIMEOUT_S}s of killing member {leader + 1}; last "
                               f"errors {w.errors[-3:]}; modes {ens.modes()}")
        window = first[2] - t0
        self.failed_attempts.append((w.failed - failed_before[0],
                                     w.connect_failures - failed_before[1]))
        ens.restart(leader, timeout=60.0)
        ens.wait_serving(timeout=60.0)
        w.wait_acks(5, 60.0)
        w.pause()
        self.windows_ms.append(window * 1000.0)
        return window

    def finish(self) -> int:
        """Checks that every acknowledged write is on every member; returns how many are lost."""
        lost = 0
        if self.writer:
            self.writer.stop()
            state = self.ens.wait_converged(timeout=60.0)
            lost = sum(1 for (p, _, _) in self.writer.acked if p not in state)
        return lost

    def close(self) -> None:
        if self.writer:
            self.writer.stop()
        self.ens.close()

    def summary(self, lost: int) -> dict:
        xs = self.windows_ms
        return {
            "bench": "failover",
            "target": self.target,
            "rounds": len(xs),
            "median_ms": round(statistics.median(xs), 1) if xs else None,
            "p90_ms": round(percentile(xs, 90), 1) if xs else None,
            "max_ms": round(max(xs), 1) if xs else None,
            "min_ms": round(min(xs), 1) if xs else None,
            "windows_ms": [round(x, 1) for x in xs],
            "failed_writes_per_round": [f for f, _ in self.failed_attempts],
            "failed_connects_per_round": [c for _, c in self.failed_attempts],
            "acknowledged_writes": len(self.writer.acked) if self.writer else 0,
            "expired_sessions": self.writer.expired if self.writer else 0,
            "lost_writes": lost,
            "config": {"tickTime": TICK_MS, "initLimit": INIT_LIMIT, "syncLimit": SYNC_LIMIT,
                       "members": 3, "attempt_timeout_s": self.args.attempt_timeout,
                       "retry_pause_s": self.args.retry_pause},
            "host": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="zookeeper",
                    help="comma list of corral, zookeeper (default zookeeper)")
    ap.add_argument("--rounds", type=int, default=20, help=f"kills per target (<= {ROUNDS_MAX})")
    ap.add_argument("--attempt-timeout", type=float, default=0.5,
                    help="seconds a connect or a write may take before the writer moves on")
    ap.add_argument("--retry-pause", type=float, default=0.005,
                    help="seconds between failed attempts")
    ap.add_argument("--keep", action="store_true", help="keep the ensembles' directories")
    args = ap.parse_args()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bad = [t for t in targets if t not in ensemble.KINDS]
    if bad or not targets:
        ap.error(f"--targets {args.targets!r}: expected a comma list of {ensemble.KINDS}")
    if not 1 <= args.rounds <= ROUNDS_MAX:
        ap.error(f"--rounds must be in 1..{ROUNDS_MAX}")

    benches = [Bench(t, args) for t in targets]
    failed = False
    results = {}
    try:
        for b in benches:
            b.start()
            print(f"{b.target}: ensemble up in {b.ens.dir}", flush=True)
        for r in range(args.rounds):
            for b in benches:
                window = b.round(r)
                print(f"{b.target} round {r + 1}/{args.rounds}: failover window "
                      f"{window * 1000:.1f} ms", flush=True)
        for b in benches:
            lost = b.finish()
            s = b.summary(lost)
            results[b.target] = s
            # The writer's session (30 s timeout) must survive every failover.
            failed |= lost > 0 or s["expired_sessions"] > 0
            print(f"{b.target}: failover window over {s['rounds']} kills: median "
                  f"{s['median_ms']} ms, p90 {s['p90_ms']} ms, max {s['max_ms']} ms "
                  f"(min {s['min_ms']} ms); {s['acknowledged_writes']} acknowledged writes, "
                  f"{lost} lost; {s['expired_sessions']} session expiries")
        for b in benches:
            print(json.dumps(results[b.target]))
        if "corral" in results and "zookeeper" in results:
            c, z = results["corral"], results["zookeeper"]
            ratio = {
                "bench": "failover-ratio",
                "median_corral_over_zookeeper": round(c["median_ms"] / z["median_ms"], 3),
                "p90_corral_over_zookeeper": round(c["p90_ms"] / z["p90_ms"], 3),
            }
            print(f"corral/zookeeper: median x{ratio['median_corral_over_zookeeper']}, "
                  f"p90 x{ratio['p90_corral_over_zookeeper']}")
            print(json.dumps(ratio))
    except HarnessError as e:
        print(f"failover bench failed: {e}", file=sys.stderr)
        failed = True
        args.keep = True
    finally:
        for b in benches:
            b.close()
            if not args.keep:
                b.ens.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
