"""Preflight against real sshd: hosts that fail each check for real (a port held by a
listener, no runtime socket, a stale one, two hosts of one hostname, no IPVS modules) stop
`init` and `join` with one table naming each host and why, and nothing changed on any host;
--skip-preflight goes past it; a re-run does not trip over its own cluster's ports. Swap
cannot be turned on in the lab (it is the machine's): the unit tests judge it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bootstrap.cluster.package import REMOTE_DIR
from tests.support.ssh_client import Client, bootstrap, init_args
from tests.support.ssh_faults import row
from tests.support.ssh_hosts import CONTAINERD_SOCK, RUNTIME_CLIENTS, RUNTIME_FILE, Host, Lab

HOLD = "busybox nc -l -p {} </dev/null >/dev/null 2>&1 &"  # a real listener on that port
NO_RUNTIME = f"rm -f {RUNTIME_FILE}"
# A socket file whose process is gone, as a crashed containerd leaves it; no client, so
# /proc/net/unix tells (with ctr, its failed `ctr version` would: the unit tests judge that).
STALE = (
    f"{NO_RUNTIME}; rm -f {' '.join(RUNTIME_CLIENTS)}; mkdir -p /run/containerd; "
    f"{sys.executable} -S -c "
    f"'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' {CONTAINERD_SOCK}"
)


def preflight_lines(output: str, addr: str) -> list[str]:
    """The host's lines in the preflight table (its grid row, then one per finding)."""
    start = output.index("PREFLIGHT ")
    end = output.index("\npreflight: ", start)
    return [x for x in output[start:end].splitlines() if x.startswith(addr + " ")]


def finding(output: str, addr: str, check: str) -> str:
    """The host's line for one check: `ADDR  CHECK  LEVEL  why`."""
    found = [x for x in preflight_lines(output, addr)[1:] if x.split()[1] == check]
    assert len(found) == 1, (addr, check, output)
    return found[0]


def untouched(hosts: list[Host], before: dict[str, list[str]]) -> None:
    """Nothing sent, run or written on any host since `before`."""
    for h in hosts:
        assert h.sftp_opens() == [] and h.calls() == [], h.name
        assert not h.exists(REMOTE_DIR), h.name
        assert h.written() == before[h.name], h.name


def kernel_has_ipvs() -> bool:
    probe = subprocess.run(["modprobe", "-n", "-q", "ip_vs_sh"], capture_output=True, check=False)
    return probe.returncode == 0


def test_init_stops_before_any_change_naming_each_host_and_why_and_skip_goes_past(
    lab: tuple[Lab, Client],
) -> None:
    lab_, client = lab
    m0 = lab_.host("m0", setup=HOLD.format(6443) + "\n" + HOLD.format(2380))
    good = lab_.host("good")
    norun = lab_.host("norun", setup=NO_RUNTIME)
    stale = lab_.host("stale", setup=STALE)
    twin = lab_.host("twin")
    twin2 = lab_.host("TWIN")
    hosts = [m0, good, norun, stale, twin, twin2]
    client.trust(*hosts)
    before = {h.name: h.written() for h in hosts}
    args = init_args(client, [m0.addr], [h.addr for h in hosts[1:]])
    out = bootstrap(*args)
    assert out.exit_code == 1, out.output
    text = out.output
    assert "!!!\nWARNING: the VIP 10.103.97.2 (--vip) is not a safe choice." in text
    assert "preflight: 5 of 6 hosts failed: nothing is changed on any host" in text
    assert text.index("PREFLIGHT ") < text.index("HOST ")  # before the end table
    assert "FAIL 6443,2380" in preflight_lines(text, m0.addr)[0]
    assert (
        finding(text, m0.addr, "ports")
        .split(None, 3)[3]
        .startswith("port 6443 (kube-apiserver) is in use by busybox (pid ")
    )
    assert "port 2380 (etcd peers) is in use" in finding(text, m0.addr, "ports")
    assert "no container runtime: neither /run/containerd/containerd.sock nor" in finding(
        text, norun.addr, "runtime"
    )
    assert "/run/containerd/containerd.sock is a stale socket: nothing listens on it" in finding(
        text, stale.addr, "runtime"
    )
    assert f"hostname 'twin' is also that of {twin2.addr}" in finding(text, twin.addr, "hostname")
    assert f"hostname 'twin' is also that of {twin.addr}" in finding(text, twin2.addr, "hostname")
    assert preflight_lines(text, good.addr)[0].split()[4:] == [
        "off",
        "ok",
        "ok",
        "containerd",
        "good",
    ]
    assert len(preflight_lines(text, good.addr)) == 1  # nothing to say of it
    # The end table: the failing hosts failed at preflight, the good one was not started.
    assert re.search(r"failed +preflight: ports ", row(text, m0.addr))
    assert re.search(r"failed +preflight: runtime ", row(text, stale.addr))
    assert re.search(r"failed +preflight: hostname ", row(text, twin2.addr))
    assert " skipped " in row(text, good.addr)
    assert (
        f"nothing changed: ports in use on {m0.addr}; no container runtime on {norun.addr}, "
        f"{stale.addr}; hostnames shared by {twin.addr}, {twin2.addr}"
    ) in row(text, good.addr)
    untouched(hosts, before)
    out = bootstrap(*args, "--skip-preflight")
    assert out.exit_code == 0, out.output
    assert "PREFLIGHT" not in out.output and "WARNING: the VIP" not in out.output
    assert all(h.exists(REMOTE_DIR) for h in hosts)


