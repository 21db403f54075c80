"""The care loop: probe every real server, decide the desired table, make the kernel match.

Data path, top to bottom, once per interval:
  resolve names -> probe all concurrently -> HealthTracker per server -> desired weights
  -> table.plan(kernel, desired) -> IPVSTable.apply(ops)
The kernel table is read back every round, so anything else that changed it is repaired;
so is the VIP's host side (its link or route).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import structlog

from lvscare.address import format_hostport
from lvscare.care.observer import Observer
from lvscare.care.real_server import RealServer, resolve
from lvscare.care.tracker import HealthTracker, State
from lvscare.care.watch import ConnectionWatch
from lvscare.config import RESOLVE_EVERY_ROUNDS, CareConfig
from lvscare.errors import BadInput
from lvscare.kernel.ipvs import IPVSTable
from lvscare.kernel.table import DRAIN, Dest, Op, Service, ServiceState, plan
from lvscare.kernel.vip import VIPHost
from lvscare.probe.http import Prober, ProbeResult, tcp_check

log = structlog.get_logger("lvscare.care")


@dataclass
class RoundReport:
    """What one round did, for logs, tests and (later) metrics."""

    ops: list[Op] = field(default_factory=list)
    transitions: list[tuple[str, State, State]] = field(default_factory=list)


class Care:
    """The daemon's logic, with the kernel and the prober passed in (Go lvscare's split).

    `observers` makes the observers of this Care (they read its state, it calls their
    hooks), once, as it is built.
    """

    def __init__(
        self,
        config: CareConfig,
        table: IPVSTable,
        prober: Prober,
        vip: VIPHost,
        *,
        clock: Callable[[], float] = time.monotonic,
        observers: Callable[[Care], Sequence[Observer]] = lambda care: (),
    ) -> None:
        self.config = config
        self.table = table
        self.prober = prober
        self.vip = vip
        self.clock = clock
        self.service = Service(config.vip, config.vs.port, config.scheduler)
        self.servers = [
            RealServer(ep, HealthTracker(rise=config.rise, fall=config.fall)) for ep in config.rs
        ]
        self.rounds = 0
        # What the kernel held after the last reconcile, and when that reconcile ended.
        self.kernel_view: ServiceState | None = None
        self.last_reconcile_at: float | None = None
        self._kernel_lock = asyncio.Lock()  # rounds and crash reactions both reconcile
        self._was_fail_open = False
        # The servers UP when one last was: what failing open keeps (see kept_open).
        self._last_healthy: frozenset[str] = frozenset(rs.name for rs in self.servers)
        self.stalled_rounds = 0
        self._watches: dict[str, ConnectionWatch] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self.observers: tuple[Observer, ...] = tuple(observers(self))

    # -- set-up -------------------------------------------------------------------------

    async def resolve_all(self, *, strict: bool) -> None:
        """Look names up again; a changed address is swapped in the table by the next plan."""
        for rs in self.servers:
            if rs.endpoint.ip is not None:
                rs.addr = rs.endpoint.ip
                continue
            try:
                addr = await resolve(rs.endpoint, self.config.vip.version)
            except BadInput as e:
                if strict:
                    raise
                log.warning("re-resolve failed, keeping the old address", rs=rs.name, error=str(e))
                continue
            if rs.addr is not None and addr != rs.addr:
                log.info("real server address changed", rs=rs.name, old=str(rs.addr), new=str(addr))
            rs.addr = addr

    async def repair_host(self) -> None:
        """Re-check the VIP's link or route each round (someone may delete them)."""
        for change in await self.vip.ensure():
            log.warning("host network repaired", change=change)

    # -- one round ----------------------------------------------------------------------

    def fail_open(self) -> bool:
        """No resolved server is up and --all-down keep: a node that can reach no /healthz
        usually has a probe problem, not a dead control plane, so the last healthy set stays
        in (see kept_open)."""
        resolved = [rs for rs in self.servers if rs.addr is not None]
        return (
            self.config.all_down == "keep"
            and bool(resolved)
            and not any(rs.tracker.state is State.UP for rs in resolved)
        )

    def kept_open(self, rs: RealServer) -> bool:
        """While failing open, whether `rs` stays at its weight: it was in the last healthy
        set, and its failure was not definite. A refused or reset connection, an HTTP error or
        a TLS failure is the master's own answer, not a probe problem: keeping it would send
        clients to a master known to be down."""
        return rs.name in self._last_healthy and not (rs.last is not None and rs.last.definite)

    def desired(self) -> dict[Dest, int]:
        failing_open = self.fail_open()
        want: dict[Dest, int] = {}
        for rs in self.servers:
            dest = rs.dest
            if dest is None:
                continue
            if rs.tracker.state is State.UP or (failing_open and self.kept_open(rs)):
                want[dest] = self.config.weight
            elif rs.tracker.state is State.DRAINING:
                want.setdefault(dest, DRAIN)
        return want

    def _fresh(self, rs: RealServer, started: float) -> bool:
        """Whether a probe of `rs` that started at `started` is the newest evidence heard;
        claims it if so. A round's probe in flight when a crash is seen can answer 200 after
        the crash reaction has drained the server: that older answer must not restore it."""
        if started < rs.evidence_at:
            log.debug("stale probe result dropped", rs=rs.name)
            return False
        rs.evidence_at = started
        return True

    def _record(
        self, rs: RealServer, result: ProbeResult, *, evidence: bool = True
    ) -> tuple[str, State, State] | None:
        """Log one probe result and, if it is evidence about the master, feed it to the
        server's tracker. A probe that timed out while lvscare itself could not run
        ("stalled") is not."""
        if result.reason == "stalled":
            evidence = False
        if evidence or rs.last is None or rs.last.healthy:
            rs.last = result  # a stall never hides the failure that made a server go
        for obs in self.observers:
            obs.probed(rs, result)
        latency_ms = round(result.latency * 1000, 1)
        if result.healthy:
            log.debug("probe ok", rs=rs.name, latency_ms=latency_ms)
        else:
            log.warning(
                "probe failed",
                rs=rs.name,
                addr=format_hostport(rs.addr, rs.endpoint.port) if rs.addr else None,
                reason=result.reason,
                detail=result.detail,
                latency_ms=latency_ms,
            )
        if not evidence:
            return None
        return self._transition(rs, rs.tracker.observe(result.healthy), result.reason)

    def _transition(
        self, rs: RealServer, before: State | None, reason: str | None
    ) -> tuple[str, State, State] | None:
        if before is None:
            return None
        after = rs.tracker.state
        log.warning(
            "real server state changed",
            rs=rs.name,
            old=before.value,
            new=after.value,
            reason=reason,
        )
        for obs in self.observers:
            obs.transitioned(rs, before, after)
        return (rs.name, before, after)

    async def _probe(self, rs: RealServer) -> ProbeResult:
        assert rs.addr is not None
        return await self.prober.probe(rs.addr, rs.endpoint.port, rs.server_name)

    async def probe_all(self) -> list[tuple[str, State, State]]:
        targets = [rs for rs in self.servers if rs.addr is not None]
        started = self.clock()
        results = await asyncio.gather(*(self._probe(rs) for rs in targets))
        answers = zip(targets, results, strict=True)
        fresh = [(rs, r) for rs, r in answers if self._fresh(rs, started)]
        if len(targets) > 1 and all(r.timed_out for r in results):
            # Every master silent at once is news about this node (starved of CPU, paused),
            # not about the masters: count and show it, decide nothing on it. One master alone
            # cannot tell the two apart.
            self.stalled_rounds += 1
            log.warning("every probe timed out: this node looks stalled, no state changed")
            for rs, r in fresh:
                self._record(rs, r, evidence=False)
            for obs in self.observers:
                obs.stalled()
            return []
        transitions = [self._record(rs, r) for rs, r in fresh]
        return [t for t in transitions if t is not None]

    async def reconcile(self) -> list[Op]:
        """Read the kernel table and apply the difference from the desired table."""
        async with self._kernel_lock:
            return await self._reconcile()

    async def _reconcile(self) -> list[Op]:
        start = self.clock()
        ops: list[Op] = []
        up = frozenset(rs.name for rs in self.servers if rs.tracker.state is State.UP)
        if up:
            self._last_healthy = up
        fail_open = self.fail_open()
        if fail_open != self._was_fail_open:
            self._was_fail_open = fail_open
            if fail_open:
                log.error(
                    "every real server looks down: failing open, the last healthy set stays",
                    vs=str(self.service),
                    kept=[rs.name for rs in self.servers if self.kept_open(rs)],
                )
            else:
                log.warning("a real server is healthy again: fail-open ended", vs=str(self.service))
                for rs in self.servers:
                    if self.kernel_weight(rs):  # kept at its weight: the drain it skipped
                        self._transition(rs, rs.tracker.drain_again(), "fail-open ended")
        try:
            actual = await self.table.read(self.service)
            ops = plan(self.service, actual, self.desired())
            for op in ops:
                log.info("ipvs change", vs=str(self.service), op=str(op))
            if ops:
                await self.table.apply(self.service, ops)
                actual = await self.table.read(self.service)
        except Exception as e:
            for obs in self.observers:
                obs.reconciled(ops, e, self.clock() - start)
            raise
        self.kernel_view = actual
        self.last_reconcile_at = self.clock()
        for rs in self.servers:
            # Failing open keeps a DRAINING server at its weight: that is not the drain it
            # will still get.
            if rs.tracker.state is State.DRAINING and not self.kernel_weight(rs):
                rs.tracker.drained = True
        for obs in self.observers:
            obs.reconciled(ops, None, self.last_reconcile_at - start)
        return ops

    async def run_round(self) -> RoundReport:
        self.rounds += 1
        if self.rounds % RESOLVE_EVERY_ROUNDS == 0:
            await self.resolve_all(strict=False)
        report = RoundReport()
        report.transitions = await self.probe_all()
        await self.repair_host()
        report.ops = await self.reconcile()
        self.sync_watches()
        return report

    # -- instant crash detection --------------------------------------------------------

    def sync_watches(self) -> None:
        """One watch per resolved server, following address changes."""
        if not self.config.watch:
            return
        for rs in self.servers:
            if rs.addr is None:
                continue
            current = self._watches.get(rs.name)
            if current is not None and current.addr == rs.addr:
                continue
            if current is not None:
                self._retired.add(asyncio.create_task(current.stop()))
            watch = ConnectionWatch(
                rs.name,
                rs.addr,
                rs.endpoint.port,
                lambda rs=rs: self.connection_lost(rs),  # type: ignore[misc]
                connect_timeout=self.config.probe.timeout,
                retry_after=self.config.interval,
            )
            self._watches[rs.name] = watch
            watch.start()

    def kernel_weight(self, rs: RealServer) -> int | None:
        """`rs`'s weight in the table as last read back; None when it is not there."""
        view = self.kernel_view
        have = None if view is None or rs.dest is None else view.dests.get(rs.dest)
        return None if have is None else have.weight

    def watching(self, rs: RealServer) -> bool | None:
        """Whether the idle watch connection to `rs` is open now; None without --watch."""
        if not self.config.watch:
            return None
        watch = self._watches.get(rs.name)
        return watch is not None and watch.connected.is_set()

    async def stop_watches(self) -> None:
        for watch in self._watches.values():
            await watch.stop()
        self._watches.clear()

    async def connection_lost(self, rs: RealServer) -> None:
        """Probe now; if that fails too, drain at once instead of waiting for `fall`.

        A refused TCP connect is proof enough of a crash; only a port that still
        accepts gets the full health probe.
        """
        for obs in self.observers:
            obs.watch_lost(rs)
        if rs.addr is None or rs.tracker.state is not State.UP:
            return
        started = self.clock()
        failed = await tcp_check(rs.addr, rs.endpoint.port, self.config.probe.timeout)
        result = failed if failed is not None else await self._probe(rs)
        if not self._fresh(rs, started):
            return
        if result.reason == "stalled":  # lvscare was the slow one: no news about `rs`
            self._record(rs, result)
            return
        if not result.healthy:
            await self._drain_at_once(rs, result)  # the kernel first, the bookkeeping after
        transition = self._record(rs, result)
        if result.healthy or rs.tracker.state is not State.UP:
            if transition is not None:
                await self.reconcile()
            return
        self._transition(rs, rs.tracker.force_drain(), "connection lost")
        await self.reconcile()

    async def _drain_at_once(self, rs: RealServer, result: ProbeResult) -> None:
        """Weight 0 straight to the kernel, before the reconcile reads the table back: the
        read costs more than the change, and until the change every new connection may land
        on a dead server. The reconcile that follows checks the result."""
        if not self.kernel_weight(rs):
            return
        dest, view = rs.dest, self.kernel_view
        assert dest is not None and view is not None  # it has a weight in the table
        others = (o for o in self.servers if o is not rs and o.addr is not None)
        others_up = any(o.tracker.state is State.UP for o in others)
        if not others_up and self.config.all_down == "keep" and not result.definite:
            return  # it would be the last one and may be fine: fail open instead (kept_open)
        op = Op("set-dest", dest, 0)
        start = self.clock()
        async with self._kernel_lock:
            try:
                await self.table.apply(self.service, [op])
            except Exception as e:
                log.warning("immediate drain failed", rs=rs.name, error=f"{type(e).__name__}: {e}")
                return
            log.info("ipvs change", vs=str(self.service), op=str(op))
            view.dests[dest] = replace(view.dests[dest], weight=0)
            for obs in self.observers:
                obs.reconciled([op], None, self.clock() - start)

    async def run(
        self, stop: asyncio.Event, after_first_round: Callable[[], object] | None = None
    ) -> None:
        """Rounds every interval, measured start to start, until `stop` is set;
        `after_first_round` is start-up work that the first reconcile need not wait for."""
        interval = self.config.interval
        next_start = self.clock()
        try:
            while not stop.is_set():
                try:
                    await self.run_round()
                except Exception as e:  # a failed round must not end the daemon
                    log.error("round failed", error=f"{type(e).__name__}: {e}")
                if after_first_round is not None:
                    after_first_round()
                    after_first_round = None
                next_start += interval
                now = self.clock()
                if next_start < now:  # a slow round: skip ahead instead of bursting
                    next_start = now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=next_start - now)
        finally:
            await self.stop_watches()

    async def apply_all_now(self) -> list[Op]:
        """--run-once: every real server in the table at its weight, without probing."""
        return await self.reconcile()
