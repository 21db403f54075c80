"""How the lab runs the real `lvscare` command: as a module of the venv's Python."""

from __future__ import annotations

import subprocess
import sys

LVSCARE = [sys.executable, "-m", "lvscare"]


def run_lvscare(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """A short-lived lvscare (--run-once, -C) to completion."""
    return subprocess.run(
        [*LVSCARE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
