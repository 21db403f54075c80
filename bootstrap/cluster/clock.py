"""Each host's clock against this machine's, checked before anything is changed.

master0 signs certificates valid from its own now: a host whose clock is behind takes them
for not yet valid, and etcd members and the bootstrap token's expiry go wrong the same
way. Found later, that is a TLS error in kubeadm far from its cause; found first, it is one
line naming the host and how far off it is. The preflight table (`preflight`) shows each
host's offset and how far apart the hosts are among themselves (`spread`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from bootstrap.cluster.ssh import Connection
from bootstrap.defaults import MAX_CLOCK_SKEW
from bootstrap.errors import BadInput, StepFailed

DEFAULT_MAX_SKEW = MAX_CLOCK_SKEW
MAX_SKEW_FLAG = "--max-clock-skew"


def parse_max_skew(value: float) -> float:
    """Seconds a host's clock may be off; 0 turns the check off."""
    if not 0 <= value <= 86400 * 365:  # also nan, which compares false
        raise BadInput(f"{MAX_SKEW_FLAG} {value}: give seconds from 0 (no check) to a year")
    return value


def offset(conn: Connection, now: Callable[[], float] = time.time) -> float:
    """Seconds the host's clock is ahead of ours (negative: behind), to about a second."""
    before = now()
    out = conn.check("date +%s", "date", as_root=False)
    after = now()
    try:
        theirs = int(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise StepFailed(f"date +%s: not a time: {out.strip()[:80]!r}") from None
    # `date +%s` truncates: the host's time was somewhere in the second after `theirs`.
    return theirs + 0.5 - (before + after) / 2


def problem(seconds: float, limit: float) -> str | None:
    """One line if `seconds` off is more than `limit` allows (a limit of 0: never)."""
    if limit <= 0 or abs(seconds) <= limit:
        return None
    way = "ahead of" if seconds > 0 else "behind"
    return (
        f"clock {abs(seconds):.0f} s {way} this machine's (at most {limit:g} s): set the "
        f"host's time (NTP), or pass {MAX_SKEW_FLAG}"
    )


def spread(offsets: Mapping[str, float]) -> tuple[float, str, str] | None:
    """How far apart the hosts' clocks are among themselves (each host's offset from ours
    is checked alone; two hosts each within the limit can still be twice it apart): the
    gap, the slowest host and the fastest; None for fewer than two hosts."""
    if len(offsets) < 2:
        return None
    slow = min(offsets, key=lambda a: offsets[a])
    fast = max(offsets, key=lambda a: offsets[a])
    return offsets[fast] - offsets[slow], slow, fast
