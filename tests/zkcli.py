"""Drive Apache ZooKeeper's own shell, `zkCli.sh` (Debian package `zookeeper`), from tests.

A script of commands is fed on stdin to one JVM (one start per script). zkCli does not echo
commands, so after every command the runner adds `stat /zkcli-mark-N`; its answer
("Node does not exist: /zkcli-mark-N") separates the output of command N from the next.
stdout and stderr are merged (zkCli prints some results, such as "Created /x", on stderr).
Watch notifications are printed asynchronously by the client's event thread as

    WATCHER::

    WatchedEvent state:SyncConnected type:NodeDataChanged path:/x

so they are taken out of the per-command output and returned as a list in arrival order.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

ZKCLI_CANDIDATES = [
    "/usr/share/zookeeper/bin/zkCli.sh",
    "/usr/bin/zkCli.sh",
    "/usr/bin/zookeeper-client",
]
MARK_PREFIX = "/zkcli-mark-"
JVM_FLAGS = "-Xmx128m -Xss1m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
RUN_TIMEOUT_S = 90

_EVENT_RE = re.compile(r"^WatchedEvent state:(\S+) type:(\S+) path:(.*)$")


def zkcli_path() -> str:
    for candidate in ZKCLI_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("zkCli.sh")
    if found:
        return found
    raise RuntimeError(
        "zkCli.sh not found: install it with `apt-get update && apt-get install -y zookeeper` "
        "(Debian package `zookeeper` puts it in /usr/share/zookeeper/bin)"
    )


def _env() -> dict:
    env = dict(os.environ)
    env["JVMFLAGS"] = JVM_FLAGS
    env.pop("CLIENT_JVMFLAGS", None)
    return env


@dataclass
class Transcript:
    commands: list[str]
    outputs: list[list[str]]  # output lines of each command, watcher noise removed
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (state, type, path)
    raw: str = ""
    returncode: int | None = None

    def out(self, i: int) -> list[str]:
        return self.outputs[i]

    def text(self, i: int) -> str:
        return "\n".join(self.outputs[i])

    def events_under(self, prefix: str) -> list[tuple[str, str]]:
        return [(t, p) for (_, t, p) in self.events if p == prefix or p.startswith(prefix + "/")]

    def describe(self) -> str:
        parts = []
        for i, (cmd, lines) in enumerate(zip(self.commands, self.outputs)):
            parts.append(f"[{i}] {cmd}\n" + "".join(f"    {line}\n" for line in lines))
        return "".join(parts) + f"events: {self.events}\n"


def run_script(
    connect_string: str, commands: list[str], timeout: float = RUN_TIMEOUT_S, partial: bool = False
) -> Transcript:
    """Run `commands` in one zkCli session; return per-command output and watch events.
    With `partial`, a session that stops answering (e.g. after AUTH_FAILED) is no error: the
    commands after the last answered marker get the remaining output lumped into one."""
    lines = []
    for i, cmd in enumerate(commands):
        lines.append(cmd)
        lines.append(f"stat {MARK_PREFIX}{i}")
    lines.append("quit")
    proc = subprocess.run(
        [zkcli_path(), "-server", connect_string],
        input="\n".join(lines) + "\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        timeout=timeout,
    )
    return parse(commands, proc.stdout, proc.returncode, partial)


def run_command(connect_string: str, *args: str, timeout: float = RUN_TIMEOUT_S):
    """Run one command non-interactively (`zkCli.sh -server HOST:PORT cmd args`).
    Returns (exit code, output lines without SLF4J/connection noise)."""
    proc = subprocess.run(
        [zkcli_path(), "-server", connect_string, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        timeout=timeout,
    )
    kept = []
    for line in proc.stdout.splitlines():
        if line.startswith("SLF4J:") or line.startswith("Connecting to ") or line in ("WATCHER::", ""):
            continue
        if _EVENT_RE.match(line):
            continue
        kept.append(line)
    return proc.returncode, kept


def parse(
    commands: list[str], raw: str, returncode: int | None = None, partial: bool = False
) -> Transcript:
    events = []
    outputs: list[list[str]] = [[] for _ in commands]
    current: list[str] = []
    index = 0
    all_lines = raw.splitlines()
    for n, line in enumerate(all_lines):
        if line.startswith("SLF4J:"):
            continue
        m = _EVENT_RE.match(line)
        if m:
            events.append((m.group(1), m.group(2), m.group(3)))
            continue
        if line == "WATCHER::":
            continue
        if line == "" and n + 1 < len(all_lines) and (
            all_lines[n + 1] == "WATCHER::" or _EVENT_RE.match(all_lines[n + 1])
        ):
            continue
        mark = f"Node does not exist: {MARK_PREFIX}{index}"
        if index < len(commands) and line == mark:
            outputs[index] = current
            current = []
            index += 1
            continue
        current.append(line)
    if index < len(commands) and partial:
        outputs[index] = current
    elif index < len(commands):
        raise AssertionError(
            f"zkCli stopped after {index} of {len(commands)} commands (exit {returncode});"
            f" output:\n{raw}"
        )
    # the first command's output starts after the greeting
    first = outputs[0] if outputs else []
    greeting = ("Connecting to ", "Welcome to ZooKeeper!", "JLine support is ")
    while first and (first[0] == "" or first[0].startswith(greeting)):
        first.pop(0)
    return Transcript(commands, outputs, events, raw, returncode)


STAT_KEYS = [
    "cZxid",
    "ctime",
    "mZxid",
    "mtime",
    "pZxid",
    "cversion",
    "dataVersion",
    "aclVersion",
    "ephemeralOwner",
    "dataLength",
    "numChildren",
]


def parse_stat(lines: list[str]) -> dict[str, str]:
    """The 11 `key = value` lines zkCli prints for a Stat, in ZooKeeper's order."""
    stat = {}
    for line in lines:
        if " = " in line:
            key, value = line.split(" = ", 1)
            if key in STAT_KEYS:
                stat[key] = value
    keys = [line.split(" = ", 1)[0] for line in lines if line.split(" = ", 1)[0] in STAT_KEYS]
    if keys != STAT_KEYS:
        raise AssertionError(f"stat lines out of order or missing: {lines}")
    return stat


def parse_list(line: str) -> list[str]:
    """zkCli prints child lists as `[a, b, c]`."""
    assert line.startswith("[") and line.endswith("]"), line
    inner = line[1:-1]
    return [] if not inner else inner.split(", ")

