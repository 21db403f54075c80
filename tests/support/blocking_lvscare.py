"""`lvscare` with one test hook: SIGUSR1 blocks its event loop for LVSCARE_BLOCK_SECONDS.

Python runs signal handlers in the main thread, which is the one running the care loop, so
the handler's time.sleep() stalls the loop exactly as a blocking call in a coroutine would;
the health endpoint's own thread keeps answering and must report it. The hook lives here,
not in the package: production lvscare has no way to be blocked on purpose.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

from lvscare.cli import main


def block(signum: int, frame: FrameType | None) -> None:
    time.sleep(float(os.environ.get("LVSCARE_BLOCK_SECONDS", "5")))


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, block)
    sys.argv[0] = "lvscare"
    main()
