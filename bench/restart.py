#!/usr/bin/env python3
"""Restart benchmark: how long corral and Apache ZooKeeper 3.8 take to serve again after a
restart on a data directory holding N znodes, and how much memory they hold then.

Setup, once per target (each in its own fresh directory under --work-dir, with its own
zoo.cfg, dataDir and log file; standalone, 127.0.0.1 only, default snapCount, fsync on):

    1. start the server and wait until a session can be created;
    2. create `/m`, then N znodes `/m/n00000000` .. `/m/n{N-1:08d}` with 10 bytes of data
       each (world:anyone ALL, persistent) from ONE session, pipelined: a sender thread
       writes pre-encoded create requests as fast as the server reads them (TCP
       backpressure is the only window) while this thread reads and checks every reply.
       Both servers are loaded exactly the same way, through the client wire protocol;
    3. close the session.

Then rounds alternate between the targets (A B A B ...). One round of one target:

    1. stop the running server with SIGTERM and wait for it to exit (SIGKILL after
       --stop-timeout seconds, reported);
    2. t0 = time.monotonic() immediately before spawning the server again on the same
       dataDir and port;
    3. t1 = time.monotonic() when the reply to getData of the LAST node created arrives,
       with OK and the expected 10 bytes. A probe is: open a TCP connection, create a
       session, send the getData. A new probe starts every --probe-interval seconds on a
       new connection without waiting for the earlier ones, and the first OK ends the
       wait: a refused connection, a closed one or a refused session (ZooKeeper accepts
       connections before it has loaded its data) mean "not ready yet", and a connection
       the server accepted but never answers (ZooKeeper 3.8 can do that with one that
       arrives while it starts) does not hold the measurement up;
    4. ready = t1 - t0; RSS = VmRSS of the server process read from /proc right after t1,
       and peak = its VmHWM (the high-water mark of resident memory since the spawn).

The ready time therefore covers process start (the JVM's included), loading the newest
snapshot, replaying the txn log after it, whatever else the server does before it serves
(ZooKeeper writes a snapshot synchronously at start-up), and one session + one read. The
first round after loading replays the log tail written since the last snapshot; later
rounds find the snapshot written at the previous start-up and replay almost nothing (each
round adds a createSession and a closeSession txn). Rounds are reported one by one; the
summary is the median over all rounds, and the ratio is corral's median / ZooKeeper's.

ZooKeeper runs as the Debian package's jar (3.8.0) with its defaults (G1 GC) and -Xmx2g:
    java -Xmx2g -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
         org.apache.zookeeper.server.ZooKeeperServerMain zoo.cfg
plus -D properties that send its log to a file and disable the admin server.
corral runs as `$CORRAL_BIN server --config zoo.cfg` (default target/release/corral).
With --corral-baseline BIN a second corral binary (say, the build before a change) runs
as a third target in the same alternation, so before and after see the same machine load.

Every server this script starts is stopped by PID (also on error, in a finally), and dies
with this process (PR_SET_PDEATHSIG). The work directory is removed at the end unless
--keep is given.

Output: one human line per round, a summary, and one JSON line starting with
`{"bench": "restart"`.

Run:  CORRAL_BIN=target/release/corral .venv/bin/python bench/restart.py
      CORRAL_BIN=target/release/corral .venv/bin/python bench/restart.py \
          --corral-baseline /tmp/corral-before
      .venv/bin/python bench/restart.py --targets corral --znodes 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import zkwire  # noqa: E402
from harness import _set_pdeathsig, free_port  # noqa: E402

HOST = "127.0.0.1"
DATA_BYTES = 10
PARENT = "/m"
ZK_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
ZK_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
START_TIMEOUT_S = 300.0
# Creates encoded per sendall() call by the loader's sender thread.
SEND_BATCH = 2000
# Readiness probes left open at once (the oldest is dropped beyond this).
PROBES_OPEN_MAX = 200


def node_path(i: int) -> str:
    return f"{PARENT}/n{i:08d}"


def node_data(i: int) -> bytes:
    return f"{i:010d}".encode()[-DATA_BYTES:]


def proc_status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Target:
    """One standalone server (corral or zookeeper) with its own directory and port."""

    def __init__(self, kind: str, work: Path, corral_bin: str | None = None) -> None:
        self.kind = kind
        self.corral_bin = corral_bin
        self.dir = work / kind
        self.dir.mkdir(parents=True)
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir()
        self.port = free_port()
        self.log_path = self.dir / "server.log"
        self.cfg_path = self.dir / "zoo.cfg"
        self.cfg_path.write_text(
            "tickTime=2000\n"
            f"dataDir={self.data_dir}\n"
            f"clientPort={self.port}\n"
            f"clientPortAddress={HOST}\n"
            "4lw.commands.whitelist=*\n"
            "admin.enableServer=false\n"
        )
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if self.kind.startswith("corral"):
            exe = self.corral_bin or os.environ.get("CORRAL_BIN") or \
                str(REPO / "target" / "release" / "corral")
            return [exe, "server", "--config", str(self.cfg_path)]
        return [
            "java", "-Xmx2g",
            f"-Dorg.slf4j.simpleLogger.logFile={self.log_path}.zk",
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.4lw.commands.whitelist=*",
            "-cp", ZK_CLASSPATH, ZK_MAIN, str(self.cfg_path),
        ]

    def spawn(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== restart.py: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.dir, preexec_fn=_set_pdeathsig,
            )

    def stop(self, timeout: float) -> tuple[float, bool]:
        """SIGTERM by PID and wait; SIGKILL after `timeout`. Returns (seconds, killed)."""
        p = self.proc
        if p is None or p.poll() is not None:
            return 0.0, False
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
            return time.monotonic() - t0, False
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=30)
            return time.monotonic() - t0, True

    def kill_quietly(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-30:]
            raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}; log "
                               f"{self.log_path}:\n" + "\n".join(tail))


async def _probe(port: int, path: str, expect: bytes, kind: str) -> float | None:
    """One probe: connect, create a session, getData `path`. Returns time.monotonic() of
    the reply when it answered OK with `expect` (then closes the session); None when the
    server is not serving yet (refused, closed, session refused)."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return None
    try:
        req = zkwire.connect_request(timeout_ms=30000)
        writer.write(struct.pack(">i", len(req)) + req)
        (n,) = struct.unpack(">i", await reader.readexactly(4))
        resp = await reader.readexactly(n)
        _proto, timeout_ms = struct.unpack_from(">ii", resp)
        if timeout_ms <= 0:
            return None
        p = path.encode()
        body = struct.pack(">iii", 1, zkwire.Op.GET_DATA, len(p)) + p + b"\x00"
        writer.write(struct.pack(">i", len(body)) + body)
        (n,) = struct.unpack(">i", await reader.readexactly(4))
        reply = await reader.readexactly(n)
        answered = time.monotonic()
        xid, _zxid, err = struct.unpack_from(">iqi", reply)
        if xid != 1 or err != 0:
            raise RuntimeError(f"{kind}: getData {path} answered xid {xid} error {err}")
        (dlen,) = struct.unpack_from(">i", reply, 16)
        data = reply[20:20 + dlen]
        if data != expect:
            raise RuntimeError(f"{kind}: getData {path} answered {data!r}, "
                               f"expected {expect!r}")
        close = struct.pack(">ii", 2, zkwire.Op.CLOSE_SESSION)
        writer.write(struct.pack(">i", len(close)) + close)
        try:
            await asyncio.wait_for(reader.readexactly(4), 5.0)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError):
            pass
        return answered
    except (asyncio.IncompleteReadError, OSError):
        return None
    finally:
        writer.close()


