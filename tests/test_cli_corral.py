"""`corral cli` against Apache ZooKeeper's own `zkCli.sh`: the same scripted session is run
through both shells against the same server (the `server` fixture: corral or ZooKeeper, see
CORRAL_TEST_TARGETS) and the output must match line by line once zxids, times and session
ids are normalised. Also: single commands with their exit statuses, and the interactive
shell driven through a pseudo-terminal (tmux) for the prompt, tab completion and history.

How a script runs: tests/zkcli.py's runner (a `stat /zkcli-mark-N` after every command
marks where its output ends; `quit` last) is used as is for zkCli.sh, and the same stdin is
fed to `corral cli`; both transcripts are split by zkcli.parse. Scripts name their nodes
under BASE, which each run replaces by a fresh path of the same length (and the normaliser
turns back into BASE), so a run never sees what the other left behind.

Known, deliberate differences (not exercised here): the version string, and the JVM's stack
trace lines after an uncaught exception (corral prints only the first line).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import zkcli  # noqa: E402

CLI_TIMEOUT_S = 60
DATE_RE = re.compile(r"^(ctime|mtime) = (.*)$")
ZXID_RE = re.compile(r"^(cZxid|mZxid|pZxid) = (0x[0-9a-f]+)$")
OWNER_RE = re.compile(r"^ephemeralOwner = (0x[0-9a-f]+)$")
EPOCH = "Thu Jan 01 00:00:00 UTC 1970"
BASE = "/@base@"


@pytest.fixture(scope="module", autouse=True)
def _tools():
    zkcli.zkcli_path()  # fails with the install hint when zkCli.sh is missing
    harness.check_corral_available()


def corral_cli(*args: str, stdin: str | None = None, timeout: float = CLI_TIMEOUT_S):
    env = dict(os.environ)
    env.pop("CORRAL_LOG", None)
    return subprocess.run(
        [str(harness.corral_bin()), "cli", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=timeout,
    )


def script_input(commands: list[str]) -> str:
    lines = []
    for i, cmd in enumerate(commands):
        lines.append(cmd)
        lines.append(f"stat {zkcli.MARK_PREFIX}{i}")
    lines.append("quit")
    return "\n".join(lines) + "\n"


def run_corral_script(connect_string: str, commands: list[str], partial: bool = False):
    proc = corral_cli("-server", connect_string, stdin=script_input(commands))
    return zkcli.parse(commands, proc.stdout, proc.returncode, partial)


class Normaliser:
    """Replaces what legitimately differs between two runs: the base path, zxids (numbered
    in order of first appearance, so equal zxids stay equal), session ids, dates, the
    version, and the order of getEphemerals' list (the server's hash order of the paths)."""

    def __init__(self, base: str | None = None) -> None:
        self.base = base
        self.zxids: dict[str, str] = {}
        self.sessions: dict[str, str] = {}

    def line(self, line: str) -> str:
        if self.base:
            line = line.replace(self.base, BASE)
        if line.startswith(f"[{BASE}"):
            line = "[" + ", ".join(sorted(line[1:-1].split(", "))) + "]"
        m = ZXID_RE.match(line)
        if m:
            v = m.group(2)
            if v != "0x0":
                v = self.zxids.setdefault(v, f"<zxid {len(self.zxids) + 1}>")
            return f"{m.group(1)} = {v}"
        m = OWNER_RE.match(line)
        if m and m.group(1) != "0x0":
            v = self.sessions.setdefault(m.group(1), f"<session {len(self.sessions) + 1}>")
            return f"ephemeralOwner = {v}"
        m = DATE_RE.match(line)
        if m and m.group(2) != EPOCH:
            return f"{m.group(1)} = <date>"
        if line.startswith("ZooKeeper CLI version: "):
            return "ZooKeeper CLI version: <version>"
        return line

    def transcript(self, t: zkcli.Transcript) -> list[list[str]]:
        return [[self.line(x) for x in out] for out in t.outputs]

    def events(self, t: zkcli.Transcript) -> list[tuple[str, str, str]]:
        return [(s, e, self.line(p)) for (s, e, p) in t.events]


def fresh_base() -> str:
    """A path as long as BASE, unique to one run."""
    return "/" + uuid.uuid4().hex[: len(BASE) - 1]


def assert_same(commands: list[str], zk: zkcli.Transcript, zk_base: str,
                ours: zkcli.Transcript, our_base: str) -> None:
    nz, no = Normaliser(zk_base), Normaliser(our_base)
    a, b = nz.transcript(zk), no.transcript(ours)
    report = []
    for i, cmd in enumerate(commands):
        if a[i] != b[i]:
            report.append(f"[{i}] {cmd}\n  zkCli:  {a[i]}\n  corral: {b[i]}")
    ev_a, ev_b = nz.events(zk), no.events(ours)
    # zkCli may exit before its event thread prints the Closed event of `quit`
    closed = ("Closed", "None", "null")
    if ev_a[-1:] != [closed] and ev_b[-1:] == [closed]:
        ev_b = ev_b[:-1]
    if ev_a != ev_b:
        report.append(f"events differ\n  zkCli:  {ev_a}\n  corral: {ev_b}")
    assert not report, "\n".join(report) + f"\n--- zkCli raw:\n{zk.raw}\n--- corral raw:\n{ours.raw}"


def diff_session(server, commands: list[str], partial: bool = False):
    """Runs `commands` (naming nodes under BASE) through zkCli.sh, then corral cli, each
    under its own base path, and asserts the normalised transcripts are equal."""
    zk_base, our_base = fresh_base(), fresh_base()
    zk = zkcli.run_script(server.connect_string, [c.replace(BASE, zk_base) for c in commands],
                          partial=partial)
    ours = run_corral_script(server.connect_string,
                             [c.replace(BASE, our_base) for c in commands], partial=partial)
    assert_same(commands, zk, zk_base, ours, our_base)
    return ours, our_base


# -- scripted sessions ---------------------------------------------------------------


def test_seed_session_matches_zkcli(server):
    """The seed's walk-through: help, ls, create -s / -e / -s -e, get, a typo'd command."""
    b = BASE
    cmds = [
        "help",
        "ls /zookeeper",
        f'create {b} ""',
        f"create -s {b}/abc/aaa",
        f"create -e {b}/xxoo",
        f"crreate -s -e {b}/xoxo",
        f"create -s -e {b}/xoxo",
        f"create -s {b}/seq-",
        f"create -s {b}/seq- again",
        f"get {b}",
        f"get -s {b}",
        f"get -s {b}/xxoo",
        f"ls {b}",
        f"ls -s {b}",
        f"deleteall {b}",
        f"ls {b}",
    ]
    ours, real = diff_session(server, cmds)
    assert ours.out(3) == [f"Node does not exist: {real}/abc/aaa"]
    assert ours.out(6) == [f"Created {real}/xoxo0000000001"]
    assert ours.out(14) == []


def test_crud_commands_match_zkcli(server):
    b = BASE
    cmds = [
        f"create {b}",
        f"create {b}/p pdata",
        f"create -s {b}/s sdata",
        f"create -e {b}/e edata",
        f"create -c {b}/c",
        f"create -t 5000 {b}/t tdata",
        f"create -t 100 -s {b}/ts",
        f"create -t5000 {b}/t2",
        f"create -se {b}/se",
        f"create {b}/p dup",
        f"create {b}/q \"hello world\"",
        f"create {b}/r 'single quoted'",
        f"create {b}/u \"unterminated",
        f"create {b}/missing/child",
        f"create -e {b}/e/kid",
        f"create -c -s {b}/bad",
        f"create -t abc {b}/bad",
        f"create -t 0 {b}/bad",
        f"create -e -t 100 {b}/bad",
        f"create -c -t 100 {b}/bad",
        f"create -x {b}/bad",
        "create",
        "create nopath",
        f"create {b}/",
        f"create {b}//x",
        f"create -s {b}/",
        f"get {b}/p",
        f"get -s {b}/p",
        f"get {b}/c",
        f"get {b}/q",
        f"get {b}/r",
        f"get {b}/u",
        f"get {b}/nope",
        f"get {b}/p watch",
        "get",
        f"set {b}/p newdata",
        f"set -s {b}/p newdata2",
        f"set -v 0 {b}/p bad",
        f"set -v 2 -s {b}/p v3",
        f"set {b}/p",
        f"set {b}/p -1",
        f"set -v {b}/p x",
        f"set {b}/nope x",
        f"stat {b}/p",
        f"stat {b}/e",
        f"stat {b}/c",
        f"stat {b}/t",
        f"stat {b}/nope",
        f"stat {b}/p extra",
        f"ls {b}",
        f"ls -s {b}",
        f"ls -R {b}",
        f"ls -R -s {b}",
        f"ls {b}/nope",
        f"ls -R {b}/nope",
        f"ls {b} watch",
        "ls",
        "ls -?",
        f"ls -s -? {b}/p",
        f"create {b}/d",
        f"create {b}/d/x",
        f"create {b}/d/x/y",
        f"create {b}/d/z",
        f"delete {b}/d",
        f"delete -v 5 {b}/p",
        f"delete -v 3 {b}/p",
        f"delete {b}/nope",
        f"delete {b}/s0000000002 1",
        "delete",
        f"deleteall {b}/d -b x",
        f"deleteall {b}/d -b 1",
        f"deleteall {b}/nope",
        "deleteall",
        f"getAllChildrenNumber {b}",
        f"getAllChildrenNumber {b}/nope",
        "getAllChildrenNumber",
        f"ls {b}",
        "ls /zookeeper",
        f"deleteall {b}",
    ]
    diff_session(server, cmds)


def test_acl_and_auth_commands_match_zkcli(server):
    b = BASE
    u1 = "u1:" + base64.b64encode(hashlib.sha1(b"u1:p1").digest()).decode()
    cmds = [
        f"create {b}",
        f"create {b}/ro data world:anyone:r",
        f"getAcl {b}/ro",
        f"getAcl -s {b}/ro",
        f"set {b}/ro x",
        "whoami",
        "addauth digest u1:p1",
        "whoami",
        f"create {b}/au x auth::cdrwa",
        f"getAcl {b}/au",
        f"create {b}/dg x digest:{u1}:cdrwa,world:anyone:r",
        f"getAcl {b}/dg",
        f"create {b}/ip x ip:127.0.0.1:cdrwa",
        f"getAcl {b}/ip",
        f"create {b}/far x ip:10.0.0.0/8:cdrwa",
        f"get {b}/far",
        f"getAcl {b}/far",
        f"create {b}/bad x world:anyone",
        f"create {b}/bad2 x world:anyone:rq",
        f"create {b}/bad3 x digest:nohash:r",
        f"setAcl {b}/ro world:anyone:cdrwa",
        f"setAcl -v 5 {b}/au world:anyone:cdrwa",
        f"setAcl -s {b}/au world:anyone:cdrwa",
        f"setAcl -s -v 1 {b}/au world:anyone:cdrwa,ip:127.0.0.1:r",
        f"getAcl {b}/au",
        f"setAcl {b}/au world:anyone",
        f"setAcl {b}/nope world:anyone:r",
        f"setAcl {b}/au",
        f"create {b}/r",
        f"create {b}/r/r1",
        f"create {b}/r/r1/r11",
        f"create {b}/r/r2",
        f"setAcl -R {b}/r world:anyone:rw",
        f"getAcl {b}/r/r1/r11",
        f"getAcl {b}/r/r2",
        f"delete {b}/r/r1/r11",
        "getAcl",
        f"setAcl {b}/far world:anyone:cdrwa",
        f"setAcl {b}/ro world:anyone:cdrwa",
        f"deleteall {b}",
    ]
    diff_session(server, cmds)


def test_watch_commands_match_zkcli(server):
    b = BASE
    cmds = [
        f"create {b}",
        f"create {b}/a adata",
        f"get -w {b}/a",
        f"get -w {b}/a",
        f"set {b}/a v1",
        f"set {b}/a v1b",
        f"ls -w {b}",
        f"create {b}/b",
        f"stat -w {b}/c",
        f"create {b}/c",
        f"ls -s -w {b}/c",
        f"ls -R -w {b}/c",
        f"create {b}/c/k",
        f"addWatch {b}",
        f"create {b}/c/deep",
        f"set {b}/c/deep x",
        f"delete {b}/c/deep",
        f"addWatch -m PERSISTENT {b}/a",
        f"set {b}/a v2",
        f"create {b}/a/kid",
        f"addWatch -m persistent {b}/b",
        f"addWatch {b}/b/later",
        f"create {b}/b/later",
        f"addWatch -m bogus {b}",
        "addWatch",
        f"removewatches {b}",
        f"removewatches {b}",
        f"set {b}/a v3",
        f"removewatches {b}/a -d",
        f"removewatches {b}/a -c",
        f"removewatches {b}/a -a",
        f"get -w {b}/b",
        f"removewatches {b}/b -d",
        f"ls -w {b}/b",
        f"removewatches {b}/b -c -l",
        f"removewatches {b}/nothing",
        f"removewatches {b}/nothing -l",
        "removewatches",
        f"create -e {b}/e1",
        f"create -e -s {b}/e2-",
        f"getEphemerals {b}",
        f"getEphemerals {b}/nope",
        "getEphemerals",
        f"getAllChildrenNumber {b}",
        f"sync {b}",
        f"sync {b}/nope",
        "sync",
        "sync bad",
        "printwatches",
        "printwatches off",
        "printwatches",
        # A watch set while printing is off; no event is made then: whether zkCli prints
        # an event that arrives while it is off depends on when its event thread gets to
        # it (a race on a busy machine), so the event comes after `printwatches on`.
        f"get -w {b}/a",
        "printwatches on",
        f"get -w {b}/a",
        f"delete {b}/a/kid",
        f"deleteall {b}",
    ]
    diff_session(server, cmds)


def test_shell_commands_match_zkcli(server):
    b = BASE
    cmds = [
        f"create {b}",
        "history",
        "redo 0",
        "redo 99",
        "redo -1",
        "redo",
        "redo 4",
        "history",
        " ",
        "   ls    /zookeeper   ",
        '"',
        "version",
        "version extra",
        "config",
        "config -s",
        "config -c",
        "whoami extra",
        f"create {b}/q",
        f"create {b}/q/a 12345",
        f"setquota -n 2 {b}/q",
        f"setquota -n 2 -b 3 {b}/q",
        f"setquota {b}/q",
        f"setquota -n 0 {b}/q",
        f"setquota -n x {b}/q",
        f"setquota -B 100 {b}/q",
        f"listquota {b}/q",
        f"listquota {b}/nope",
        f"setquota -n 5 {b}/q/a",
        f"setquota -n 5 {b}/nope",
        "setquota -n 5 /zookeeper/quota/x",
        f"delquota -n {b}/q",
        f"listquota {b}/q",
        f"delquota {b}/q",
        f"listquota {b}/q",
        f"delquota {b}/q",
        f"connect {server.connect_string}",
        "ls /zookeeper",
        "connect",
        f"ls {b}",
        "foo bar",
        "reconfig",
        f"deleteall {b}",
    ]
    diff_session(server, cmds)


def strip_events(raw: str) -> tuple[list[str], list[str]]:
    """Output lines without the watcher's blocks, and the event lines in order."""
    lines = [x for x in raw.splitlines() if not x.startswith("SLF4J:")]
    out, events = [], []
    for i, line in enumerate(lines):
        if line.startswith("WatchedEvent "):
            events.append(line)
        elif line == "WATCHER::":
            continue
        elif line == "" and i + 1 < len(lines) and (
                lines[i + 1] == "WATCHER::" or lines[i + 1].startswith("WatchedEvent ")):
            continue
        else:
            out.append(line)
    return out, events


