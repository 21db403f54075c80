"""`bootstrap certs check` and `renew` over SSH: a cluster of two masters made by `init`
(the PKI is bootstrap's own, written before the stand-in kubeadm runs), one leaf on master0
shortened to 20 days; check names it and exits 1, renew re-signs every leaf from the kept CAs
one master at a time, and openssl on the hosts agrees.

Real sshd hosts (tests/support/ssh_hosts.py) and real openssl. The kubelet is a stand-in
that does for kube-apiserver.yaml what the real one does for a static pod: it runs the fake
kube-apiserver (tests/support/fake_apiserver.py, which loads its certificate once, at start)
while the manifest is in the directory and stops it when it leaves; so the renewed
certificate is served only if the restart happened, and renew waits until it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from cryptography import x509

from bootstrap.host import pki, renewal
from tests.support.labnet import FAKE_APISERVER
from tests.support.ssh_client import Client, bootstrap, init_args, lab_and_client
from tests.support.ssh_hosts import Host

PKI = "/etc/kubernetes/pki"
KUBELET_PEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"
MANIFESTS = {n: f"apiVersion: v1\nkind: Pod  # {n}\n" for n in renewal.CONTROL_PLANE}
KUBELET_LOG = "/var/log/fake-kubelet.log"
FAKE_KUBELET = f"""\
import os, subprocess, sys, time
from cryptography import x509
manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml"
pki, run = "{PKI}", "/var/lib/fake-kubelet"
os.makedirs(run, exist_ok=True)
def log(line):
    with open("{KUBELET_LOG}", "a") as f:
        f.write(line + "\\n")
pod = None
while True:
    if os.path.exists(manifest) and pod is None:
        crt = open(pki + "/apiserver.crt", "rb").read()
        with open(run + "/apiserver.pem", "wb") as f:
            f.write(crt + open(pki + "/apiserver.key", "rb").read())
        pod = subprocess.Popen(
            [sys.executable, "-S", "{FAKE_APISERVER}", "--name", "kube-apiserver",
             "--listen", "127.0.0.1", "--port", "6443", "--cert", run + "/apiserver.pem",
             "--mode-file", run + "/mode"], stdout=subprocess.DEVNULL)
        log(f"started {{x509.load_pem_x509_certificate(crt).serial_number:x}}")
    elif not os.path.exists(manifest) and pod is not None:
        pod.terminate()
        pod.wait()
        pod = None
        log("stopped")
    time.sleep(0.1)
"""


@dataclass
class Cluster:
    client: Client
    m0: Host
    m1: Host

    @property
    def masters(self) -> list[Host]:
        return [self.m0, self.m1]

    def ssh(self, *args: str) -> list[str]:
        return [*args, "--pk", str(self.client.key)]

    def files(self, host: Host) -> dict[str, bytes]:
        """Everything certificates touch on a host: kubeadm's directory and our state."""
        found = {}
        for top in ("/etc/kubernetes", "/var/lib/lvscare-py", "/root/.kube"):
            root = host.path(top)
            for p in root.rglob("*"):
                if p.is_file():
                    found[f"{top}/{p.relative_to(root)}"] = p.read_bytes()
        return found

    def log(self, host: Host) -> str:
        return (self.client.home / ".lvscare-py" / "logs" / f"{host.ip}.log").read_text()


def ca_of(host: Host) -> pki.CertAndKey:
    return pki.load_pair(
        host.path(f"{PKI}/ca.crt").read_bytes(), host.path(f"{PKI}/ca.key").read_bytes()
    )


def shorten_apiserver(host: Host, days_left: int) -> None:
    """master0's apiserver certificate as a one-year one with `days_left` to go, same key."""
    path = host.path(f"{PKI}/apiserver.crt")
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(days=365 - days_left)
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    path.write_bytes(pki.cert_pem(pki.reissue(cert, ca_of(host), 1, issued)))


