"""/healthz, /readyz, /metrics, /status of the real daemon, with the kernel table in memory."""

from __future__ import annotations

import gc
import json
import socket
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from lvscare.kernel.table import DestState
from lvscare.telemetry import hub
from tests.support.fake_kernel import dest
from tests.support.http_get import aget, get
from tests.support.inproc_daemon import MASTERS, InProc, running
from tests.support.wait import await_until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value}, through prometheus-client's own parser."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def metric(d: InProc, name: str, **labels: str) -> float:
    status, text = await d.get("/metrics")
    assert status == 200
    return samples(text).get((name, tuple(sorted(labels.items()))), float("nan"))


def rs(i: int) -> str:
    return f"{MASTERS[i]}:6443"


async def test_all_four_paths_answer_once_the_first_round_is_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(monkeypatch.setattr) as d:
        assert await await_until(lambda: d.table.weights() == dict.fromkeys(MASTERS, 1))
        assert await await_until(lambda: d.daemon.telemetry.board.snapshot.ready)
        assert await d.get("/healthz") == (200, "ok\n")
        status, body = await d.get("/readyz")
        assert status == 200 and body.startswith("ok: 10.103.97.2:6443: 3/3 real servers")
        status, text = await d.get("/metrics")
        assert status == 200
        got = samples(text)
        names = {name for name, _ in got}
        assert {
            "lvscare_build_info",
            "lvscare_real_server_up",
            "lvscare_real_server_weight",
            "lvscare_real_server_state",
            "lvscare_probe_duration_seconds_bucket",
            "lvscare_probe_failures_total",
            "lvscare_real_server_transitions_total",
            "lvscare_reconcile_runs_total",
            "lvscare_reconcile_errors_total",
            "lvscare_drift_repairs_total",
            "lvscare_ipvs_changes_total",
            "lvscare_virtual_server_present",
            "process_resident_memory_bytes",
        } <= names
        assert all(n.startswith(("lvscare_", "process_")) for n in names)
        assert got[("lvscare_real_server_weight", (("rs", rs(0)),))] == 1
        assert got[("lvscare_ipvs_changes_total", (("op", "add-dest"),))] == 3
        assert got[("lvscare_virtual_server_present", ())] == 1
        status, body = await d.get("/status")
        doc = json.loads(body)
        assert status == 200
        assert doc["virtual_server"] == {
            "address": "10.103.97.2:6443",
            "scheduler": "rr",
            "in_kernel": True,
            "kernel_scheduler": "rr",
        }
        assert doc["ready"] is True
        first = doc["real_servers"][0]
        assert first["rs"] == rs(0) and first["state"] == "up" and first["kernel_weight"] == 1
        assert first["watch_connected"] is None  # --no-watch
        assert first["last_probe"]["healthy"] is True and first["last_probe"]["status"] == 200
        assert first["last_probe"]["latency_ms"] == 1.0
        assert await d.get("/nothing-here") == (404, "404: Not Found")


