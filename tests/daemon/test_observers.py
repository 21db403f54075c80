"""The observers one by one: readiness to systemd, the status board's rules, guarded hooks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from lvscare import sdnotify
from lvscare.care import Care
from lvscare.config import build_config
from lvscare.health import State
from lvscare.prober import ProbeResult
from lvscare.status import StatusBoard
from lvscare.telemetry import Guarded
from tests.daemon.inproc_daemon import MASTERS, VS, ScriptedProber, TableInMemory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock | None = None) -> tuple[Care, TableInMemory, ScriptedProber]:
    cfg = build_config(vs=VS, rs=[f"{m}:6443" for m in MASTERS], interval="2", watch=False)
    table, prober = TableInMemory(), ScriptedProber()
    care = Care(cfg, table, prober, clock=clock or Clock())
    return care, table, prober


def test_ready_only_after_a_reconcile_that_worked_and_only_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    care, _, _ = make()
    notifier = sdnotify.ReadyNotifier(care)
    notifier.transitioned(care.servers[0], State.UP, State.DRAINING)  # not ready yet: silent
    notifier.reconciled([], OSError("netlink"), 0.01)
    with pytest.raises(BlockingIOError):
        listener.recv(100)
    notifier.reconciled([], None, 0.01)
    assert listener.recv(100).decode().split("\n")[0] == "READY=1"
    notifier.reconciled([], None, 0.01)
    with pytest.raises(BlockingIOError):
        listener.recv(100)
    care.servers[0].tracker.state = State.DRAINING
    notifier.transitioned(care.servers[0], State.UP, State.DRAINING)
    assert listener.recv(100).decode() == "STATUS=10.103.97.2:6443: 2/3 real servers up"
    notifier.stopping()
    assert listener.recv(100).decode().startswith("STOPPING=1\n")


async def test_the_board_before_and_after_the_first_reconcile() -> None:
    clock = Clock()
    care, _, prober = make(clock)
    board = StatusBoard(care, wall=lambda: 1_700_000_000.0)
    care.observers.append(board)
    assert board.readiness() == (False, "no reconcile has finished yet")
    assert board.reconcile_problem() is None
    clock.now += 6.1  # three intervals of 2 s without a reconcile
    assert board.reconcile_problem() == "no reconcile has finished in 6.1s (limit 6s)"

    await care.resolve_all(strict=True)
    prober.failing[MASTERS[0]] = "tls"
    await care.run_round()
    assert board.reconcile_problem() is None
    ready, reason = board.readiness()
    assert ready and reason == "10.103.97.2:6443: 2/3 real servers serving"
    first = board.snapshot.body["real_servers"][0]
    assert first["state"] == "draining" and first["kernel_weight"] is None
    assert first["last_probe"] == {
        "at": "2023-11-14T22:13:20.000+00:00",
        "healthy": False,
        "latency_ms": 2.0,
        "reason": "tls",
        "status": None,
        "error": "scripted tls",
    }
    assert board.snapshot.body["last_reconcile"]["changes"][0] == "add-service"
    clock.now += 6.5
    assert board.readiness() == (False, "last reconcile finished 6.5s ago (limit 6s)")


async def test_every_master_down_is_not_ready_even_when_failing_open() -> None:
    care, table, prober = make()
    board = StatusBoard(care)
    care.observers.append(board)
    await care.resolve_all(strict=True)
    for m in MASTERS:
        prober.failing[m] = "refused"
    await care.run_round()
    await care.run_round()
    assert table.weights() == dict.fromkeys(MASTERS, 1)  # --all-down keep: all stay in
    ready, reason = board.readiness()
    assert not ready
    assert reason == "no healthy real server: " + ", ".join(
        f"{m}:6443 down (refused)" for m in MASTERS
    )


def test_a_failing_observer_is_logged_and_never_raises() -> None:
    class Broken:
        def probed(self, rs: object, result: object) -> None:
            raise RuntimeError("oops")

        def transitioned(self, rs: object, old: object, new: object) -> None:
            raise RuntimeError("oops")

        def reconciled(self, ops: object, error: object, seconds: float) -> None:
            raise RuntimeError("oops")

    care, _, _ = make()
    guarded = Guarded(Broken())
    with capture_logs() as logs:
        guarded.probed(care.servers[0], ProbeResult(True, 0.1))
        guarded.transitioned(care.servers[0], State.UP, State.DOWN)
        guarded.reconciled([], None, 0.1)
    assert [e["hook"] for e in logs] == ["probed", "transitioned", "reconciled"]
    assert all(e["error"] == "RuntimeError: oops" for e in logs)
