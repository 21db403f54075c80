"""bench/failover.py's report, from made-up raw files: the busy node's parts (issue 16), and an
idle run's directory read as before."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from bench.failover import (
    Mark,
    Steady,
    cpu_by_label,
    lag_cell,
    percentiles,
    print_report,
    readmitted,
)

V, A, B = "198.18.0.12:6443", "198.18.0.11:6443", "198.18.0.13:6443"
FULL = {A: 1, V: 1, B: 1}
T = 1_800_000_000.0  # a wall time


def test_percentiles_are_nearest_rank_and_max() -> None:
    assert percentiles([]) is None
    assert percentiles([0.5]) == (0.5, 0.5, 0.5)
    xs = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentiles(list(reversed(xs))) == (0.05, 0.099, 0.1)
    assert lag_cell([{"lat": 0.012}, {"lat": 0.080}, {"lat": 0.004}]) == "12 / 80 / 80 ms"
    assert lag_cell([]) == "-"


def test_a_victim_back_at_weight_between_drain_and_restore_is_readmitted() -> None:
    changes = [(T, FULL), (T + 1, {A: 1, V: 0, B: 1}), (T + 2, {A: 1, B: 1}), (T + 5, FULL)]
    assert not readmitted(changes, V, T + 1, T + 5)  # back only once it listened again
    flap = [*changes[:2], (T + 1.5, FULL), *changes[2:]]
    assert readmitted(flap, V, T + 1, T + 5)
    assert not readmitted([(T + 2, None)], V, T + 1, T + 5)  # no table at all is no admission


def test_cpu_is_summed_by_kind_of_process_and_new_ones_count_from_zero() -> None:
    before = {1: ("masters", 10.0), 2: ("masters", 5.0), 3: ("busy loops", 100.0)}
    after = {1: ("masters", 11.0), 2: ("masters", 5.5), 3: ("busy loops", 109.0)}
    after |= {4: ("TLS load", 0.5), 5: ("kernel threads", 0.0)}
    used = cpu_by_label(before, after, 10.0)
    assert used == {"busy loops": 90.0, "masters": 15.0, "TLS load": 5.0}
    assert list(used) == ["busy loops", "masters", "TLS load"]  # largest first


def write_run(out: Path, busy: bool) -> None:
    """One lvscare kill run and one keepalived kill run, a steady state for each."""
    marks = [
        Mark("lvscare", "kill", 1, T + 10, T + 10.01, drained=T + 10.03, window_end=T + 13.03,
             restore=T + 14, back=T + 14.5, back_window_end=T + 17),
        Mark("keepalived", "kill", 1, T + 110, T + 110.01, drained=T + 111.5,
             window_end=T + 114.5, restore=T + 115, back=T + 116, back_window_end=T + 118),
    ]  # fmt: skip
    steady = [
        Steady("lvscare", 10.0, [1], rss_kib=[50 * 1024] * 10, cpu_s=1.5),
        Steady("keepalived", 10.0, [2], rss_kib=[12 * 1024] * 10, cpu_s=0.6),
    ]
    doc = {
        "victim": {"name": "m2", "key": V},
        "masters": [A, V, B],
        "settings": {},
        "marks": [asdict(m) for m in marks],
        "steady": [asdict(s) for s in steady],
        "windows": [["lvscare", T, T + 60], ["keepalived", T + 100, T + 160]],
        "checks": [],
    }
    (out / "marks.json").write_text(json.dumps(doc))
    table = [
        {"t": T + 1, "tb": FULL},
        {"t": T + 10.03, "tb": {A: 1, V: 0, B: 1}},
        {"t": T + 14.5, "tb": FULL},
        {"t": T + 111.5, "tb": {A: 1, B: 1}},
        {"t": T + 116, "tb": FULL},
    ]
    (out / "table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in table))
    client = [{"t0": T + 10.0, "t1": T + 10.01, "out": "refused", "ipvs": f"{V} SYN_RECV"}]
    client += [{"t0": T + 20 + i / 50, "t1": T + 20.01 + i / 50, "out": "ok"} for i in range(50)]
    (out / "client.jsonl").write_text("".join(json.dumps(r) + "\n" for r in client))
    if not busy:
        return
    (out / "busy.json").write_text(
        json.dumps(
            {
                "busy_loops": 2,
                "cpus": 2,
                "busy_loop_cpu_s": 150.0,
                "busy_loop_wall": 100.0,
                "steady_windows": {"lvscare": [T + 30, T + 40], "keepalived": [T + 130, T + 140]},
                "node_busy": {"lvscare": 0.995, "keepalived": 0.99},
                "tls_load": {"conns": 4, "period": 0.5, "fresh": 2.0},
                "lag_period": 0.5,
                "steady_cpu": {"lvscare": {"busy loops": 150.0, "masters": 30.0}},
                "early_ends": ["keepalived: never settled"],
            }
        )
    )
    lag = [{"t": T + 30 + i / 2, "lat": 0.010 + i / 1000, "out": 200} for i in range(20)]
    lag += [{"t": T + 10.1, "lat": 1.002, "out": 500}, {"t": T + 50, "lat": 9.0, "out": 200}]
    (out / "lag.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lag) + '{"t": 1')
    tls = [
        {"t0": T + 5, "t1": T + 5.1, "kind": "keep", "out": "ok", "new": True},
        {"t0": T + 10.02, "t1": T + 10.1, "kind": "keep", "out": "reset"},
        {"t0": T + 10.5, "t1": T + 10.6, "kind": "fresh", "out": "ok", "new": True},
        {"t0": T + 25, "t1": T + 28, "kind": "fresh", "out": "timeout", "new": True},
        {"t0": T + 120, "t1": T + 120.1, "kind": "keep", "out": "ok"},
    ]
    (out / "tls.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tls))


def test_a_busy_run_says_so_and_reports_the_loop_lag_and_the_tls_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(tmp_path, busy=True)
    text = print_report(tmp_path)
    capsys.readouterr()
    lines = text.splitlines()
    assert "busy node" in lines[0].lower() and "busy node" in lines[1]
    assert "2 busy loops on 2 CPUs" in lines[1] and "1.50 CPUs" in lines[1]
    assert "99.5 % in lvscare's" in lines[1]
    assert "Targets (issue 16, busy node):" in lines
    # steady state: 20 samples of 10..29 ms; the 9 s one is outside every window
    assert any(
        "care loop lag, steady state: p50 / p99 / max" in ln and "19 / 29 / 29 ms" in ln
        for ln in lines
    )
    assert any(ln.startswith("  steady state:") and "20 requests, 0 not" in ln for ln in lines)
    assert any(ln.startswith("  fault runs:") and "1002 / 1002 / 1002 ms" in ln for ln in lines)
    assert any("1 not answered 200: 500 1" in ln for ln in lines)
    tls = next(ln for ln in lines if ln.startswith("TLS load through the VIP"))
    assert "lvscare's turn 2 kept-alive requests (1 failed, 1 connections opened)" in tls
    assert "2 new connections (1 failed), 1 failed outside the fault windows" in tls
    assert "keepalived's turn 1 kept-alive requests (0 failed" in tls
    checks = {ln.split("  ", 2)[2].split(":")[0]: ln.split()[0] for ln in lines if ln[2:6] in
              ("PASS", "FAIL", "n/a ")}  # fmt: skip
    assert checks["killed master drained <= 100 ms median"] == "PASS"
    assert checks["killed master <= 0.1 x keepalived"] == "PASS"
    assert checks["no killed master ever re-admitted before it listened again"] == "PASS"
    assert checks["steady-state CPU on the busy node <= keepalived's"] == "FAIL"  # 15 % > 6 %
    assert checks["0 failed connects to the drained master after the drain (every fault run)"]
    assert "hung master drained <= 2 s" not in checks
    assert "care loop lag" in (tmp_path / "table.md").read_text()
    assert "  lvscare's steady state: 180 in all: busy loops 150.0, masters 30.0" in lines
    assert "Turn ended early: keepalived: never settled" in lines


def test_an_idle_run_reads_as_before(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path, busy=False)
    text = print_report(tmp_path)
    capsys.readouterr()
    assert "busy" not in text.lower()
    assert text.splitlines()[0].split() == ["lvscare", "keepalived", "lvscare/keepalived"]
    assert "Targets (issue 6):" in text.splitlines()
    assert "care loop lag" not in text and "TLS load" not in text
