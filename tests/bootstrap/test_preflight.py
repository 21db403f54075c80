"""Preflight's judgement of made-up facts, no SSH: each check's ok, warning and failure, the
hostnames compared across hosts, the clocks' spread, the table, and the VIP warning."""

from __future__ import annotations

import shutil
import socket
import subprocess
from typing import Any

import pytest

from bootstrap.cluster import clock
from bootstrap.cluster.preflight import (
    FAIL,
    NOTE,
    OK,
    SCRIPT,
    SKIP,
    WARN,
    BadFacts,
    HostInput,
    RuntimeFacts,
    evaluate,
    owners_script,
    parse,
    parse_owners,
    ran_kubeadm,
    table,
    vip_warning,
)
from bootstrap.host.kubeadm_config import DEFAULT_POD_CIDR, DEFAULT_SVC_CIDR

TCP_HEAD = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode"
)


def tcp_line(port: int, state: str = "0A", inode: int = 1000, v6: bool = False) -> str:
    addr = "0" * 32 if v6 else "00000000"
    return (
        f"   0: {addr}:{port:04X} {addr}:0000 {state} 00000000:00000000 00:00000000 "
        f"00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0"
    )


def output(
    hostname: str = "m0",
    swaps: tuple[str, ...] = (),
    tcp: tuple[str, ...] = (),
    tcp6: tuple[str, ...] = (),
    modules: str = "loaded",
    containerd: str = "socket",
    ctr: str = "absent",
    unix: tuple[str, ...] = (
        "0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/containerd/containerd.sock",
    ),
    kubelet_conf: bool = False,
) -> str:
    """What the script prints on a host, every fact as given."""
    return "\n".join(
        [
            "@@lvpy hostname",
            hostname,
            "@@lvpy kernel",
            "6.1.0-57-amd64",
            "@@lvpy kubeadm",
            *(["/etc/kubernetes/kubelet.conf"] if kubelet_conf else []),
            "@@lvpy swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority",
            *swaps,
            "@@lvpy tcp",
            TCP_HEAD,
            *tcp,
            "@@lvpy tcp6",
            TCP_HEAD,
            *tcp6,
            "@@lvpy modules",
            *[f"{m}={modules}" for m in ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh")],
            "@@lvpy runtime",
            f"containerd.socket={containerd}",
            f"containerd.client={ctr}",
            "docker.socket=missing",
            "docker.client=absent",
            "@@lvpy unix",
            *unix,
            "@@lvpy end",
        ]
    )


def host(addr: str = "198.19.0.11", role: str = "master", **facts: Any) -> HostInput:
    return HostInput(addr, role, parse(output(**facts)), 0.0)


def findings(*hosts: HostInput, max_skew: float = 60) -> dict[str, dict[str, tuple[str, str]]]:
    """addr -> check -> (level, detail)."""
    verdict = evaluate(hosts, max_skew)
    return {r.addr: {c: (f.level, f.detail) for c, f in r.findings.items()} for r in verdict.rows}


# ------------------------------------------------------------------ the facts


def test_the_script_runs_in_posix_shells_reads_this_machine_and_parses() -> None:
    shells = [["sh", "-c"]] + ([["busybox", "sh", "-c"]] if shutil.which("busybox") else [])
    for sh in shells:
        done = subprocess.run([*sh, SCRIPT], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        facts = parse(done.stdout)
        assert facts.hostname == socket.gethostname().lower()
        assert set(facts.modules) == {"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh"}
        assert set(facts.runtimes) == {"containerd", "docker"}


def test_output_cut_short_is_refused_not_taken_for_a_healthy_host() -> None:
    with pytest.raises(BadFacts, match="cut short"):
        parse(output().rsplit("@@lvpy end", 1)[0])


def test_listening_ports_come_from_tcp_and_tcp6_in_listen_state_only() -> None:
    facts = parse(
        output(
            tcp=(tcp_line(6443, inode=7), tcp_line(2379, state="01")),  # 01: established
            tcp6=(tcp_line(10250, inode=8, v6=True),),
        )
    )
    assert facts.listening == {6443: {7}, 10250: {8}}


def test_who_holds_a_socket_is_read_from_the_owners_script() -> None:
    assert "socket:[7] socket:[9]" in owners_script([9, 7, 7])
    assert parse_owners("socket:[7] 81 busybox\nsocket:[9] 90\nnoise\n") == {
        7: "busybox (pid 81)",
        9: "pid 90",
    }


# ------------------------------------------------------------------ each check


def test_a_healthy_master_passes_every_check() -> None:
    got = findings(host())["198.19.0.11"]
    assert {c: level for c, (level, _) in got.items()} == dict.fromkeys(got, OK)


def test_swap_on_is_a_warning_saying_init_sh_turns_it_off_not_a_failure() -> None:
    h = host(swaps=("/dev/vda3                               partition\t2097148\t0\t-2",))
    level, detail = findings(h)[h.addr]["swap"]
    assert level == WARN
    assert "/dev/vda3 (2.0 GiB)" in detail and "shell/init.sh turns it off" in detail
    assert evaluate([h], 60).failing() == []
    assert table(evaluate([h], 60))[-1] == "preflight: passed, with warnings above"


def test_a_held_master_port_fails_naming_the_port_and_who_holds_it() -> None:
    h = host(tcp6=(tcp_line(6443, inode=7, v6=True), tcp_line(8080, inode=9, v6=True)))
    assert h.facts is not None
    h.facts.owners = {7: "nc (pid 81)"}
    level, detail = findings(h)[h.addr]["ports"]
    assert level == FAIL
    assert detail.startswith("port 6443 (kube-apiserver) is in use by nc (pid 81)")
    assert "8080" not in detail


def test_a_node_needs_only_the_kubelet_port() -> None:
    etcd = host(role="node", tcp=(tcp_line(2379),))
    assert findings(etcd)[etcd.addr]["ports"][0] == OK
    kubelet = host(role="node", tcp=(tcp_line(10250),))
    assert "port 10250 (kubelet)" in findings(kubelet)[kubelet.addr]["ports"][1]


def test_a_host_already_in_this_cluster_has_its_ports_skipped_and_says_so() -> None:
    h = host(tcp=(tcp_line(6443), tcp_line(2379), tcp_line(10250)))
    h.member = True
    level, detail = findings(h)[h.addr]["ports"]
    assert level == NOTE and detail.startswith("ports not checked: the host is in this cluster")
    assert evaluate([h], 60).failing() == []


def test_a_known_host_kubeadm_made_a_node_keeps_its_ports_when_its_last_run_failed_early() -> None:
    # The cluster file knows it, its last run failed before kubeadm (a lost connection), and
    # kubeadm's kubelet.conf is there: its ports are its own cluster's.
    held = (tcp_line(6443), tcp_line(10250))
    h = HostInput(
        "198.19.0.11", "master", parse(output(tcp=held, kubelet_conf=True)), 0, known=True
    )
    assert findings(h)[h.addr]["ports"][0] == NOTE
    stranger = HostInput("198.19.0.11", "master", parse(output(tcp=held, kubelet_conf=True)), 0)
    assert findings(stranger)[h.addr]["ports"][0] == FAIL  # another cluster's node


def test_in_the_cluster_means_an_earlier_run_got_the_host_to_kubeadm() -> None:
    assert ran_kubeadm("ok", None)
    assert ran_kubeadm("failed", "bootstrap master0")
    assert ran_kubeadm("interrupted", "bootstrap node")
    assert not ran_kubeadm("failed", "init.sh")
    assert not ran_kubeadm("failed", "preflight: ports")
    assert not ran_kubeadm("pending", None)


def test_ipvs_modules_loaded_or_loadable_pass_missing_ones_fail_by_name() -> None:
    assert findings(host(modules="loadable"))["198.19.0.11"]["ipvs"][0] == OK
    assert findings(host(modules="builtin"))["198.19.0.11"]["ipvs"][0] == OK
    h = host()
    assert h.facts is not None
    h.facts.modules.update(ip_vs_sh="missing", ip_vs_wrr="missing")
    level, detail = findings(h)[h.addr]["ipvs"]
    assert level == FAIL
    assert detail.startswith("IPVS modules missing: ip_vs_wrr, ip_vs_sh (neither loaded nor")
    assert "/lib/modules/6.1.0-57-amd64" in detail
    level, detail = findings(host(modules="no-modprobe"))["198.19.0.11"]["ipvs"]
    assert level == FAIL and "no modprobe to load them" in detail


def test_a_runtime_socket_something_listens_on_passes() -> None:
    assert findings(host())["198.19.0.11"]["runtime"][0] == OK
    answered = host(ctr="answered", unix=())  # the client's answer decides where it is
    assert findings(answered)[answered.addr]["runtime"][0] == OK


def test_no_runtime_socket_fails() -> None:
    level, detail = findings(host(containerd="missing", unix=()))["198.19.0.11"]["runtime"]
    assert level == FAIL
    assert detail.startswith(
        "no container runtime: neither /run/containerd/containerd.sock nor "
        "/var/run/docker.sock is there"
    )


def test_a_stale_runtime_socket_nothing_listens_on_fails() -> None:
    level, detail = findings(host(unix=()))["198.19.0.11"]["runtime"]
    assert level == FAIL
    assert "/run/containerd/containerd.sock is a stale socket: nothing listens on it" in detail


def test_a_runtime_whose_client_gets_no_answer_fails_with_the_clients_words() -> None:
    level, detail = findings(host(ctr="failed connection refused"))["198.19.0.11"]["runtime"]
    assert level == FAIL
    assert "`ctr version` got no answer from /run/containerd/containerd.sock: connection" in (
        detail
    )


def test_a_runtime_path_that_is_no_socket_fails() -> None:
    level, detail = findings(host(containerd="other", unix=()))["198.19.0.11"]["runtime"]
    assert level == FAIL and "is there but is no socket" in detail


def test_docker_alone_passes_and_var_run_is_run() -> None:
    h = host(containerd="missing", unix=())
    assert h.facts is not None
    h.facts.runtimes["docker"] = RuntimeFacts("socket", "absent")
    h.facts.unix = {"/run/docker.sock"}  # systemd's docker.socket binds /run/docker.sock
    level, _ = findings(h)[h.addr]["runtime"]
    assert level == OK


def test_duplicate_hostnames_fail_on_every_host_that_shares_one_naming_the_others() -> None:
    a = host("198.19.0.11", hostname="Twin")
    b = host("198.19.0.12", "node", hostname="twin")
    c = host("198.19.0.13", "node", hostname="twin")
    d = host("198.19.0.14", "node", hostname="other")
    got = findings(a, b, c, d)
    assert got["198.19.0.11"]["hostname"] == (
        FAIL,
        "hostname 'twin' is also that of 198.19.0.12, 198.19.0.13: kubeadm names nodes by "
        "hostname, so each host needs its own (hostnamectl)",
    )
    assert "also that of 198.19.0.11, 198.19.0.13" in got["198.19.0.12"]["hostname"][1]
    assert got["198.19.0.14"]["hostname"][0] == OK


def test_a_new_host_with_the_hostname_of_a_cluster_host_fails_naming_it() -> None:
    new = host("198.19.0.15", "node", hostname="n1")
    verdict = evaluate([new], 60, others={"n1": "198.19.0.12"})
    assert "also that of 198.19.0.12 (in the cluster)" in verdict.rows[0].reason()


def test_the_clock_check_keeps_its_limit_and_0_turns_it_off() -> None:
    ahead = HostInput("198.19.0.12", "node", parse(output()), 3600.4)
    level, detail = findings(ahead)[ahead.addr]["clock"]
    assert level == FAIL and detail == clock.problem(3600.4, 60)
    assert findings(ahead, max_skew=0)[ahead.addr]["clock"][0] == SKIP


def test_clocks_each_close_to_ours_but_far_apart_among_themselves_are_a_warning() -> None:
    slow = HostInput("198.19.0.11", "master", parse(output(hostname="a")), -50)
    fast = HostInput("198.19.0.12", "node", parse(output(hostname="b")), 50)
    verdict = evaluate([slow, fast], 60)
    assert verdict.failing() == []
    (note,) = verdict.notes
    assert note.startswith("WARNING: clocks: the hosts are 100 s apart among themselves")
    same = HostInput("198.19.0.12", "node", parse(output(hostname="b")), -0.4)
    assert evaluate([slow, same], 0).notes == []  # --max-clock-skew 0: no clock check
    slow.offset = 0.2
    assert evaluate([slow, same], 60).notes == [
        "clocks: the hosts agree among themselves, to about a second"
    ]
    assert clock.spread({"a": 1.0}) is None
    assert clock.spread({"a": 1.0, "b": -2.0, "c": 0.0}) == (3.0, "b", "a")


def test_an_unreachable_host_fails_alone_and_stops_no_one() -> None:
    gone = HostInput("198.19.0.13", "node", error="connect: cannot connect: refused")
    verdict = evaluate([host(), gone], 60)
    assert verdict.failing() == []
    lines = table(verdict)
    assert "198.19.0.13  connect   FAIL  connect: cannot connect: refused (it fails alone)" in lines
    assert not any(x.startswith("198.19.0.13 ") and "FAIL  connect" not in x for x in lines)
    assert lines[-1] == "preflight: passed by every host reached"


# ------------------------------------------------------------------ the table


def test_the_table_has_a_row_per_host_and_a_line_per_finding_that_is_not_ok() -> None:
    good = host("198.19.0.11", hostname="m0")
    bad = host("198.19.0.12", "node", hostname="n1", containerd="missing", unix=())
    lines = table(evaluate([good, bad], 60))
    assert lines[0].split() == [
        "PREFLIGHT",
        "ROLE",
        "CLOCK",
        "SWAP",
        "PORTS",
        "IPVS",
        "RUNTIME",
        "HOSTNAME",
    ]
    ok_row = ["198.19.0.11", "master", "+0", "s", "off", "ok", "ok", "containerd", "m0"]
    assert lines[1].split() == ok_row
    assert lines[2].split()[:7] == ["198.19.0.12", "node", "+0", "s", "off", "ok", "ok"]
    assert lines[2].split()[7] == "FAIL"
    assert lines[3].startswith("198.19.0.12  runtime   FAIL  no container runtime")
    assert lines[-1].startswith("preflight: 1 of 2 hosts failed: nothing is changed on any host")
    assert not any(line.startswith("HOST ") for line in lines)  # the end table's header


def test_the_blame_names_each_failing_check_and_its_hosts() -> None:
    verdict = evaluate(
        [
            HostInput("198.19.0.11", "master", parse(output(tcp=(tcp_line(6443),))), 3600),
            host("198.19.0.12", "node", hostname="n1", containerd="missing", unix=()),
        ],
        60,
    )
    assert verdict.blame() == (
        "the clock of 198.19.0.11 is off; ports in use on 198.19.0.11; "
        "no container runtime on 198.19.0.12"
    )


# ------------------------------------------------------------------ the VIP


def test_the_default_vip_inside_the_default_service_cidr_is_warned_about() -> None:
    warning = vip_warning("10.103.97.2", DEFAULT_SVC_CIDR, DEFAULT_POD_CIDR)
    assert warning is not None
    text = " ".join(warning.split())
    assert "the VIP 10.103.97.2 (--vip)" in text
    assert "inside the service CIDR 10.96.0.0/12" in text
    assert "excludeCIDRs [10.103.97.2/32]" in text
    assert "a Service with that ClusterIP would be unreachable" in text
    assert "Choose a --vip outside --svc-cidr (10.96.0.0/12) and --pod-cidr" in text


def test_a_vip_outside_both_cidrs_is_not_warned_about() -> None:
    assert vip_warning("10.255.255.1", DEFAULT_SVC_CIDR, DEFAULT_POD_CIDR) is None


def test_a_vip_inside_the_pod_cidr_is_warned_about() -> None:
    warning = vip_warning("100.64.0.7", DEFAULT_SVC_CIDR, DEFAULT_POD_CIDR)
    assert warning is not None and "pod CIDR 100.64.0.0/10" in " ".join(warning.split())


def test_ipv6_vips_are_compared_with_the_cidrs_of_their_own_family() -> None:
    dual = "10.96.0.0/12,fd00:10:96::/112"
    warning = vip_warning("fd00:10:96::5", dual, DEFAULT_POD_CIDR)
    assert warning is not None
    assert "excludeCIDRs [fd00:10:96::5/128]" in " ".join(warning.split())
    assert vip_warning("fd00:1::5", dual, DEFAULT_POD_CIDR) is None
    assert vip_warning("fd00::2", DEFAULT_SVC_CIDR, DEFAULT_POD_CIDR) is None
