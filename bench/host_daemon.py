"""`lvscare` as the host benchmarks run it: the real CLI and Daemon, the IPVS table in memory.

This machine's kernel has no IPVS, so the table is a dict (tests/support/fake_kernel.py) and
modules, sysctls and routes are skipped; the probes stay real (HTTPS to the fake apiservers).
Kept apart from the benchmarks themselves so the measured process imports no more than the
daemon does:

    python -m bench.host_daemon care --vs ... --rs ...
"""

from __future__ import annotations

import sys


def main() -> None:
    from lvscare.cli import cli
    from tests.support.inproc_daemon import without_kernel

    without_kernel(setattr, scripted_probes=False)
    cli.main(args=sys.argv[1:], prog_name="lvscare")


if __name__ == "__main__":
    main()
