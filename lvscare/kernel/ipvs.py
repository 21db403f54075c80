"""The one narrow door to the kernel's IPVS table: read a service, apply a list of Ops.

Generic netlink through pyroute2's AsyncIPVS, never ipvsadm. pyroute2 0.9 quirks:
`setup_endpoint()` must run before the first request, its "update" command is a delete
(we use "set"), and an IPv6 service needs its netmask given as a prefix length (128),
which the IPv4-typed attribute carries as the bytes of "128.0.0.0".
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Sequence
from socket import AF_INET, AF_INET6, IPPROTO_TCP
from typing import Any, Protocol

from pyroute2.ipvs import AsyncIPVS, IPVSDest, IPVSService  # not `pyroute2`: lvscare/imports.py
from pyroute2.netlink.exceptions import NetlinkError

from lvscare.errors import KernelUnavailable
from lvscare.kernel.table import FWD_MASQ, Dest, DestState, Op, Service, ServiceState


class IPVSTable(Protocol):
    """The door to one virtual service's table; kept small so logic tests need no kernel."""

    async def read(self, service: Service) -> ServiceState | None: ...

    async def apply(self, service: Service, ops: Sequence[Op]) -> None: ...

    async def delete_service(self, service: Service) -> bool: ...

    async def close(self) -> None: ...


# A key no virtual server can have (port 0): asked for to prove that IPVS answers.
NO_SERVICE = Service(ipaddress.ip_address("0.0.0.0"), 0, "rr")


def _service_key(service: Service, *, scheduler: bool = True) -> IPVSService:
    fields: dict[str, Any] = {
        "af": AF_INET if service.addr.version == 4 else AF_INET6,
        "addr": str(service.addr),
        "port": service.port,
        "protocol": IPPROTO_TCP,
        "netmask": "255.255.255.255" if service.addr.version == 4 else "128.0.0.0",
    }
    if scheduler:
        fields["sched_name"] = service.scheduler
    return IPVSService(**fields)


def _dest(dest: Dest, weight: int = 0) -> IPVSDest:
    return IPVSDest(
        addr=str(dest.addr),
        addr_family=AF_INET if dest.addr.version == 4 else AF_INET6,
        port=dest.port,
        fwd_method=FWD_MASQ,
        weight=weight,
    )


def kernel_error(e: NetlinkError, what: str) -> Exception:
    """Turn the errors that mean "this host cannot do IPVS" into one clear message."""
    if e.code == errno.EPERM:
        return KernelUnavailable(f"{what}: permission denied, lvscare needs CAP_NET_ADMIN")
    if e.code == errno.ENOENT:
        return KernelUnavailable(f"{what}: this kernel has no IPVS (ip_vs module not available)")
    return RuntimeError(f"{what}: {e}")


class NetlinkIPVS:
    """AsyncIPVS wrapper; `open()` proves IPVS is usable before anything else happens."""

    def __init__(self) -> None:
        self._sock: AsyncIPVS | None = None

    async def open(self) -> None:
        sock = AsyncIPVS()
        try:
            await sock.setup_endpoint()
            await self._ask_nothing(sock)
        except NetlinkError as e:
            sock.close()
            raise kernel_error(e, "opening IPVS") from None
        except OSError as e:
            sock.close()
            raise KernelUnavailable(f"opening IPVS: {e}") from None
        self._sock = sock

    @staticmethod
    async def _ask_nothing(sock: AsyncIPVS) -> None:
        """One request that proves IPVS answers us (the module, CAP_NET_ADMIN) without a
        dump: beside kube-proxy's 10,000 services a dump costs seconds at every start."""
        try:
            await sock.service("get", service=_service_key(NO_SERVICE, scheduler=False))
        except NetlinkError as e:
            if e.code != errno.ESRCH:  # "no such service" is the expected answer
                raise

    def _ipvs(self) -> AsyncIPVS:
        if self._sock is None:
            raise RuntimeError("NetlinkIPVS used before open()")
        return self._sock

    async def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def read(self, service: Service) -> ServiceState | None:
        """Our one virtual server and its real servers, asked for by key: a round costs the
        same beside kube-proxy's 10,000 services as in an empty table (a dump would not)."""
        ipvs = self._ipvs()
        key = _service_key(service, scheduler=False)
        try:
            found = await ipvs.service("get", service=key)
        except NetlinkError as e:
            if e.code in (errno.ESRCH, errno.ENOENT):  # no such virtual server
                return None
            raise
        svc = next((m.get_attr("IPVS_CMD_ATTR_SERVICE") for m in found), None)
        if svc is None:
            return None
        state = ServiceState(scheduler=svc.get_attr("IPVS_SVC_ATTR_SCHED_NAME") or "")
        for dmsg in await ipvs.dest("dump", service=key):
            d = dmsg.get_attr("IPVS_CMD_ATTR_DEST")
            dest = Dest(
                ipaddress.ip_address(d.get_attr("IPVS_DEST_ATTR_ADDR")),
                d.get_attr("IPVS_DEST_ATTR_PORT"),
            )
            state.dests[dest] = DestState(
                weight=d.get_attr("IPVS_DEST_ATTR_WEIGHT"),
                fwd_method=d.get_attr("IPVS_DEST_ATTR_FWD_METHOD") & 0x7,
            )
        return state

    async def apply(self, service: Service, ops: Sequence[Op]) -> None:
        """Apply ops in order; an op the kernel already reflects (EEXIST/ENOENT) is not an error."""
        ipvs = self._ipvs()
        key = _service_key(service)
        for op in ops:
            try:
                if op.kind == "add-service":
                    await ipvs.service("add", service=key)
                elif op.kind == "set-service":
                    await ipvs.service("set", service=key)
                elif op.kind == "add-dest":
                    assert op.dest is not None
                    await ipvs.dest("add", service=key, dest=_dest(op.dest, op.weight))
                elif op.kind == "set-dest":
                    assert op.dest is not None
                    await ipvs.dest("set", service=key, dest=_dest(op.dest, op.weight))
                elif op.kind == "del-dest":
                    assert op.dest is not None
                    await ipvs.dest("del", service=key, dest=_dest(op.dest))
                else:
                    raise ValueError(f"unknown op {op.kind}")
            except NetlinkError as e:
                if op.kind.startswith("add") and e.code == errno.EEXIST:
                    continue
                if op.kind == "del-dest" and e.code in (errno.ENOENT, errno.ESRCH):
                    continue
                raise kernel_error(e, f"IPVS {op}") from None

    async def delete_service(self, service: Service) -> bool:
        try:
            await self._ipvs().service("del", service=_service_key(service, scheduler=False))
        except NetlinkError as e:
            if e.code in (errno.ESRCH, errno.ENOENT):
                return False
            raise kernel_error(e, f"IPVS delete {service}") from None
        return True
