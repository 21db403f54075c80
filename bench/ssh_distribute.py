"""Package distribution: bootstrap's SFTP (paramiko, hosts in parallel) against a plain
`scp` loop (OpenSSH, one host after the other), to 1, 5 and 10 hosts.

Hosts are real sshd in network + mount namespaces (tests/support/ssh_hosts.py) on one bridge;
the sender's uplink (the bridge device, the sender's side) is limited by a `tc tbf` qdisc,
so it is the bottleneck as on a workstation's network link. Each run starts with the file
absent on every host. Run as root:

    .venv/bin/python -m bench.ssh_distribute --size-mb 200 --rate-mbit 400 --hosts 1,5,10
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bootstrap.cluster import package
from bootstrap.cluster.ssh import Auth, Connection, KnownHosts, parse_target
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
    ap.add_argument("--hosts", default="1,5,10")
    args = ap.parse_args()
    counts = [int(n) for n in args.hosts.split(",")]
    with (
        tempfile.TemporaryDirectory(prefix="lvpy-bench-") as tmp,
        lab_and_client(Path(tmp)) as (lab, client),
    ):
        pkg_path = Path(tmp) / "kube-bench.tar.gz"
        make_package(pkg_path, args.size_mb)
        pkg = package.open_package(str(pkg_path), None)
        hosts = [lab.host(f"h{i}") for i in range(max(counts))]
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
            clear(chosen)
            t_sftp = bootstrap_sftp(chosen, pkg, client.key, client.known_hosts)
            clear(chosen)
            t_scp = scp_loop(chosen, pkg_path, client.key, client.known_hosts)
            clear(chosen)
            floor = n * pkg.size / line_rate
            rows.append((n, t_sftp, t_scp, floor))
        print(
            f"{'hosts':>5}  {'bootstrap (s)':>13}  {'scp loop (s)':>12}  "
            f"{'uplink floor (s)':>16}  {'bootstrap MB/s':>14}  {'scp MB/s':>8}"
        )
        for n, a, b, floor in rows:
            total = n * pkg.size / 1e6
            print(
                f"{n:>5}  {a:>13.1f}  {b:>12.1f}  {floor:>16.1f}  {total / a:>14.1f}  "
                f"{total / b:>8.1f}"
            )
        subprocess.run(["tc", "qdisc", "del", "dev", lab.bridge, "root"], check=False)


if __name__ == "__main__":
    main()
