"""The care loop's decisions, with the kernel table held in memory (the lab proves netlink)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from lvscare.address import IPAddress
from lvscare.care import loop as care_loop
from lvscare.care.loop import Care
from lvscare.care.tracker import State
from lvscare.config import build_config
from lvscare.kernel.table import DestState, Op, Service, ServiceState, plan
from lvscare.probe.http import ProbeResult
from tests.support.fake_kernel import TableInMemory, VIPUntouched, dest
from tests.support.inproc_daemon import MASTERS as M
from tests.support.probers import ScriptedProber
from tests.support.wait import await_until


def make(**kw: object) -> tuple[Care, TableInMemory, ScriptedProber]:
    kw.setdefault("watch", False)  # no connections from the host to lab addresses
    cfg = build_config(vs="10.103.97.2:6443", rs=[f"{m}:6443" for m in M], **kw)  # type: ignore[arg-type]
    table, prober = TableInMemory(), ScriptedProber()
    care = Care(cfg, table, prober, VIPUntouched())
    return care, table, prober


def weights(table: TableInMemory) -> dict[str, int]:
    """The table's weights; the virtual server must be there."""
    assert table.state is not None
    return table.weights()


async def test_first_round_creates_the_service_with_all_healthy_masters() -> None:
    care, table, _ = make()
    await care.resolve_all(strict=True)
    await care.run_round()
    assert weights(table) == dict.fromkeys(M, 1)


async def test_start_up_work_waits_for_the_first_reconcile_and_runs_once() -> None:
    care, table, _ = make(interval="0.05")
    await care.resolve_all(strict=True)
    stop = asyncio.Event()
    seen: list[dict[str, int]] = []

    def after_first_round() -> None:
        seen.append(weights(table))  # the first reconcile is already done

    task = asyncio.create_task(care.run(stop, after_first_round))
    assert await await_until(lambda: care.rounds >= 3)
    stop.set()
    await task
    assert seen == [dict.fromkeys(M, 1)]


async def test_failed_master_is_drained_then_removed_then_restored() -> None:
    care, table, prober = make()
    await care.resolve_all(strict=True)
    await care.run_round()
    prober.fail(M[1])
    report = await care.run_round()
    assert report.transitions == [(f"{M[1]}:6443", State.UP, State.DRAINING)]
    assert weights(table)[M[1]] == 0
    await care.run_round()
    assert M[1] not in weights(table)
    prober.failing.clear()
    await care.run_round()
    assert weights(table) == dict.fromkeys(M, 1)


async def test_rise_keeps_a_recovered_master_out_until_enough_passes() -> None:
    care, table, prober = make(rise=3)
    await care.resolve_all(strict=True)
    prober.fail(M[0])
    await care.run_round()
    await care.run_round()
    prober.failing.clear()
    await care.run_round()
    await care.run_round()
    assert M[0] not in weights(table)
    await care.run_round()
    assert weights(table)[M[0]] == 1


async def test_a_table_that_already_matches_is_adopted_without_changes() -> None:
    care, table, _ = make()
    table.state = ServiceState("rr", {dest(m): DestState(1) for m in M})
    await care.resolve_all(strict=True)
    report = await care.run_round()
    assert report.ops == [] and table.applied == []


async def test_changes_made_by_someone_else_are_repaired_each_round() -> None:
    care, table, _ = make()
    await care.resolve_all(strict=True)
    await care.run_round()
    assert table.state is not None
    table.state.scheduler = "wlc"
    table.state.dests[dest("198.18.0.99")] = DestState(1)
    del table.state.dests[dest(M[2])]
    table.state.dests[dest(M[0])] = DestState(7)
    await care.run_round()
    assert table.state.scheduler == "rr"
    assert weights(table) == dict.fromkeys(M, 1)
    table.state = None  # ipvsadm -C
    await care.run_round()
    assert weights(table) == dict.fromkeys(M, 1)


async def test_run_once_adds_every_master_without_probing() -> None:
    care, table, prober = make()
    prober.fail(M)  # would fail if probed
    await care.resolve_all(strict=True)
    await care.apply_all_now()
    assert weights(table) == dict.fromkeys(M, 1)


