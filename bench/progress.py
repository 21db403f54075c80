"""What every lab benchmark run does around its measurements: say how far it is (the VM run
is long and silent otherwise) and start from an empty output directory."""

from __future__ import annotations

import time
from pathlib import Path

START = time.monotonic()


def log(text: str) -> None:
    """Progress on stdout, with the time since the benchmark started."""
    print(f"[{time.monotonic() - START:7.1f}s] {text}", flush=True)


def fresh_dir(out: Path) -> None:
    """`out` exists and holds no file of an earlier run (subdirectories are kept)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file():
            old.unlink()
