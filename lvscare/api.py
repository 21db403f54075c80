"""lvscare as a library, for bootstrap: the --run-once and -C paths without a subprocess."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from lvscare.config import build_config
from lvscare.daemon import run


def run_once(vs: str, rs: Sequence[str], *, mode: str = "route", iface: str = "lvscare") -> None:
    """Create the virtual server with every real server, without probing (before kubeadm join)."""
    asyncio.run(run(build_config(vs=vs, rs=rs, mode=mode, iface=iface), run_once=True))


def clean(vs: str, *, iface: str = "lvscare") -> None:
    """Remove the virtual server, the dummy interface and our nft table; fine if absent."""
    asyncio.run(run(build_config(vs=vs, rs=(), iface=iface, require_rs=False), clean=True))
