"""What a failure on one host does to the others (20 hosts, 3 failing at different steps;
master0; an unreachable host; a bad download), and bad input."""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import shutil
import threading
from pathlib import Path

from bootstrap.cluster.package import REMOTE_DIR
from tests.support import ssh_package
from tests.support.ssh_client import Client, bootstrap, init_args
from tests.support.ssh_faults import leftovers, row
from tests.support.ssh_hosts import FAIL_FILE, Host, Lab


def test_twenty_hosts_three_failing_at_different_steps_the_rest_finish_and_a_rerun_ends_them(
    lab: tuple[Lab, Client], tmp_path: Path
) -> None:
    lab_, client = lab
    pkg = ssh_package.build(tmp_path / "kube.tar.gz", noise=128 << 10)
    m0, *nodes = lab_.many(["m0", *[f"n{i}" for i in range(1, 20)]])
    client.trust(m0, *nodes)
    full, broken, refused = nodes[4], nodes[9], nodes[14]
    full.in_ns(f"mkdir -p {REMOTE_DIR} && mount -t tmpfs -o size=64k lvpy-full {REMOTE_DIR}")
    broken.write(FAIL_FILE, "init.sh\n")  # the package's init.sh fails there
    refused.write(FAIL_FILE, "join\n")  # kubeadm join fails there
    args = init_args(client, [m0.addr], [n.addr for n in nodes], pkg=str(pkg))
    out = bootstrap(*args)
    assert out.exit_code == 1, out.output
    assert f"3 of 20 hosts failed: {full.addr}, {broken.addr}, {refused.addr}" in out.output
    assert re.search(
        r"failed +package .* no space left on device for the package: /opt/lvscare-py has "
        r"64\.0 KiB free, 1\d\d\.\d KiB needed",
        row(out.output, full.addr),
    )
    assert re.search(
        r"failed +init\.sh .* shell/init\.sh: init\.sh: \[stand-in\] told to fail",
        row(out.output, broken.addr),
    )
    assert re.search(r"failed +bootstrap node .* kubeadm join", row(out.output, refused.addr))
    log = (client.home / ".lvscare-py" / "logs" / f"{refused.ip}.log").read_text()
    assert "told to fail" in log
    # Every line has its time; each step's beginning is there, so a slow step can be found.
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", ln) for ln in log.splitlines())
    assert re.search(r"Z \[bootstrap node\] -- begins\n", log), log
    done = [n for n in nodes if n not in (full, broken, refused)]
    for n in done:
        assert re.search(r" ok +- ", row(out.output, n.addr))
        assert [a[:2] for a in n.argvs() if a[0] == "kubeadm"] == [["kubeadm", "join"]]
        assert n.exists("/etc/kubernetes/manifests/kube-lvscare.yaml")
    for n in (full, broken, refused):
        assert not n.exists("/etc/kubernetes/manifests/kube-lvscare.yaml")
    assert all(leftovers(h) == [] for h in (m0, *nodes))
    full.in_ns(f"umount {REMOTE_DIR}")
    broken.path(FAIL_FILE).unlink()
    refused.path(FAIL_FILE).unlink()
    out = bootstrap(*args)
    assert out.exit_code == 0, out.output
    joins = {n.name: sum(a[:2] == ["kubeadm", "join"] for a in n.argvs()) for n in nodes}
    assert joins == {n.name: 2 if n is refused else 1 for n in nodes}  # only theirs again
    inits = {n.name: sum(c["argv"] == ["init.sh"] for c in n.calls()) for n in nodes}
    assert inits == {n.name: 1 for n in nodes}  # init.sh ran once on each, the fixed too
    assert [a[:2] for a in m0.argvs() if a[0] == "kubeadm"] == [["kubeadm", "init"]]
    assert all(leftovers(h) == [] for h in (m0, *nodes))


