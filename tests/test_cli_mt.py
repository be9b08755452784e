"""End-to-end tests with the ZooKeeper C client's shell `cli_mt` (Debian package
`zookeeper-bin`, /usr/lib/zookeeper/bin/cli_mt) against the `server` fixture.

cli_mt reads one command per line on stdin and runs most of them asynchronously, printing
results (on stderr) when the reply comes, so the driver sends one command, waits for the line
that completes it, then for a short quiet spell. Watch events are printed by the C client's
watcher as `Watcher CHANGED_EVENT state = CONNECTED_STATE for path /x`.

What its commands send: `create [+[e|s]] path` -> create(1) with data "new" and an open
ACL; `create2` -> create2(15); `get` -> getData(4) *with a watch*; `ls` -> getChildren(8)
with a watch; `ls2` -> getChildren2(12) with a watch; `set path data` -> setData(5);
`exists` -> exists(3) with a watch (synchronous); `wexists` -> exists with a watcher;
`delete` -> delete(2); `sync` -> sync(9); `quit` -> closeSession(-11); after a reconnect
-> setWatches(101) with xid -8 (the C client, unlike the Java one, keeps xid -8).
"""

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tcp_proxy import TcpProxy  # noqa: E402

CLI_MT_CANDIDATES = ["/usr/lib/zookeeper/bin/cli_mt", "/usr/bin/cli_mt"]
STEP_TIMEOUT_S = 10.0
QUIET_S = 0.15

EVENT_RE = re.compile(r"^Watcher (\w+) state = (\w+) for path (.*)$")


def cli_mt_path():
    for candidate in CLI_MT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("cli_mt")
    if found:
        return found
    pytest.fail(
        "cli_mt not found: install it with `apt-get update && apt-get install -y zookeeper-bin`",
        pytrace=False,
    )