def kubelet_bootstrapped(host: Host, node: str) -> None:
    """A joined master's kubelet.conf as the kubelet leaves it: naming the client certificate
    it rotates itself (the stand-in kubeadm join writes a placeholder)."""
    spec = pki.CertSpec("kubelet", "ca", f"system:node:{node}", ("system:nodes",), client=True)
    key = pki.new_key()
    cert = pki.make_leaf(spec, key, ca_of(host), 1, dt.datetime.now(dt.UTC))
    host.write(KUBELET_PEM, (pki.cert_pem(cert) + pki.key_pem(key)).decode(), 0o600)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {"server": "https://x:6443"}}],
        "users": [
            {
                "name": "default-auth",
                "user": {"client-certificate": KUBELET_PEM, "client-key": KUBELET_PEM},
            }
        ],
    }
    host.write("/etc/kubernetes/kubelet.conf", yaml.safe_dump(doc), 0o600)


def start_kubelet(host: Host) -> None:
    host.write("/root/fake-kubelet.py", FAKE_KUBELET)
    host.in_ns(
        f"setsid {shlex.quote(sys.executable)} /root/fake-kubelet.py "
        "</dev/null >/var/log/fake-kubelet.out 2>&1 &"
    )


def serial(host: Host, path: str) -> str:
    return f"{x509.load_pem_x509_certificate(host.path(path).read_bytes()).serial_number:x}"


def openssl(host: Host, *argv: str) -> str:
    return host.in_ns(shlex.join(["openssl", *argv]))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with lab_and_client(tmp_path_factory.mktemp("certs")) as (lab, client):
        m0, m1 = lab.many(["m0", "m1"])
        client.trust(m0, m1)
        made = bootstrap(*init_args(client, [m0.addr, m1.addr], []), "--years", "10")
        assert made.exit_code == 0, made.output
        kubelet_bootstrapped(m1, "m1")
        shorten_apiserver(m0, 20)
        for host in (m0, m1):
            for name, text in MANIFESTS.items():
                host.write(f"/etc/kubernetes/manifests/{name}", text)
            start_kubelet(host)
        yield Cluster(client, m0, m1)


@pytest.fixture(scope="module")
def before(cluster: Cluster) -> dict[str, dict[str, bytes]]:
    return {h.name: cluster.files(h) for h in cluster.masters}