def test_close_and_connect_match_zkcli(server):
    """`close` leaves the shell without a session ("Not connected"), `connect` makes a new
    one. The stat markers cannot run while closed, so whole transcripts are compared."""
    script = "\n".join([
        f"create {BASE} x",
        "close",
        f"get {BASE}",
        "history",
        "printwatches",
        "connect",
        f"get {BASE}",
        f"connect {server.connect_string}",
        f"get -s {BASE}",
        f"delete {BASE}",
        "quit",
    ]) + "\n"
    zk_base, our_base = fresh_base(), fresh_base()
    zk = subprocess.run([zkcli.zkcli_path(), "-server", server.connect_string],
                        input=script.replace(BASE, zk_base), stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True,
                        env={**os.environ, "JVMFLAGS": zkcli.JVM_FLAGS}, timeout=CLI_TIMEOUT_S)
    ours = corral_cli("-server", server.connect_string, stdin=script.replace(BASE, our_base))
    zk_out, zk_events = strip_events(zk.stdout)
    our_out, our_events = strip_events(ours.stdout)
    nz, no = Normaliser(zk_base), Normaliser(our_base)
    assert [nz.line(x) for x in zk_out] == [no.line(x) for x in our_out], ours.stdout
    closed = "WatchedEvent state:Closed type:None path:null"
    if zk_events[-1:] != [closed] and our_events[-1:] == [closed]:
        our_events = our_events[:-1]  # zkCli may exit before printing quit's Closed event
    assert zk_events == our_events, ours.stdout
    assert (zk.returncode, ours.returncode) == (0, 0)
    assert our_out.count("Not connected") == 3  # get, history and printwatches