async def test_changed_hostname_address_is_swapped_in_the_table() -> None:
    cfg = build_config(vs="10.103.97.2:6443", rs=["localhost:6443"], watch=False)
    table = TableInMemory()
    care = Care(cfg, table, ScriptedProber(), VIPUntouched())
    await care.resolve_all(strict=True)
    await care.run_round()
    assert weights(table) == {"127.0.0.1": 1}
    care.servers[0].addr = ipaddress.ip_address("127.0.0.2")  # as if DNS had said so
    ops = await care.reconcile()
    assert weights(table) == {"127.0.0.2": 1}
    assert [o.kind for o in ops] == ["add-dest", "del-dest"]  # the new one in first


def test_plan_is_the_only_source_of_ops() -> None:
    # Guard: the care loop and the planner agree on a fresh table.
    svc = Service(ipaddress.ip_address("10.103.97.2"), 6443, "rr")
    assert plan(svc, None, {})[0] == Op("add-service")


async def test_every_master_down_keeps_the_last_healthy_set_that_did_not_fail_definitely() -> None:
    # The slow node of issue 15: M0 and M1 time out (the node is the slow one) in the round
    # in which M2 is killed (refused). Failing open keeps M0 and M1, never the refusing M2.
    care, table, prober = make()
    await care.resolve_all(strict=True)
    await care.run_round()
    prober.fail([M[0], M[1]], "timeout")
    prober.fail(M[2], "refused")
    await care.run_round()
    assert care.fail_open()
    assert weights(table) == {M[0]: 1, M[1]: 1, M[2]: 0}
    await care.run_round()
    await care.run_round()
    assert weights(table) == {M[0]: 1, M[1]: 1}
    del prober.failing[M[1]]  # one master back: the other one kept drains as usual
    await care.run_round()
    assert not care.fail_open()
    assert weights(table) == {M[0]: 0, M[1]: 1}  # kept at weight: not yet drained
    await care.run_round()
    assert weights(table) == {M[1]: 1}
    assert M[2] not in weights(table)


async def test_fail_open_never_puts_back_a_master_drained_before_everything_went_down() -> None:
    care, table, prober = make()
    await care.resolve_all(strict=True)
    await care.run_round()
    prober.fail(M[0], "timeout")
    await care.run_round()
    await care.run_round()
    assert weights(table) == {M[1]: 1, M[2]: 1}  # M0 drained, then removed
    prober.fail([M[1], M[2]], "unreachable")
    await care.run_round()
    assert care.fail_open()
    assert weights(table) == {M[1]: 1, M[2]: 1}  # the last healthy set; M0 stays out
    del prober.failing[M[2]]
    await care.run_round()
    assert weights(table) == {M[1]: 0, M[2]: 1}  # weight 0 first for the kept M1
    assert care.servers[1].tracker.state is State.DRAINING
    await care.run_round()
    assert weights(table) == {M[2]: 1}


async def test_every_master_refusing_empties_the_table_even_when_failing_open() -> None:
    care, table, prober = make()
    await care.resolve_all(strict=True)
    await care.run_round()
    prober.fail(M, "refused")
    await care.run_round()
    assert care.fail_open()
    assert weights(table) == dict.fromkeys(M, 0)  # drained first, as any failure
    await care.run_round()
    assert weights(table) == {}
    prober.failing.clear()
    await care.run_round()
    assert weights(table) == dict.fromkeys(M, 1)


async def test_a_round_in_which_every_probe_timed_out_changes_no_state() -> None:
    care, table, prober = make()
    await care.resolve_all(strict=True)
    await care.run_round()
    prober.fail(M, "timeout")
    report = await care.run_round()
    assert report.transitions == [] and report.ops == []
    assert [rs.tracker.state for rs in care.servers] == [State.UP] * 3
    assert care.stalled_rounds == 1
    assert weights(table) == dict.fromkeys(M, 1)


async def test_a_stalled_probe_is_no_evidence_against_its_master() -> None:
    care, table, prober = make()
    await care.resolve_all(strict=True)
    await care.run_round()
    prober.fail(M[0], "stalled")  # it timed out while lvscare itself could not run
    prober.fail(M[1], "refused")
    for _ in range(3):
        await care.run_round()
    assert care.servers[0].tracker.state is State.UP
    assert weights(table) == {M[0]: 1, M[2]: 1}


