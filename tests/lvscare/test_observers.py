"""The observers one by one: readiness to systemd, the status board's rules, guarded hooks."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from structlog.testing import capture_logs

from lvscare.care import loop as care_loop
from lvscare.care.loop import Care
from lvscare.care.observer import Observer
from lvscare.care.tracker import State
from lvscare.config import build_config
from lvscare.probe.http import ProbeResult
from lvscare.telemetry import sdnotify
from lvscare.telemetry.hub import Guarded
from lvscare.telemetry.metrics import Metrics
from lvscare.telemetry.status import StatusBoard
from tests.support.fake_kernel import TableInMemory, VIPUntouched
from tests.support.inproc_daemon import MASTERS, VS
from tests.support.probers import ScriptedProber


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    clock: Clock | None = None, observers: Callable[[Care], Sequence[Observer]] = lambda c: ()
) -> tuple[Care, TableInMemory, ScriptedProber]:
    cfg = build_config(vs=VS, rs=[f"{m}:6443" for m in MASTERS], interval="2", watch=False)
    table, prober = TableInMemory(), ScriptedProber()
    care = Care(cfg, table, prober, VIPUntouched(), clock=clock or Clock(), observers=observers)
    return care, table, prober


ObserverT = TypeVar("ObserverT", bound=Observer)


def observed(
    make_observer: Callable[[Care], ObserverT], clock: Clock | None = None
) -> tuple[Care, TableInMemory, ScriptedProber, ObserverT]:
    """A Care built with one observer, and that observer."""
    made: list[ObserverT] = []

    def observers(care: Care) -> list[ObserverT]:
        made.append(make_observer(care))
        return made

    care, table, prober = make(clock, observers)
    return care, table, prober, made[0]


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
    care, _, prober, board = observed(lambda c: StatusBoard(c, wall=lambda: 1_700_000_000.0), clock)
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
    care, table, prober, board = observed(StatusBoard)
    await care.resolve_all(strict=True)
    prober.failing[MASTERS[0]] = "refused"
    for m in MASTERS[1:]:
        prober.failing[m] = "unreachable"
    await care.run_round()
    await care.run_round()
    assert table.weights() == {m: 1 for m in MASTERS[1:]}  # --all-down keep
    ready, reason = board.readiness()
    assert not ready
    assert reason == (
        f"no healthy real server: {MASTERS[0]}:6443 down (refused), "
        + ", ".join(f"{m}:6443 draining (unreachable)" for m in MASTERS[1:])
        + " (failing open: kept in the table: "
        + ", ".join(f"{m}:6443" for m in MASTERS[1:])
        + ")"
    )
    assert board.snapshot.body["fail_open"] is True


async def test_every_master_refusing_says_none_is_kept() -> None:
    care, table, prober, board = observed(StatusBoard)
    await care.resolve_all(strict=True)
    for m in MASTERS:
        prober.failing[m] = "refused"
    await care.run_round()
    await care.run_round()
    assert table.weights() == {}
    ready, reason = board.readiness()
    assert not ready
    assert reason.endswith("(failing open, but every failure was definite: none kept)")


async def test_a_stalled_round_is_counted() -> None:
    care, _, prober, metrics = observed(Metrics)
    await care.resolve_all(strict=True)
    await care.run_round()
    for m in MASTERS:
        prober.failing[m] = "timeout"
    await care.run_round()
    assert sample(metrics, "lvscare_stalled_rounds_total") == 1
    rs = f"{MASTERS[0]}:6443"
    assert sample(metrics, "lvscare_probe_failures_total", rs=rs, reason="timeout") == 1
    assert sample(metrics, "lvscare_fail_open") == 0


async def test_metrics_show_fail_open_while_every_master_is_down_until_one_returns() -> None:
    care, _, prober, metrics = observed(Metrics)
    await care.resolve_all(strict=True)
    await care.run_round()
    assert sample(metrics, "lvscare_fail_open") == 0
    for m in MASTERS:
        prober.failing[m] = "refused"
    await care.run_round()
    await care.run_round()
    assert sample(metrics, "lvscare_fail_open") == 1
    del prober.failing[MASTERS[1]]
    await care.run_round()
    assert sample(metrics, "lvscare_fail_open") == 0


async def test_every_lost_watch_connection_is_counted_per_real_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def port_accepts(addr: object, port: int, timeout: float) -> None:
        return None  # the lab's addresses do not exist on this host: no real connect

    monkeypatch.setattr(care_loop, "tcp_check", port_accepts)
    care, _, _, metrics = observed(Metrics)
    await care.resolve_all(strict=True)
    await care.run_round()
    await care.connection_lost(care.servers[2])  # an idle close: the probe is fine
    await care.connection_lost(care.servers[2])
    rs = f"{MASTERS[2]}:6443"
    assert sample(metrics, "lvscare_watch_connections_lost_total", rs=rs) == 2
    assert sample(metrics, "lvscare_watch_connections_lost_total", rs=f"{MASTERS[0]}:6443") == 0
    assert care.servers[2].tracker.state is State.UP


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


def test_a_failing_observer_is_logged_and_never_raises() -> None:
    class Broken:
        def probed(self, rs: object, result: object) -> None:
            raise RuntimeError("oops")

        def transitioned(self, rs: object, old: object, new: object) -> None:
            raise RuntimeError("oops")

        def reconciled(self, ops: object, error: object, seconds: float) -> None:
            raise RuntimeError("oops")

        def watch_lost(self, rs: object) -> None:
            raise RuntimeError("oops")

        def stalled(self) -> None:
            raise RuntimeError("oops")

    care, _, _ = make()
    guarded = Guarded(Broken())
    with capture_logs() as logs:
        guarded.probed(care.servers[0], ProbeResult(True, 0.1))
        guarded.transitioned(care.servers[0], State.UP, State.DOWN)
        guarded.reconciled([], None, 0.1)
        guarded.watch_lost(care.servers[0])
        guarded.stalled()
    hooks = [e["hook"] for e in logs]
    assert hooks == ["probed", "transitioned", "reconciled", "watch_lost", "stalled"]
    assert all(e["error"] == "RuntimeError: oops" for e in logs)
