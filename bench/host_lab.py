"""Three fake apiservers on loopback and the host daemon's command line, for the benchmarks
that run on this machine's CPU (`--host`): bench/steady_state.py and bench/startup.py."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

MASTERS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
PORT = 16443
VS = "10.103.97.2:6443"
DAEMON = [sys.executable, "-m", "bench.host_daemon"]


@contextlib.contextmanager
def fake_masters(tmp: Path) -> Iterator[list[str]]:
    """Three HTTPS apiservers with RSA-2048 certificates, as kubeadm issues them; yields the
    `--rs` flags that name them."""
    import trustme

    from tests.support.labnet import FAKE_APISERVER
    from tests.support.wait import wait_until

    rsa = trustme.KeyType.RSA
    ca = trustme.CA(key_type=rsa)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for i, ip in enumerate(MASTERS):
            cert = tmp / f"m{i}.pem"
            ca.issue_cert(ip, key_type=rsa).private_key_and_cert_chain_pem.write_to_path(str(cert))
            (tmp / f"m{i}.mode").write_text("ok\n")
            servers.append(subprocess.Popen(
                [sys.executable, "-S", str(FAKE_APISERVER), "--name", f"m{i}",
                 "--listen", ip, "--port", str(PORT), "--cert", str(cert),
                 "--mode-file", str(tmp / f"m{i}.mode"),
                 "--ready-file", str(tmp / f"m{i}.ready")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        ready = [tmp / f"m{i}.ready" for i in range(len(MASTERS))]
        if not wait_until(lambda: all(r.exists() for r in ready), 30):
            raise SystemExit("fake apiservers did not start")
        yield [a for ip in MASTERS for a in ("--rs", f"{ip}:{PORT}")]
    finally:
        for p in servers:
            p.terminate()
            p.wait(10)


def care_argv(rs_flags: Sequence[str], *flags: str) -> list[str]:
    """`lvscare care` through bench/host_daemon.py (the IPVS table in memory)."""
    return [*DAEMON, "care", "--vs", VS, *rs_flags, *flags]


def events(log: Path) -> list[dict[str, Any]]:
    """The daemon's JSON log lines; a line that is not JSON is kept as `<text>`."""
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"event": "<text>", "text": line})
    return out
