"""lvscare in a kernel table as full as a big cluster's (issue 15, point 4): 10,000 foreign
virtual servers, 3 real servers each, as kube-proxy in IPVS mode would have them.

`./scripts/test` loads 2,000 (`LVSCARE_BIG_TABLE_SERVICES`): with 10,000 the test took 4 to
5 minutes of the emulated CPU, a tenth of the lab's time in CI. The README's long-run command
loads 10,000.

lvscare reads, changes and removes only its own virtual server; `-C` removes only its own; a
kube-proxy-style cleanup that deletes every virtual server (lvscare's included) is repaired.
What a round costs with and without them is measured by `python -m bench.big_table`.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.support.big_table import foreign_rules, load, own_dests, saved_rules
from tests.support.lab_lvscare import VS, CareFn, all_up, run_lvscare
from tests.support.labnet import Lab, sh
from tests.support.wait import wait_until

FOREIGN = int(os.environ.get("LVSCARE_BIG_TABLE_SERVICES", "2000"))
# The timeout covers the lab's reset after the test too, which empties the loaded table.
pytestmark = [pytest.mark.kernel, pytest.mark.timeout(300 + FOREIGN * 0.06)]


def test_thousands_of_foreign_services_are_never_changed_and_a_full_flush_is_repaired(
    lab: Lab, care: CareFn
) -> None:
    load(foreign_rules(FOREIGN))
    foreign = saved_rules()
    assert sum(line.startswith("-A ") for line in foreign) == FOREIGN

    d = care("--interval", "1", "--health-timeout", "3")
    assert wait_until(lambda: own_dests() == all_up(lab), 180), own_dests()
    victim = lab.masters[2]
    victim.kill()
    assert wait_until(lambda: victim.ip not in own_dests(), 60), own_dests()
    victim.start()
    assert wait_until(lambda: own_dests() == all_up(lab), 120), own_dests()
    assert saved_rules() == foreign  # not one foreign line read back changed
    assert d.find("round failed") == []

    # kube-proxy's cleanup of virtual servers it does not own, lvscare's among them.
    flushed = time.monotonic()
    sh("ipvsadm", "-C")
    assert wait_until(lambda: own_dests() == all_up(lab), 60), own_dests()
    print(f"lvscare's virtual server back {time.monotonic() - flushed:.2f} s after a flush")
    load(foreign_rules(FOREIGN))
    d.stop()

    cleaned = run_lvscare("care", "-C", "--vs", VS, *lab.rs_args())
    assert cleaned.returncode == 0, cleaned.stderr
    assert own_dests() == {}
    assert saved_rules() == foreign  # -C took its own and nothing else
