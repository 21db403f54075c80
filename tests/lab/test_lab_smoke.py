"""The kernel lab checks itself: fake masters, failure knobs, helpers, and IPVS NAT through a VIP
from the VM's own root namespace (the path the daemon has to make work).

If one of these fails, the daemon's kernel tests mean nothing.
"""

from __future__ import annotations

import signal
import socket
import struct
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.support.labnet import (
    API_PORT,
    VM_MARKER_ENV,
    ConnectFailed,
    Lab,
    Master,
    Service,
    SpawnFn,
    connect_via,
    hold_connection,
    https_get,
    ipvs_table,
    ipvsadm_table,
    lab_unavailable_reason,
    reach,
    sh,
)
from tests.support.wait import wait_until

pytestmark = pytest.mark.kernel

VIP = "10.103.97.2"
VIP6 = "fd00::2"


def names(lab: Lab) -> set[str]:
    return {m.name for m in lab.masters}


def healthy(m: Master) -> bool:
    return m.get("/healthz", timeout=2).status == 200


def essentials(
    table: dict[tuple[str, int], Service],
) -> dict[tuple[str, int], tuple[str, dict[tuple[str, int], int], dict[tuple[str, int], str]]]:
    return {k: (v["scheduler"], v["dests"], v["forward"]) for k, v in table.items()}


def add_service(vip: str, rs: list[str], scheduler: str = "rr", port: int = API_PORT) -> None:
    """vip:port with NAT (masq) real servers, straight through pyroute2, as the daemon would."""
    from pyroute2 import IPVS, IPVSDest, IPVSService

    extra = {}
    if ":" in vip:
        # IPv6 "netmask" is a prefix length, a host-order u32 that pyroute2 encodes as an
        # IPv4 address: 128 -> "128.0.0.0" on little-endian. The kernel requires it.
        extra["netmask"] = socket.inet_ntoa(struct.pack("=I", 128))
    service = IPVSService(
        addr=vip, port=port, protocol=socket.IPPROTO_TCP, sched_name=scheduler, **extra
    )
    ipvs = IPVS()
    try:
        ipvs.service("add", service=service)
        for addr in rs:
            # fwd_method 0 = masq; pyroute2's IPVSDest defaults to 3 (direct routing)
            ipvs.dest("add", service=service, dest=IPVSDest(addr=addr, port=port, fwd_method=0))
    finally:
        ipvs.close()


@pytest.fixture
def vip4(lab: Lab) -> Iterator[str]:
    add_service(VIP, [m.ip for m in lab.masters])
    yield VIP


@pytest.fixture
def vip6(lab: Lab) -> Iterator[str]:
    add_service(VIP6, [m.ip6 for m in lab.masters])
    yield VIP6


# -- the fake masters -------------------------------------------------------------------------


def test_masters_answer_health_endpoints_over_https_verified_by_the_lab_ca(lab: Lab) -> None:
    assert lab.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    for m in lab.masters:
        for path in ("/healthz", "/readyz", "/livez"):
            result = m.get(path)  # CA and hostname (the master's IP) verified
            assert (result.status, result.body) == (200, "ok"), (m.name, path)
        assert m.get("/healthz", v6=True).status == 200
        assert m.get("/whoami").body == m.name
        assert m.get("/whoami", v6=True).body == m.name


def test_a_foreign_ca_does_not_verify_the_masters(lab: Lab, tmp_path: Path) -> None:
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(ConnectFailed) as err:
        https_get(lab.masters[0].ip, ca_file=other)
    assert err.value.reason == "tls"


def test_fail_mode_answers_500_with_a_kube_style_body(lab: Lab) -> None:
    sick, well = lab.masters[0], lab.masters[1]
    sick.set_mode("fail")
    result = sick.get("/healthz")
    assert result.status == 500
    assert "[-]etcd failed: reason withheld" in result.body
    assert "healthz check failed" in result.body
    assert sick.get("/readyz").status == 500
    assert sick.get("/whoami").body == sick.name  # only health endpoints fail
    assert well.get("/healthz").status == 200
    sick.set_mode("ok")
    assert sick.get("/healthz").status == 200


def test_hang_mode_accepts_but_never_answers(lab: Lab) -> None:
    m = lab.masters[1]
    m.set_mode("hang")
    with pytest.raises(ConnectFailed) as err:
        m.get("/healthz", timeout=1.5)
    assert err.value.reason == "timeout"
    assert any(line.endswith(" hang") for line in m.requests())  # it did get the request
    assert m.get("/whoami").body == m.name


