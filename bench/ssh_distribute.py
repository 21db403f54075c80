"""Package distribution: bootstrap's relay (host to host, `bootstrap.cluster.relay`), its
parallel SFTP (paramiko, hosts in parallel, `--no-relay`) and a plain `scp` loop (OpenSSH,
one host after the other), to 1, 5, 10 and 20 hosts, in one run.

Hosts are real sshd in network + mount namespaces (tests/support/ssh_hosts.py) on one bridge;
the sender's uplink (the bridge device, the sender's side) is limited by a `tc tbf` qdisc,
so it is the bottleneck as on a workstation's network link. That qdisc sees only what this
machine sends into the lab: host-to-host traffic is forwarded between the bridge's ports
(the hosts' veths) and never leaves through the bridge device, so it is not limited, as on
a cluster whose hosts share a faster network than the operator's uplink. The `uplink
copies` columns show it: the bytes the qdisc passed, in package sizes. Each run starts with
the file absent on every host. Run as root:

    .venv/bin/python -m bench.ssh_distribute --size-mb 200 --rate-mbit 400 --hosts 1,5,10,20
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bootstrap.cluster import package, relay
from bootstrap.cluster.ssh import Auth, Connection, KnownHosts, Target, parse_target
from bootstrap.fsutil import file_sha256
from tests.support.ssh_client import lab_and_client
from tests.support.ssh_hosts import Host, sh


def make_package(path: Path, size_mb: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(1 << 20))


def clear(hosts: list[Host]) -> None:
    for h in hosts:
        h.path(package.REMOTE_PKG).unlink(missing_ok=True)


def bootstrap_sftp(hosts: list[Host], pkg: package.Package, key: Path, known: Path) -> float:
    """What `bootstrap init` does first: every host at once, sha256 checked there."""
    auth = Auth("root", key_path=key)
    policy = KnownHosts(known, accept_new=False)

    def one(h: Host) -> None:
        with Connection(parse_target(h.addr, "host"), auth, policy, 10) as conn:
            _digest, sent = package.distribute(conn, pkg, None)
            assert sent

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(one, hosts))
    return time.monotonic() - start


def bootstrap_relay(hosts: list[Host], pkg: package.Package, key: Path, known: Path) -> float:
    """What `bootstrap init` does with --relay: connect, relay, SFTP to what it missed."""
    auth = Auth("root", key_path=key)
    policy = KnownHosts(known, accept_new=False)
    targets = [parse_target(h.addr, "host") for h in hosts]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        opened = pool.map(lambda t: Connection(t, auth, policy, 10), targets)
        conns = dict(zip(targets, opened, strict=True))
    try:
        # As the orchestrator: one host alone goes over SFTP, no relay.
        outcome = relay.Relay(conns, pkg).run(targets) if len(targets) > 1 else relay.Outcome()

        def rest(t: Target) -> None:
            _digest, sent = package.distribute(conns[t], pkg, None)
            assert sent

        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(rest, [t for t in targets if t not in outcome.got]))
    finally:
        for conn in conns.values():
            conn.close()
    took = time.monotonic() - start
    for h in hosts:
        assert file_sha256(h.path(package.REMOTE_PKG)) == pkg.sha256
    return took


def cpu_busy() -> float:
    """CPU-seconds this machine (every host included) has been busy since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait; steal (the hypervisor's) left out
    return (sum(fields[:7]) - idle) / os.sysconf("SC_CLK_TCK")


def qdisc_sent(dev: str) -> int:
    """Bytes the uplink's qdisc has passed (`tc -s`: "Sent N bytes")."""
    words = sh("tc", "-s", "qdisc", "show", "dev", dev).split()
    return int(words[words.index("Sent") + 1]) if "Sent" in words else 0


def scp_loop(hosts: list[Host], path: Path, key: Path, known: Path) -> float:
    """The plain way: scp to each host in turn, then sha256sum there."""
    opts = ["-i", str(key), "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes"]
    start = time.monotonic()
    for h in hosts:
        sh("ssh", *opts, f"root@{h.ip}", f"mkdir -p {package.REMOTE_DIR}")
        sh("scp", "-q", *opts, str(path), f"root@{h.ip}:{package.REMOTE_PKG}")
        sh("ssh", *opts, f"root@{h.ip}", f"sha256sum {shlex.quote(package.REMOTE_PKG)}")
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--rate-mbit", type=int, default=400)
    ap.add_argument("--hosts", default="1,5,10,20")
    ap.add_argument("--methods", default="relay,sftp,scp", help="any of relay,sftp,scp")
    args = ap.parse_args()
    methods = args.methods.split(",")
    counts = [int(n) for n in args.hosts.split(",")]
    with (
        tempfile.TemporaryDirectory(prefix="lvpy-bench-") as tmp,
        lab_and_client(Path(tmp)) as (lab, client),
    ):
        pkg_path = Path(tmp) / "kube-bench.tar.gz"
        make_package(pkg_path, args.size_mb)
        # Random bytes, not a tarball: no unpacking here, so open_package's check is skipped.
        pkg = package.Package(
            str(pkg_path), pkg_path, file_sha256(pkg_path), pkg_path.stat().st_size
        )
        hosts = lab.many([f"h{i}" for i in range(max(counts))])
        client.trust(*hosts)
        # The sender's uplink: everything this side sends into the bridge.
        if args.rate_mbit:  # 0: no limit, to see what the CPUs alone allow
            sh(
                "tc",
                "qdisc",
                "add",
                "dev",
                lab.bridge,
                "root",
                "tbf",
                "rate",
                f"{args.rate_mbit}mbit",
                "burst",
                "1mb",
                "latency",
                "100ms",
            )
        line_rate = (args.rate_mbit or 1e9) / 8 * 1e6
        print(
            f"package {args.size_mb} MiB, uplink {args.rate_mbit} Mbit/s (tbf), "
            f"{os.cpu_count()} CPUs"
        )
        rows = []
        for n in counts:
            chosen = hosts[:n]
            times, copies, busy = [], [], []
            for method in ("relay", "sftp", "scp"):
                if method not in methods:
                    times.append(math.nan)
                    copies.append(math.nan)
                    busy.append(math.nan)
                    continue
                clear(chosen)
                before, cpu_before = qdisc_sent(lab.bridge), cpu_busy()
                if method == "relay":
                    took = bootstrap_relay(chosen, pkg, client.key, client.known_hosts)
                elif method == "sftp":
                    took = bootstrap_sftp(chosen, pkg, client.key, client.known_hosts)
                else:
                    took = scp_loop(chosen, pkg_path, client.key, client.known_hosts)
                times.append(took)
                copies.append((qdisc_sent(lab.bridge) - before) / pkg.size)
                busy.append(cpu_busy() - cpu_before)
                print(
                    f"  {n} hosts, {method}: {took:.1f} s, {copies[-1]:.2f} copies up", flush=True
                )
            clear(chosen)
            rows.append((n, times, copies, busy))
        one = rows[0][1][0] if rows[0][0] == 1 else float("nan")
        print(
            f"{'hosts':>5}  {'relay (s)':>9}  {'SFTP (s)':>8}  {'scp loop (s)':>12}  "
            f"{'relay / 1 host':>14}  {'uplink copies relay/SFTP/scp':>28}  "
            f"{'relay CPU busy (s)':>18}  {'one copy at line rate (s)':>25}"
        )
        for n, (t_relay, t_sftp, t_scp), (c_relay, c_sftp, c_scp), cpu in rows:
            print(
                f"{n:>5}  {t_relay:>9.1f}  {t_sftp:>8.1f}  {t_scp:>12.1f}  "
                f"{t_relay / one:>13.2f}x  {f'{c_relay:.2f} / {c_sftp:.2f} / {c_scp:.2f}':>28}  "
                f"{cpu[0]:>18.1f}  {pkg.size / line_rate:>25.1f}"
            )
        subprocess.run(["tc", "qdisc", "del", "dev", lab.bridge, "root"], check=False)


if __name__ == "__main__":
    main()
