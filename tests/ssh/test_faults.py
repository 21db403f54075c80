"""The orchestrator under faults, against real sshd: a connection cut in the middle of the
package upload, hosts rebooted in the middle of init.sh and of kubeadm, full disks, a clock
an hour off, Ctrl-C of the operator. Each ends with a clear result, leaves no half-written
file on any host, and a second run finishes the job.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from bootstrap.cluster import clock
from bootstrap.cluster.package import REMOTE_DIR, REMOTE_PKG
from bootstrap.errors import BadInput
from tests.support import ssh_package
from tests.support.ssh_client import Client, bootstrap, init_args
from tests.support.ssh_faults import (
    interrupt,
    leftovers,
    row,
    running,
    start_cli,
    wait_running,
    wait_then,
)
from tests.support.ssh_hosts import FAKETIME_RC, SLOW_FILE, SLOW_INIT_FILE, Host, Lab
from tests.support.wait import wait_until

PART = REMOTE_PKG + ".lvscare-py-part"
LOST = "the SSH connection was lost"


def kubeadm(host: Host, sub: str) -> int:
    """How many times the stand-in kubeadm was run with this subcommand on the host."""
    return sum(1 for a in host.argvs() if a[:2] == ["kubeadm", sub])


def part_size(host: Host) -> int:
    part = host.path(PART)
    return part.stat().st_size if part.exists() else 0


def results(client: Client) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(client.cluster_file.read_text())
    return {addr: (h["result"], h["failed_step"]) for addr, h in data["hosts"].items()}


def test_upload_cut_half_way_is_never_taken_for_the_package_and_a_rerun_sends_it_whole(
    lab: tuple[Lab, Client], tmp_path: Path
) -> None:
    lab_, client = lab
    m0 = lab_.host("m0")
    client.trust(m0)
    pkg = ssh_package.build(tmp_path / "big.tar.gz", noise=2 << 20)
    m0.limit_rate(8)  # 2 MiB: about two seconds on the wire

    def cut_half_way() -> None:
        if wait_until(lambda: part_size(m0) >= 256 << 10, 30, 0.01):
            m0.cut()

    cutter = threading.Thread(target=cut_half_way)
    cutter.start()
    args = init_args(client, [m0.addr], [], pkg=str(pkg))
    out = bootstrap(*args)
    cutter.join()
    assert out.exit_code == 1, out.output
    assert "package" in row(out.output, m0.addr) and LOST in row(out.output, m0.addr)
    assert 0 < part_size(m0) < pkg.stat().st_size  # half a file, by a name nothing reads
    assert not m0.exists(REMOTE_PKG)
    m0.limit_rate(1000)
    out = bootstrap(*args)
    assert out.exit_code == 0, out.output
    assert "not sent" not in out.output
    assert m0.path(REMOTE_PKG).read_bytes() == pkg.read_bytes()
    assert [p for p, _f, _m in m0.sftp_opens()].count(PART) == 2  # sent again, whole
    assert leftovers(m0) == []


def test_hosts_rebooted_in_init_sh_and_in_kubeadm_fail_clearly_and_a_rerun_finishes(
    lab: tuple[Lab, Client],
) -> None:
    lab_, client = lab
    m0 = lab_.host("m0", setup=f"echo 60 > {SLOW_FILE}")
    n1 = lab_.host("n1", setup=f"echo 60 > {SLOW_INIT_FILE}")
    client.trust(m0, n1)
    args = init_args(client, [m0.addr], [n1.addr])
    done: list[Result] = []
    runner = threading.Thread(target=lambda: done.append(bootstrap(*args)))
    runner.start()
    wait_running(n1, "sh init.sh")
    n1.reboot()
    assert wait_until(lambda: kubeadm(m0, "init") == 1, 60, 0.05)  # running: it sleeps
    m0.reboot()
    runner.join(60)
    (out,) = done
    assert out.exit_code == 1, out.output
    assert "init.sh" in row(out.output, n1.addr) and LOST in row(out.output, n1.addr)
    m0_row = row(out.output, m0.addr)
    assert "bootstrap master0" in m0_row and LOST in m0_row
    assert results(client) == {
        m0.addr: ("failed", "bootstrap master0"),
        n1.addr: ("failed", "init.sh"),
    }
    m0.path(SLOW_FILE).unlink()
    n1.path(SLOW_INIT_FILE).unlink()
    out = bootstrap(*args)
    assert out.exit_code == 0, out.output
    assert kubeadm(m0, "init") == 2  # the one the reboot killed, then the whole one
    assert kubeadm(n1, "join") == 1
    assert n1.exists("/etc/kubernetes/manifests/kube-lvscare.yaml")
    assert leftovers(m0) == [] and leftovers(n1) == []


def test_full_disks_fail_their_host_clearly_leave_nothing_partial_and_a_rerun_finishes(
    lab: tuple[Lab, Client], tmp_path: Path
) -> None:
    lab_, client = lab
    pkg = ssh_package.build(tmp_path / "kube.tar.gz", noise=512 << 10)
    mount = f"mkdir -p {REMOTE_DIR} && mount -t tmpfs -o size={{}} lvpy-full {REMOTE_DIR}"
    m0 = lab_.host("m0")
    tiny = lab_.host("tiny", setup=mount.format("256k"))  # the package does not fit
    small = lab_.host("small", setup=mount.format("768k"))  # it does, unpacked beside it not
    client.trust(m0, tiny, small)
    args = init_args(client, [m0.addr], [tiny.addr, small.addr], pkg=str(pkg))
    out = bootstrap(*args)
    assert out.exit_code == 1, out.output
    assert re.search(
        r"package +\S+ +no space left on device for the package: /opt/lvscare-py has "
        r"2\d\d\.\d KiB free, 5\d\d\.\d KiB needed",
        row(out.output, tiny.addr),
    ), out.output
    assert re.search(
        r"unpack +\S+ +unpacking the package into /opt/lvscare-py/package: "
        r"No space left on device: /opt/lvscare-py has \d+ KiB free with the tree half unpacked",
        row(out.output, small.addr),
    ), out.output
    assert " ok " in row(out.output, m0.addr)
    assert not tiny.exists(REMOTE_PKG) and not small.exists(REMOTE_DIR + "/package")
    assert leftovers(tiny) == [] and leftovers(small) == []
    for host in (tiny, small):
        host.in_ns(f"mount -o remount,size=8m {REMOTE_DIR}")
    out = bootstrap(*args)
    assert out.exit_code == 0, out.output
    assert kubeadm(tiny, "join") == 1 and kubeadm(small, "join") == 1
    assert all(leftovers(h) == [] for h in (m0, tiny, small))


def test_a_host_an_hour_ahead_stops_init_before_any_change_and_a_rerun_finishes(
    lab: tuple[Lab, Client],
) -> None:
    lab_, client = lab
    m0 = lab_.host("m0")
    n1 = lab_.host("n1", clock="+1h")
    client.trust(m0, n1)
    args = init_args(client, [m0.addr], [n1.addr])
    out = bootstrap(*args)
    assert out.exit_code == 1, out.output
    assert re.search(
        r"clock +\S+ +clock 3[56]\d\d s ahead of this machine's \(at most 60 s\): set the "
        r"host's time \(NTP\), or pass --max-clock-skew",
        row(out.output, n1.addr),
    ), out.output
    assert f"nothing changed: the clock of {n1.addr} is off" in row(out.output, m0.addr)
    for host in (m0, n1):  # nothing sent, nothing run, nothing written
        assert host.sftp_opens() == [] and host.calls() == []
        assert not host.exists(REMOTE_DIR)
    n1.path(FAKETIME_RC).unlink()  # as NTP would: every process from now on has the time
    out = bootstrap(*args)
    assert out.exit_code == 0, out.output
    assert kubeadm(n1, "join") == 1


def test_clock_offsets_past_the_limit_are_named_with_their_direction() -> None:
    assert clock.problem(59.0, 60) is None
    assert clock.problem(-3600.0, 0) is None  # 0: no check
    assert (clock.problem(-3600.4, 60) or "").startswith("clock 3600 s behind this machine's")
    assert (clock.problem(61.0, 60) or "").startswith("clock 61 s ahead of this machine's")
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(BadInput, match="--max-clock-skew"):
            clock.parse_max_skew(bad)


def test_ctrl_c_lets_running_steps_end_leaves_nothing_half_written_and_a_rerun_continues(
    lab: tuple[Lab, Client], tmp_path: Path
) -> None:
    lab_, client = lab
    pkg = ssh_package.build(tmp_path / "big.tar.gz", noise=2 << 20)
    m0 = lab_.host("m0", setup=f"echo 2 > {SLOW_FILE}")
    n1 = lab_.host("n1")
    client.trust(m0, n1)
    # Over SFTP (no relay): the upload to n1 is what Ctrl-C cuts.
    args = [*init_args(client, [m0.addr], [n1.addr], pkg=str(pkg)), "--no-relay"]
    # Ctrl-C during n1's upload: abandoned at once, its partial file removed.
    n1.limit_rate(8)
    proc = start_cli(client, *args)
    wait_then(proc, lambda: part_size(n1) >= 128 << 10)
    code, out = interrupt(proc)
    assert code == 130, out
    assert "Ctrl-C: stopping once the steps running now end" in out
    assert "init: interrupted by Ctrl-C; run the same command again to continue" in out
    assert re.search(r"interrupted +package .* Ctrl-C: upload stopped", row(out, n1.addr))
    assert not n1.exists(REMOTE_PKG) and kubeadm(m0, "init") == 0
    assert results(client)[n1.addr] == ("interrupted", "package")
    # Ctrl-C while master0's kubeadm init runs: it ends (and master0 is done), n1 waits.
    n1.limit_rate(1000)
    proc = start_cli(client, *args)
    wait_then(proc, lambda: kubeadm(m0, "init") == 1)  # it sleeps 2 s
    code, out = interrupt(proc)
    assert code == 130, out
    assert " ok " in row(out, m0.addr)
    assert re.search(r"interrupted +bootstrap node .* Ctrl-C: not started", row(out, n1.addr))
    assert results(client) == {
        m0.addr: ("ok", None),
        n1.addr: ("interrupted", "bootstrap node"),
    }
    assert all(leftovers(h) == [] for h in (m0, n1))
    # The next run continues where they stopped.
    out2 = bootstrap(*args)
    assert out2.exit_code == 0, out2.output
    assert kubeadm(m0, "init") == 1 and kubeadm(n1, "join") == 1
    assert all(leftovers(h) == [] for h in (m0, n1))


def test_second_ctrl_c_stops_at_once_and_a_rerun_finishes_the_cut_join(
    lab: tuple[Lab, Client],
) -> None:
    lab_, client = lab
    m0 = lab_.host("m0")
    n1 = lab_.host("n1", setup=f"echo 30 > {SLOW_FILE}")
    client.trust(m0, n1)
    args = init_args(client, [m0.addr], [n1.addr])
    proc = start_cli(client, *args)
    wait_then(proc, lambda: kubeadm(n1, "join") == 1)  # it sleeps 30 s
    code, out = interrupt(proc, twice=True)
    assert code == 130, out
    assert running(n1, "kubeadm join")  # not waited for
    assert " ok " in row(out, m0.addr)
    assert re.search(
        r"interrupted +bootstrap node .* Ctrl-C: connection closed while it ran", row(out, n1.addr)
    )
    assert results(client)[n1.addr] == ("interrupted", "bootstrap node")
    # What the closed connection left running on n1 ends (as the operator would end it); its
    # join files (0600) are replaced and removed by the next run.
    n1.cut()
    n1.path(SLOW_FILE).unlink()
    out2 = bootstrap(*args)
    assert out2.exit_code == 0, out2.output
    assert kubeadm(n1, "join") == 2 and kubeadm(m0, "init") == 1
    assert all(leftovers(h) == [] for h in (m0, n1))
