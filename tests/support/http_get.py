"""Asking lvscare's own endpoint (/healthz, /readyz, /metrics, /status) from a test.

Standard library only: the lab's test process uses it without importing the daemon.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    """Blocking GET (usable from any thread): status and body, 5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def aget(url: str) -> tuple[int, str]:
    return await asyncio.to_thread(get, url)