@pytest.mark.skipif(kernel_has_ipvs(), reason="this kernel has IPVS: no host can miss it")
def test_a_host_without_ipvs_modules_fails_naming_them(lab: tuple[Lab, Client]) -> None:
    lab_, client = lab
    m0 = lab_.host("m0", setup="rm -rf /usr/lib/modules/$(uname -r)")  # the lab's stand-ins
    client.trust(m0)
    before = {m0.name: m0.written()}
    out = bootstrap(*init_args(client, [m0.addr], []))
    assert out.exit_code == 1, out.output
    assert (
        finding(out.output, m0.addr, "ipvs")
        .split(None, 3)[3]
        .startswith(
            "IPVS modules missing: ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh (neither loaded nor found "
            "by `modprobe -n` in /lib/modules/"
        )
    )
    untouched([m0], before)


def test_a_rerun_of_init_does_not_fail_on_the_ports_its_own_cluster_holds(
    lab: tuple[Lab, Client],
) -> None:
    lab_, client = lab
    m0, n1 = lab_.host("m0"), lab_.host("n1")
    client.trust(m0, n1)
    args = init_args(client, [m0.addr], [n1.addr])
    out = bootstrap(*args)
    assert out.exit_code == 0, out.output
    # What kubeadm's API server and kubelet would hold by now (the stand-ins hold nothing).
    m0.in_ns(HOLD.format(6443))
    n1.in_ns(HOLD.format(10250))
    out = bootstrap(*args)
    assert out.exit_code == 0, out.output
    for h in (m0, n1):
        assert preflight_lines(out.output, h.addr)[0].split()[5] == "skipped"
        assert "note  ports not checked: the host is in this cluster already (an earlier run" in (
            finding(out.output, h.addr, "ports")
        )


def test_join_checks_the_new_hosts_against_the_cluster_and_changes_nothing_if_one_fails(
    lab: tuple[Lab, Client],
) -> None:
    lab_, client = lab
    m0, n1 = lab_.host("m0"), lab_.host("n1")
    n2 = lab_.host("N1")  # the hostname of a node in the cluster
    n3 = lab_.host("n3", setup=NO_RUNTIME)
    client.trust(m0, n1, n2, n3)
    out = bootstrap(*init_args(client, [m0.addr], [n1.addr]))
    assert out.exit_code == 0, out.output
    calls = {h.name: len(h.calls()) for h in (m0, n1)}
    before = {h.name: h.written() for h in (n2, n3)}
    out = bootstrap("join", "--node", n2.addr, "--node", n3.addr, "--pk", str(client.key))
    assert out.exit_code == 1, out.output
    assert "WARNING: the VIP" not in out.output  # said at init
    assert f"hostname 'n1' is also that of {n1.addr} (in the cluster)" in finding(
        out.output, n2.addr, "hostname"
    )
    assert "no container runtime" in finding(out.output, n3.addr, "runtime")
    m0_row = preflight_lines(out.output, m0.addr)[0].split()  # the source: its clock only
    assert m0_row[1] == "master" and m0_row[4:] == ["-", "-", "-", "-", "-"]
    assert {h.name: len(h.calls()) for h in (m0, n1)} == calls  # no token made, nothing run
    untouched([n2, n3], before)