async def test_a_stall_after_a_refusal_never_hides_it_from_fail_open() -> None:
    care, table, prober = make()
    await care.resolve_all(strict=True)
    await care.run_round()
    prober.fail(M[0], "refused")
    await care.run_round()  # M0 draining; M1 and M2 are the last healthy set
    prober.fail(M, "timeout")
    await care.run_round()  # a stall: no state changes, M0's refusal stays its last word
    assert care.servers[0].last is not None and care.servers[0].last.reason == "refused"
    prober.fail(M[0], "refused")
    await care.run_round()
    assert care.fail_open()
    assert weights(table) == {M[1]: 1, M[2]: 1}


async def test_all_down_drain_empties_the_table() -> None:
    care, table, prober = make(all_down="drain")
    await care.resolve_all(strict=True)
    await care.run_round()
    prober.fail(M)
    await care.run_round()
    await care.run_round()
    assert weights(table) == {}


async def test_lost_connection_then_failed_probe_drains_at_once_even_with_high_fall() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = build_config(
        vs="10.103.97.2:6443", rs=[f"127.0.0.1:{port}"], fall=5, interval="60", all_down="drain"
    )
    table, prober = TableInMemory(), ScriptedProber()
    care = Care(cfg, table, prober, VIPUntouched())
    await care.resolve_all(strict=True)
    await care.run_round()
    assert await await_until(lambda: bool(accepted))
    prober.fail("127.0.0.1")
    table.calls.clear()
    accepted[0].transport.abort()  # the apiserver "crashes"
    assert await await_until(lambda: weights(table) == {"127.0.0.1": 0})
    # Weight 0 goes to the kernel first; reading the table back comes after.
    assert table.calls[0] == f"apply set-dest 127.0.0.1:{port} weight=0"
    assert await await_until(lambda: "read" in table.calls)
    await care.stop_watches()
    server.close()


async def test_idle_connection_closed_by_a_healthy_server_drains_nothing() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = build_config(vs="10.103.97.2:6443", rs=[f"127.0.0.1:{port}"], interval="60")
    table, prober = TableInMemory(), ScriptedProber()
    probes: list[str] = []
    real_probe = prober.probe

    async def counting(addr: IPAddress, port: int, server_name: str | None) -> ProbeResult:
        probes.append(str(addr))
        return await real_probe(addr, port, server_name)

    prober.probe = counting  # type: ignore[method-assign]
    care = Care(cfg, table, prober, VIPUntouched())
    await care.resolve_all(strict=True)
    await care.run_round()
    assert await await_until(lambda: bool(accepted))
    await asyncio.sleep(1.1)  # idle for a while, then
    accepted[0].close()  # a normal close, as an apiserver does with idle connections
    assert await await_until(lambda: len(probes) == 2)  # the round's probe and the extra one
    assert weights(table) == {"127.0.0.1": 1}
    assert care.servers[0].tracker.state is State.UP
    # The watch is back at once, not an interval (60 s) later: the next crash is seen.
    assert await await_until(lambda: len(accepted) == 3)  # 2: the TCP check after the close
    await care.stop_watches()
    server.close()


async def test_a_probe_answering_after_a_crash_was_seen_does_not_restore_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Seen in the lab: a round's probe started just before the apiserver died answered 200
    # after the crash reaction had drained it, and put it back at weight 1 for a round.
    async def refused(addr: object, port: int, timeout: float) -> ProbeResult:
        return ProbeResult(False, 0.001, "refused", "scripted refusal")

    monkeypatch.setattr(care_loop, "tcp_check", refused)
    care, table, prober = make(fall=3)
    await care.resolve_all(strict=True)
    await care.run_round()
    in_flight, answer = asyncio.Event(), asyncio.Event()
    scripted = prober.probe

    async def slow_for_m0(addr: IPAddress, port: int, server_name: str | None) -> ProbeResult:
        if str(addr) == M[0]:
            in_flight.set()
            await answer.wait()  # answers 200: it got through before the crash
        return await scripted(addr, port, server_name)

    prober.probe = slow_for_m0  # type: ignore[method-assign]
    round_ = asyncio.create_task(care.run_round())
    await in_flight.wait()
    await care.connection_lost(care.servers[0])  # the crash, seen while the probe is out
    assert weights(table)[M[0]] == 0
    answer.set()
    await round_
    assert care.servers[0].tracker.state is State.DRAINING
    assert weights(table)[M[0]] == 0
    await care.run_round()  # the next round's own probe is newer news: its 200 counts
    assert weights(table)[M[0]] == 1