async def _wait_serving(target: "Target", path: str, expect: bytes, interval: float,
                        timeout: float) -> float:
    """Starts a probe every `interval` seconds, each on its own connection, without
    waiting for the previous ones (so a connection the server accepted but never answers,
    as ZooKeeper can do for one that arrives while it starts, does not hold the
    measurement up); returns time.monotonic() when the first probe succeeds."""
    deadline = time.monotonic() + timeout
    pending: list[asyncio.Task] = []
    try:
        while True:
            target.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target.kind} not serving after {timeout}s; log "
                                   f"{target.log_path}")
            pending.append(asyncio.create_task(_probe(target.port, path, expect,
                                                      target.kind)))
            while len(pending) > PROBES_OPEN_MAX:
                pending.pop(0).cancel()
            done, _ = await asyncio.wait(pending, timeout=interval,
                                         return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                pending.remove(t)
                answered = t.result()  # re-raises a wrong answer
                if answered is not None:
                    return answered
    finally:
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def wait_serving(target: "Target", path: str, expect: bytes, interval: float,
                 timeout: float) -> float:
    return asyncio.run(_wait_serving(target, path, expect, interval, timeout))


# Every create request of the load: header {xid, op=CREATE}, path, data, ACL
# [world:anyone ALL], flags 0 (persistent).
_ACL_OPEN = struct.pack(">ii", 1, zkwire.Perms.ALL) + \
    struct.pack(">i", 5) + b"world" + struct.pack(">i", 6) + b"anyone"


def create_frame(xid: int, path: str, data: bytes) -> bytes:
    p = path.encode()
    body = (struct.pack(">iii", xid, zkwire.Op.CREATE, len(p)) + p
            + struct.pack(">i", len(data)) + data + _ACL_OPEN + b"\x00\x00\x00\x00")
    return struct.pack(">i", len(body)) + body


def load(target: Target, n: int) -> float:
    """Creates /m and n children through one pipelined session; returns the seconds."""
    conn = zkwire.connect(HOST, target.port, timeout_ms=30000, timeout=60.0)
    t0 = time.monotonic()
    try:
        r = conn.create(PARENT, b"")
        if not r.ok and r.err != zkwire.Err.NODEEXISTS:
            raise RuntimeError(f"{target.kind}: create {PARENT} failed: {r.err}")
        first_xid = 1_000_000  # above the xids zkwire used for /m
        failure: list[BaseException] = []

        def sender() -> None:
            try:
                for start in range(0, n, SEND_BATCH):
                    chunk = b"".join(create_frame(first_xid + i, node_path(i), node_data(i))
                                     for i in range(start, min(n, start + SEND_BATCH)))
                    conn.sock.sendall(chunk)
            except BaseException as e:  # reported by the reader below
                failure.append(e)

        t = threading.Thread(target=sender, name="loader-send", daemon=True)
        t.start()
        buf = bytearray()
        got = 0
        last_report = time.monotonic()
        conn.sock.settimeout(120.0)
        while got < n:
            chunk = conn.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"{target.kind} closed the connection after {got} "
                                   f"replies; {failure}")
            buf += chunk
            at = 0
            while len(buf) - at >= 4:
                (flen,) = struct.unpack_from(">i", buf, at)
                if len(buf) - at < 4 + flen:
                    break
                xid, _zxid, err = struct.unpack_from(">iqi", buf, at + 4)
                at += 4 + flen
                if xid == -1:
                    continue  # a notification (none expected)
                if xid != first_xid + got:
                    raise RuntimeError(f"{target.kind}: reply xid {xid}, expected "
                                       f"{first_xid + got}")
                if err != 0:
                    raise RuntimeError(f"{target.kind}: create {node_path(got)} failed "
                                       f"with error {err}")
                got += 1
            del buf[:at]
            if time.monotonic() - last_report > 10.0:
                last_report = time.monotonic()
                print(f"  {target.kind}: {got} created", flush=True)
        t.join()
        if failure:
            raise RuntimeError(f"{target.kind}: sending failed: {failure[0]}")
        conn.sock.settimeout(60.0)
        conn.close_session()
        return time.monotonic() - t0
    finally:
        conn.close()


