"""Compile and run tests/java/CorralE2E.java (the ZooKeeper Java client 3.8, Debian package
`zookeeper`) for the end-to-end tests.

The class is compiled once per source version into tests/.work/java-<hash>/ (javac takes a
few seconds; the cache makes later runs start at once). The program prints `key=value`
lines; `SYNC <what>` lines are requests to the test (pause or resume the proxy), answered
with "ok" on the program's stdin once done.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "java" / "CorralE2E.java"
WORK = Path(os.environ.get("CORRAL_TEST_WORK", HERE / ".work"))
ZK_JAR = "/usr/share/java/zookeeper.jar"  # its manifest Class-Path brings jute, netty, ...
SLF4J_NOP = "/usr/share/java/slf4j-nop.jar"
RUN_TIMEOUT_S = 120
COMPILE_TIMEOUT_S = 180


def _tool(name: str) -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / name).exists():
        return str(Path(java_home) / "bin" / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(
            f"{name} not found: install a JDK (`apt-get install -y default-jdk-headless`)"
        )
    return found


def classpath(classes: Path) -> str:
    for jar in (ZK_JAR, SLF4J_NOP):
        if not Path(jar).exists():
            raise RuntimeError(
                f"{jar} missing: run `apt-get update && apt-get install -y zookeeper "
                "libslf4j-java`"
            )
    return f"{classes}:{ZK_JAR}:{SLF4J_NOP}"


def compiled() -> Path:
    """Directory holding CorralE2E.class, compiling it if this source was not yet built."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    out = WORK / f"java-{digest}"
    if (out / "CorralE2E.class").exists():
        return out
    tmp = WORK / f"java-{digest}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    proc = subprocess.run(
        [_tool("javac"), "-J-Xmx256m", "-nowarn", "-cp", classpath(tmp), "-d", str(tmp), str(SOURCE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMPILE_TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"javac failed:\n{proc.stdout}")
    try:
        tmp.rename(out)
    except OSError:  # another run won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return out


class Transcript:
    def __init__(self, lines: list[str], returncode: int | None):
        self.lines = lines
        self.returncode = returncode
        self.values: dict[str, str] = {}
        for line in lines:
            if "=" in line and not line.startswith("SYNC "):
                key, value = line.split("=", 1)
                self.values.setdefault(key, value)

    def __getitem__(self, key: str) -> str:
        if key not in self.values:
            raise AssertionError(f"transcript has no {key!r}:\n{self.text()}")
        return self.values[key]

    def get(self, key, default=None):
        return self.values.get(key, default)

    def text(self) -> str:
        return "\n".join(self.lines)


def run(args: list[str], on_sync=None, timeout: float = RUN_TIMEOUT_S) -> Transcript:
    """Run CorralE2E with `args`; `on_sync(what)` is called for each SYNC request."""
    classes = compiled()
    cmd = [
        _tool("java"), "-Xmx128m", "-Xss1m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Djava.net.preferIPv4Stack=true", "-cp", classpath(classes), "CorralE2E", *args,
    ]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        bufsize=1,
    )
    lines: list[str] = []
    q: queue.Queue = queue.Queue()

    def reader():
        for line in proc.stdout:
            q.put(line.rstrip("\n"))
        q.put(None)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("Java client timed out; transcript so far:\n" + "\n".join(lines))
            try:
                line = q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                break
            lines.append(line)
            if line.startswith("SYNC "):
                if on_sync is not None:
                    on_sync(line[5:].strip())
                proc.stdin.write("ok\n")
                proc.stdin.flush()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return Transcript(lines, proc.returncode)
