"""The one door from bootstrap to the lvscare daemon, used as a library.

Imports happen at call time: bootstrap works (and its host tests run) without the daemon's
kernel dependencies loaded, and tests replace these three functions with recorders.
"""

from __future__ import annotations

from bootstrap.errors import StepFailed

FALLBACK_IMAGE = "lvscare-py:0.1.0"


def _failed(what: str, e: Exception) -> StepFailed:
    return StepFailed(f"{what}: {e}")


def create_rules(vs: str, rs: list[str]) -> None:
    """lvscare's --run-once: the virtual server and every real server, no probing."""
    from lvscare.api import run_once

    try:
        run_once(vs, rs)
    except Exception as e:  # lvscare's BadInput / KernelUnavailable carry a clear message
        raise _failed(f"IPVS rules for {vs}", e) from None


def remove_rules(vs: str) -> None:
    """lvscare's -C: the virtual server, its interface and nft table; fine if absent."""
    from lvscare.api import clean

    try:
        clean(vs)
    except Exception as e:
        raise _failed(f"removing IPVS rules for {vs}", e) from None


def static_pod(vs: str, rs: list[str], image: str) -> str:
    """lvscare's static pod manifest as YAML text."""
    from lvscare.manifest import render_static_pod

    try:
        return render_static_pod(vs, rs, image)
    except Exception as e:
        raise _failed("lvscare static pod", e) from None


def default_image() -> str:
    try:
        from lvscare.manifest import DEFAULT_IMAGE
    except ImportError:
        return FALLBACK_IMAGE
    return DEFAULT_IMAGE
