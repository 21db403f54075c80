"""lvscare on the host, no kernel: its logic, and its outside (endpoint, metrics, manifest,
image, systemd, logs)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def unfreeze_after_serve() -> Iterator[None]:
    """Daemon.serve() freezes the collector's view of this whole process; give it back."""
    yield
    gc.unfreeze()
