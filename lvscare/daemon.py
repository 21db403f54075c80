"""Life cycle around the care loop: build the parts, start, stop on a signal, close.

Like uvicorn's Config/Server split: CareConfig is inert data, this module owns the
resources (netlink sockets, HTTP session, signal handlers) and their order. What to do
comes from the config: serve, run once, or clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal
from collections.abc import Sequence

import structlog
from pyroute2.netlink.exceptions import NetlinkError

from lvscare import __version__
from lvscare.care.loop import Care
from lvscare.care.observer import Observer
from lvscare.config import Action, CareConfig
from lvscare.errors import KernelUnavailable
from lvscare.kernel.hostnet import HostNetwork
from lvscare.kernel.ipvs import NetlinkIPVS
from lvscare.kernel.masquerade import MasqueradeError
from lvscare.kernel.setup import prepare_kernel
from lvscare.kernel.vip import vip_host_for
from lvscare.probe.http import HTTPProber
from lvscare.probe.thread import ThreadedProber
from lvscare.realtime import leave as leave_realtime
from lvscare.realtime import run_ahead
from lvscare.telemetry.hub import Telemetry

log = structlog.get_logger("lvscare.daemon")


class Daemon:
    telemetry: Telemetry  # made with the Care, as its observers

    def __init__(self, config: CareConfig) -> None:
        self.config = config
        self.table = NetlinkIPVS()
        self.hostnet = HostNetwork()
        self.vip = vip_host_for(config, self.hostnet)
        # probes (TLS handshakes) on a loop of their own: see probe/thread.py
        self.prober = ThreadedProber(HTTPProber(config.probe))
        self.care = Care(config, self.table, self.prober, self.vip, observers=self._observe)

    def _observe(self, care: Care) -> Sequence[Observer]:
        """/healthz, /readyz, /metrics, /status and systemd's READY=1, as observers of care."""
        self.telemetry = Telemetry(care)
        return self.telemetry.observers

    async def close(self) -> None:
        await self.telemetry.stop()
        await self.prober.close()
        await self.table.close()
        await self.hostnet.close()

    async def start(self) -> None:
        """Resolve (bad input first), kernel set-up, IPVS, the VIP; nothing is probed yet."""
        await self.care.resolve_all(strict=True)
        await self.open_ipvs()
        try:
            for change in await self.vip.ensure():
                log.info("host network changed", change=change)
        except MasqueradeError as e:
            raise KernelUnavailable(str(e)) from None
        except (PermissionError, NetlinkError) as e:
            if isinstance(e, PermissionError) or e.code == errno.EPERM:
                raise KernelUnavailable(
                    f"setting up the VIP: permission denied, lvscare needs CAP_NET_ADMIN ({e})"
                ) from None
            raise

    async def open_ipvs(self) -> None:
        """Kernel set-up, then open IPVS; a failure carries modprobe's reason in its one line."""
        failed = prepare_kernel(self.config)
        try:
            await self.table.open()
        except KernelUnavailable as e:
            if "ip_vs" in failed.modules:
                raise KernelUnavailable(f"{e}; modprobe ip_vs: {failed.modules['ip_vs']}") from None
            raise
        failed.log()

    async def run_once(self) -> None:
        await self.start()
        ops = await self.care.apply_all_now()
        log.info(
            "rules set",
            vs=str(self.config.vs),
            changes=len(ops),
            rs=[str(r) for r in self.config.rs],
        )

    async def clean(self) -> None:
        """-C: the virtual server, then the VIP's host side; a kernel without IPVS simply has
        no virtual server to remove."""
        removed: list[str] = []
        try:
            await self.table.open()
        except KernelUnavailable as e:
            if "no IPVS" not in str(e):
                raise
        else:
            if await self.table.delete_service(self.care.service):
                removed.append(f"virtual server {self.care.service}")
        removed += await self.vip.remove()
        log.info("cleaned", removed=removed or "nothing to remove")

    def run_ahead(self) -> int | None:
        """Every thread real-time once they all exist (start-up's imports and handshakes stay
        ordinary); the priority it runs at, or None."""
        priority = self.config.rt_priority
        if not priority:
            return None
        why_not = run_ahead(priority)
        if why_not is not None:
            log.warning("running as an ordinary process, not real-time", reason=why_not)
            return None
        return priority

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT; the kernel table is left as it is so traffic keeps flowing."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await self.telemetry.start()  # the HTTP endpoint (a busy port is logged and retried)
        realtime = self.run_ahead()
        log.info(
            "lvscare started",
            version=__version__,
            vs=str(self.config.vs),
            rs=[str(r) for r in self.config.rs],
            scheduler=self.config.scheduler,
            interval=self.config.interval,
            timeout=self.config.probe.timeout,
            mode=self.config.mode.value,
            realtime_priority=realtime,
        )
        # Frozen after the first round, which builds the sessions and connections that live
        # as long as the process, and so that the first reconcile does not wait for it.
        loop_task = asyncio.create_task(self.care.run(stop, freeze_startup_objects))
        stop_task = asyncio.create_task(stop.wait())
        await asyncio.wait({loop_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if realtime is not None:
            leave_realtime()
        # Do not wait for a round in flight: probes may take up to their timeout.
        loop_task.cancel()
        stop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop_task
        log.info("lvscare stopped; IPVS table left in place")


def freeze_startup_objects() -> None:
    """Take what start-up built (modules, config, sessions) out of the collector's reach.

    It lives as long as the process, yet every full collection walked all of it: a pause of
    35 ms on this machine's CPU (many times that under emulation), about once a minute, in
    which a crashed master is not noticed. After the freeze a full collection walks only what
    the rounds themselves allocate (0.25 ms).
    """
    gc.collect()
    gc.freeze()


async def run(config: CareConfig) -> None:
    """Do what the config says (serve, run once, clean), then close everything."""
    daemon = Daemon(config)
    try:
        if config.action is Action.CLEAN:
            await daemon.clean()
        elif config.action is Action.RUN_ONCE:
            await daemon.run_once()
        else:
            await daemon.serve()
    finally:
        await daemon.close()