def test_blackhole_makes_connects_time_out_and_unblackhole_restores(lab: Lab) -> None:
    m, other = lab.masters[2], lab.masters[0]
    m.blackhole()
    assert m.blackholed
    for v6 in (False, True):
        with pytest.raises(ConnectFailed) as err:
            m.get("/healthz", v6=v6, timeout=1.5)
        assert err.value.reason == "timeout"
    assert other.get("/healthz").status == 200
    m.unblackhole()
    assert not m.blackholed
    assert wait_until(partial(healthy, m), 30)
    assert wait_until(lambda: m.get("/healthz", v6=True, timeout=2).status == 200, 30)


def test_kill_refuses_connections_and_start_brings_the_master_back(lab: Lab) -> None:
    m = lab.masters[0]
    m.kill()
    assert not m.running()
    for v6 in (False, True):
        with pytest.raises(ConnectFailed) as err:
            m.get("/healthz", v6=v6)
        assert err.value.reason == "refused"
    m.start()
    assert m.get("/healthz").status == 200


# -- IPVS NAT through a VIP from the root namespace -------------------------------------------


def test_ipv4_vip_reaches_every_master_and_the_table_reads_back(lab: Lab, vip4: str) -> None:
    want = {
        (vip4, API_PORT): (
            "rr",
            {(m.ip, API_PORT): 1 for m in lab.masters},
            {(m.ip, API_PORT): "masq" for m in lab.masters},
        )
    }
    assert essentials(ipvs_table()) == want
    assert essentials(ipvsadm_table()) == want  # netlink and ipvsadm -Ln agree
    assert ipvs_table("udp") == {}
    hits = reach(vip4, count=9)
    assert set(hits) == names(lab), hits
    assert connect_via(vip4) in names(lab)


def test_ipv6_vip_reaches_every_master_and_the_table_reads_back(lab: Lab, vip6: str) -> None:
    table = ipvs_table()
    assert set(table) == {(VIP6, API_PORT)}
    assert table[(VIP6, API_PORT)]["scheduler"] == "rr"
    assert table[(VIP6, API_PORT)]["dests"] == {(m.ip6, API_PORT): 1 for m in lab.masters}
    assert ipvsadm_table() == table | {
        (VIP6, API_PORT): table[(VIP6, API_PORT)] | {"flags": 0, "timeout": 0}
    }
    hits = reach(vip6, count=9)
    assert set(hits) == names(lab), hits


def test_weight_zero_takes_no_new_connections_but_keeps_an_established_one(
    lab: Lab, vip4: str
) -> None:
    held = hold_connection(vip4)
    try:
        assert held.master in names(lab)
        assert held.alive()
        target = lab.master(held.master)
        sh(
            "ipvsadm",
            "-e",
            "-t",
            f"{vip4}:{API_PORT}",
            "-r",
            f"{target.ip}:{API_PORT}",
            "-m",
            "-w",
            "0",
        )
        assert ipvs_table()[(vip4, API_PORT)]["dests"][(target.ip, API_PORT)] == 0
        hits = reach(vip4, count=6)
        assert set(hits) == names(lab) - {target.name}, hits
        assert held.alive()  # draining leaves established connections alone
    finally:
        held.close()


def test_held_connection_reports_when_its_master_dies(lab: Lab, vip6: str) -> None:
    with hold_connection(vip6) as held:
        assert held.alive()
        lab.master(held.master).kill()
        assert not held.alive(within=5)
        assert held.error is not None


