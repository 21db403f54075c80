"""What the daemon knows, published for the HTTP thread: /status, /readyz and /healthz.

The care loop owns every mutable object. After each reconcile this observer builds an
immutable snapshot (plain dicts, never touched again) and swaps one reference, so the
HTTP thread reads it without locks and still answers while the loop is busy or stuck.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lvscare import __version__
from lvscare.care.tracker import State

if TYPE_CHECKING:
    from lvscare.care.loop import Care
    from lvscare.care.real_server import RealServer
    from lvscare.kernel.table import Op
    from lvscare.probe.http import ProbeResult

# /healthz fails when the last reconcile is older than this many rounds.
STALE_ROUNDS = 3


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Snapshot:
    ready: bool
    reason: str  # one line: why not ready, or what ready means right now
    body: dict[str, Any]  # the /status document


class StatusBoard:
    """Observer keeping the latest Snapshot, plus the liveness rule of /healthz."""

    def __init__(self, care: Care, wall: Any = time.time) -> None:
        self.care = care
        self.wall = wall
        self.started_at = care.clock()
        self.probed_at: dict[str, float] = {}
        self.reconciled_wall: float | None = None
        self.reconcile_seconds: float | None = None
        self.reconcile_error: str | None = None
        self.last_ops: list[str] = []
        self.snapshot = self.build()

    # -- observer -------------------------------------------------------------------------

    def probed(self, rs: RealServer, result: ProbeResult) -> None:
        self.probed_at[rs.name] = self.wall()

    def transitioned(self, rs: RealServer, old: State, new: State) -> None:
        pass

    def watch_lost(self, rs: RealServer) -> None:
        pass

    def stalled(self) -> None:
        pass

    def reconciled(self, ops: Sequence[Op], error: BaseException | None, seconds: float) -> None:
        self.reconciled_wall = self.wall()
        self.reconcile_seconds = seconds
        self.reconcile_error = None if error is None else f"{type(error).__name__}: {error}"
        self.last_ops = [str(op) for op in ops]
        self.snapshot = self.build()

    # -- the rules --------------------------------------------------------------------------

    @property
    def stale_after(self) -> float:
        """Three rounds; a round lasts at least the probe timeout, even beyond the interval."""
        cfg = self.care.config
        return STALE_ROUNDS * max(cfg.interval, cfg.probe.timeout)

    def reconcile_problem(self) -> str | None:
        """Why the loop looks stuck (None when it is not): the /healthz rule minus the ping."""
        now = self.care.clock()
        last = self.care.last_reconcile_at
        if last is None:
            waited = now - self.started_at
            if waited > self.stale_after:
                return f"no reconcile has finished in {waited:.1f}s (limit {self.stale_after:g}s)"
            return None
        age = now - last
        if age > self.stale_after:
            return f"last reconcile finished {age:.1f}s ago (limit {self.stale_after:g}s)"
        return None

    def document(self) -> dict[str, Any]:
        """The /status body: the last snapshot, with every watch connection's state as of
        now (it changes between rounds, and with a long --interval rounds are rare). Runs
        on the endpoint's thread: it only reads."""
        body = dict(self.snapshot.body)
        body["real_servers"] = [
            {**entry, "watch_connected": self.care.watching(rs)}
            for entry, rs in zip(body["real_servers"], self.care.servers, strict=True)
        ]
        return body

    def readiness(self) -> tuple[bool, str]:
        snap = self.snapshot
        if not snap.ready:
            return False, snap.reason
        stuck = self.reconcile_problem()
        if stuck is not None:
            return False, stuck
        return True, snap.reason

    # -- the snapshot -----------------------------------------------------------------------

    def build(self) -> Snapshot:
        care = self.care
        view = care.kernel_view
        servers: list[dict[str, Any]] = []
        serving: list[str] = []
        not_serving: list[str] = []
        for rs in care.servers:
            weight = care.kernel_weight(rs)
            last = rs.last
            probe: dict[str, Any] | None = None
            if last is not None:
                probe = {
                    "at": _iso(self.probed_at.get(rs.name)),
                    "healthy": last.healthy,
                    "latency_ms": round(last.latency * 1000, 3),
                    "reason": last.reason,
                    "status": last.status,
                    "error": last.detail or None,
                }
            state = rs.tracker.state
            servers.append(
                {
                    "rs": rs.name,
                    "address": None if rs.addr is None else str(rs.addr),
                    "state": state.value,
                    "kernel_weight": weight,
                    "last_probe": probe,
                }
            )
            if state is State.UP and weight:
                serving.append(rs.name)
            else:
                why = last.reason if last is not None and last.reason else None
                if state is State.UP:
                    why = "not in the kernel table" if weight is None else "weight 0 in the kernel"
                not_serving.append(f"{rs.name} {state.value}" + (f" ({why})" if why else ""))

        if care.last_reconcile_at is None:
            ready, reason = False, "no reconcile has finished yet"
        elif view is None:
            ready, reason = False, f"virtual server {care.service} is not in the kernel"
        elif not serving:
            ready, reason = False, "no healthy real server: " + ", ".join(not_serving)
            if care.fail_open():
                kept = [rs.name for rs in care.servers if care.kept_open(rs)]
                reason += (
                    f" (failing open: kept in the table: {', '.join(kept)})"
                    if kept
                    else " (failing open, but every failure was definite: none kept)"
                )
        else:
            ready = True
            reason = f"{care.service}: {len(serving)}/{len(care.servers)} real servers serving"

        body: dict[str, Any] = {
            "version": __version__,
            "ready": ready,
            "reason": reason,
            "virtual_server": {
                "address": str(care.service),
                "scheduler": care.service.scheduler,
                "in_kernel": view is not None,
                "kernel_scheduler": None if view is None else view.scheduler,
            },
            "fail_open": care.fail_open(),
            "interval_seconds": care.config.interval,
            "rounds": care.rounds,
            "stalled_rounds": care.stalled_rounds,
            "last_reconcile": {
                "at": _iso(self.reconciled_wall),
                "duration_ms": None
                if self.reconcile_seconds is None
                else round(self.reconcile_seconds * 1000, 3),
                "error": self.reconcile_error,
                "changes": self.last_ops,
            },
            "real_servers": servers,
        }
        return Snapshot(ready, reason, body)
