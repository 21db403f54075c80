"""The rtnetlink operations that make the VIP reachable for local processes: a dummy link
with the VIP, or a route. Which of them a mode uses is decided once, in vip.py.

Link mode mirrors kube-proxy's kube-ipvs0: VIP/32 on a dummy interface makes the VIP a
local address, so the kernel routes locally generated connections into IPVS; because the
source address is then the VIP itself, replies from a remote master would never find their
way back, hence the masquerade rule (see masquerade.py) and `net.ipv4.vs.conntrack=1`,
which lets netfilter NAT see IPVS connections.

Route mode adds `VIP via --ip` (or nothing without --ip, the default route then serves);
the source address is the node's own, so no masquerade is needed.

All link, address and route work goes through rtnetlink (pyroute2), never `ip`.
"""

from __future__ import annotations

import errno
from socket import AF_INET, AF_INET6
from typing import TYPE_CHECKING

import structlog
from pyroute2.netlink.exceptions import NetlinkError

from lvscare.address import IPAddress

if TYPE_CHECKING:
    from pyroute2.iproute.linux import AsyncIPRoute

log = structlog.get_logger("lvscare.hostnet")


def _family(ip: IPAddress) -> int:
    return AF_INET if ip.version == 4 else AF_INET6


def _prefixlen(ip: IPAddress) -> int:
    return 32 if ip.version == 4 else 128


class HostNetwork:
    """rtnetlink operations for the VIP; each `ensure_*` is a no-op when already right."""

    def __init__(self) -> None:
        self._ipr: AsyncIPRoute | None = None

    def _rt(self) -> AsyncIPRoute:
        if self._ipr is None:
            # Imported on first use: the default mode (route, no --ip) never needs rtnetlink
            # while serving, and pyroute2's rtnl stack is 3 MiB (it even imports unittest).
            # By its submodule, not `pyroute2`: see lvscare/imports.py.
            from pyroute2.iproute.linux import AsyncIPRoute

            self._ipr = AsyncIPRoute()
        return self._ipr

    async def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    async def _link_index(self, iface: str) -> int | None:
        found = await self._rt().link_lookup(ifname=iface)
        return found[0] if found else None

    async def ensure_link(self, iface: str, vip: IPAddress) -> list[str]:
        """Dummy `iface` up with `vip`/32; returns what had to be changed."""
        ipr = self._rt()
        changes: list[str] = []
        index = await self._link_index(iface)
        if index is None:
            try:
                await ipr.link("add", ifname=iface, kind="dummy")
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
            index = await self._link_index(iface)
            if index is None:
                raise RuntimeError(f"interface {iface} vanished right after it was created")
            changes.append(f"link {iface} created")
        links = await ipr.link("get", index=index)
        link = links[0]
        if not link["flags"] & 1:  # IFF_UP
            await ipr.link("set", index=index, state="up")
            changes.append(f"link {iface} up")
        have = {
            a.get("IFA_ADDRESS")
            async for a in await ipr.addr("dump", index=index, family=_family(vip))
        }
        if str(vip) not in have:
            kwargs: dict[str, object] = {}
            if vip.version == 6:
                kwargs["flags"] = 0x02  # IFA_F_NODAD: the VIP is ours alone, no DAD delay
            try:
                await ipr.addr(
                    "add", index=index, address=str(vip), prefixlen=_prefixlen(vip), **kwargs
                )
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
            changes.append(f"address {vip} on {iface}")
        return changes

    async def remove_link(self, iface: str) -> bool:
        """Delete `iface` if it is a dummy link; True if something was removed."""
        index = await self._link_index(iface)
        if index is None:
            return False
        links = await self._rt().link("get", index=index)
        kind = links[0].get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
        if kind != "dummy":
            log.warning("not removing interface: not a dummy link", iface=iface, kind=kind)
            return False
        try:
            await self._rt().link("del", index=index)
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise
            return False
        return True

    async def ensure_route(self, vip: IPAddress, via: IPAddress) -> list[str]:
        """A host route for the VIP through `via`; replaced if it points elsewhere."""
        ipr = self._rt()
        dst_len = _prefixlen(vip)
        routes = [
            r
            async for r in await ipr.route(
                "dump", family=_family(vip), dst=str(vip), dst_len=dst_len
            )
        ]
        if any(r.get("RTA_GATEWAY") == str(via) for r in routes):
            return []
        await ipr.route("replace", dst=str(vip), dst_len=dst_len, gateway=str(via))
        return [f"route {vip} via {via}"]

    async def remove_route(self, vip: IPAddress) -> bool:
        ipr = self._rt()
        try:
            await ipr.route("del", dst=str(vip), dst_len=_prefixlen(vip), family=_family(vip))
        except NetlinkError as e:
            if e.code in (errno.ESRCH, errno.ENOENT):
                return False
            raise
        return True
