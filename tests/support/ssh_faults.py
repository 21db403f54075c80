"""What the fault tests look for on the SSH hosts, and the CLI as its own process.

A host's changes all land in the upper layers of its overlays (`Host.written`):
`leftovers` picks those that are half-written
(an upload's temporary file, a tree unpacked half way, an atomic write's temporary) or that
should not outlive a run (the join's secrets).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.ssh_client import Client
from tests.support.ssh_hosts import Host
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
# Names that mean "not whole" or "not to be kept": upload temporaries, a half-unpacked
# tree, fsutil's atomic-write temporaries, the join's token files.
HALF_WRITTEN = (".lvscare-py-part", "/opt/lvscare-py/package.new", "/.lvscare-py.")
SECRETS_LEFT = ("/opt/lvscare-py/join.yaml", "/var/lib/lvscare-py/kubeadm-join.yaml")


def leftovers(host: Host) -> list[str]:
    """Files on the host that are half-written or hold a join's secrets."""
    return [
        path
        for path in host.written()
        if any(mark in path for mark in HALF_WRITTEN) or path in SECRETS_LEFT
    ]


def running(host: Host, *words: str) -> bool:
    """Whether a process on the host has all these texts in its command line."""
    return any(all(w in " ".join(argv) for w in words) for argv in host.processes())


def wait_running(host: Host, *words: str, timeout: float = 60.0) -> None:
    assert wait_until(lambda: running(host, *words), timeout, 0.05), (host.name, words)


def start_cli(client: Client, *args: str) -> subprocess.Popen[str]:
    """`bootstrap ARGS` as its own process (so a test can send it SIGINT), output captured."""
    env = {**os.environ, "HOME": str(client.home), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", "from bootstrap.cli import main; main()", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )


def wait_then(proc: subprocess.Popen[str], condition: Callable[[], object]) -> None:
    """Until `condition`, while the command runs (its output in the failure if it ended)."""
    assert wait_until(lambda: proc.poll() is not None or condition(), 60, 0.01)
    if proc.poll() is not None:
        raise AssertionError(f"ended first ({proc.returncode}): {proc.communicate()[0]}")


def interrupt(proc: subprocess.Popen[str], twice: bool = False) -> tuple[int, str]:
    """Ctrl-C as a terminal sends it (SIGINT), once or twice; exit code and output."""
    proc.send_signal(signal.SIGINT)
    if twice:  # once the first is handled: two signals sent at once may arrive as one
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


def row(output: str, addr: str) -> str:
    """The host's row in the table at the end of a cluster command's output."""
    table = output[output.index("HOST ") :]
    return next(line for line in table.splitlines() if line.startswith(addr + " "))
