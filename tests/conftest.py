"""pytest fixtures: real servers as processes.

Fixtures
  corral          a fresh corral server for the test
  zookeeper       a fresh Apache ZooKeeper for the test
  server          parametrised over CORRAL_TEST_TARGETS (comma list, default
                  "corral"): the same test runs against each target, so a test
                  can be validated against the real ZooKeeper with
                  CORRAL_TEST_TARGETS=zookeeper
  server_factory  start(kind, cfg=None) -> Server, for tests needing several

Nothing is skipped: a missing binary or package fails the test with a message
saying how to install it. Servers are stopped at teardown; a failing test's
report carries the tail of each server's log, and its directory under
tests/.work/ is kept (passing tests' directories are removed).
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

import harness

KINDS = ("corral", "zookeeper")


def targets() -> list[str]:
    raw = os.environ.get("CORRAL_TEST_TARGETS", "corral")
    out = [t.strip() for t in raw.split(",") if t.strip()]
    bad = [t for t in out if t not in KINDS]
    if bad or not out:
        raise pytest.UsageError(
            f"CORRAL_TEST_TARGETS={raw!r}: expected a comma list of {', '.join(KINDS)}"
        )
    return out


STALE_WORK_S = 24 * 3600


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove server directories left by failed runs more than a day ago."""
    if not harness.WORK_DIR.is_dir():
        return
    cutoff = time.time() - STALE_WORK_S
    for entry in harness.WORK_DIR.iterdir():
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"server targets (CORRAL_TEST_TARGETS): {','.join(targets())}; "
        f"corral binary: {harness.corral_bin()}; work dir: {harness.WORK_DIR}"
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        for server in getattr(item, "servers", []):
            rep.sections.append(
                (f"{server.kind} {server.connect_string} log {server.log_path} (tail)",
                 server.log_tail(40))
            )


def _test_failed(node: pytest.Item) -> bool:
    return any(getattr(getattr(node, f"rep_{w}", None), "failed", False)
               for w in ("setup", "call"))


class _Started:
    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.servers: list[harness.Server] = []
        if not hasattr(request.node, "servers"):
            request.node.servers = []

    def start(self, kind: str, cfg: dict | None = None, **kw) -> harness.Server:
        problem = None
        try:
            harness.check_available(kind)
            server = harness.start_server(kind, cfg, **kw)
        except harness.HarnessError as e:
            problem = f"could not start {kind}: {e}"
        if problem:  # outside the except block, so the report is just the message
            pytest.fail(problem, pytrace=False)
        self.servers.append(server)
        self.request.node.servers.append(server)
        return server

    def finish(self) -> None:
        failed = _test_failed(self.request.node)
        for server in self.servers:
            server.stop()
            if not failed:
                shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def server_factory(request: pytest.FixtureRequest):
    started = _Started(request)
    yield started.start
    started.finish()


@pytest.fixture
def corral(request: pytest.FixtureRequest) -> harness.Server:
    started = _Started(request)
    yield started.start("corral")
    started.finish()


@pytest.fixture
def zookeeper(request: pytest.FixtureRequest) -> harness.Server:
    started = _Started(request)
    yield started.start("zookeeper")
    started.finish()


@pytest.fixture(params=targets())
def server(request: pytest.FixtureRequest) -> harness.Server:
    started = _Started(request)
    yield started.start(request.param)
    started.finish()
