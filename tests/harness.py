"""Start and stop real servers (corral or Apache ZooKeeper) for tests.

Every server is a real process listening on 127.0.0.1 on a free port, with
its own directory under tests/.work/ (zoo.cfg, data/, server.log). Servers
are stopped by PID: SIGTERM, then SIGKILL after a grace period. Every started
server is also remembered in a module-level registry and stopped at interpreter
exit, and each child asks the kernel to SIGKILL it if the test process dies
(PR_SET_PDEATHSIG), so no server outlives the test run.

Public API (tests are written against exactly these names):
  Server: kind, host, port, connect_string, pid, data_dir, log_path, dir,
          start(), stop(), kill(), wait_ready(), four_letter(), log_tail()
  start_corral(cfg=None) -> Server
  start_zookeeper(cfg=None) -> Server
  start_server(kind, cfg=None) -> Server
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import zkwire

REPO = Path(__file__).resolve().parent.parent
WORK_DIR = Path(os.environ.get("CORRAL_TEST_WORK", REPO / "tests" / ".work"))
HOST = "127.0.0.1"

STOP_GRACE_S = 5.0
# corral is a native binary and is serving in well under a second; the JVM is slower.
READY_TIMEOUT_S = {"corral": 10.0, "zookeeper": 30.0}
# After this many starts in a row that never became ready, later starts of that
# kind fail at once instead of waiting out the timeout again (a broken build
# would otherwise cost the timeout in every test).
NOT_READY_STREAK_MAX = 3
START_ATTEMPTS_MAX = 3  # a free port can be taken between probing and binding

ZK_JARS = [
    "/usr/share/java/zookeeper.jar",  # its manifest Class-Path pulls in the rest
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
]
ZK_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
ZK_HEAP = "-Xmx512m"

BASE_CFG = {
    "tickTime": "2000",
    "4lw.commands.whitelist": "*",
    "extendedTypesEnabled": "true",
    "admin.enableServer": "false",
}

LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
"""


class HarnessError(Exception):
    """A server could not be started or a needed tool is missing."""


_LIVE: dict[int, "Server"] = {}
_not_ready_streak: dict[str, int] = {}
_not_ready_last: dict[str, str] = {}


def _stop_all_live() -> None:
    for server in list(_LIVE.values()):
        try:
            server.stop(grace=2.0)
        except Exception:  # interpreter is exiting; best effort
            pass


atexit.register(_stop_all_live)


def _set_pdeathsig() -> None:
    """Runs in the child before exec: die with SIGKILL when the parent dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def corral_bin() -> Path:
    env = os.environ.get("CORRAL_BIN")
    return Path(env) if env else REPO / "target" / "release" / "corral"


def check_corral_available() -> None:
    path = corral_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise HarnessError(
            f"corral binary not found at {path}: run `cargo build --release -p corral` "
            "(or set CORRAL_BIN)"
        )


def java_bin() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise HarnessError("java not found: install Debian packages `zookeeper zookeeper-bin`")
    return found


def check_zookeeper_available() -> None:
    java_bin()
    missing = [j for j in ZK_JARS if not Path(j).exists()]
    if missing:
        raise HarnessError(
            f"Apache ZooKeeper jars missing ({', '.join(missing)}): "
            "run `apt-get install -y zookeeper zookeeper-bin` (or `bash .ci/run`)"
        )


def check_available(kind: str) -> None:
    if kind == "corral":
        check_corral_available()
    elif kind == "zookeeper":
        check_zookeeper_available()
    else:
        raise HarnessError(f"unknown server kind {kind!r}")


def _fmt_cfg(cfg: dict) -> str:
    return "".join(f"{k}={v}\n" for k, v in cfg.items())


def server_command(kind: str, dir: Path, cfg_path: Path, zk_main: str = ZK_MAIN,
                   jvm_flags: list[str] | None = None) -> list[str]:
    """The command line of a corral server, or of ZooKeeper's `zk_main` (standalone or
    QuorumPeerMain), on `cfg_path`; ZooKeeper's log4j config is written into `dir`."""
    if kind == "corral":
        check_corral_available()
        return [str(corral_bin()), "server", "--config", str(cfg_path)]
    check_zookeeper_available()
    log4j = dir / "log4j.properties"
    log4j.write_text(LOG4J_PROPERTIES)
    props = {
        "log4j.configuration": f"file:{log4j}",
        "zookeeper.extendedTypesEnabled": "true",
        "zookeeper.4lw.commands.whitelist": "*",
        "zookeeper.admin.enableServer": "false",
        "zookeeper.jmx.log4j.disable": "true",
    }
    cmd = [
        java_bin(), ZK_HEAP, "-Xss1m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Djava.net.preferIPv4Stack=true",
    ]
    cmd += [f"-D{k}={v}" for k, v in props.items()]
    cmd += jvm_flags or []
    cmd += ["-cp", ":".join(ZK_JARS), zk_main, str(cfg_path)]
    return cmd


def spawn(owner, cmd: list[str], log_path: Path, cwd: Path, banner: str) -> subprocess.Popen:
    """Starts `cmd` with its output appended to `log_path`; it dies with this process and
    is stopped at interpreter exit (through `owner.stop`)."""
    with open(log_path, "ab") as log:
        log.write(f"\n==== {banner}: starting {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=cwd, preexec_fn=_set_pdeathsig,
        )
    _LIVE[proc.pid] = owner
    return proc


def signal_process(proc: subprocess.Popen | None, sig: int) -> None:
    if proc and proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass


def stop_process(proc: subprocess.Popen | None, grace: float) -> int | None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns the exit code."""
    if not proc:
        return None
    if proc.poll() is None:
        signal_process(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_process(proc, signal.SIGKILL)
            proc.wait(timeout=10)
    _LIVE.pop(proc.pid, None)
    return proc.returncode


def kill_process(proc: subprocess.Popen | None) -> int | None:
    """SIGKILL now (a crash). Returns the exit code."""
    if not proc:
        return None
    signal_process(proc, signal.SIGKILL)
    proc.wait(timeout=10)
    _LIVE.pop(proc.pid, None)
    return proc.returncode


class Server:
    """One server process (standalone) on 127.0.0.1."""

    def __init__(self, kind: str, cfg: dict | None = None, name: str | None = None) -> None:
        if kind not in ("corral", "zookeeper"):
            raise HarnessError(f"unknown server kind {kind!r}")
        self.kind = kind
        self.host = HOST
        self.port = free_port()
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name or kind}-", dir=WORK_DIR))
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir()
        self.log_path = self.dir / "server.log"
        self.cfg_path = self.dir / "zoo.cfg"
        self.extra_cfg = dict(cfg or {})
        self.proc: subprocess.Popen | None = None
        self.jvm_flags: list[str] = []
        self._write_cfg()

    # -- identity ---------------------------------------------------------

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __repr__(self) -> str:
        return f"<Server {self.kind} {self.connect_string} pid={self.pid} dir={self.dir}>"

    # -- config and command line -----------------------------------------

    def cfg(self) -> dict:
        cfg = dict(BASE_CFG)
        cfg["dataDir"] = str(self.data_dir)
        cfg["clientPort"] = str(self.port)
        cfg["clientPortAddress"] = self.host
        cfg.update({k: str(v) for k, v in self.extra_cfg.items()})
        return cfg

    def _write_cfg(self) -> None:
        self.cfg_path.write_text(_fmt_cfg(self.cfg()))

    def command(self) -> list[str]:
        return server_command(self.kind, self.dir, self.cfg_path, jvm_flags=self.jvm_flags)

    # -- lifecycle --------------------------------------------------------

    def start(self, timeout: float | None = None) -> "Server":
        """Start (or restart) on the same port and data directory."""
        if self.proc and self.proc.poll() is None:
            raise HarnessError(f"{self} is already running")
        if _not_ready_streak.get(self.kind, 0) >= NOT_READY_STREAK_MAX:
            raise HarnessError(
                f"not starting {self.kind}: its last {NOT_READY_STREAK_MAX} starts never became "
                f"ready (last: {_not_ready_last.get(self.kind)})"
            )
        self._write_cfg()
        self.proc = spawn(self, self.command(), self.log_path, self.dir, "harness")
        try:
            self.wait_ready(timeout)
        except HarnessError as e:
            if self.proc.poll() is None:  # alive but not serving
                _not_ready_streak[self.kind] = _not_ready_streak.get(self.kind, 0) + 1
                _not_ready_last[self.kind] = str(self.log_path)
            self.stop(grace=1.0)
            raise e
        except BaseException:
            self.stop(grace=1.0)
            raise
        _not_ready_streak[self.kind] = 0
        return self

    def _signal(self, sig: int) -> None:
        signal_process(self.proc, sig)

    def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns the exit code."""
        return stop_process(self.proc, grace)

    def kill(self) -> int | None:
        """SIGKILL now (a crash)."""
        return kill_process(self.proc)

    def is_running(self) -> bool:
        return bool(self.proc) and self.proc.poll() is None

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll until the server serves: `srvr` shows a Mode line, or (for a
        server without 4lw) a client handshake gets a session. `ruok` alone is
        not enough: ZooKeeper answers it before its request pipeline runs."""
        if timeout is None:
            timeout = READY_TIMEOUT_S[self.kind]
        deadline = time.monotonic() + timeout
        last = "no answer"
        for attempt in range(100_000):
            if self.proc and self.proc.poll() is not None:
                raise HarnessError(
                    f"{self.kind} exited with code {self.proc.returncode} during startup; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                break
            try:
                out = self.four_letter("srvr", timeout=1.0)
                if "Mode:" in out:
                    return
                last = f"srvr answered {out!r}"
                if not out and attempt % 10 == 9 and self._handshake_works():
                    return
            except OSError as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.05)
        raise HarnessError(
            f"{self.kind} on {self.connect_string} not ready after {timeout}s ({last}); "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def _handshake_works(self) -> bool:
        try:
            conn = zkwire.connect(self.host, self.port, timeout=1.0)
        except Exception:
            return False
        try:
            conn.close_session()
        except Exception:
            pass
        conn.close()
        return True

    # -- talking to it ----------------------------------------------------

    def four_letter(self, cmd: str, timeout: float = 5.0) -> str:
        return zkwire.four_letter(self.host, self.port, cmd, timeout)

    def client(self, **kw) -> zkwire.Connection:
        """A raw-protocol connection with a new session."""
        return zkwire.connect(self.host, self.port, **kw)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def cleanup(self) -> None:
        """Stop and remove the server's directory (call only for passing tests)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_server(kind: str, cfg: dict | None = None, jvm_flags: list[str] | None = None,
                 name: str | None = None) -> Server:
    check_available(kind)
    last: Exception | None = None
    for _ in range(START_ATTEMPTS_MAX):
        server = Server(kind, cfg, name)
        if jvm_flags:
            server.jvm_flags = list(jvm_flags)
        try:
            return server.start()
        except HarnessError as e:
            last = e
            if "Address already in use" not in server.log_tail(200):
                raise
    raise HarnessError(f"could not start {kind} after {START_ATTEMPTS_MAX} attempts: {last}")


def start_corral(cfg: dict | None = None) -> Server:
    return start_server("corral", cfg)


def start_zookeeper(cfg: dict | None = None, jvm_flags: list[str] | None = None) -> Server:
    return start_server("zookeeper", cfg, jvm_flags)
