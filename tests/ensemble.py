"""Replicated ensembles of real servers (corral or Apache ZooKeeper 3.8) for tests and benchmarks.

An `Ensemble` starts N members on 127.0.0.1. Each member has its own directory under
tests/.work/ with `zoo.cfg`, `data/myid`, `server.log`, and its own client, quorum and election
ports. ZooKeeper members are `QuorumPeerMain` launched directly with java (no zkServer.sh), the
same way tests/harness.py launches the standalone server; corral members are
`corral server --config <dir>/zoo.cfg` (binary: $CORRAL_BIN or target/release/corral).

Fault injection between members (`proxy=True`, the default): member i's zoo.cfg lists its own
real quorum/election ports in its `server.i` line, and for every other member j a port of a
*link proxy* dedicated to the ordered pair (i -> j) that forwards to j's real port. So every
connection one member opens to another goes through a link the test can cut:

  partition(i)            cut every link to and from member i (both quorum and election)
  partition_sets(a, b)    cut every link between two groups of members
  heal()                  restore every link (connections cut while blackholed are closed,
                          since bytes were lost)

A cut link either drops (close existing connections, accept-and-close new ones; mode "drop",
the default) or blackholes (sockets stay open, bytes are discarded; mode "blackhole").
ZooKeeper's election handshake carries the connecting member's own election address, and a
member with a higher id that receives a connection from a lower id closes it and connects back
to that advertised address; the election links therefore rewrite the address in that first
message (protocol versions -65536/-65535: long version, long sid, int length, "host:port")
to the proxy port of the reverse link, so the callback also goes through a proxy.

Lifecycle of a member, all by PID (never by name): kill(i) SIGKILL, stop(i) SIGTERM (then
SIGKILL after a grace period), pause(i)/resume(i) SIGSTOP/SIGCONT, restart(i). Every member
is also in tests/harness.py's registry (stopped at interpreter exit) and gets PR_SET_PDEATHSIG.

Observation: mode(i) parses `srvr` (`leader`/`follower`/`observer`, None while it does not
serve); leader() waits (bounded) for exactly one member saying leader; state(i) walks member
i's tree with a raw-protocol client (tests/zkwire.py) and returns {path: (data, czxid, mzxid,
version, cversion, ephemeralOwner)} for every node outside /zookeeper, which is how tests
compare members (both servers answer it identically; it needs the member to serve).

`Writer` is a background thread that creates /prefix/w-<n> znodes one at a time through raw
connections, reconnecting to any member on any error, and records every acknowledged write;
tests use it to count acknowledged writes across failures, the failover benchmark to time them.

Every wait here is bounded in count and time.
"""

from __future__ import annotations

import errno
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable

import harness
import zkwire
from harness import HOST, HarnessError

ZK_QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
START_TIMEOUT_S = {"corral": 30.0, "zookeeper": 60.0}
STOP_GRACE_S = 5.0
KINDS = ("corral", "zookeeper")

# Quorum protocol versions that carry the connecting member's election address
# (QuorumCnxManager.PROTOCOL_VERSION_V1 / _V2).
ELECTION_PROTOCOL_VERSIONS = (-65536, -65535)
ELECTION_ADDR_BYTES_MAX = 4096
PROXY_BUFFER_BYTES_MAX = 4 * 1024 * 1024
PROXY_POLL_S = 0.05

NOT_SERVING = "This ZooKeeper instance is not currently serving requests"


# ---------------------------------------------------------------------------
# link proxy


class _Pair:
    """One proxied connection: `a` accepted from the source member, `b` to the destination."""

    def __init__(self, link: "_Link", a: socket.socket, b: socket.socket | None) -> None:
        self.link = link
        self.a, self.b = a, b
        self.out = {a: bytearray(), b: bytearray()} if b else {a: bytearray()}
        self.rewrite_pending = link.rewrite_to is not None and b is not None
        self.head = bytearray()  # first bytes from `a` while the handshake is parsed
        self.closed = False

    def peer(self, s: socket.socket) -> socket.socket | None:
        return self.b if s is self.a else self.a


class _Link:
    def __init__(self, name: str, target: tuple[str, int]) -> None:
        self.name = name
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.state = "open"  # open | drop | blackhole
        self.reset = False  # close every connection at the next loop turn
        self.rewrite_to: bytes | None = None  # election address to put in the handshake
        self.pairs: list[_Pair] = []
        self.accepted = 0