def test_auth_failure_matches_zkcli(server):
    cmds = [
        "ls /zookeeper",
        "addauth nosuchscheme secret",
        "ls /",
        "whoami",
    ]
    zk = zkcli.run_script(server.connect_string, cmds, partial=True)
    ours = run_corral_script(server.connect_string, cmds, partial=True)
    assert ("AuthFailed", "None", "null") in zk.events
    assert ("AuthFailed", "None", "null") in ours.events
    assert Normaliser().transcript(ours)[0] == Normaliser().transcript(zk)[0]


# -- one command from the command line -------------------------------------------------


SLF4J_RE = re.compile(r"SLF4J: [^\n]*\n")


def _strip(lines: list[str]) -> list[str]:
    """Drop the JVM's noise: SLF4J's messages (which can land in the middle of a line) and
    the stack trace after an uncaught exception."""
    text = SLF4J_RE.sub("", "\n".join(lines) + "\n")
    return [x for x in text.splitlines() if not (
        x.startswith("SLF4J:") or x.startswith("\tat ") or x.startswith("Caused by: ")
        or x.startswith("\t... "))]


def test_single_commands_and_exit_codes_match_zkcli(server):
    """`corral cli -server h cmd args`: the same output and exit status as zkCli's."""
    runs = [
        ["create", BASE, "one-shot"],
        ["get", "-s", BASE],
        ["get", f"{BASE}/missing"],
        ["ls", BASE],
        ["ls"],
        ["set", "-v", "7", BASE, "x"],
        ["set", "-v", "abc", BASE, "x"],
        ["addWatch", "relative"],
        ["stat", BASE],
        ["foo"],
        ["history"],
        ["redo", "0"],
        ["printwatches"],
        ["getAcl", BASE],
        ["close"],
        ["deleteall", BASE],
        ["get", BASE],
    ]
    zk_base, our_base = fresh_base(), fresh_base()
    zk = [zkcli.run_command(server.connect_string, *[a.replace(BASE, zk_base) for a in args])
          for args in runs]
    ours = []
    for args in runs:
        proc = corral_cli("-server", server.connect_string,
                          *[a.replace(BASE, our_base) for a in args])
        ours.append((proc.returncode, zkcli_filter(proc.stdout)))
    for args, (zk_rc, zk_lines), (our_rc, our_lines) in zip(runs, zk, ours):
        nz, no = Normaliser(zk_base), Normaliser(our_base)
        theirs = [nz.line(x) for x in _strip(zk_lines)]
        mine = [no.line(x) for x in _strip(our_lines)]
        assert (our_rc, mine) == (zk_rc, theirs), f"{args}"