def restart_round(target: Target, n: int, args: argparse.Namespace) -> dict:
    stop_s, killed = target.stop(args.stop_timeout)
    last = n - 1
    t0 = time.monotonic()
    target.spawn()
    t1 = wait_serving(target, node_path(last), node_data(last), args.probe_interval,
                      START_TIMEOUT_S)
    pid = target.proc.pid
    rss = proc_status_kb(pid, "VmRSS")
    hwm = proc_status_kb(pid, "VmHWM")
    return {"ready_s": t1 - t0, "rss_mb": (rss or 0) / 1024.0, "peak_mb": (hwm or 0) / 1024.0,
            "stop_s": stop_s, "stop_killed": killed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="corral,zookeeper",
                    help="comma-separated: corral, zookeeper (default both)")
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5, help="restarts per target")
    ap.add_argument("--probe-interval", type=float, default=0.005,
                    help="seconds between readiness probes")
    ap.add_argument("--stop-timeout", type=float, default=60.0,
                    help="seconds to wait after SIGTERM before SIGKILL")
    ap.add_argument("--work-dir", default=str(REPO / "bench" / ".work"),
                    help="parent of this run's directory (on the disk being measured)")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--corral-baseline", metavar="BIN",
                    help="also run the corral binary BIN as target `corral-baseline` "
                         "(loaded and restarted like the others, in the same alternation)")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.targets.split(",") if k.strip()]
    for k in kinds:
        if k not in ("corral", "zookeeper"):
            ap.error(f"unknown target {k!r}")
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="restart-", dir=args.work_dir))
    if args.corral_baseline:
        kinds.append("corral-baseline")
    targets = [Target(k, work, args.corral_baseline if k == "corral-baseline" else None)
               for k in kinds]
    rounds: dict[str, list[dict]] = {k: [] for k in kinds}
    loads: dict[str, float] = {}
    try:
        for t in targets:
            t.spawn()
            wait_serving_any(t)
            print(f"{t.kind}: loading {args.znodes} znodes (pid {t.proc.pid}, dir {t.dir})",
                  flush=True)
            loads[t.kind] = load(t, args.znodes)
            print(f"{t.kind}: loaded in {loads[t.kind]:.1f} s, RSS "
                  f"{(proc_status_kb(t.proc.pid, 'VmRSS') or 0) / 1024:.0f} MB", flush=True)
        for r in range(args.rounds):
            for t in targets:
                res = restart_round(t, args.znodes, args)
                rounds[t.kind].append(res)
                print(f"round {r + 1} {t.kind:9s}: ready {res['ready_s']:.3f} s, RSS "
                      f"{res['rss_mb']:.0f} MB (peak {res['peak_mb']:.0f} MB), stopped in "
                      f"{res['stop_s']:.2f} s{' (SIGKILL)' if res['stop_killed'] else ''}",
                      flush=True)
    finally:
        for t in targets:
            try:
                t.stop(args.stop_timeout)
            finally:
                t.kill_quietly()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    summary: dict[str, dict] = {}
    for k in kinds:
        rs = rounds[k]
        summary[k] = {
            "ready_median_s": statistics.median(x["ready_s"] for x in rs),
            "ready_first_s": rs[0]["ready_s"],
            "ready_min_s": min(x["ready_s"] for x in rs),
            "ready_max_s": max(x["ready_s"] for x in rs),
            "rss_median_mb": statistics.median(x["rss_mb"] for x in rs),
            "peak_median_mb": statistics.median(x["peak_mb"] for x in rs),
            "load_s": loads[k],
            "rounds": rs,
        }
        s = summary[k]
        print(f"{k:9s}: ready median {s['ready_median_s']:.3f} s (first {s['ready_first_s']:.3f},"
              f" min {s['ready_min_s']:.3f}, max {s['ready_max_s']:.3f}), RSS median "
              f"{s['rss_median_mb']:.0f} MB, peak {s['peak_median_mb']:.0f} MB")
    out = {"bench": "restart", "znodes": args.znodes, "rounds": args.rounds,
           "targets": summary}
    if "corral" in summary and "zookeeper" in summary:
        ratio = summary["corral"]["ready_median_s"] / summary["zookeeper"]["ready_median_s"]
        rss_ratio = summary["corral"]["rss_median_mb"] / summary["zookeeper"]["rss_median_mb"]
        out["ratio_ready"] = ratio
        out["ratio_rss"] = rss_ratio
        print(f"corral / zookeeper: ready {ratio:.2f}x, RSS {rss_ratio:.2f}x")
    if "corral-baseline" in summary and "zookeeper" in summary:
        ratio = (summary["corral-baseline"]["ready_median_s"]
                 / summary["zookeeper"]["ready_median_s"])
        out["ratio_ready_baseline"] = ratio
        print(f"corral-baseline / zookeeper: ready {ratio:.2f}x")
    print(json.dumps(out))
    return 0


def wait_serving_any(t: Target) -> None:
    """Before loading: wait until a session can be created (the tree is still empty)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        t.check_alive()
        try:
            conn = zkwire.connect(HOST, t.port, timeout=5.0)
            try:
                conn.close_session()
            finally:
                conn.close()
            return
        except (zkwire.ConnectionClosed, zkwire.FrameTimeout, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{t.kind} did not start; log {t.log_path}")
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