class LinkProxy:
    """Many TCP forwarders served by one selector thread, with non-blocking writes (a
    SIGSTOPped member that stops reading cannot stall the other links)."""

    def __init__(self) -> None:
        self.links: dict[str, _Link] = {}
        self._sel = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None

    def add(self, name: str, target: tuple[str, int]) -> _Link:
        assert self._thread is None, "links are added before start()"
        link = _Link(name, target)
        self.links[name] = link
        self._sel.register(link.listener, selectors.EVENT_READ, ("listen", link))
        return link

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="link-proxy", daemon=True)
        self._thread.start()

    def set_state(self, name: str, state: str) -> None:
        assert state in ("open", "drop", "blackhole"), state
        with self._lock:
            link = self.links[name]
            if link.state != state:
                # drop: close now; blackhole -> open: bytes were lost, close too.
                link.reset = state == "drop" or link.state == "blackhole"
                link.state = state

    def close(self) -> None:
        self._closed = True
        if self._thread:
            self._thread.join(timeout=5)
        for link in self.links.values():
            for p in list(link.pairs):
                self._close_pair(p)
            try:
                self._sel.unregister(link.listener)
            except (KeyError, ValueError):
                pass
            link.listener.close()
        self._sel.close()

    # -- loop (runs in the proxy thread only) -------------------------------

    def _loop(self) -> None:
        while not self._closed:
            with self._lock:
                for link in self.links.values():
                    if link.reset:
                        link.reset = False
                        for p in list(link.pairs):
                            self._close_pair(p)
            try:
                events = self._sel.select(PROXY_POLL_S)
            except OSError:
                continue
            for key, mask in events:
                what, obj = key.data
                try:
                    if what == "listen":
                        self._accept(obj)
                    else:
                        self._service(obj, key.fileobj, mask)
                except OSError:
                    if what != "listen":
                        self._close_pair(obj)

    def _accept(self, link: _Link) -> None:
        for _ in range(64):
            try:
                a, _ = link.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            link.accepted += 1
            if link.state == "drop":
                a.close()
                continue
            a.setblocking(False)
            a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            b = None
            if link.state == "open":
                try:
                    b = socket.create_connection(link.target, timeout=1.0)
                except OSError:
                    a.close()
                    continue
                b.setblocking(False)
                b.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(link, a, b)
            link.pairs.append(pair)
            self._sel.register(a, selectors.EVENT_READ, ("pair", pair))
            if b is not None:
                self._sel.register(b, selectors.EVENT_READ, ("pair", pair))

    def _service(self, pair: _Pair, s: socket.socket, mask: int) -> None:
        if pair.closed:
            return
        if mask & selectors.EVENT_WRITE:
            buf = pair.out[s]
            if buf:
                n = s.send(buf)
                del buf[:n]
            self._update_interest(pair)
        if mask & selectors.EVENT_READ:
            data = s.recv(65536)
            if not data:
                self._close_pair(pair)
                return
            if pair.link.state == "blackhole" or pair.b is None:
                return  # lost in the partition
            if s is pair.a and pair.rewrite_pending:
                pair.head += data
                data = self._rewrite(pair)
                if data is None:
                    return  # need more bytes
            peer = pair.peer(s)
            pair.out[peer] += data
            self._flush(pair, peer)

    def _flush(self, pair: _Pair, s: socket.socket) -> None:
        buf = pair.out[s]
        if buf:
            try:
                n = s.send(buf)
                del buf[:n]
            except BlockingIOError:
                pass
        self._update_interest(pair)

    def _update_interest(self, pair: _Pair) -> None:
        if pair.closed:
            return
        socks = [pair.a] + ([pair.b] if pair.b is not None else [])
        for s in socks:
            peer = pair.peer(s)
            ev = 0
            # read from s unless its peer's outgoing buffer is full (backpressure)
            if peer is None or len(pair.out[peer]) < PROXY_BUFFER_BYTES_MAX:
                ev |= selectors.EVENT_READ
            if pair.out[s]:
                ev |= selectors.EVENT_WRITE
            if ev == 0:
                ev = selectors.EVENT_WRITE if pair.out[s] else selectors.EVENT_READ
            self._sel.modify(s, ev, ("pair", pair))

    def _rewrite(self, pair: _Pair) -> bytes | None:
        """Rewrites the election handshake's address; None until the whole head arrived."""
        head = pair.head
        if len(head) < 8:
            return None
        (version,) = struct.unpack(">q", head[:8])
        if version not in ELECTION_PROTOCOL_VERSIONS:
            pair.rewrite_pending = False
            out, pair.head = bytes(head), bytearray()
            return out
        if len(head) < 20:
            return None
        (n,) = struct.unpack(">i", head[16:20])
        if n < 0 or n > ELECTION_ADDR_BYTES_MAX:
            pair.rewrite_pending = False
            out, pair.head = bytes(head), bytearray()
            return out
        if len(head) < 20 + n:
            return None
        addr = pair.link.rewrite_to or head[20 : 20 + n]
        out = bytes(head[:16]) + struct.pack(">i", len(addr)) + addr + bytes(head[20 + n :])
        pair.rewrite_pending = False
        pair.head = bytearray()
        return out

    def _close_pair(self, pair: _Pair) -> None:
        if pair.closed:
            return
        pair.closed = True
        for s in (pair.a, pair.b):
            if s is None:
                continue
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            try:
                s.close()
            except OSError:
                pass
        if pair in pair.link.pairs:
            pair.link.pairs.remove(pair)