def test_failed_master0_stops_the_rest(lab: tuple[Lab, Client]) -> None:
    lab_, client = lab
    m0, m1, n1 = lab_.host("m0"), lab_.host("m1"), lab_.host("n1")
    client.trust(m0, m1, n1)
    m0.write(FAIL_FILE, "init\n")
    out = bootstrap(*init_args(client, [m0.addr, m1.addr], [n1.addr]))
    assert out.exit_code == 1
    assert f"master0 {m0.addr} failed" in out.output
    for h in (m1, n1):
        assert [a for a in h.argvs() if a[0] == "kubeadm"] == []


def test_unreachable_host_fails_alone(lab: tuple[Lab, Client]) -> None:
    lab_, client = lab
    m0, n1 = lab_.host("m0"), lab_.host("n1")
    nobody = lab_.empty_host()  # an address, nothing listening
    client.trust(m0, n1)
    out = bootstrap(*init_args(client, [m0.addr], [n1.addr, nobody]), "--ssh-timeout", "3")
    assert out.exit_code == 1
    row = next(line for line in out.output.splitlines() if line.startswith(nobody + " "))
    assert "connect" in row and "cannot connect" in row
    assert n1.argvs()[-1][:2] == ["kubeadm", "join"]


def test_url_downloaded_by_each_host_and_checked(lab: tuple[Lab, Client], tmp_path: Path) -> None:
    lab_, client = lab
    m0, n1 = lab_.host("m0"), lab_.host("n1")
    client.trust(m0, n1)
    served = tmp_path / "www"
    served.mkdir()
    shutil.copy(client.package, served / "kube 'v1'.tar.gz")
    # Served from this process on the bridge's own address, which every host routes to.
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer((lab_.gateway, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://{lab_.gateway}:{server.server_address[1]}/kube%20'v1'.tar.gz"
        check_url_download(client, m0, n1, url)
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def check_url_download(client: Client, m0: Host, n1: Host, url: str) -> None:
    digest = hashlib.sha256(client.package.read_bytes()).hexdigest()
    base = init_args(client, [m0.addr], [n1.addr], pkg=url)
    out = bootstrap(*base, "--pkg-sha256", "0" * 64)
    assert out.exit_code == 1
    assert f"sha256 mismatch: expected {'0' * 64}, the host has {digest}" in out.output
    assert not m0.exists("/opt/lvscare-py/package.tar.gz")
    out = bootstrap(*base, "--pkg-sha256", digest)
    assert out.exit_code == 0, out.output
    for h in (m0, n1):
        assert h.path("/opt/lvscare-py/package.tar.gz").read_bytes() == client.package.read_bytes()


def test_bad_input_is_one_line_and_exit_2(lab: tuple[Lab, Client]) -> None:
    _lab, client = lab
    common = ["--pk", str(client.key), "--version", "v1.30.4"]
    pkg = ["--pkg-url", str(client.package)]
    cases = {
        ("init", "--master", "198.19.0.300", *pkg, *common): "'198.19.0.300'",
        ("init", "--master", "198.19.0.3:99999", *pkg, *common): "port 99999 is out of range",
        ("init", "--master", "198.19.0.3", "--pkg-url", "/nonexistent.tgz", *common): "no such",
        ("init", "--master", "198.19.0.3", *pkg, "--pkg-sha256", "ab" * 32, *common): "has sha256",
        ("init", "--master", "198.19.0.3", "--node", "198.19.0.3", *pkg, *common): "also given",
        ("join", "--node", "198.19.0.9"): "no cluster file",
        ("init", "--master", "198.19.0.3", *pkg, *common, "--max-clock-skew", "-1"): "to a year",
        (
            "init",
            "--master",
            "198.19.0.3",
            *pkg,
            *common,
            "--max-clock-skew",
            "nan",
        ): "--max-clock-skew nan",
    }
    for args, expected in cases.items():
        out = bootstrap(*args)
        assert out.exit_code == 2, (args, out.output)
        assert len(out.output.strip().splitlines()) == 1 and expected in out.output, out.output
