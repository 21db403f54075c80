"""The one door from bootstrap to lvscare, used as a library: a node's IPVS rules and its
lvscare static pod, each from a `CareConfig` built by lvscare's own config builder.

Imports happen at call time: bootstrap works (and its host tests run) without the daemon's
kernel dependencies loaded, and tests replace `create_rules` / `remove_rules` with recorders.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bootstrap.errors import StepFailed

FALLBACK_IMAGE = "lvscare-py:0.1.0"


@dataclass(frozen=True)
class Daemon:
    """The node daemon's flags bootstrap sets: how the VIP lives on the node
    (`--mode route|link`) and how often the masters are probed (`--interval`)."""

    mode: str = "route"
    interval: str = "5"


DEFAULT_DAEMON = Daemon()


def _failed(what: str, e: Exception) -> StepFailed:
    return StepFailed(f"{what}: {e}")


def check(daemon: Daemon) -> None:
    """BadInput naming the flag, before anything is changed on the host."""
    from lvscare.config import build_config

    rs = ("127.0.0.2:6443",)
    build_config(vs="127.0.0.1:6443", rs=rs, mode=daemon.mode, interval=daemon.interval)


def create_rules(vs: str, rs: list[str], daemon: Daemon = DEFAULT_DAEMON) -> None:
    """lvscare's --run-once: the virtual server and every real server, no probing."""
    from lvscare.config import build_config
    from lvscare.daemon import run

    try:
        asyncio.run(run(build_config(vs=vs, rs=rs, run_once=True, mode=daemon.mode)))
    except Exception as e:  # lvscare's BadInput / KernelUnavailable carry a clear message
        raise _failed(f"IPVS rules for {vs}", e) from None


def remove_rules(vs: str) -> None:
    """lvscare's -C: the virtual server, its interface and nft table; fine if absent."""
    from lvscare.config import build_config
    from lvscare.daemon import run

    try:
        asyncio.run(run(build_config(vs=vs, rs=(), clean=True)))
    except Exception as e:
        raise _failed(f"removing IPVS rules for {vs}", e) from None


def static_pod(vs: str, rs: list[str], image: str, daemon: Daemon = DEFAULT_DAEMON) -> str:
    """lvscare's static pod manifest as YAML text."""
    from lvscare.config import build_config
    from lvscare.manifest import render_static_pod

    try:
        config = build_config(vs=vs, rs=rs, mode=daemon.mode, interval=daemon.interval)
        args = ["--vs", vs, *[a for r in rs for a in ("--rs", r)]]
        if daemon.mode != Daemon.mode:
            args += ["--mode", daemon.mode]
        if daemon.interval != Daemon.interval:
            args += ["--interval", daemon.interval]
        return render_static_pod(config, image, care_args=args)
    except Exception as e:
        raise _failed("lvscare static pod", e) from None


def default_image() -> str:
    try:
        from lvscare.manifest import DEFAULT_IMAGE
    except ImportError:
        return FALLBACK_IMAGE
    return DEFAULT_IMAGE