# ---------------------------------------------------------------------------
# members


def _distinct_free_ports(n: int, taken: set[int]) -> list[int]:
    out: list[int] = []
    for _ in range(100 * n + 100):
        if len(out) == n:
            return out
        p = harness.free_port()
        if p not in taken and p not in out:
            out.append(p)
    raise HarnessError(f"could not find {n} distinct free ports")


class Member:
    """One ensemble member (attributes named like harness.Server's, so tests/conftest.py's
    failure hook can show its log)."""

    def __init__(self, ens: "Ensemble", index: int, observer: bool, ports: tuple[int, int, int],
                 dir_: Path) -> None:
        self.ens = ens
        self.index = index
        self.myid = index + 1
        self.observer = observer
        self.kind = ens.target
        self.host = HOST
        self.port, self.quorum_port, self.election_port = ports
        self.dir = dir_
        self.data_dir = dir_ / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "myid").write_text(f"{self.myid}\n")
        self.cfg_path = dir_ / "zoo.cfg"
        self.log_path = dir_ / "server.log"
        self.proc: subprocess.Popen | None = None
        self.paused = False

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __repr__(self) -> str:
        role = "observer" if self.observer else "voter"
        return f"<member {self.myid} ({role}) {self.connect_string} pid={self.pid}>"

    def is_running(self) -> bool:
        return bool(self.proc) and self.proc.poll() is None

    def command(self) -> list[str]:
        return harness.server_command(self.kind, self.dir, self.cfg_path, ZK_QUORUM_MAIN)

    def launch(self) -> None:
        if self.is_running():
            raise HarnessError(f"{self} is already running")
        self.proc = harness.spawn(self, self.command(), self.log_path, self.dir, "ensemble")
        self.paused = False

    def signal(self, sig: int) -> None:
        harness.signal_process(self.proc, sig)

    def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        if self.paused and self.is_running():
            # A stopped process cannot act on SIGTERM.
            self.signal(signal.SIGCONT)
        self.paused = False
        return harness.stop_process(self.proc, grace)

    def kill(self) -> int | None:
        self.paused = False
        return harness.kill_process(self.proc)

    def four_letter(self, cmd: str, timeout: float = 2.0) -> str:
        return zkwire.four_letter(self.host, self.port, cmd, timeout)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Ensemble:
    """N members (voters first, then observers) of one target, on 127.0.0.1."""

    def __init__(self, target: str, voters: int = 3, observers: int = 0, tick_ms: int = 100,
                 init_limit: int = 10, sync_limit: int = 5, extra_cfg: dict | None = None,
                 proxy: bool = True, name: str | None = None) -> None:
        if target not in KINDS:
            raise HarnessError(f"unknown target {target!r} (expected one of {KINDS})")
        if voters < 1 or observers < 0:
            raise HarnessError(f"bad ensemble shape: {voters} voters, {observers} observers")
        harness.check_available(target)
        self.target = target
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.extra_cfg = dict(extra_cfg or {})
        n = voters + observers
        self.n = n
        harness.WORK_DIR.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name or 'ensemble'}-{target}-",
                                         dir=harness.WORK_DIR))
        # Proxy listeners are bound first (port 0), so the ports probed for the members
        # below cannot be handed to a proxy afterwards.
        self.proxy: LinkProxy | None = None
        # (src, dst) -> (quorum link name, election link name)
        self._links: dict[tuple[int, int], tuple[str, str]] = {}
        if proxy and n > 1:
            self.proxy = LinkProxy()
            for i in range(n):
                for j in range(n):
                    if i != j:
                        q, e = f"q{i + 1}>{j + 1}", f"e{i + 1}>{j + 1}"
                        self.proxy.add(q, (HOST, 0))
                        self.proxy.add(e, (HOST, 0))
                        self._links[(i, j)] = (q, e)
            for (i, j), (_, e) in self._links.items():
                # member i's handshake to j advertises the address j must call back on:
                # the link j -> i.
                back = self.proxy.links[self._links[(j, i)][1]]
                self.proxy.links[e].rewrite_to = f"{HOST}:{back.port}".encode()
        ports = self._pick_ports()
        self.members = [
            Member(self, i, i >= voters, ports[i], self.dir / f"m{i + 1}") for i in range(n)
        ]
        self._apply_ports()
        if self.proxy:
            self.proxy.start()

    def _pick_ports(self) -> list[tuple[int, int, int]]:
        taken = {link.port for link in self.proxy.links.values()} if self.proxy else set()
        p = _distinct_free_ports(3 * self.n, taken)
        return [(p[3 * i], p[3 * i + 1], p[3 * i + 2]) for i in range(self.n)]

    def _apply_ports(self) -> None:
        """Points the links at the members' real ports and writes every zoo.cfg."""
        if self.proxy:
            with self.proxy._lock:
                for (_, j), (q, e) in self._links.items():
                    self.proxy.links[q].target = (HOST, self.members[j].quorum_port)
                    self.proxy.links[e].target = (HOST, self.members[j].election_port)
        for m in self.members:
            m.cfg_path.write_text(self._cfg_text(m.index))

    # -- config ---------------------------------------------------------------

    def server_address(self, viewer: int, j: int) -> tuple[int, int]:
        """(quorum port, election port) member `viewer` uses to reach member j."""
        if viewer == j or self.proxy is None:
            return self.members[j].quorum_port, self.members[j].election_port
        q, e = self._links[(viewer, j)]
        return self.proxy.links[q].port, self.proxy.links[e].port

    def cfg(self, i: int) -> dict:
        m = self.members[i]
        cfg = {
            "tickTime": str(self.tick_ms),
            "initLimit": str(self.init_limit),
            "syncLimit": str(self.sync_limit),
            "dataDir": str(m.data_dir),
            "clientPort": str(m.port),
            "clientPortAddress": HOST,
            "maxSessionTimeout": "60000",
            "maxClientCnxns": "0",
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
            "extendedTypesEnabled": "true",
            "standaloneEnabled": "false",
            "reconfigEnabled": "false",
        }
        if m.observer:
            cfg["peerType"] = "observer"
        cfg.update({k: str(v) for k, v in self.extra_cfg.items()})
        for j, mj in enumerate(self.members):
            q, e = self.server_address(i, j)
            cfg[f"server.{mj.myid}"] = f"{HOST}:{q}:{e}" + (":observer" if mj.observer else "")
        return cfg

    def _cfg_text(self, i: int) -> str:
        return "".join(f"{k}={v}\n" for k, v in self.cfg(i).items())

    # -- lifecycle ------------------------------------------------------------

    def start(self, timeout: float | None = None) -> "Ensemble":
        """Launches every member and waits until all serve. A port taken between probing and
        binding (another process on the machine) makes that member exit; then every member
        is stopped, new ports are picked and the ensemble is launched again (bounded)."""
        for attempt in range(harness.START_ATTEMPTS_MAX):
            for m in self.members:
                m.launch()
            try:
                self.wait_serving(None, timeout)
                return self
            except HarnessError:
                clash = any(not m.is_running() and "Address already in use" in m.log_tail(200)
                            for m in self.members)
                if not clash or attempt == harness.START_ATTEMPTS_MAX - 1:
                    raise
            for m in self.members:
                m.stop(grace=2.0)
            for m, ports in zip(self.members, self._pick_ports()):
                m.port, m.quorum_port, m.election_port = ports
            self._apply_ports()
        raise HarnessError("unreachable")

    def member(self, i: int) -> Member:
        return self.members[i]

    @property
    def voters(self) -> list[int]:
        return [m.index for m in self.members if not m.observer]

    def kill(self, i: int) -> None:
        """SIGKILL member i (a crash)."""
        self.members[i].kill()

    def stop(self, i: int, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM member i (SIGKILL after `grace`)."""
        self.members[i].stop(grace)

    def pause(self, i: int) -> None:
        m = self.members[i]
        m.signal(signal.SIGSTOP)
        m.paused = True

    def resume(self, i: int) -> None:
        m = self.members[i]
        m.signal(signal.SIGCONT)
        m.paused = False

    def restart(self, i: int, wait: bool = True, timeout: float | None = None) -> None:
        """Stops member i if it runs, starts it again on the same ports and data, and (by
        default) waits until it serves."""
        m = self.members[i]
        if m.is_running():
            m.stop()
        self._wait_port_free(m.port)
        m.launch()
        if wait:
            self.wait_serving([i], timeout)

    def _wait_port_free(self, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((HOST, port))
                    return
                except OSError as e:
                    if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                        return
            time.sleep(0.1)

    def close(self) -> None:
        """Stops every member (by PID) and the proxy. Idempotent."""
        for m in self.members:
            try:
                m.stop(grace=2.0)
            except Exception:
                m.kill()
        if self.proxy:
            self.proxy.close()
            self.proxy = None

    def cleanup(self) -> None:
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Ensemble":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- observation ----------------------------------------------------------

    def srvr(self, i: int) -> str | None:
        try:
            return self.members[i].four_letter("srvr", timeout=1.0)
        except OSError:
            return None

    def mode(self, i: int) -> str | None:
        """`leader`, `follower`, `observer` (or `standalone`) from srvr; None while the
        member does not serve (no answer, or "not currently serving requests")."""
        if self.members[i].paused:
            return None
        out = self.srvr(i)
        if not out:
            return None
        for line in out.splitlines():
            if line.startswith("Mode: "):
                return line[len("Mode: "):].strip()
        return None

    def zxid(self, i: int) -> int | None:
        """The member's last processed zxid (srvr's `Zxid:`), None while not serving."""
        out = self.srvr(i) or ""
        for line in out.splitlines():
            if line.startswith("Zxid: "):
                return int(line.split()[1], 16)
        return None

    def modes(self) -> dict[int, str | None]:
        return {i: self.mode(i) for i in range(self.n)}

    def _check_alive(self, members: Iterable[int]) -> None:
        for i in members:
            m = self.members[i]
            if m.proc and m.proc.poll() is not None:
                raise HarnessError(
                    f"member {m.myid} exited with code {m.proc.returncode}; log {m.log_path}:\n"
                    f"{m.log_tail(40)}")

    def wait_serving(self, members: Iterable[int] | None = None,
                     timeout: float | None = None) -> None:
        """Waits until each of `members` (default: all) reports a mode in srvr."""
        members = list(range(self.n)) if members is None else list(members)
        timeout = START_TIMEOUT_S[self.target] if timeout is None else timeout
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            self._check_alive(members)
            if all(self.mode(i) for i in members):
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise HarnessError(
            f"members {[i + 1 for i in members]} not serving after {timeout}s "
            f"(modes {self.modes()}):\n{self.logs(members, 25)}")

    def wait_not_serving(self, members: Iterable[int], timeout: float = 30.0) -> None:
        """Waits until each of `members` stops serving (srvr has no mode)."""
        members = list(members)
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            if all(self.mode(i) is None for i in members):
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise HarnessError(
            f"members {[i + 1 for i in members]} still serving after {timeout}s "
            f"(modes {self.modes()})")

    def leader(self, timeout: float = 30.0, among: Iterable[int] | None = None) -> int:
        """The index of the one member (of `among`, default all) whose srvr says leader;
        waits up to `timeout` for there to be exactly one."""
        among = list(range(self.n)) if among is None else list(among)
        deadline = time.monotonic() + timeout
        seen: dict[int, str | None] = {}
        for _ in range(100_000):
            seen = {i: self.mode(i) for i in among}
            leaders = [i for i, m in seen.items() if m == "leader"]
            if len(leaders) == 1:
                return leaders[0]
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise HarnessError(f"no single leader among {[i + 1 for i in among]} after {timeout}s "
                           f"(modes {seen})")

    def followers(self) -> list[int]:
        return [i for i in range(self.n) if self.mode(i) == "follower"]

    def connect_string(self, members: Iterable[int] | None = None) -> str:
        members = range(self.n) if members is None else members
        return ",".join(self.members[i].connect_string for i in members)

    def client(self, i: int, **kw) -> zkwire.Connection:
        """A raw-protocol connection to member i with a new session."""
        m = self.members[i]
        kw.setdefault("timeout", 10.0)
        return zkwire.connect(m.host, m.port, **kw)

    def state(self, i: int, root: str = "/", sync: bool = True,
              timeout: float = 10.0) -> dict[str, tuple]:
        """Member i's tree (outside /zookeeper) as {path: (data, czxid, mzxid, version,
        cversion, ephemeralOwner)}, read by a raw client connected to member i only (after a
        `sync` of `root` when asked)."""
        conn = self.client(i, timeout=timeout)
        try:
            if sync:
                rep = conn.sync(root)
                if rep.err:
                    raise HarnessError(f"sync on member {i + 1}: {zkwire.err_name(rep.err)}")
            out: dict[str, tuple] = {}
            todo = [root]
            for _ in range(1_000_000):
                if not todo:
                    break
                path = todo.pop()
                if path == "/zookeeper" or path.startswith("/zookeeper/"):
                    continue
                rep = conn.get_data(path)
                if rep.err == zkwire.Err.NONODE:
                    continue
                if rep.err:
                    raise HarnessError(f"getData {path} on member {i + 1}: "
                                       f"{zkwire.err_name(rep.err)}")
                data, st = rep.body["data"], rep.body["stat"]
                out[path] = (data, st.czxid, st.mzxid, st.version, st.cversion,
                             st.ephemeralOwner)
                rep = conn.get_children(path)
                if rep.err == zkwire.Err.NONODE:
                    continue
                if rep.err:
                    raise HarnessError(f"getChildren {path} on member {i + 1}: "
                                       f"{zkwire.err_name(rep.err)}")
                for c in rep.body["children"] or []:
                    todo.append(("" if path == "/" else path) + "/" + c)
            return out
        finally:
            try:
                conn.close_session()
            except Exception:
                pass
            conn.close()

    def digest(self, i: int, root: str = "/") -> int:
        """A hash of state(i): equal digests mean equal trees (see `state`)."""
        return hash(tuple(sorted(self.state(i, root).items())))

    def wait_converged(self, members: Iterable[int] | None = None, root: str = "/",
                       timeout: float = 30.0) -> dict[str, tuple]:
        """Waits until every member in `members` (default: all) serves and has the same
        state(); returns it. Raises with the first difference otherwise."""
        members = list(range(self.n)) if members is None else list(members)
        deadline = time.monotonic() + timeout
        last = ""
        for _ in range(10_000):
            try:
                states = [self.state(i, root) for i in members]
                if all(s == states[0] for s in states[1:]):
                    return states[0]
                last = _first_difference(members, states)
            except (OSError, zkwire.ConnectionClosed, zkwire.FrameTimeout, HarnessError) as e:
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        raise HarnessError(f"members {[i + 1 for i in members]} did not converge within "
                           f"{timeout}s: {last}")

    # -- faults ---------------------------------------------------------------

    def _need_proxy(self) -> LinkProxy:
        if self.proxy is None:
            raise HarnessError("this ensemble was started without link proxies (proxy=False)")
        return self.proxy

    def cut(self, a: int, b: int, mode: str = "drop", kinds: str = "qe") -> None:
        """Cuts the links a -> b and b -> a (quorum `q` and/or election `e`)."""
        proxy = self._need_proxy()
        for src, dst in ((a, b), (b, a)):
            q, e = self._links[(src, dst)]
            if "q" in kinds:
                proxy.set_state(q, mode)
            if "e" in kinds:
                proxy.set_state(e, mode)

    def partition_sets(self, side_a: Iterable[int], side_b: Iterable[int],
                       mode: str = "drop") -> None:
        for a in side_a:
            for b in side_b:
                self.cut(a, b, mode)

    def partition(self, i: int, mode: str = "drop") -> None:
        """Cuts member i off from every other member (its client port stays reachable)."""
        self.partition_sets([i], [j for j in range(self.n) if j != i], mode)

    def heal(self, i: int | None = None) -> None:
        """Restores every link (of member i, or all)."""
        proxy = self._need_proxy()
        for (src, dst), names in self._links.items():
            if i is None or i in (src, dst):
                for name in names:
                    proxy.set_state(name, "open")

    # -- logs -----------------------------------------------------------------

    def logs(self, members: Iterable[int] | None = None, lines: int = 40) -> str:
        members = range(self.n) if members is None else members
        return "\n".join(
            f"=== member {self.members[i].myid} ({self.members[i].log_path}):\n"
            f"{self.members[i].log_tail(lines)}" for i in members)


def _first_difference(members: list[int], states: list[dict]) -> str:
    base = states[0]
    for i, s in zip(members[1:], states[1:]):
        if s == base:
            continue
        only_a = sorted(set(base) - set(s))[:5]
        only_b = sorted(set(s) - set(base))[:5]
        differ = sorted(p for p in set(base) & set(s) if base[p] != s[p])[:5]
        return (f"member {members[0] + 1} vs {i + 1}: only in {members[0] + 1}: {only_a} "
                f"({len(set(base) - set(s))}), only in {i + 1}: {only_b}, differ: "
                + ", ".join(f"{p}: {base[p]} != {s[p]}" for p in differ))
    return "equal"


# ---------------------------------------------------------------------------
# a writer that survives failures


class Writer:
    """Creates `<prefix>/w-<n>` (n = 0, 1, ...) one at a time from a background thread with
    raw connections, trying `members` in turn (starting at the first) and reconnecting to the
    next on any error (each attempt bounded by `attempt_timeout`). The session is resumed on
    the next member (session id, password and lastZxidSeen in the handshake) and replaced by
    a new one if it expired. A write that failed is never retried under the same name, so
    `acked` holds exactly the writes the ensemble acknowledged: (path, t_sent, t_acked) with
    time.monotonic() stamps."""

    def __init__(self, ens: Ensemble, prefix: str, members: list[int] | None = None,
                 attempt_timeout: float = 2.0, session_timeout_ms: int = 30000,
                 retry_pause: float = 0.005, max_writes: int = 1_000_000,
                 data: bytes = b"x" * 16) -> None:
        self.ens = ens
        self.prefix = prefix
        self.members = list(range(ens.n)) if members is None else list(members)
        self.attempt_timeout = attempt_timeout
        self.session_timeout_ms = session_timeout_ms
        self.retry_pause = retry_pause
        self.max_writes = max_writes
        self.data = data
        self.acked: list[tuple[str, float, float]] = []
        self.failed = 0  # attempts without an acknowledgement (result unknown or refused)
        self.reconnects = 0
        self.connect_failures = 0  # connects or handshakes refused, closed or timed out
        self.expired = 0  # sessions the ensemble declared expired (a failover must cause none)
        self.errors: list[str] = []  # the last few, for messages
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._session: tuple[int, bytes] | None = None
        self._last_zxid = 0
        self._next = 0
        self._retarget = False
        self._active = threading.Event()
        self._active.set()
        self._acked_cv = threading.Condition(self._lock)
        self.connected_to: int | None = None

    def start(self) -> "Writer":
        conn = self.ens.client(self.members[0], timeout=10.0)
        try:
            rep = conn.create(self.prefix, b"")
            if rep.err not in (0, zkwire.Err.NODEEXISTS):
                raise HarnessError(f"create {self.prefix}: {zkwire.err_name(rep.err)}")
        finally:
            conn.close_session()
            conn.close()
        self._thread = threading.Thread(target=self._run, name=f"writer{self.prefix}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.attempt_timeout * 3 + 5)

    def retarget(self, members: list[int]) -> None:
        """From now on use only `members`; reconnect at once if connected elsewhere."""
        with self._lock:
            self.members = list(members)
            self._next = 0
            self._retarget = True

    def pause(self) -> None:
        """Stop sending after the current write (resume() to go on)."""
        self._active.clear()

    def resume(self) -> None:
        self._active.set()

    def wait_first_ack_since(self, t: float, timeout: float) -> tuple[str, float, float] | None:
        """The first acknowledged write sent at or after `t` (waits up to `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._acked_cv:
            for _ in range(1_000_000):
                # writes are sent one at a time, so `acked` is in sending order
                first = None
                for a in reversed(self.acked):
                    if a[1] < t:
                        break
                    first = a
                if first is not None:
                    return first
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._acked_cv.wait(min(left, 0.5))
        return None

    def ack_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def acks_since(self, t: float) -> list[tuple[str, float, float]]:
        with self._lock:
            return [a for a in self.acked if a[1] >= t]

    def wait_acks(self, n: int, timeout: float = 30.0, since: float | None = None) -> None:
        """Waits until `n` more writes are acknowledged (sent after `since`, if given)."""
        base = 0 if since is not None else self.ack_count()
        deadline = time.monotonic() + timeout
        for _ in range(1_000_000):
            have = len(self.acks_since(since)) if since is not None else self.ack_count() - base
            if have >= n:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        raise HarnessError(f"writer {self.prefix}: only {have} of {n} writes acknowledged in "
                           f"{timeout}s; last errors {self.errors[-3:]}; modes {self.ens.modes()}")

    def _note(self, msg: str) -> None:
        self.errors.append(msg)
        del self.errors[:-10]

    def _connect(self) -> zkwire.Connection | None:
        with self._lock:
            members = list(self.members)
        for _ in range(len(members)):
            i = members[self._next % len(members)]
            self._next += 1
            m = self.ens.members[i]
            try:
                conn = zkwire.Connection(m.host, m.port, timeout=self.attempt_timeout)
            except OSError as e:
                self.connect_failures += 1
                self._note(f"connect {m.myid}: {e}")
                continue
            try:
                sid, pw = self._session or (0, bytes(zkwire.PASSWD_BYTES))
                resp = conn.handshake(session_id=sid, passwd=pw,
                                      timeout_ms=self.session_timeout_ms,
                                      last_zxid=self._last_zxid)
                if resp.timeout_ms <= 0 and self._session:
                    # expired: start a new session on a fresh connection next time
                    self._session = None
                    self.expired += 1
                    self._note(f"session expired (member {m.myid})")
                    conn.close()
                    continue
                if resp.timeout_ms <= 0:
                    self._note(f"member {m.myid} refused a new session")
                    conn.close()
                    continue
                self._session = (resp.session_id, resp.passwd or bytes(zkwire.PASSWD_BYTES))
                conn.last_zxid = self._last_zxid
                self.connected_to = i
                return conn
            except (OSError, zkwire.ConnectionClosed, zkwire.FrameTimeout,
                    zkwire.DecodeError) as e:
                self.connect_failures += 1
                self._note(f"handshake {m.myid}: {type(e).__name__} {e}")
                conn.close()
        return None

    def _run(self) -> None:
        conn: zkwire.Connection | None = None
        n = 0
        try:
            while not self._stop.is_set() and n < self.max_writes:
                if not self._active.is_set():
                    self._active.wait(0.1)
                    continue
                with self._lock:
                    if self._retarget:
                        self._retarget = False
                        if conn is not None and self.connected_to not in self.members:
                            conn.close()
                            conn = None
                if conn is None:
                    conn = self._connect()
                    if conn is None:
                        self._stop.wait(self.retry_pause)
                        continue
                    self.reconnects += 1
                path = f"{self.prefix}/w-{n:08d}"
                n += 1
                t_sent = time.monotonic()
                try:
                    rep = conn.request(zkwire.Op.CREATE, zkwire.create_body(path, self.data),
                                       timeout=self.attempt_timeout)
                except (OSError, zkwire.ConnectionClosed, zkwire.FrameTimeout,
                        zkwire.DecodeError) as e:
                    self.failed += 1
                    self._note(f"create on {self.connected_to}: {type(e).__name__} {e}")
                    conn.close()
                    conn = None
                    self._stop.wait(self.retry_pause)
                    continue
                self._last_zxid = max(self._last_zxid, conn.last_zxid)
                if rep.err == 0:
                    with self._acked_cv:
                        self.acked.append((path, t_sent, time.monotonic()))
                        self._acked_cv.notify_all()
                else:
                    self.failed += 1
                    self._note(f"create {path}: {zkwire.err_name(rep.err)}")
                    if rep.err in (zkwire.Err.SESSIONEXPIRED, zkwire.Err.SESSIONMOVED,
                                   zkwire.Err.CONNECTIONLOSS):
                        if rep.err == zkwire.Err.SESSIONEXPIRED:
                            self._session = None
                            self.expired += 1
                        conn.close()
                        conn = None
        finally:
            if conn is not None:
                try:
                    conn.close_session()
                except Exception:
                    pass
                conn.close()