def zkcli_filter(stdout: str) -> list[str]:
    """What zkcli.run_command keeps of an output (no greeting, events or blank lines)."""
    return [x for x in stdout.splitlines()
            if not (x.startswith("Connecting to ") or x in ("WATCHER::", "")
                    or x.startswith("WatchedEvent "))]


def test_options_timeout_readonly_waitforconnection(server):
    proc = corral_cli("-server", server.connect_string, "-timeout", "4000", "-r", "ls", "/zookeeper")
    assert proc.returncode == 0 and "[config, quota]" in proc.stdout, proc.stdout
    proc = corral_cli("-server", server.connect_string, "-waitforconnection", "stat", "/")
    assert proc.returncode == 0 and "cZxid = 0x0" in proc.stdout, proc.stdout
    proc = corral_cli("-server", server.connect_string, "-timeout", "abc", "ls", "/")
    assert proc.returncode == 1
    assert 'Exception in thread "main" java.lang.NumberFormatException: For input string: "abc"' \
        in proc.stdout
    # nothing listens on a freshly probed port: ConnectionLoss at once, as zkCli (which
    # fails queued requests when a connection attempt is refused)
    port = harness.free_port()
    started = time.monotonic()
    proc = corral_cli("-server", f"127.0.0.1:{port}", "get", "/x")
    assert proc.returncode == 1, proc.stdout
    assert proc.stdout.splitlines()[-1] == "KeeperErrorCode = ConnectionLoss for /x"
    assert time.monotonic() - started < 10
    proc = corral_cli("-server", f"127.0.0.1:{port}", "-timeout", "1500", "-waitforconnection",
                      "get", "/x")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1].startswith('Exception in thread "main" java.io.IOException')
    script = corral_cli("-server", f"127.0.0.1:{port}", stdin="ls /\nget /x\n")
    assert script.returncode == 1
    assert script.stdout.splitlines()[-2:] == [
        "KeeperErrorCode = ConnectionLoss for /",
        "KeeperErrorCode = ConnectionLoss for /x",
    ], script.stdout


