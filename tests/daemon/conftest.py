"""Host tests of the daemon's outside: endpoint, metrics, manifest, image, systemd, logs."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `from tests.daemon.inproc_daemon import ...` however pytest started
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def unfreeze_after_serve() -> Iterator[None]:
    """Daemon.serve() freezes the collector's view of this whole process; give it back."""
    yield
    gc.unfreeze()
