"""What a failure on one host does to the others, and bad input."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

from tests.support.ssh_client import Client, bootstrap, init_args
from tests.support.ssh_hosts import FAIL_FILE, Host, Lab


def test_node_failing_half_way_stops_no_other_and_a_rerun_continues(
    lab: tuple[Lab, Client],
) -> None:
    lab_, client = lab
    m0 = lab_.host("m0")
    n1, n2, n3 = (lab_.host(f"n{i}") for i in (1, 2, 3))
    client.trust(m0, n1, n2, n3)
    n2.write(FAIL_FILE, "join\n")
    args = [*init_args(client, [m0.addr], [n1.addr, n2.addr, n3.addr]), "--parallel", "2"]
    out = bootstrap(*args)
    assert out.exit_code == 1
    table = out.output[out.output.index("HOST ") :]
    row = next(line for line in table.splitlines() if line.startswith(n2.addr + " "))
    assert "failed" in row and "bootstrap node" in row and "kubeadm join" in row
    log = (client.home / ".lvscare-py" / "logs" / f"{n2.ip}.log").read_text()
    assert "told to fail" in log
    assert f"1 of 4 hosts failed: {n2.addr}" in out.output
    for n in (n1, n3):
        assert n.argvs()[-1][:2] == ["kubeadm", "join"]
        assert n.exists("/etc/kubernetes/manifests/kube-lvscare.yaml")
    assert not n2.exists("/etc/kubernetes/manifests/kube-lvscare.yaml")
    n2.path(FAIL_FILE).unlink()
    out = bootstrap(*args)
    assert out.exit_code == 0, out.output
    assert [c["argv"][0] for c in n2.calls()].count("init.sh") == 1  # not run again
    assert [a[:2] for a in n2.argvs() if a[0] == "kubeadm"] == [["kubeadm", "join"]] * 2
    assert [a[:2] for a in n1.argvs() if a[0] == "kubeadm"] == [["kubeadm", "join"]]
    assert [a[:2] for a in m0.argvs() if a[0] == "kubeadm"] == [["kubeadm", "init"]]


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
    }
    for args, expected in cases.items():
        out = bootstrap(*args)
        assert out.exit_code == 2, (args, out.output)
        assert len(out.output.strip().splitlines()) == 1 and expected in out.output, out.output
