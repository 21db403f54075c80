"""Life cycle around the care loop: build the parts, start, stop on a signal, close.

Like uvicorn's Config/Server split: CareConfig is inert data, this module owns the
resources (netlink sockets, HTTP session, signal handlers) and their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal

import structlog
from pyroute2.netlink.exceptions import NetlinkError

from lvscare import __version__
from lvscare.care import Care
from lvscare.config import CareConfig
from lvscare.errors import KernelUnavailable
from lvscare.kernel.hostnet import HostNetwork
from lvscare.kernel.ipvs import IPVSKernel
from lvscare.kernel.masquerade import MasqueradeError
from lvscare.probe_thread import ThreadedProber
from lvscare.prober import HTTPProber
from lvscare.telemetry import Telemetry

log = structlog.get_logger("lvscare.daemon")


class Daemon:
    def __init__(self, config: CareConfig, health_address: str | None = None) -> None:
        self.config = config
        self.kernel = IPVSKernel()
        self.hostnet = HostNetwork()
        # probes (TLS handshakes) on a loop of their own: see probe_thread
        self.prober = ThreadedProber(HTTPProber(config.health))
        self.care = Care(config, self.kernel, self.prober, self.hostnet)
        # /healthz, /readyz, /metrics, /status and systemd's READY=1, as observers of care
        self.telemetry = Telemetry(self.care, health_address)

    async def close(self) -> None:
        await self.telemetry.stop()
        await self.prober.close()
        await self.kernel.close()
        await self.hostnet.close()

    async def start(self) -> None:
        """Resolve (bad input first), modules, IPVS, host set-up; nothing is probed yet."""
        await self.care.resolve_all(strict=True)
        await self.open_ipvs()
        try:
            await self.care.prepare_host()
        except MasqueradeError as e:
            raise KernelUnavailable(str(e)) from None
        except (PermissionError, NetlinkError) as e:
            if isinstance(e, PermissionError) or e.code == errno.EPERM:
                raise KernelUnavailable(
                    f"setting up the VIP: permission denied, lvscare needs CAP_NET_ADMIN ({e})"
                ) from None
            raise

    async def open_ipvs(self) -> None:
        """Load modules, then open IPVS; a failure carries modprobe's reason in its one line."""
        failed = self.care.load_modules()
        try:
            await self.kernel.open()
        except KernelUnavailable as e:
            if "ip_vs" in failed:
                raise KernelUnavailable(f"{e}; modprobe ip_vs: {failed['ip_vs']}") from None
            raise
        for module, why in failed.items():
            log.warning("module load failed", module=module, error=why)

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
        """Remove what we made; a kernel without IPVS simply has no virtual server to remove."""
        try:
            await self.kernel.open()
        except KernelUnavailable as e:
            if "no IPVS" not in str(e):
                raise
            self.care.proxier = _NoIPVS()
        removed = await self.care.clean()
        log.info("cleaned", removed=removed or "nothing to remove")

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT; the kernel table is left as it is so traffic keeps flowing."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await self.telemetry.start()  # the HTTP endpoint (a busy port is logged and retried)
        freeze_startup_objects()
        log.info(
            "lvscare started",
            version=__version__,
            vs=str(self.config.vs),
            rs=[str(r) for r in self.config.rs],
            scheduler=self.config.scheduler,
            interval=self.config.interval,
            timeout=self.config.health.timeout,
            mode=self.config.mode.value,
        )
        loop_task = asyncio.create_task(self.care.run(stop))
        stop_task = asyncio.create_task(stop.wait())
        await asyncio.wait({loop_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
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


class _NoIPVS:
    """Stands in for the kernel table on a kernel without IPVS during -C: nothing to remove."""

    async def delete_service(self, service: object) -> bool:
        return False

    async def read(self, service: object) -> None:
        return None

    async def apply(self, service: object, ops: object) -> None:
        raise KernelUnavailable("this kernel has no IPVS")

    async def close(self) -> None:
        return None


async def run(
    config: CareConfig,
    *,
    run_once: bool = False,
    clean: bool = False,
    health_address: str | None = None,
) -> None:
    daemon = Daemon(config, None if run_once or clean else health_address)
    try:
        if clean:
            await daemon.clean()
        elif run_once:
            await daemon.run_once()
        else:
            await daemon.serve()
    finally:
        await daemon.close()
