"""The package relayed from host to host (`bootstrap.cluster.relay`): who feeds whom (pure),
then `bootstrap init` against real sshd: the package leaves this machine once, every host
checks its copy, a hop that dies or a copy that is wrong still ends with the package there,
and no key of the relay (nor the operator's own) is left on any host, whatever the result.

How much left this machine is counted on the lab's bridge device: what this machine sends
to the hosts leaves through it, while host-to-host traffic is forwarded between the
bridge's ports and never counts there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

import pytest

from bootstrap.cluster.package import REMOTE_PKG
from bootstrap.cluster.relay import MARK, RELAY_DIR, Chain, pipe_command, plan, send_command
from bootstrap.cluster.relay import worth_it as relay_worth_it
from bootstrap.cluster.ssh import Target
from tests.support import ssh_package
from tests.support.ssh_client import Client, bootstrap, init_args
from tests.support.ssh_faults import leftovers
from tests.support.ssh_hosts import FAIL_FILE, Host, Lab
from tests.support.wait import wait_until

AUTHORIZED = "/root/.ssh/authorized_keys"
PART = f"{RELAY_DIR}/package-1.lvscare-py-part"

# ------------------------------------------------------------------ planning


def test_with_no_holder_one_chain_runs_from_this_machine_through_every_host_in_order() -> None:
    assert plan([], ["a", "b", "c"], from_here=True) == [Chain(None, ("a", "b", "c"))]


def test_hosts_to_fill_are_split_evenly_into_one_chain_per_holder() -> None:
    assert plan(["h1", "h2"], ["a", "b", "c", "d", "e"], from_here=True) == [
        Chain("h1", ("a", "b", "c")),
        Chain("h2", ("d", "e")),
    ]
    assert plan(["h1", "h2", "h3"], ["a"], from_here=False) == [Chain("h1", ("a",))]


@pytest.mark.parametrize(("holders", "needing"), [(1, 19), (3, 7), (8, 3), (5, 5)])
def test_every_host_to_fill_is_in_exactly_one_chain_and_no_holder_feeds_two(
    holders: int, needing: int
) -> None:
    hs, ns = [f"h{i}" for i in range(holders)], [f"n{i}" for i in range(needing)]
    chains = plan(hs, ns, from_here=True)
    assert [h for c in chains for h in c.hosts] == ns
    sources = [c.source for c in chains]
    assert len(sources) == len(set(sources)) == min(holders, needing)
    assert max(len(c.hosts) for c in chains) - min(len(c.hosts) for c in chains) <= 1


def test_a_later_round_never_sends_from_this_machine_again() -> None:
    assert plan([], ["a", "b"], from_here=False) == []
    assert plan(["h"], [], from_here=True) == []


def test_relay_is_for_two_hosts_or_one_beside_a_holder_never_one_host_alone_or_a_url() -> None:
    assert relay_worth_it(True, True, holders=0, needing=2)
    assert relay_worth_it(True, True, holders=1, needing=1)
    assert not relay_worth_it(True, True, holders=0, needing=1)
    assert not relay_worth_it(True, False, holders=0, needing=5)  # a URL: each host fetches
    assert not relay_worth_it(False, True, holders=0, needing=5)  # --no-relay
    assert not relay_worth_it(True, True, holders=3, needing=0)


def test_the_pipe_fits_an_authorized_keys_option_and_the_client_checks_host_keys() -> None:
    hop = send_command(Target("198.19.0.12", 2222), 1)
    assert '"' not in pipe_command(1, hop) and '"' not in pipe_command(2, None)
    assert "StrictHostKeyChecking=yes" in hop and "BatchMode=yes" in hop
    assert "IdentityAgent=none" in hop and "-p 2222" in hop


# ------------------------------------------------------------------ over SSH


def uplink_bytes(lab: Lab) -> int:
    """Bytes this machine has sent into the lab (the bridge device's transmit counter)."""
    return int(Path(f"/sys/class/net/{lab.bridge}/statistics/tx_bytes").read_text())


def snapshot(hosts: list[Host]) -> dict[str, str]:
    return {h.name: h.read(AUTHORIZED) for h in hosts}


def assert_no_relay_traces(hosts: list[Host], before: dict[str, str], client: Client) -> None:
    """authorized_keys as before the run, no key, known_hosts or part file of the relay,
    and no byte of the operator's private key anywhere on a host."""
    secret = [
        line
        for line in client.key.read_text().splitlines()
        if line and not line.startswith("-----")
    ]
    for h in hosts:
        assert h.read(AUTHORIZED) == before[h.name], h.name
        assert MARK not in h.read(AUTHORIZED)
        assert not h.exists(RELAY_DIR), h.name
        assert [p for p in h.written() if "/relay" in p] == [], h.name
        assert leftovers(h) == [], h.name
        for path in h.written():
            if not h.path(path).is_file():  # removed: the overlay's whiteout
                continue
            data = h.path(path).read_bytes()
            assert not any(s.encode() in data for s in secret), (h.name, path)


def sftp_sent(host: Host) -> int:
    """How many times this machine uploaded the package to the host over SFTP."""
    return [p for p, _f, _m in host.sftp_opens()].count(REMOTE_PKG + ".lvscare-py-part")


def test_init_relays_the_package_once_from_this_machine_and_every_host_checks_its_copy(
    lab: tuple[Lab, Client], tmp_path: Path
) -> None:
    lab_, client = lab
    hosts = lab_.many(["m0", "n1", "n2", "n3"])
    client.trust(*hosts)
    pkg = ssh_package.build(tmp_path / "big.tar.gz", noise=6 << 20)
    size = pkg.stat().st_size
    before = snapshot(hosts)
    sent_before = uplink_bytes(lab_)
    out = bootstrap(*init_args(client, [hosts[0].addr], [h.addr for h in hosts[1:]], pkg=str(pkg)))
    assert out.exit_code == 0, out.output
    uplink = uplink_bytes(lab_) - sent_before
    assert size < uplink < 1.5 * size  # once, not four times
    for h in hosts:
        assert h.path(REMOTE_PKG).read_bytes() == pkg.read_bytes()
        assert sftp_sent(h) == 0
    m0, n1, n2, n3 = hosts
    assert f"{m0.addr}: package (relay from this machine)" in out.output
    for sender, receiver in ((m0, n1), (n1, n2), (n2, n3)):
        assert f"{receiver.addr}: package (relay from {sender.addr})" in out.output
        assert f"{receiver.addr}: package (relayed from {sender.addr}" in out.output
    assert_no_relay_traces(hosts, before, client)


def test_a_host_without_openssl_checks_its_relayed_copy_with_sha256sum(
    lab: tuple[Lab, Client], tmp_path: Path
) -> None:
    lab_, client = lab
    m0 = lab_.host("m0")
    n1 = lab_.host("n1", setup="rm -f /usr/bin/openssl")  # this host's own /usr overlay
    n2 = lab_.host("n2")
    hosts = [m0, n1, n2]
    client.trust(*hosts)
    assert not n1.path("/usr/bin/openssl").exists() and m0.path("/usr/bin/openssl").exists()
    pkg = ssh_package.build(tmp_path / "big.tar.gz", noise=1 << 20)
    before = snapshot(hosts)
    out = bootstrap(*init_args(client, [m0.addr], [n1.addr, n2.addr], pkg=str(pkg)))
    assert out.exit_code == 0, out.output
    for h in hosts:
        assert h.path(REMOTE_PKG).read_bytes() == pkg.read_bytes()
        assert sftp_sent(h) == 0
    assert f"{n1.addr}: package (relayed from {m0.addr}" in out.output
    assert_no_relay_traces(hosts, before, client)


def test_a_hop_killed_mid_stream_leaves_the_hosts_after_it_to_the_holders_and_init_succeeds(
    lab: tuple[Lab, Client], tmp_path: Path
) -> None:
    lab_, client = lab
    hosts = lab_.many(["m0", "n1", "n2", "n3"])
    m0, n1, n2, n3 = hosts
    client.trust(*hosts)
    pkg = ssh_package.build(tmp_path / "big.tar.gz", noise=4 << 20)
    size = pkg.stat().st_size
    n2.limit_rate(16)  # 4 MiB: two seconds into n2, the chain at its pace
    before = snapshot(hosts)
    sent_before = uplink_bytes(lab_)

    def part_size() -> int:
        part = n2.path(PART)
        return part.stat().st_size if part.exists() else 0

    def kill_the_hop() -> bool:
        """n1's ssh client feeding n2, killed once n2 has part of the package."""
        if part_size() < 512 << 10:
            return False
        for pid in n1.pids():
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if argv[0] == b"ssh" and n2.ip.encode() in argv:
                    os.kill(pid, signal.SIGKILL)
                    return True
        return False

    killer = threading.Thread(target=lambda: wait_until(kill_the_hop, 60, 0.01))
    killer.start()
    out = bootstrap(*init_args(client, [m0.addr], [n1.addr, n2.addr, n3.addr], pkg=str(pkg)))
    killer.join()
    assert out.exit_code == 0, out.output
    assert size < uplink_bytes(lab_) - sent_before < 1.5 * size  # no second copy from here
    for h in hosts:
        assert h.path(REMOTE_PKG).read_bytes() == pkg.read_bytes()
        assert sftp_sent(h) == 0
    # Round two: the holders (m0, n1) feed one chain each.
    assert f"{n2.addr}: package (relay from {m0.addr})" in out.output
    assert f"{n3.addr}: package (relay from {n1.addr})" in out.output
    assert_no_relay_traces(hosts, before, client)


def test_a_wrong_copy_goes_to_sftp_the_hosts_after_it_still_get_theirs_and_no_key_is_left(
    lab: tuple[Lab, Client], tmp_path: Path
) -> None:
    lab_, client = lab
    # n1's digests lie about what they read on stdin (the relay's in-stream check: OpenSSL's,
    # else sha256sum), not about files (distribute's): its relayed copies are refused, SFTP's
    # accepted.
    liar = (
        "printf '#!/bin/sh\\nif [ $# -eq 0 ]; then cat >/dev/null; echo %064d -; "
        'else exec /usr/bin/sha256sum "$@"; fi\\n\' 0 > /usr/local/bin/sha256sum && '
        "chmod 755 /usr/local/bin/sha256sum && "
        'printf \'#!/bin/sh\\nif [ "$1" = dgst ]; then cat >/dev/null; echo %064d "*stdin"; '
        'else exec /usr/bin/openssl "$@"; fi\\n\' 0 > /usr/local/bin/openssl && '
        "chmod 755 /usr/local/bin/openssl"
    )
    m0 = lab_.host("m0")
    n1 = lab_.host("n1", setup=liar)
    n2 = lab_.host("n2", setup=f"echo init.sh > {FAIL_FILE}")  # the run fails there
    n3 = lab_.host("n3")
    hosts = [m0, n1, n2, n3]
    client.trust(*hosts)
    pkg = ssh_package.build(tmp_path / "big.tar.gz", noise=1 << 20)
    before = snapshot(hosts)
    out = bootstrap(*init_args(client, [m0.addr], [n1.addr, n2.addr, n3.addr], pkg=str(pkg)))
    assert out.exit_code == 1, out.output
    assert "init.sh" in out.output and f"{n2.addr}: failed" in out.output
    for h in hosts:
        assert h.path(REMOTE_PKG).read_bytes() == pkg.read_bytes()
    assert sftp_sent(n1) == 1  # refused twice by the relay, then from this machine
    assert [sftp_sent(h) for h in (m0, n2, n3)] == [0, 0, 0]
    assert f"{n2.addr}: package (relayed from {n1.addr}" in out.output  # n1 passed it on
    assert_no_relay_traces(hosts, before, client)
    # A re-run finds the package everywhere and relays nothing.
    n2.path(FAIL_FILE).unlink()
    out = bootstrap(*init_args(client, [m0.addr], [n1.addr, n2.addr, n3.addr], pkg=str(pkg)))
    assert out.exit_code == 0, out.output
    assert "relay from" not in out.output
    assert_no_relay_traces(hosts, before, client)


def test_no_relay_sends_from_this_machine_to_every_host_over_sftp(
    lab: tuple[Lab, Client],
) -> None:
    lab_, client = lab
    hosts = lab_.many(["m0", "n1"])
    client.trust(*hosts)
    args = init_args(client, [hosts[0].addr], [hosts[1].addr])
    out = bootstrap(*args, "--no-relay")
    assert out.exit_code == 0, out.output
    assert "relay" not in out.output
    assert [sftp_sent(h) for h in hosts] == [1, 1]
