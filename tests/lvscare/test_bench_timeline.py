"""bench/timeline.py's pictures from made-up data (issue 14, point 4), and bench/failover.py
drawing one per scenario from a run's raw files: no kernel, no lab."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from PIL import Image

from bench.failover import write_timelines
from bench.timeline import Run, Words, _segments, draw
from tests.lvscare.test_bench_failover import write_run

V, A, B = "198.18.0.12:6443", "198.18.0.11:6443", "198.18.0.13:6443"
MASTERS = [A, V, B]
FULL = {A: 1, V: 1, B: 1}
T = 1_800_000_000.0
VICTIM_RED = (0xD6, 0x27, 0x28)  # the second master's colour
REFUSED_RED = VICTIM_RED
TIMEOUT_PURPLE = (0x94, 0x67, 0xBD)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header, after checking its signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def colors(path: Path) -> set[tuple[int, ...]]:
    with Image.open(path) as img:
        img.verify()  # a whole, valid file
    with Image.open(path) as img:
        found = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert found is not None
    return {c for _, c in found if isinstance(c, tuple)}


def kill_runs() -> list[Run]:
    """lvscare drains in 30 ms and removes the master a round later; keepalived removes it
    after 1.5 s; both put it back after it serves again."""
    lv = Run(
        "lvscare",
        samples=[(T - 1, FULL), (T + 0.03, {A: 1, V: 0, B: 1}), (T + 1.0, {A: 1, B: 1}),
                 (T + 14.5, FULL)],
        failed=[(T + 0.005, "refused"), (T + 0.02, "refused")],
        fault=T, end=T + 3.03, drained=T + 0.03, restore=T + 14, back=T + 14.5,
        back_end=T + 17, note="run 2 of 3, the median",
    )  # fmt: skip
    k = T + 100
    ka = Run(
        "keepalived",
        samples=[(k - 1, FULL), (k + 1.5, {A: 1, B: 1}), (k + 16, FULL)],
        failed=[(k + i / 50, "refused") for i in range(70)] + [(k + 0.5, "timeout")],
        fault=k, end=k + 4.5, drained=k + 1.5, restore=k + 15, back=k + 16, back_end=k + 18,
    )  # fmt: skip
    return [lv, ka]


def test_a_fault_with_its_return_is_a_valid_png_of_the_size_asked(tmp_path: Path) -> None:
    path = draw(tmp_path / "sub" / "kill.png", "m2 killed", MASTERS, kill_runs(), victim=V,
                names={A: "m1", V: "m2", B: "m3"})  # fmt: skip
    assert path.exists()
    width, height = png_size(path)
    assert width == 1000  # 10 inches at 100 dpi
    assert 500 <= height <= 800
    assert 10_000 < path.stat().st_size < 150_000  # drawn, and small enough to commit
    seen = colors(path)
    assert VICTIM_RED in seen and TIMEOUT_PURPLE in seen
    assert len(seen) > 50  # antialiased lines and text, not a blank canvas
    with Image.open(path) as img:
        assert img.size == (width, height)


def test_a_flush_has_no_return_column_and_a_run_that_never_repaired_says_so(
    tmp_path: Path,
) -> None:
    lv, ka = kill_runs()
    flushed = [(T - 1, FULL), (T, None), (T + 1.3, FULL)]
    runs = [
        Run("lvscare", flushed, [(T + 0.1, "unreachable")], T, T + 4.3, drained=T + 1.3),
        Run("keepalived", [(T + 99, FULL), (T + 100, None)], [], T + 100, T + 113),
    ]
    words = Words(fault="flush", drained="table complete again", never="never repaired")
    path = draw(tmp_path / "flush.png", "flushed", MASTERS, runs, words=words, dpi=50)
    assert png_size(path) == (500, png_size(path)[1])
    single = draw(tmp_path / "one.png", "one daemon", MASTERS, [lv])
    assert png_size(single)[1] < png_size(draw(tmp_path / "two.png", "", MASTERS, [lv, ka]))[1]


def test_a_masters_weight_steps_and_its_absence_is_a_stretch() -> None:
    samples = [(T - 1, FULL), (T + 0.5, {A: 1, V: 0, B: 1}), (T + 1, {A: 1, B: 1}),
               (T + 2, None), (T + 3, {A: 2, V: 2, B: 2})]  # fmt: skip
    xs, ys, absent = _segments(samples, V, T, 5.0, 1.6, 2)
    assert xs == [-1.0, 0.5, 1.0, 2.0, 3.0, 5.0]
    assert ys[:2] == [2.1, 1.6] and math.isnan(ys[2]) and math.isnan(ys[3])
    assert ys[4:] == [2.6, 2.6]  # weight 2 of 2: the lane's top, held to the end
    assert absent == [(1.0, 2.0)]
    _, _, gone = _segments([(T, FULL), (T + 1, None)], A, T, 4.0, 0.0, 1)
    assert gone == [(1.0, 3.0)]  # absent to the end of the axis


def test_the_benchmark_draws_one_picture_per_scenario_it_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(tmp_path, busy=False)  # one kill run per daemon
    written = write_timelines(tmp_path)
    assert written == [tmp_path / "timeline-kill.png"]
    assert "timeline-kill.png" in capsys.readouterr().out
    assert png_size(written[0])[0] == 1000
    assert REFUSED_RED in colors(written[0])
