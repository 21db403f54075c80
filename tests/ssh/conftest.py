"""Fixtures: a lab of SSH hosts (torn down even when a test fails) and its client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ssh_client import Client, lab_and_client
from tests.support.ssh_hosts import Lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Lab, Client]]:
    with lab_and_client(tmp_path) as pair:
        yield pair