def lines_of(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["check", "--warn-days", "-1"], "--warn-days -1: must be between 0 and"),
        (["renew", "--years", "0"], "--years 0: must be between 1 and"),
        (["renew", "--restart-wait", "-1"], "--restart-wait -1: must be between 0 and"),
        (["renew", "--master", "198.18.0.9"], "--master 198.18.0.9: not a master of this"),
        (["check", "--master", "198.18.0.9"], "--master 198.18.0.9: not a master of this"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_touches_no_host(
    cluster: Cluster, before: dict[str, dict[str, bytes]], args: list[str], expect: str
) -> None:
    result = bootstrap("certs", *cluster.ssh(*args))
    assert result.exit_code == 2, result.output
    assert lines_of(result) == [lines_of(result)[0]]
    assert lines_of(result)[0].startswith(f"bootstrap: {expect}")
    assert {h.name: cluster.files(h) for h in cluster.masters} == before


def test_check_names_the_short_leaf_and_exits_1(
    cluster: Cluster, before: dict[str, dict[str, bytes]]
) -> None:
    result = bootstrap("certs", *cluster.ssh("check"))
    assert result.exit_code == 1, result.output
    header, *rows = [line.split() for line in lines_of(result)[:-1]]
    assert header == ["HOST", "FILE", "EXPIRES", "(UTC)", "REMAINING", "VERDICT"]
    soon = [r for r in rows if "EXPIRES" in r[4:]]
    assert [(r[0], r[1]) for r in soon] == [(cluster.m0.ip, f"{PKI}/apiserver.crt")]
    assert soon[0][4] in ("19d", "20d")
    by_host = {h.ip: [r for r in rows if r[0] == h.ip] for h in cluster.masters}
    assert len(by_host[cluster.m0.ip]) == 10 + 5  # pki/ and 5 kubeconfigs
    kubelet = [r for r in by_host[cluster.m1.ip] if r[1].endswith("kubelet.conf")]
    assert kubelet and kubelet[0][2] == f"({KUBELET_PEM})" and "rotates" in " ".join(kubelet[0])
    assert lines_of(result)[-1] == (
        "bootstrap: certs check: 1 certificates expire within 30 days or are unusable: "
        f"{cluster.m0.ip} {PKI}/apiserver.crt (expires soon)"
    )
    assert {h.name: cluster.files(h) for h in cluster.masters} == before


def test_check_dry_run_connects_to_no_host(cluster: Cluster) -> None:
    result = bootstrap("certs", *cluster.ssh("check", "--dry-run"))
    assert result.exit_code == 0, result.output
    assert lines_of(result) == [
        f"{h.ip}: would run `bootstrap certs list --json` (reads only)" for h in cluster.masters
    ]


def test_renew_dry_run_shows_each_masters_plan_and_changes_nothing(
    cluster: Cluster, before: dict[str, dict[str, bytes]]
) -> None:
    result = bootstrap("certs", *cluster.ssh("renew", "--dry-run", "--restart-wait", "0"))
    assert result.exit_code == 0, result.output
    for host in cluster.masters:
        plan = result.output.split(f"{host.ip} (dry run):")[1]
        assert f"[dry-run] would write {PKI}/apiserver.crt" in plan
        assert "[dry-run] would move /etc/kubernetes/manifests/kube-apiserver.yaml" in plan
    assert {h.name: cluster.files(h) for h in cluster.masters} == before
    assert not (cluster.client.home / ".lvscare-py" / "admin.conf").exists()


@pytest.fixture(scope="module")
def renewed(cluster: Cluster, before: dict[str, dict[str, bytes]]) -> Result:
    record = cluster.client.cluster_file.read_bytes()
    args = ("renew", "--restart-wait", "2", "--serve-timeout", "60")
    result = bootstrap("certs", *cluster.ssh(*args))
    assert cluster.client.cluster_file.read_bytes() == record  # no host record changed
    return result


def test_renew_resigns_the_leaves_from_the_kept_cas(
    cluster: Cluster, before: dict[str, dict[str, bytes]], renewed: Result
) -> None:
    assert renewed.exit_code == 0, renewed.output
    nine_years = str(9 * 365 * 86400)
    for host in cluster.masters:
        files = cluster.files(host)
        old = before[host.name]
        for name in [*pki.SHARED_FILES, "apiserver.key", "etcd/peer.key"]:
            assert files[f"{PKI}/{name}"] == old[f"{PKI}/{name}"], name  # same bytes
        for leaf, ca in [
            ("apiserver", "ca"),
            ("apiserver-kubelet-client", "ca"),
            ("front-proxy-client", "front-proxy-ca"),
            ("etcd/server", "etcd/ca"),
            ("etcd/peer", "etcd/ca"),
            ("apiserver-etcd-client", "etcd/ca"),
        ]:
            assert files[f"{PKI}/{leaf}.crt"] != old[f"{PKI}/{leaf}.crt"], leaf
            verdict = openssl(host, "verify", "-CAfile", f"{PKI}/{ca}.crt", f"{PKI}/{leaf}.crt")
            assert verdict.strip() == f"{PKI}/{leaf}.crt: OK"
            openssl(host, "x509", "-noout", "-checkend", nine_years, "-in", f"{PKI}/{leaf}.crt")
        backups = list(host.path("/var/lib/lvscare-py/backup").iterdir())
        assert len(backups) == 1 and backups[0].name.startswith("certs-")
        assert (backups[0] / "pki" / "apiserver.crt").read_bytes() == old[f"{PKI}/apiserver.crt"]
        assert (backups[0] / "admin.conf").read_bytes() == old["/etc/kubernetes/admin.conf"]
    assert (
        cluster.files(cluster.m1)["/etc/kubernetes/kubelet.conf"]
        == (
            before["m1"]["/etc/kubernetes/kubelet.conf"]  # the kubelet's own: not ours to renew
        )
    )


def test_renew_restarts_each_control_plane_one_master_at_a_time(
    cluster: Cluster, renewed: Result
) -> None:
    assert renewed.exit_code == 0, renewed.output
    for host in cluster.masters:
        log = [line for line in cluster.log(host).splitlines() if "[bootstrap certs]" in line]
        moves = [line.split("] ", 1)[1] for line in log if "moved " in line or "waiting" in line]
        stopped = "/var/lib/lvscare-py/manifests-stopped"
        names = list(MANIFESTS)
        assert [m.split(":")[0] for m in moves] == [
            *[f"moved /etc/kubernetes/manifests/{n} to {stopped}/{n}" for n in names],
            "waiting 2 s for the kubelet to stop them",
            *[f"moved {stopped}/{n} to /etc/kubernetes/manifests/{n}" for n in names],
        ]
        assert log[-1].endswith("kube-apiserver at 127.0.0.1:6443 serves the renewed certificate")
        for name, text in MANIFESTS.items():
            assert host.read(f"/etc/kubernetes/manifests/{name}") == text
    out = renewed.output
    assert out.index(f"{cluster.m0.ip}: ok") < out.index(f"{cluster.m1.ip}: bootstrap certs")


def test_the_kubelet_restarted_kube_apiserver_with_the_renewed_certificate(
    cluster: Cluster, before: dict[str, dict[str, bytes]], renewed: Result
) -> None:
    assert renewed.exit_code == 0, renewed.output
    for host in cluster.masters:
        pem = before[host.name][f"{PKI}/apiserver.crt"]
        old = f"{x509.load_pem_x509_certificate(pem).serial_number:x}"
        new = serial(host, f"{PKI}/apiserver.crt")
        assert host.read(KUBELET_LOG).splitlines() == [
            f"started {old}",
            "stopped",
            f"started {new}",
        ]
        served = host.in_ns(
            f"openssl s_client -connect 127.0.0.1:6443 -CAfile {PKI}/ca.crt </dev/null 2>&1"
            " | openssl x509 -noout -serial"
        )
        assert int(served.strip().split("=")[1], 16) == int(new, 16)


def test_renew_hands_the_operator_master0s_new_admin_conf(
    cluster: Cluster, renewed: Result
) -> None:
    assert renewed.exit_code == 0, renewed.output
    local = cluster.client.home / ".lvscare-py" / "admin.conf"
    assert local.stat().st_mode & 0o777 == 0o600
    assert local.read_bytes() == cluster.m0.path("/etc/kubernetes/admin.conf").read_bytes()
    assert f"master0's renewed admin.conf: {local} (0600)" in renewed.output
    assert cluster.m0.read("/root/.kube/config") == local.read_text()


def test_check_after_renew_exits_0(cluster: Cluster, renewed: Result) -> None:
    assert renewed.exit_code == 0, renewed.output
    result = bootstrap("certs", *cluster.ssh("check", "--warn-days", "3000"))
    assert result.exit_code == 0, result.output
    assert "EXPIRES SOON" not in result.output and "EXPIRED" not in result.output


def test_list_json_on_the_host_is_what_check_reads(cluster: Cluster, renewed: Result) -> None:
    out = cluster.m0.in_ns("bootstrap certs list --json")
    entries = json.loads(out)["certs"]
    assert {e["kind"] for e in entries} == {"ca", "leaf", "kubeconfig"}
    assert Path(entries[0]["file"]).is_absolute()


def test_a_master_whose_apiserver_does_not_come_back_stops_the_ones_after_it(
    cluster: Cluster, renewed: Result
) -> None:
    """Last in the file: master0's kubelet is stopped, so its kube-apiserver keeps serving
    the certificate it started with."""
    assert renewed.exit_code == 0, renewed.output
    for pid in cluster.m0.pids():
        with contextlib.suppress(OSError):
            if b"/root/fake-kubelet.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
    m1_before = cluster.files(cluster.m1)
    result = bootstrap(
        "certs", *cluster.ssh("renew", "--restart-wait", "0", "--serve-timeout", "1")
    )
    assert result.exit_code == 1, result.output
    assert "did not serve the renewed certificate within 1 s" in result.output
    assert f"master {cluster.m0.ip} failed before it (one at a time)" in result.output
    assert cluster.files(cluster.m1) == m1_before
    assert lines_of(result)[-1].startswith("bootstrap: certs renew: 2 of 2 masters not renewed")