# -- the interactive shell in a terminal ---------------------------------------------------


class Tmux:
    """A private tmux server (own socket) running one pane; stopped at the end."""

    def __init__(self, command: list[str]) -> None:
        self.tmux = shutil.which("tmux")
        if not self.tmux:
            pytest.fail("tmux not found: install it with `apt-get install -y tmux`")
        self.socket = f"corral-cli-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._run("new-session", "-d", "-s", "cli", "-x", "160", "-y", "50",
                  " ".join(_quote(c) for c in command))

    def _run(self, *args: str) -> str:
        proc = subprocess.run([self.tmux, "-L", self.socket, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=10)
        return proc.stdout

    def send(self, *keys: str) -> None:
        self._run("send-keys", "-t", "cli", *keys)

    def type(self, text: str) -> None:
        self._run("send-keys", "-t", "cli", "-l", text)

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "cli", "-S", "-200")

    def wait_for(self, predicate, what: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}; screen:\n{screen}")

    def close(self) -> None:
        subprocess.run([self.tmux, "-L", self.socket, "kill-server"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def test_interactive_prompt_completion_history(server):
    b = fresh_base()
    host = server.connect_string
    t = Tmux(["env", "-u", "CORRAL_LOG", "TERM=xterm", str(harness.corral_bin()), "cli",
              "-server", host])
    try:
        def prompt(n: int, state: str = "CONNECTED") -> str:
            return f"[zk: {host}({state}) {n}]"

        # the first prompt may show CONNECTING, as zkCli's does when the session is not up yet
        t.wait_for(lambda s: "JLine support is enabled" in s and f"[zk: {host}(" in s
                   and ") 0]" in s, "first prompt")
        t.type(f"create {b} top")
        t.send("Enter")
        t.wait_for(lambda s: f"Created {b}" in s and prompt(1) in s, "create")
        t.type(f"create {b}/child-alpha kid")
        t.send("Enter")
        t.wait_for(lambda s: prompt(2) in s, "second create")
        # tab completion of a path: the only child matching "chi"
        t.type(f"get {b}/chi")
        t.send("Tab")
        t.wait_for(lambda s: f"get {b}/child-alpha" in s, "path completion")
        t.send("Enter")
        t.wait_for(lambda s: "\nkid\n" in s and prompt(3) in s, "get after completion")
        # tab completion of a command name
        t.type("getAllCh")
        t.send("Tab")
        t.wait_for(lambda s: "getAllChildrenNumber" in s, "command completion")
        t.type(f" {b}")
        t.send("Enter")
        t.wait_for(lambda s: prompt(4) in s, "getAllChildrenNumber")
        # history recall: Up twice brings back the `get`
        t.send("Up")
        t.send("Up")
        t.wait_for(lambda s: s.rstrip().endswith(f"{prompt(4)} get {b}/child-alpha"),
                   "history recall")
        t.send("Enter")
        t.wait_for(lambda s: s.count("\nkid\n") >= 2 and prompt(5) in s, "recalled command")
        # an event arriving while the prompt waits is printed above it
        t.type(f"get -w {b}")
        t.send("Enter")
        t.wait_for(lambda s: prompt(6) in s, "watch set")
        proc = corral_cli("-server", host, "set", b, "changed")
        assert proc.returncode == 0, proc.stdout
        screen = t.wait_for(
            lambda s: f"WatchedEvent state:SyncConnected type:NodeDataChanged path:{b}" in s,
            "watch event")
        assert screen.rstrip().endswith(prompt(6)), screen
        t.type("history")
        t.send("Enter")
        t.wait_for(lambda s: f"5 - get -w {b}" in s and "6 - history" in s, "history")
        t.type(f"deleteall {b}")
        t.send("Enter")
        t.wait_for(lambda s: prompt(8) in s, "cleanup")
        t.type("quit")
        t.send("Enter")
        t.wait_for(lambda s: "WatchedEvent state:Closed type:None path:null" in s
                   or "no server running" in s or "can't find" in s, "quit")
    finally:
        t.close()
