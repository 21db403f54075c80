"""Where lvscare's event loop spends the time it is not waiting: a sampler for diagnosis.

Put this directory first on PYTHONPATH and name an output file; every `lvscare care`
started with that environment samples its main thread every 3 ms from a side thread and
writes each stretch of more than 40 ms in which the thread was never back in the selector's
wait, with the most frequent stacks of that stretch:

    PYTHONPATH=bench/loop_sampler LVSCARE_LOOP_SAMPLES=/tmp/busy lvscare care ...

In the lab, around the fail-over benchmark (from the checkout; files `.lab/busy.PID`):

    ./scripts/lab env PYTHONPATH="$PWD/bench/loop_sampler" LVSCARE_LOOP_SAMPLES="$PWD/.lab/busy" \
        python -m bench.failover --daemons lvscare --runs 1 --steady 30 --out .lab/sampled

The side thread needs the GIL to look, so it sees the main thread only where that releases
the GIL or at a switch interval: stretch lengths are rough (and the sampling costs CPU of
its own); the stacks say what dominates. Python's own `python -X importtime` and asyncio's
debug mode answer other questions (imports; single slow callbacks, not stretches).
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
import traceback
from types import FrameType

PERIOD = 0.003
REPORT_OVER = 0.040


def _waiting(frame: FrameType | None) -> bool:
    code = frame.f_code if frame is not None else None
    return code is None or (code.co_name in ("select", "poll") and "selectors" in code.co_filename)


def _sample(main_id: int, out_path: str) -> None:
    with open(out_path, "a", buffering=1, encoding="utf-8") as out:
        started: float | None = None
        stacks: collections.Counter[str] = collections.Counter()
        while True:
            time.sleep(PERIOD)
            frame = sys._current_frames().get(main_id)
            now = time.time()
            if _waiting(frame):
                if started is not None and now - started > REPORT_OVER:
                    out.write(f"{started:.3f} busy {(now - started) * 1e3:.0f} ms\n")
                    for stack, n in stacks.most_common(4):
                        out.write(f"   {n} x {stack}\n")
                started = None
                stacks.clear()
                continue
            if started is None:
                started = now
            frames = reversed(traceback.extract_stack(frame)[-6:])
            where = (f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}" for f in frames)
            stacks[" <- ".join(where)] += 1


_out = os.environ.get("LVSCARE_LOOP_SAMPLES")
if _out and "care" in sys.argv:
    _main = threading.main_thread().ident
    assert _main is not None
    threading.Thread(
        target=_sample, args=(_main, f"{_out}.{os.getpid()}"), name="loop-sampler", daemon=True
    ).start()