def test_vip_traffic_needs_a_route_for_the_vip_and_nothing_more(lab: Lab, vip4: str) -> None:
    """IPVS hooks LOCAL_OUT, after the socket's route lookup: no route, no connection."""
    sh("ip", "route", "del", "default")
    with pytest.raises(ConnectFailed) as err:
        connect_via(vip4, timeout=2)
    assert err.value.reason == "unreachable"
    # A host route via the silent on-link gateway is enough: IPVS re-routes to the real
    # server, so the gateway is never resolved. The source is labbr0's address.
    sh("ip", "route", "add", f"{vip4}/32", "via", lab.gateway)
    assert set(reach(vip4, count=6)) == names(lab)
    assert Path("/proc/sys/net/ipv4/vs/conntrack").read_text().strip() == "0"


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_vip_as_source_address_needs_masquerade_and_vs_conntrack(lab: Lab, family: str) -> None:
    """Link mode puts the VIP on a dummy, so the kernel picks the VIP as source address.

    Masters that cannot route the VIP back never answer; nft masquerade fixes that only with
    net.ipv4.vs.conntrack=1 (with 0 IPVS marks its packets untracked and NAT never sees them).
    """
    v6 = family == "ipv6"
    vip = VIP6 if v6 else VIP
    add_service(vip, [m.ip6 if v6 else m.ip for m in lab.masters])
    lab.set_return_routes(False)  # masters reach only the lab subnet
    assert set(reach(vip, count=6)) == names(lab)  # via the gateway the source is labbr0's

    fam = "-6" if v6 else "-4"
    sh("ip", fam, "route", "del", "default")
    sh("ip", "link", "add", "labvip0", "type", "dummy")
    sh(
        "ip",
        "addr",
        "add",
        f"{vip}/{128 if v6 else 32}",
        "dev",
        "labvip0",
        *(["nodad"] if v6 else []),
    )
    sh("ip", "link", "set", "labvip0", "up")
    assert reach(vip, count=1, timeout=1.5) == {"<timeout>": 1}

    ipx = "ip6" if v6 else "ip"
    rules = (
        "table inet labnat {\n"
        " chain post { type nat hook postrouting priority srcnat;\n"
        f"  ct original {ipx} daddr {vip} masquerade; }}\n"
        "}\n"
    )
    sh("nft", "-f", "-", stdin=rules)
    assert reach(vip, count=1, timeout=1.5) == {"<timeout>": 1}  # vs.conntrack=0: untracked

    Path("/proc/sys/net/ipv4/vs/conntrack").write_text("1\n")  # covers IPv6 too
    hits = reach(vip, count=6)
    assert set(hits) == names(lab), hits


# -- the harness ------------------------------------------------------------------------------


def test_reset_removes_what_a_test_left_behind(lab: Lab, vip4: str) -> None:
    lab.masters[0].kill()
    lab.masters[1].blackhole()
    lab.masters[2].set_mode("fail")
    sh("ip", "link", "add", "lvscare", "type", "dummy")
    sh("ip", "route", "add", "10.103.97.3/32", "via", lab.gateway)
    sh("nft", "add", "table", "inet", "leftover")
    Path("/proc/sys/net/ipv4/vs/conntrack").write_text("1\n")
    lab.set_return_routes(False)

    lab.reset()

    assert ipvs_table() == {}
    assert not Path("/sys/class/net/lvscare").exists()
    assert "10.103.97.3" not in sh("ip", "route").stdout
    assert sh("nft", "list", "ruleset").stdout.strip() == ""
    assert Path("/proc/sys/net/ipv4/vs/conntrack").read_text().strip() == "0"
    for m in lab.masters:
        assert m.running() and not m.blackholed and m.mode == "ok"
        assert wait_until(partial(healthy, m), 30)
        assert "default via" in m.exec("ip", "route").stdout


def test_spawn_captures_stderr_and_stop_reports_the_exit_code(lab: Lab, spawn: SpawnFn) -> None:
    script = (
        'trap "echo bye >&2; exit 3" TERM; '
        'echo \'{"event": "started", "n": 1}\' >&2; echo plain text >&2; echo out; '
        "while :; do sleep 0.1; done"
    )
    p = spawn(["sh", "-c", script], name="fake-daemon")
    assert wait_until(lambda: p.find("started", n=1), 30)
    assert p.running()
    assert p.events()[1] == {"event": "<text>", "text": "plain text"}
    stopped = p.stop()
    assert (stopped.code, stopped.killed) == (3, False)
    assert stopped.lines[-1] == "bye"
    assert p.stdout() == "out\n"

    stubborn = spawn(
        ["sh", "-c", "trap '' TERM; echo ignoring >&2; while :; do sleep 0.1; done"],
        name="stubborn",
    )
    assert wait_until(lambda: stubborn.lines() == ["ignoring"], 30)  # the trap is set
    stopped = stubborn.stop(timeout=1)
    assert (stopped.code, stopped.killed) == (-signal.SIGKILL, True)
    left = spawn(["sleep", "600"], name="left-running")  # reset() must stop it
    assert left in lab.processes


def test_outside_the_vm_the_lab_says_why_instead_of_skipping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert lab_unavailable_reason() is None
    monkeypatch.delenv(VM_MARKER_ENV)
    reason = lab_unavailable_reason()
    assert reason is not None and "scripts/lab" in reason
