"""The VIP's host side: what makes local traffic to the VIP reach IPVS, one class per mode.

Chosen once from the config (as the Go lvscare picks its Ruler): `ensure()` makes it so
and is cheap when it already is (the care loop calls it every round, to repair what
someone deleted); `remove()` is -C. Every mode removes the same things, so -C also cleans
up after a run in another mode.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from lvscare.config import CareConfig, Mode
from lvscare.kernel import masquerade, sysctl
from lvscare.kernel.hostnet import HostNetwork

log = structlog.get_logger("lvscare.vip")


class VIPHost(Protocol):
    async def ensure(self) -> list[str]:
        """Make the host side right; what had to be changed."""
        ...

    async def remove(self) -> list[str]:
        """Remove what lvscare made for the VIP; what was removed."""
        ...


class _OurVIP:
    """What every mode shares: the config, rtnetlink, and -C's removal of whatever any mode
    made (the link, the route and the nft table)."""

    def __init__(self, config: CareConfig, hostnet: HostNetwork) -> None:
        self.config = config
        self.hostnet = hostnet

    async def remove(self) -> list[str]:
        cfg, removed = self.config, []
        if await self.hostnet.remove_link(cfg.iface):
            removed.append(f"interface {cfg.iface}")
        if cfg.route_via is not None and await self.hostnet.remove_route(cfg.vip):
            removed.append(f"route {cfg.vip}")
        if masquerade.remove_masquerade():
            removed.append(f"nft table inet {masquerade.TABLE}")
        return removed


class DefaultRouteVIP(_OurVIP):
    """--mode route without --ip: the default route serves, nothing to set up."""

    async def ensure(self) -> list[str]:
        return []


class RouteVIP(_OurVIP):
    """--mode route --ip GW: a host route for the VIP through the gateway."""

    async def ensure(self) -> list[str]:
        assert self.config.route_via is not None
        return await self.hostnet.ensure_route(self.config.vip, self.config.route_via)


class LinkVIP(_OurVIP):
    """--mode link: VIP/32 on a dummy interface, conntrack for IPVS, the masquerade rule.

    The sysctl and the nft table are set on the first call only: nothing else touches them,
    and `nft list` would cost a process every round. The link is checked every call.
    """

    def __init__(self, config: CareConfig, hostnet: HostNetwork) -> None:
        super().__init__(config, hostnet)
        self._rules_set = False

    async def ensure(self) -> list[str]:
        cfg = self.config
        if not self._rules_set:
            sysctl.ensure_sysctl("net.ipv4.vs.conntrack", "1")
        changes = await self.hostnet.ensure_link(cfg.iface, cfg.vip)
        if not self._rules_set:
            if masquerade.ensure_masquerade(cfg.vip, cfg.vs.port):
                log.info("masquerade rule loaded", vip=str(cfg.vs))
            self._rules_set = True
        return changes


def vip_host_for(config: CareConfig, hostnet: HostNetwork) -> VIPHost:
    if config.mode is Mode.LINK:
        return LinkVIP(config, hostnet)
    if config.route_via is not None:
        return RouteVIP(config, hostnet)
    return DefaultRouteVIP(config, hostnet)