class CliMt:
    """One cli_mt process; `run(cmd, done)` sends a command and returns its output lines."""

    def __init__(self, connect_string):
        self.proc = subprocess.Popen(
            [cli_mt_path(), "-h", connect_string],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines = queue.Queue()
        self.events = []
        self.all = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _collect(self, done_re, timeout):
        out = []
        deadline = time.monotonic() + timeout
        matched = done_re is None
        while time.monotonic() < deadline:
            wait = QUIET_S if matched else max(0.01, deadline - time.monotonic())
            try:
                line = self.lines.get(timeout=wait)
            except queue.Empty:
                if matched:
                    return out
                continue
            if line is None:
                return out
            self.all.append(line)
            m = EVENT_RE.match(line)
            if m:
                self.events.append((m.group(1), m.group(3)))
                continue
            out.append(line)
            if not matched and re.search(done_re, line):
                matched = True
        if not matched:
            raise AssertionError(f"cli_mt: no line matching {done_re!r}; output:\n" + "\n".join(self.all))
        return out

    def wait_connected(self):
        self._collect(r"Watcher SESSION_EVENT state = CONNECTED_STATE", STEP_TIMEOUT_S)

    def run(self, cmd, done_re=None, timeout=STEP_TIMEOUT_S):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._collect(done_re, timeout)

    def wait_event(self, want, timeout=STEP_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while want not in self.events and time.monotonic() < deadline:
            self._collect(None, QUIET_S)
        assert want in self.events, f"no event {want}; got {self.events}\n" + "\n".join(self.all)

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)


def rc_line(path, rc, bracket=False):
    p = f"[{path}]" if bracket else path
    return f"{p}: rc = {rc}"


def test_cli_mt_commands(server):
    b = f"/climt-{uuid.uuid4().hex[:8]}"
    cli = CliMt(server.connect_string)
    try:
        cli.wait_connected()

        def create(args, path):
            return cli.run(f"create {args}{path}", rf"^\[{re.escape(path)}\]: rc = ")

        out = create("", b)
        assert rc_line(b, 0, True) in out and f"\tname = {b}" in out, out
        assert f"\tname = {b}/x" in create("", f"{b}/x")
        out = cli.run(f"create2 {b}/y", rf"^\[{re.escape(b)}/y\]: rc = ")
        assert f"\tname = {b}/y" in out, out
        assert "\tversion=0\taversion=0" in out and "\tephemeralOwner = 0" in out, out
        assert f"\tname = {b}/s-0000000002" in create("+s ", f"{b}/s-")
        assert f"\tname = {b}/e" in create("+e ", f"{b}/e")
        assert f"\tname = {b}/es-0000000004" in create("+es ", f"{b}/es-")
        out = create("", b)
        assert rc_line(b, -110, True) in out, out  # ZNODEEXISTS

        out = cli.run(f"get {b}/x", rf"^{re.escape(b)}/x: rc = ")
        assert rc_line(f"{b}/x", 0) in out and " value_len = 3" in out and "new" in out, out
        assert "\tversion=0\taversion=0" in out, out

        out = cli.run(f"ls {b}", rf"^{re.escape(b)}: rc = ")
        kids = sorted(line[1:] for line in out if line.startswith("\t"))
        assert kids == ["e", "es-0000000004", "s-0000000002", "x", "y"], out
        out = cli.run(f"ls2 {b}", r"ephemeralOwner")
        assert rc_line(b, 0) in out and "\tes-0000000004" in out, out

        # set fires the data watch that `get` left
        out = cli.run(f"set {b}/x hello", rf"^{re.escape(b)}/x: rc = ")
        assert f"{b}/x: rc = 0 Stat:" in out and "\tversion=1\taversion=0" in out, out
        cli.wait_event(("CHANGED_EVENT", f"{b}/x"))
        out = cli.run(f"get {b}/x", rf"^{re.escape(b)}/x: rc = ")
        assert " value_len = 5" in out and "hello" in out, out

        assert cli.run(f"exists {b}/nope") == [f"Error -101 for {b}/nope"]
        assert cli.run(f"exists {b}/x") == []
        assert cli.run(f"wexists {b}/w") == [f"Error -101 for {b}/w"]
        create("", f"{b}/w")
        cli.wait_event(("CREATED_EVENT", f"{b}/w"))
        cli.wait_event(("CHILD_EVENT", b))  # from the ls watches

        assert rc_line(f"{b}/nope", -101) in cli.run(f"delete {b}/nope", r": rc = ")
        assert rc_line(b, -111) in cli.run(f"delete {b}", r": rc = ")  # ZNOTEMPTY
        assert rc_line(f"{b}/x", 0) in cli.run(f"delete {b}/x", r": rc = ")
        cli.wait_event(("DELETED_EVENT", f"{b}/x"))
        out = cli.run(f"sync {b}", rf"^\[{re.escape(b)}\]: rc = ")
        assert rc_line(b, 0, True) in out, out
        assert rc_line(f"{b}/nope", -101) in cli.run(f"get {b}/nope", r": rc = ")
        assert rc_line(f"{b}/nope", -101) in cli.run(f"ls {b}/nope", r": rc = ")
        assert f"{b}/nope: rc = -101 Stat:" in cli.run(f"set {b}/nope d", r": rc = ")
    finally:
        cli.close()

    # quit closes the session: its ephemerals are gone at once, the rest stays
    zk = KazooClient(hosts=server.connect_string, timeout=10.0)
    zk.start(timeout=15)
    try:
        assert sorted(zk.get_children(b)) == ["s-0000000002", "w", "y"]
        assert zk.get(f"{b}/y")[0] == b"new"
    finally:
        zk.stop()
        zk.close()


def test_cli_mt_batch_mode(server):
    b = f"/climt-batch-{uuid.uuid4().hex[:8]}"
    zk = KazooClient(hosts=server.connect_string, timeout=10.0)
    zk.start(timeout=15)
    try:
        zk.create(f"{b}/kid", b"", makepath=True)
        proc = subprocess.run(
            [cli_mt_path(), "-h", server.connect_string, "-c", f"ls {b}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=30,
        )
        lines = proc.stdout.splitlines()
        assert proc.returncode == 0, proc.stdout
        assert f"{b}: rc = 0" in lines and "\tkid" in lines, proc.stdout
    finally:
        zk.stop()
        zk.close()


def test_cli_mt_reconnect_sends_set_watches(server):
    """Cut cli_mt's TCP connection (proxy): the C client reconnects with the same session and
    re-registers its watches with setWatches (opcode 101, xid -8); the server fires the ones
    whose nodes changed while it was away and keeps the others."""
    b = f"/climt-rc-{uuid.uuid4().hex[:8]}"
    zk = KazooClient(hosts=server.connect_string, timeout=10.0)
    zk.start(timeout=15)
    try:
        zk.create(b, b"0")
        zk.create(f"{b}/quiet", b"0")
        with TcpProxy(server.host, server.port, record=True) as proxy:
            cli = CliMt(proxy.connect_string)
            try:
                cli.wait_connected()
                cli.run(f"get {b}", rf"^{re.escape(b)}: rc = ")
                cli.run(f"get {b}/quiet", rf"^{re.escape(b)}/quiet: rc = ")
                assert cli.run(f"wexists {b}/new") == [f"Error -101 for {b}/new"]
                proxy.pause()
                cli._collect(None, 0.3)
                zk.set(b, b"1")
                zk.create(f"{b}/new", b"")
                proxy.clear_record()
                proxy.resume()
                cli.wait_event(("CHANGED_EVENT", b), timeout=20)
                cli.wait_event(("CREATED_EVENT", f"{b}/new"))
                assert ("CHANGED_EVENT", f"{b}/quiet") not in cli.events
                zk.set(f"{b}/quiet", b"1")
                cli.wait_event(("CHANGED_EVENT", f"{b}/quiet"))
                assert proxy.requests[0] == (-8, 101), proxy.requests
                assert sum("Got a new session id" in line for line in cli.all) == 1, cli.all
            finally:
                cli.close()
    finally:
        zk.stop()
        zk.close()
