"""The IPVS table as data, and the smallest list of changes that turns the kernel's into ours.

Pure functions: no kernel here, so every repair rule is testable without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lvscare.address import IPAddress, format_hostport

FWD_MASQ = 0  # IP_VS_CONN_F_MASQ: NAT, the only forwarding that reaches a remote apiserver
DRAIN = -1  # desired "weight 0 if present, otherwise leave absent"


@dataclass(frozen=True, order=True)
class Dest:
    addr: IPAddress
    port: int

    def __str__(self) -> str:
        return format_hostport(self.addr, self.port)


@dataclass(frozen=True)
class DestState:
    weight: int
    fwd_method: int = FWD_MASQ


@dataclass(frozen=True)
class Service:
    """A TCP virtual service: what identifies it in the kernel plus its scheduler."""

    addr: IPAddress
    port: int
    scheduler: str

    def __str__(self) -> str:
        return format_hostport(self.addr, self.port)


@dataclass
class ServiceState:
    """What the kernel has for our virtual service."""

    scheduler: str
    dests: dict[Dest, DestState] = field(default_factory=dict)


@dataclass(frozen=True)
class Op:
    """One netlink change. `kind` is one of the names below."""

    kind: str  # add-service | set-service | add-dest | set-dest | del-dest
    dest: Dest | None = None
    weight: int = 0

    def __str__(self) -> str:
        if self.dest is None:
            return self.kind
        if self.kind == "del-dest":
            return f"{self.kind} {self.dest}"
        return f"{self.kind} {self.dest} weight={self.weight}"


def plan(service: Service, actual: ServiceState | None, desired: dict[Dest, int]) -> list[Op]:
    """Changes that make `actual` match `desired` (weight per dest, or DRAIN).

    Real servers we do not manage are removed: the virtual server is ours alone.
    Matching entries produce no op, so adopting an existing table changes nothing.
    Ops that let a real server take connections come before those that stop one: applied
    one by one, the table never passes through a moment with fewer servers to schedule
    (with none, IPVS answers a new connection with a port unreachable: a refusal).
    """
    ops: list[Op] = []
    current: dict[Dest, DestState] = {}
    if actual is None:
        ops.append(Op("add-service"))
    else:
        current = actual.dests
        if actual.scheduler != service.scheduler:
            ops.append(Op("set-service"))
    gains: list[Op] = []
    drains: list[Op] = []
    for dest, want in sorted(desired.items()):
        have = current.get(dest)
        if want == DRAIN:
            if have is not None and (have.weight != 0 or have.fwd_method != FWD_MASQ):
                drains.append(Op("set-dest", dest, 0))
        elif have is None:
            gains.append(Op("add-dest", dest, want))
        elif have.weight != want or have.fwd_method != FWD_MASQ:
            gains.append(Op("set-dest", dest, want))
    removals = [Op("del-dest", dest) for dest in sorted(current.keys() - desired.keys())]
    return ops + gains + drains + removals