async def test_serving_takes_start_up_objects_out_of_the_collectors_reach(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full collection then walks only what the rounds allocate, not every module. The
    freeze comes after the first round, which builds the long-lived sessions."""
    gc.unfreeze()
    async with running(monkeypatch.setattr):
        assert await await_until(lambda: gc.get_freeze_count() > 10_000)


async def test_readyz_is_500_with_a_reason_when_every_master_is_down_then_200_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(monkeypatch.setattr) as d:
        assert await await_until(lambda: d.daemon.telemetry.board.snapshot.ready)
        for m in MASTERS:
            d.prober.failing[m] = "refused"

        async def not_ready() -> bool:
            return (await d.get("/readyz"))[0] == 500

        assert await await_until(not_ready)
        _, body = await d.get("/readyz")
        assert body.count("\n") == 1
        assert body.startswith("not ready: no healthy real server: ")
        assert f"{rs(0)} down (refused)" in body or f"{rs(0)} draining (refused)" in body
        # the endpoint itself is fine: the daemon is alive and doing its job
        assert (await d.get("/healthz"))[0] == 200
        doc = json.loads((await d.get("/status"))[1])
        assert doc["ready"] is False
        assert doc["real_servers"][1]["last_probe"]["reason"] == "refused"
        assert doc["real_servers"][1]["last_probe"]["error"] == "scripted refused"

        del d.prober.failing[MASTERS[2]]

        async def ready() -> bool:
            return (await d.get("/readyz"))[0] == 200

        assert await await_until(ready)
        assert "1/3 real servers serving" in (await d.get("/readyz"))[1]


async def test_counters_move_with_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(monkeypatch.setattr) as d:
        assert await await_until(lambda: d.daemon.telemetry.board.snapshot.ready)
        assert await metric(d, "lvscare_probe_failures_total", rs=rs(1), reason="timeout") == 0
        d.prober.failing[MASTERS[1]] = "timeout"
        d.prober.failing[MASTERS[2]] = "status"
        assert await await_until(lambda: MASTERS[1] not in d.table.weights())

        assert await metric(d, "lvscare_probe_failures_total", rs=rs(1), reason="timeout") >= 2
        assert await metric(d, "lvscare_probe_failures_total", rs=rs(2), reason="status") >= 2
        assert await metric(d, "lvscare_probe_failures_total", rs=rs(0), reason="timeout") == 0
        key = {"rs": rs(1), "from_state": "up", "to_state": "draining"}
        assert await metric(d, "lvscare_real_server_transitions_total", **key) == 1
        key = {"rs": rs(1), "from_state": "draining", "to_state": "down"}
        assert await metric(d, "lvscare_real_server_transitions_total", **key) == 1
        assert await metric(d, "lvscare_real_server_up", rs=rs(1)) == 0
        assert await metric(d, "lvscare_real_server_weight", rs=rs(1)) == 0
        state = {"rs": rs(1), "lvscare_real_server_state": "down"}
        assert await metric(d, "lvscare_real_server_state", **state) == 1
        assert await metric(d, "lvscare_ipvs_changes_total", op="del-dest") == 2
        assert await metric(d, "lvscare_drift_repairs_total") == 0
        count = await metric(d, "lvscare_probe_duration_seconds_count", rs=rs(1))
        assert count >= 3

        # someone else edits the table: that is drift, and its repair is counted
        assert d.table.state is not None
        d.table.state.dests[dest("198.18.0.99")] = DestState(1)
        d.table.state.dests[dest(MASTERS[0])] = DestState(5)
        assert await await_until(lambda: d.table.weights() == {MASTERS[0]: 1})
        assert await metric(d, "lvscare_drift_repairs_total") == 2

        runs = await metric(d, "lvscare_reconcile_runs_total")
        assert runs >= 4
        assert await metric(d, "lvscare_reconcile_errors_total") == 0
        d.table.broken = True

        async def errors_counted() -> bool:
            return await metric(d, "lvscare_reconcile_errors_total") >= 2

        assert await await_until(errors_counted)


async def test_healthz_is_500_while_the_loop_is_blocked_and_200_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(monkeypatch.setattr) as d:
        assert await await_until(lambda: d.daemon.care.last_reconcile_at is not None)
        assert (await d.get("/healthz"))[0] == 200
        seen: dict[str, tuple[int, str]] = {}

        def ask_while_blocked() -> None:
            time.sleep(0.2)
            seen["healthz"] = get(d.base + "/healthz")
            seen["readyz"] = get(d.base + "/readyz")
            seen["status"] = get(d.base + "/status")

        asker = threading.Thread(target=ask_while_blocked)
        asker.start()
        time.sleep(2.5)  # on purpose: this blocks the daemon's event loop (it is ours)
        asker.join(10)
        status, body = seen["healthz"]
        assert status == 500 and body == "unhealthy: event loop did not respond within 1s\n"
        # the other paths still answer, from the last published snapshot; by now that
        # snapshot is older than three intervals, so the daemon is not ready either
        assert seen["readyz"][0] == 500 and "last reconcile finished" in seen["readyz"][1]
        assert seen["status"][0] == 200 and json.loads(seen["status"][1])["ready"] is True

        async def healthy() -> bool:
            return (await d.get("/healthz"))[0] == 200

        assert await await_until(healthy)


async def test_healthz_is_500_when_reconciles_stop_finishing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(monkeypatch.setattr) as d:
        assert await await_until(lambda: d.daemon.telemetry.board.snapshot.ready)
        d.table.broken = True

        async def unhealthy() -> bool:
            return (await d.get("/healthz"))[0] == 500

        assert await await_until(unhealthy)
        status, body = await d.get("/healthz")
        assert body.startswith("unhealthy: last reconcile finished ")
        assert "(limit 0.6s)" in body
        status, body = await d.get("/readyz")
        assert status == 500 and "last reconcile finished" in body
        doc = json.loads((await d.get("/status"))[1])
        assert doc["last_reconcile"]["error"] == "OSError: netlink went away"

        d.table.broken = False

        async def healthy() -> bool:
            return (await d.get("/healthz"))[0] == 200

        assert await await_until(healthy)


async def test_a_busy_port_is_logged_and_retried_while_the_care_loop_runs_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub, "LISTEN_RETRY_SECONDS", 0.1)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    with capture_logs() as logs:
        async with running(
            monkeypatch.setattr, health_address=f"127.0.0.1:{port}", wait_for_endpoint=False
        ) as d:
            # the daemon does its job without the endpoint
            assert await await_until(lambda: d.table.weights() == dict.fromkeys(MASTERS, 1))
            assert d.daemon.telemetry.server is None
            errors = [e for e in logs if e["event"].startswith("health endpoint cannot listen")]
            assert len(errors) == 1 and errors[0]["address"] == f"127.0.0.1:{port}"
            taken.close()
            assert await await_until(lambda: d.daemon.telemetry.server is not None)
            status, _ = await aget(f"http://127.0.0.1:{port}/healthz")
            assert status == 200
    assert len([e for e in logs if e["event"].startswith("health endpoint cannot")]) == 1
