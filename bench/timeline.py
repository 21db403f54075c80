"""Timeline pictures for the fail-over benchmark (issue 14, point 4): look instead of read.

One PNG per fault: a row per daemon (lvscare above keepalived), each row the weight of every
master in the kernel's IPVS table over time, one lane per master (a grey band where the
master is not in the table at all), and below them the client's failed connects, one mark
at each failed connection's start, coloured by how it failed.

The time axis is cut in two, each part shared by the rows: on the left seconds from the fault
(the fault and the drain marked), on the right seconds from the moment the master could serve
again (that moment and its return to the table marked). Between the two the master is down
for a while that depends on the fault and on the lab (a killed apiserver takes about 20 s to
start again under emulation); drawn on one axis that stretch would squeeze both moments worth
seeing into a few pixels. Both parts keep the same seconds per pixel.

Plain data in (wall times, tables as {"IP:PORT": weight}), a file out: no kernel, no lab.
matplotlib's Agg canvas is used directly (no pyplot, no display, no global state).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

Table = Mapping[str, int] | None
Sample = tuple[float, Table]  # (wall time, the table from then on; None: no virtual service)

LANE = 1.6  # a master's lane is 1 high (weight 0 to the highest weight), lanes LANE apart
FAILED_Y = -0.75  # the failed connects' lane
MASTER_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#8c564b", "#e377c2", "#17becf")
OUTCOME_COLORS = {
    "refused": "#d62728",
    "reset": "#ff7f0e",
    "timeout": "#9467bd",
    "unreachable": "#555555",
}
OTHER_OUTCOME = "#000000"
ABSENT_COLOR = "#cccccc"
WIDTH, HEADER, ROW, GAP, FOOTER = 10.0, 1.05, 2.3, 0.5, 0.85  # inches
SUBTITLE = (
    "each master's weight in the kernel's IPVS table (0: drained, no new connections; grey: "
    "not in the table)\nand, below, the client's failed connects, each at its start"
)


@dataclass(frozen=True)
class Run:
    """One daemon's run of one fault, in wall times."""

    daemon: str
    # The table at each change; the first sample at or before fault - `before` (see draw()).
    samples: Sequence[Sample]
    failed: Sequence[tuple[float, str]]  # (start, outcome) of each failed connect
    fault: float
    end: float  # the end of the fault's stretch: the drain (or give-up) plus a while
    drained: float | None = None  # first sample with the victim drained (flush: repaired)
    restore: float | None = None  # the master could serve again
    back: float | None = None  # first sample with every master back at its weight
    back_end: float | None = None  # the end of the return's stretch
    note: str = ""  # shown beside the daemon's name, e.g. "run 2 of 5"


@dataclass(frozen=True)
class Words:
    """What the marked moments are called (a flush is repaired, not drained)."""

    fault: str = "fault"
    drained: str = "drained"
    never: str = "never drained"
    restore: str = "serving again"
    back: str = "back in table"


def _segments(
    samples: Sequence[Sample], key: str, anchor: float, stop: float, base: float, top: int
) -> tuple[list[float], list[float], list[tuple[float, float]]]:
    """Step-line points of one master's weight (NaN while absent) and its absent stretches,
    times relative to `anchor`, the last value held until `stop`."""
    xs: list[float] = []
    ys: list[float] = []
    absent: list[tuple[float, float]] = []
    since: float | None = None
    for t, table in samples:
        x = t - anchor
        weight = None if table is None else table.get(key)
        xs.append(x)
        ys.append(math.nan if weight is None else base + weight / top)
        if weight is None and since is None:
            since = x
        elif weight is not None and since is not None:
            absent.append((since, x - since))
            since = None
    if xs:
        xs.append(stop)
        ys.append(ys[-1])
    if since is not None:
        absent.append((since, stop - since))
    return xs, ys, absent


def _span(runs: Sequence[Run], before: float, second: bool) -> tuple[float, float]:
    """x range of a column: from -before to the latest stretch end over the runs."""
    ends = [
        (r.back_end if r.back_end is not None else r.restore + before) - r.restore
        if second and r.restore is not None
        else r.end - r.fault
        for r in runs
        if not second or r.restore is not None
    ]
    return -before, max([*ends, before])


