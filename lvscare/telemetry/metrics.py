"""Prometheus metrics, fed by the care loop as an observer, on a registry of our own.

Every name starts with `lvscare_`; counters end in `_total`, durations are in seconds.
Series for each real server (and each failure reason) exist from the start at zero, so
`rate()` and `increase()` see the first failure instead of a series appearing.

A repair of drift is a change the kernel needed although nothing on our side changed: the
ops applied differ from those that would have turned the table we left last round into
the desired one, so someone else edited the table in between.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING

# By their submodules: the package's __init__ is deferred (lvscare/imports.py).
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics import (
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from lvscare import __version__
from lvscare.care.tracker import State
from lvscare.kernel.table import ServiceState, plan

if TYPE_CHECKING:
    from lvscare.care.loop import Care
    from lvscare.care.real_server import RealServer
    from lvscare.kernel.table import Op
    from lvscare.probe.http import ProbeResult

CONTENT_TYPE = CONTENT_TYPE_LATEST
PROBE_REASONS = ("refused", "timeout", "stalled", "tls", "status", "reset", "unreachable", "error")
OP_KINDS = ("add-service", "set-service", "add-dest", "set-dest", "del-dest")
TRANSITIONS = (
    (State.UP, State.DRAINING),
    (State.DRAINING, State.DOWN),
    (State.DRAINING, State.UP),
    (State.DOWN, State.UP),
    (State.DOWN, State.DRAINING),  # failing open ended: the drain it skipped
)
PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RECONCILE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# `_created` samples double every counter's lines and nobody here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Observer: one CollectorRegistry per daemon, rendered by `render()` on any thread."""

    def __init__(self, care: Care) -> None:
        self.care = care
        self.registry = reg = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=reg)
        Info("lvscare_build", "lvscare version and the Python it runs on.", registry=reg).info(
            {"version": __version__, "python_version": platform.python_version()}
        )
        self.rs_up = Gauge(
            "lvscare_real_server_up",
            "1 when the real server is healthy (state up), else 0.",
            ["rs"],
            registry=reg,
        )
        self.rs_weight = Gauge(
            "lvscare_real_server_weight",
            "Weight of the real server in the kernel's IPVS table (0 when absent).",
            ["rs"],
            registry=reg,
        )
        self.rs_state = Enum(
            "lvscare_real_server_state",
            "Health state of the real server: up, draining (weight 0) or down (removed).",
            ["rs"],
            states=[s.value for s in State],
            registry=reg,
        )
        self.probe_seconds = Histogram(
            "lvscare_probe_duration_seconds",
            "Duration of health probes, failed ones included.",
            ["rs"],
            buckets=PROBE_BUCKETS,
            registry=reg,
        )
        self.probe_failures = Counter(
            "lvscare_probe_failures",
            "Failed health probes by reason.",
            ["rs", "reason"],
            registry=reg,
        )
        self.transitions = Counter(
            "lvscare_real_server_transitions",
            "Changes of a real server's health state.",
            ["rs", "from_state", "to_state"],
            registry=reg,
        )
        self.reconciles = Counter(
            "lvscare_reconcile_runs", "Reconciles of the kernel table.", registry=reg
        )
        self.reconcile_errors = Counter(
            "lvscare_reconcile_errors", "Reconciles that failed.", registry=reg
        )
        self.reconcile_seconds = Histogram(
            "lvscare_reconcile_duration_seconds",
            "Duration of reconciles: read the table, apply changes, read it back.",
            buckets=RECONCILE_BUCKETS,
            registry=reg,
        )
        self.ipvs_changes = Counter(
            "lvscare_ipvs_changes",
            "Changes applied to the kernel's IPVS table, by kind.",
            ["op"],
            registry=reg,
        )
        self.drift_repairs = Counter(
            "lvscare_drift_repairs",
            "Changes applied only because someone else had edited the IPVS table.",
            registry=reg,
        )
        self.watch_lost_count = Counter(
            "lvscare_watch_connections_lost",
            "Idle watch connections to a real server that ended (a crash, or an idle close);"
            " each one triggers an immediate probe.",
            ["rs"],
            registry=reg,
        )
        self.fail_open = Gauge(
            "lvscare_fail_open",
            "1 while every real server looks down and the last healthy set, less those that"
            " failed definitely, is kept in the table (--all-down keep).",
            registry=reg,
        )
        self.stalled_rounds = Counter(
            "lvscare_stalled_rounds",
            "Rounds in which every probe timed out: taken as this node's own stall (CPU"
            " starvation, a pause), so no state changed.",
            registry=reg,
        )
        self.vs_present = Gauge(
            "lvscare_virtual_server_present",
            "1 when the virtual server is in the kernel after the last reconcile.",
            registry=reg,
        )
        self.last_success = Gauge(
            "lvscare_last_reconcile_success_timestamp_seconds",
            "Unix time of the last reconcile that succeeded.",
            registry=reg,
        )
        for kind in OP_KINDS:
            self.ipvs_changes.labels(kind)
        self._weight_of: dict[str, Gauge] = {}
        self._probe_seconds_of: dict[str, Histogram] = {}
        for rs in care.servers:
            self.add_server(rs.name)
        # What the kernel held when we last looked; None: unknown (start, or a failed apply).
        self._left: ServiceState | None = None

    def add_server(self, name: str) -> None:
        self.rs_up.labels(name).set(1)
        # The children every round sets, looked up once (labels() takes a lock each time).
        self._weight_of[name] = self.rs_weight.labels(name)
        self._weight_of[name].set(0)
        self.rs_state.labels(name).state(State.UP.value)
        self._probe_seconds_of[name] = self.probe_seconds.labels(name)
        self.watch_lost_count.labels(name)
        for reason in PROBE_REASONS:
            self.probe_failures.labels(name, reason)
        for old, new in TRANSITIONS:
            self.transitions.labels(name, old.value, new.value)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- observer -------------------------------------------------------------------------

    def probed(self, rs: RealServer, result: ProbeResult) -> None:
        self._probe_seconds_of[rs.name].observe(result.latency)
        if not result.healthy:
            self.probe_failures.labels(rs.name, result.reason or "error").inc()

    def transitioned(self, rs: RealServer, old: State, new: State) -> None:
        self.transitions.labels(rs.name, old.value, new.value).inc()
        self.rs_up.labels(rs.name).set(1 if new is State.UP else 0)
        self.rs_state.labels(rs.name).state(new.value)

    def watch_lost(self, rs: RealServer) -> None:
        self.watch_lost_count.labels(rs.name).inc()

    def stalled(self) -> None:
        self.stalled_rounds.inc()

    def reconciled(self, ops: Sequence[Op], error: BaseException | None, seconds: float) -> None:
        care = self.care
        self.reconciles.inc()
        self.fail_open.set(1 if care.fail_open() else 0)
        self.reconcile_seconds.observe(seconds)
        if error is None and self._left is not None and ops:  # no ops: nothing repaired
            expected = plan(care.service, self._left, care.desired())
            self.drift_repairs.inc(sum(1 for op in ops if op not in expected))
        if error is not None:  # how much of `ops` reached the kernel is unknown
            self.reconcile_errors.inc()
            self._left = None
            return
        for op in ops:
            self.ipvs_changes.labels(op.kind).inc()
        view = care.kernel_view
        self._left = None if view is None else ServiceState(view.scheduler, dict(view.dests))
        self.vs_present.set(0 if view is None else 1)
        self.last_success.set_to_current_time()
        for rs in care.servers:
            self._weight_of[rs.name].set(care.kernel_weight(rs) or 0)
