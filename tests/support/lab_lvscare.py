"""How the lab, the benchmarks and the demo run the real `lvscare` command.

One command line for all of them: the venv's Python runs the package as a module (what the
static pod's `lvscare` entry point runs), on the lab's VIP and masters unless told otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from prometheus_client.parser import text_string_to_metric_families

from tests.support.background import Background
from tests.support.http_get import get as http_get
from tests.support.labnet import ConnectFailed, connect_via, ipvs_table

if TYPE_CHECKING:
    from tests.support.labnet import Lab, LabProcess

ENDPOINT = "http://127.0.0.1:10271"  # lvscare's default --health-address
VIP, PORT = "10.103.97.2", 6443
VS = f"{VIP}:{PORT}"
KEY = (VIP, PORT)
LVSCARE = [sys.executable, "-m", "lvscare"]
# lvscare with one test hook, SIGUSR1 blocks its event loop (see blocking_lvscare.py).
BLOCKING = [sys.executable, str(Path(__file__).with_name("blocking_lvscare.py"))]


class CareFn(Protocol):
    """The lab's `care` fixture: `lvscare care` on the lab's VIP and masters plus `flags`."""

    def __call__(
        self,
        *flags: str,
        vs: str = VS,
        rs_flags: Sequence[str] | None = None,
        command: Sequence[str] = LVSCARE,
        env: dict[str, str] | None = None,
    ) -> LabProcess: ...


def care_argv(
    rs_flags: Sequence[str],
    *flags: str,
    vs: str = VS,
    command: Sequence[str] = LVSCARE,
) -> list[str]:
    """`lvscare care --vs VS RS_FLAGS FLAGS`; `rs_flags` as `Lab.rs_args()` gives them."""
    return [*command, "care", "--vs", vs, *rs_flags, *flags]


def run_lvscare(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """A short-lived lvscare (--run-once, -C) to completion."""
    return subprocess.run(
        [*LVSCARE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def dests(key: tuple[str, int] = KEY) -> dict[str, int]:
    """{real server ip: weight} of the virtual service in the kernel, {} if it is missing."""
    service = ipvs_table().get(key)
    return {} if service is None else {addr: w for (addr, _port), w in service["dests"].items()}


def all_up(lab: Lab) -> dict[str, int]:
    """`dests()` when every master of `lab` is in at weight 1."""
    return {m.ip: 1 for m in lab.masters}


def drained(ip: str) -> bool:
    """No new connection can land on `ip`: weight 0 or gone, in a table that exists."""
    table = dests()
    return bool(table) and table.get(ip, 0) == 0


def endpoint_get(path: str) -> str:
    """The body of lvscare's endpoint at `path` (the default address), which must answer 200."""
    status, body = http_get(ENDPOINT + path)
    assert status == 200, f"{path}: {status} {body}"
    return body


def every_master_up_and_watched() -> bool:
    """Every master "up" and watched in lvscare's /status (default address); False while
    it does not answer. A full table alone may be fail-open, and a fault right after start
    would find the watch connections still opening."""
    try:
        status, body = http_get(ENDPOINT + "/status", timeout=5)
        doc = json.loads(body)
    except (OSError, ValueError):
        return False
    if status != 200:
        return False
    return all(s["state"] == "up" and s["watch_connected"] for s in doc["real_servers"])


def metric(name: str, **labels: str) -> float:
    """One sample of lvscare's /metrics."""
    for family in text_string_to_metric_families(endpoint_get("/metrics")):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {name} {labels}")


class Client(Background):
    """Fresh TLS connections through the VIP, one after another, each with its start time."""

    def __init__(self, timeout: float = 3.0) -> None:
        super().__init__()
        self.timeout = timeout
        self.attempts: list[tuple[float, str]] = []  # (start, master name | "failed: why")

    def _run(self) -> None:
        while not self.stopping.is_set():
            start = time.monotonic()
            try:
                self.attempts.append((start, connect_via(VIP, PORT, timeout=self.timeout)))
            except (ConnectFailed, OSError) as e:
                self.attempts.append((start, f"failed: {e}"))
