"""Host tests of the daemon's outside: endpoint, metrics, manifest, image, systemd, logs."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `from tests.daemon.inproc_daemon import ...` however pytest started
    sys.path.insert(0, str(ROOT))