def _moment(ax: Axes, x: float, text: str, solid: bool, span: tuple[float, float]) -> None:
    """A vertical line through every lane, named at the top: a solid line's name (what was
    done) on the first row, a dashed line's (what the table showed) on the second, each on
    the side of the line with more room."""
    color = "black" if solid else "#006400"
    ax.axvline(x, color=color, lw=1.4, ls="-" if solid else "--", zorder=1)
    right = (x - span[0]) / (span[1] - span[0]) > 0.6
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    ax.text(
        x, 0.99 if solid else 0.9, f" {text} ", transform=trans, fontsize=8,
        ha="right" if right else "left", va="top", color=color, zorder=4,
        bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.9},
    )  # fmt: skip


def draw(
    path: Path,
    title: str,
    masters: Sequence[str],
    runs: Sequence[Run],
    *,
    names: Mapping[str, str] | None = None,
    victim: str | None = None,
    words: Words | None = None,
    before: float = 1.0,
    subtitle: str = SUBTITLE,
    dpi: int = 100,
) -> Path:
    """Write the picture of `runs` (one row each, in order) to `path` (PNG) and return it.

    masters: the real servers' keys in the tables ("IP:PORT"), one lane each, top down;
    names: a short name per key ("m2"); victim: the key the fault hit (named so).
    """
    words = words or Words()
    names = names or {}
    two = any(r.restore is not None for r in runs)
    spans = [_span(runs, before, False), *([_span(runs, before, True)] if two else [])]
    widths = [b - a for a, b in spans]
    widths = [max(w, 0.3 * sum(widths)) for w in widths]
    top = max([1, *(w for r in runs for _, tb in r.samples if tb is not None for w in tb.values())])

    rows = len(runs)
    height = HEADER + rows * ROW + (rows - 1) * GAP + FOOTER  # inches
    fig = Figure(figsize=(WIDTH, height), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        rows, len(spans), width_ratios=widths, hspace=GAP / ROW, wspace=0.03,
        left=1.05 / WIDTH, right=1 - 0.15 / WIDTH, top=1 - HEADER / height,
        bottom=FOOTER / height,
    )  # fmt: skip
    axes: list[list[Axes]] = []
    for row in range(rows):
        axes.append([])
        for col in range(len(spans)):
            share_x = axes[0][col] if row else None
            share_y = axes[row][0] if col else None
            axes[row].append(fig.add_subplot(grid[row, col], sharex=share_x, sharey=share_y))

    bases = {key: (len(masters) - 1 - i) * LANE for i, key in enumerate(masters)}
    colors = {key: MASTER_COLORS[i % len(MASTER_COLORS)] for i, key in enumerate(masters)}
    outcomes_seen: dict[str, str] = {}
    for row, run in enumerate(runs):
        for col, (x0, x1) in enumerate(spans):
            ax = axes[row][col]
            anchor = run.fault if col == 0 else run.restore
            if anchor is None:  # this run has no return: an empty column
                ax.text(0.5, 0.5, "no return", transform=ax.transAxes, ha="center", va="center")
                anchor = 0.0
            # With a return column, the fault column shows each run up to its own end only:
            # what follows (the master back) is the return column's.
            stop = run.end - run.fault if col == 0 and run.restore is not None else x1 + 1
            shown = [(t, tb) for t, tb in run.samples if t - anchor <= stop]
            for key in masters:
                xs, ys, absent = _segments(shown, key, anchor, stop, bases[key], top)
                ax.broken_barh(absent, (bases[key] - 0.15, 1.3), color=ABSENT_COLOR, zorder=0)
                ax.step(xs, ys, where="post", color=colors[key], lw=2.2, zorder=3)
            for outcome in sorted({o for _, o in run.failed}):
                color = OUTCOME_COLORS.get(outcome, OTHER_OUTCOME)
                ts = [t - anchor for t, o in run.failed if o == outcome and t - anchor <= stop]
                ax.scatter(
                    ts, [FAILED_Y] * len(ts), marker="|", s=220, linewidths=1.3, color=color,
                    zorder=3,
                )  # fmt: skip
                outcomes_seen[outcome] = color
            if not any(x0 <= t - anchor <= min(x1, stop) for t, _ in run.failed):
                ax.text(
                    0.985, FAILED_Y, "none", transform=blended_transform_factory(
                        ax.transAxes, ax.transData), ha="right", va="center", fontsize=8,
                    color="#777777", bbox={"fc": "white", "ec": "none", "pad": 1},
                )  # fmt: skip
            if col == 0:
                _moment(ax, 0.0, words.fault, True, (x0, x1))
                if run.drained is not None:
                    took = f"{words.drained} +{run.drained - run.fault:.3f} s"
                    _moment(ax, run.drained - run.fault, took, False, (x0, x1))
                else:
                    ax.text(
                        0.99, 0.5, words.never, transform=ax.transAxes, ha="right",
                        va="center", fontsize=9, color="#006400",
                    )  # fmt: skip
            elif run.restore is not None:
                _moment(ax, 0.0, f"master {words.restore}", True, (x0, x1))
                if run.back is not None:
                    took = f"{words.back} +{run.back - run.restore:.3f} s"
                    _moment(ax, run.back - run.restore, took, False, (x0, x1))
            ax.set_xlim(x0, x1)
            ax.set_ylim(FAILED_Y - 0.55, (len(masters) - 1) * LANE + 2.4)
            ax.grid(axis="x", color="#e6e6e6", lw=0.8, zorder=0)
            ax.axhline(FAILED_Y + 0.45, color="#999999", lw=0.6)
            ax.tick_params(labelsize=8)
            if row < len(runs) - 1:
                ax.tick_params(labelbottom=False)
            if col > 0:
                ax.tick_params(labelleft=False)
        ax0 = axes[row][0]
        ax0.set_yticks(
            [y for key in masters for y in (bases[key], bases[key] + 1)],
            [w for _ in masters for w in ("0", str(top))],
        )
        lanes = [(f"{names.get(k, k)}{' (fault)' if k == victim else ''}", bases[k] + 0.5)
                 for k in masters]  # fmt: skip
        for text, y in [*lanes, ("failed\nconnects", FAILED_Y)]:
            ax0.annotate(
                text, (0, y), xycoords=blended_transform_factory(ax0.transAxes, ax0.transData),
                xytext=(-18, 0), textcoords="offset points", ha="right", va="center", fontsize=9,
            )  # fmt: skip
        name = ax0.text(0, 1.03, run.daemon, transform=ax0.transAxes, fontsize=12,
                        fontweight="bold", va="bottom")  # fmt: skip
        if run.note:
            ax0.annotate(run.note, (1, 0), xycoords=name, xytext=(10, 0),
                         textcoords="offset points", fontsize=9, va="bottom")  # fmt: skip
    bottom = axes[-1]
    bottom[0].set_xlabel(f"seconds from the {words.fault}", fontsize=9)
    if two:
        bottom[1].set_xlabel(f"seconds from the master {words.restore}", fontsize=9)
    fig.text(0.5, 1 - 0.12 / height, title, fontsize=12, ha="center", va="top")
    fig.text(0.5, 1 - 0.42 / height, subtitle, fontsize=9, ha="center", va="top", color="#444444")

    handles: list[Line2D | Patch] = [
        Line2D([], [], color=colors[k], lw=2.2, label=f"{names.get(k, k)} {k}") for k in masters
    ]
    handles.append(Patch(color=ABSENT_COLOR, label="not in the table"))
    handles += [
        Line2D([], [], color=c, marker="|", ls="", ms=11, mew=1.5, label=f"failed: {o}")
        for o, c in outcomes_seen.items()
    ]
    ncol = len(handles) if len(handles) <= 6 else -(-len(handles) // 2)  # else two rows
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False,
               handlelength=1.6, columnspacing=1.2)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path
