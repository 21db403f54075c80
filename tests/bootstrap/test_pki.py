"""The PKI kubeadm expects, checked with openssl and field by field against a table."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.host import pki
from bootstrap.host.kubeadm_config import ConfigFacts
from tests.support.host_tree import Tree, run
from tests.support.kubeadm import CA_HASH, TOKEN, Kubeadm

SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
MASTERS = ["--master", "192.168.0.2", "--master", "192.168.0.3", "--master", "192.168.0.4"]
APISERVER_DNS = {
    "m0",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster",
    "kubernetes.default.svc.cluster.local",
    "apiserver.cluster.local",
}
APISERVER_IPS = {
    "10.96.0.1",
    "192.168.0.2",
    "127.0.0.1",
    "192.168.0.3",
    "192.168.0.4",
    "10.103.97.2",
}
ETCD_DNS = {"m0", "localhost"}
ETCD_IPS = {"192.168.0.2", "127.0.0.1", "::1"}

# name: (CA, CN, O, extended usages, DNS SANs, IP SANs) as in "PKI certificates and requirements"
LEAVES: dict[str, tuple[str, str, set[str], set[x509.ObjectIdentifier], set[str], set[str]]] = {
    "apiserver": ("ca", "kube-apiserver", set(), {SERVER}, APISERVER_DNS, APISERVER_IPS),
    "apiserver-kubelet-client": (
        "ca",
        "kube-apiserver-kubelet-client",
        {"system:masters"},
        {CLIENT},
        set(),
        set(),
    ),
    "front-proxy-client": ("front-proxy-ca", "front-proxy-client", set(), {CLIENT}, set(), set()),
    "etcd/server": ("etcd/ca", "kube-etcd", set(), {SERVER, CLIENT}, ETCD_DNS, ETCD_IPS),
    "etcd/peer": ("etcd/ca", "kube-etcd-peer", set(), {SERVER, CLIENT}, ETCD_DNS, ETCD_IPS),
    "etcd/healthcheck-client": (
        "etcd/ca",
        "kube-etcd-healthcheck-client",
        set(),
        {CLIENT},
        set(),
        set(),
    ),
    "apiserver-etcd-client": (
        "etcd/ca",
        "kube-apiserver-etcd-client",
        set(),
        {CLIENT},
        set(),
        set(),
    ),
}
CAS = {"ca": "kubernetes-ca", "front-proxy-ca": "kubernetes-front-proxy-ca", "etcd/ca": "etcd-ca"}
# file: (CN, O, server) of the kubeconfigs, as kubeadm v1.30 writes them on the first master
KUBECONFIGS = {
    "admin.conf": (
        "kubernetes-admin",
        {"kubeadm:cluster-admins"},
        "https://apiserver.cluster.local:6443",
    ),
    "super-admin.conf": (
        "kubernetes-super-admin",
        {"system:masters"},
        "https://apiserver.cluster.local:6443",
    ),
    "controller-manager.conf": (
        "system:kube-controller-manager",
        set(),
        "https://192.168.0.2:6443",
    ),
    "scheduler.conf": ("system:kube-scheduler", set(), "https://192.168.0.2:6443"),
    "kubelet.conf": ("system:node:m0", {"system:nodes"}, "https://apiserver.cluster.local:6443"),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """One first master's PKI, made once for the tests that only read it."""
    root = tmp_path_factory.mktemp("made")
    t = Tree(root, root / "hosts", root / "kubernetes", root / "state", root / "home")
    t.home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BOOTSTRAP_HOSTS_FILE", str(t.hosts))
        mp.setenv("BOOTSTRAP_KUBERNETES_DIR", str(t.kube))
        mp.setenv("BOOTSTRAP_STATE_DIR", str(t.state))
        mp.setenv("HOME", str(t.home))
        certs()
    return t


FACTS = ConfigFacts(
    node_name="m0",
    advertise_address="192.168.0.2",
    cert_sans=("127.0.0.1", "apiserver.cluster.local", "192.168.0.3", "10.103.97.2"),
    service_subnet="10.96.0.0/12",
    dns_domain="cluster.local",
    control_plane_endpoint="apiserver.cluster.local:6443",
)


def certs(*extra: str) -> None:
    out = run("certs", *MASTERS, "--version", "v1.30.4", "--node-name", "m0", *extra)
    assert out.exit_code == 0, out.output


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def names(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> set[str]:
    return {str(a.value) for a in cert.subject.get_attributes_for_oid(oid)}


def openssl_verify(ca: Path, cert: Path, purpose: str | None = None) -> None:
    argv = ["openssl", "verify", "-CAfile", str(ca)]
    if purpose:
        argv += ["-purpose", purpose]
    proc = subprocess.run([*argv, str(cert)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(": OK"), proc.stdout + proc.stderr


def lifetime_years(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).days / 365


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_every_ca_is_self_signed_for_99_years_with_cert_sign_usage(made: Tree) -> None:
    tree = made
    for name, cn in CAS.items():
        cert = load(tree.pki / f"{name}.crt")
        openssl_verify(tree.pki / f"{name}.crt", tree.pki / f"{name}.crt")
        assert names(cert, NameOID.COMMON_NAME) == {cn}
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign and usage.digital_signature and usage.key_encipherment
        assert 99 <= lifetime_years(cert) < 99.1
        assert stat.S_IMODE((tree.pki / f"{name}.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_leaf_certificate_matches_the_table_and_verifies_against_its_ca(
    made: Tree, name: str
) -> None:
    tree = made
    ca, cn, orgs, ekus, dns, ips = LEAVES[name]
    path = tree.pki / f"{name}.crt"
    openssl_verify(tree.pki / f"{ca}.crt", path)
    for eku, purpose in ((SERVER, "sslserver"), (CLIENT, "sslclient")):
        if eku in ekus:
            openssl_verify(tree.pki / f"{ca}.crt", path, purpose)
    cert = load(path)
    assert names(cert, NameOID.COMMON_NAME) == {cn}
    assert names(cert, NameOID.ORGANIZATION_NAME) == orgs
    assert set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == ekus
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert pki.cert_names(cert) == (dns, ips)
    assert 99 <= lifetime_years(cert) < 99.1
    key = tree.pki / f"{name}.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_service_account_key_pair_belongs_together_and_the_private_half_is_0600(
    made: Tree,
) -> None:
    tree = made
    key = serialization.load_pem_private_key((tree.pki / "sa.key").read_bytes(), None)
    pub = serialization.load_pem_public_key((tree.pki / "sa.pub").read_bytes())
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*fmt) == pub.public_bytes(*fmt)
    assert stat.S_IMODE((tree.pki / "sa.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("filename", sorted(KUBECONFIGS))
def test_kubeconfig_embeds_the_ca_and_a_client_cert_as_kubeadm_would(
    made: Tree, filename: str, tmp_path: Path
) -> None:
    tree = made
    cn, orgs, server = KUBECONFIGS[filename]
    path = tree.kube / filename
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = yaml.safe_load(path.read_bytes())
    cluster = doc["clusters"][0]["cluster"]
    assert (
        base64.b64decode(cluster["certificate-authority-data"])
        == (tree.pki / "ca.crt").read_bytes()
    )
    assert cluster["server"] == server
    assert doc["users"][0]["name"] == cn and doc["current-context"] == f"{cn}@kubernetes"
    client = tmp_path / "client.crt"
    client.write_bytes(base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]))
    openssl_verify(tree.pki / "ca.crt", client, "sslclient")
    cert = load(client)
    assert names(cert, NameOID.COMMON_NAME) == {cn}
    assert names(cert, NameOID.ORGANIZATION_NAME) == orgs
    assert 99 <= lifetime_years(cert) < 99.1


def test_before_1_29_admin_is_in_system_masters_and_there_is_no_super_admin(tree: Tree) -> None:
    out = run("certs", *MASTERS, "--version", "v1.28.9", "--node-name", "m0")
    assert out.exit_code == 0, out.output
    admin = yaml.safe_load((tree.kube / "admin.conf").read_bytes())
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(admin["users"][0]["user"]["client-certificate-data"])
    )
    assert names(cert, NameOID.ORGANIZATION_NAME) == {"system:masters"}
    assert not (tree.kube / "super-admin.conf").exists()


def test_years_sets_every_lifetime(tree: Tree) -> None:
    certs("--years", "10")
    for path in [*tree.pki.rglob("*.crt")]:
        assert 10 <= lifetime_years(load(path)) < 10.1, path


def test_a_key_left_world_readable_gets_0600_back(tree: Tree) -> None:
    certs()
    (tree.pki / "ca.key").chmod(0o644)
    certs()
    assert stat.S_IMODE((tree.pki / "ca.key").stat().st_mode) == 0o600


def test_running_again_changes_nothing(tree: Tree) -> None:
    certs()
    before = snapshot(tree.root)
    certs()
    assert snapshot(tree.root) == before


def test_existing_cas_are_kept_and_a_leaf_missing_a_name_is_reissued_after_a_backup(
    tree: Tree,
) -> None:
    certs()
    before = snapshot(tree.pki)
    certs("--cert-sans", "k8s.example.com")
    after = snapshot(tree.pki)
    for name in ("ca.crt", "ca.key", "front-proxy-ca.crt", "etcd/ca.key", "sa.key", "sa.pub"):
        assert after[name] == before[name], name
    assert after["apiserver.crt"] != before["apiserver.crt"]
    assert "k8s.example.com" in pki.cert_names(load(tree.pki / "apiserver.crt"))[0]
    saved = [n for n in after if n.startswith("apiserver.crt.lvscare-py-")]
    assert len(saved) == 1 and after[saved[0]] == before["apiserver.crt"]
    assert after["etcd/server.crt"] == before["etcd/server.crt"]  # nothing wrong with it


def test_a_kubeadm_style_one_year_leaf_is_replaced_by_a_long_lived_one(tree: Tree) -> None:
    certs()
    key = tree.pki / "apiserver.key"
    ca = pki.load_pair((tree.pki / "ca.crt").read_bytes(), (tree.pki / "ca.key").read_bytes())
    spec = next(s for s in pki.leaf_specs(FACTS) if s.name == "apiserver")
    own = pki.load_pair((tree.pki / "apiserver.crt").read_bytes(), key.read_bytes()).key
    one_year = pki.make_leaf(spec, own, ca, 1, dt.datetime.now(dt.UTC))
    (tree.pki / "apiserver.crt").write_bytes(pki.cert_pem(one_year))
    certs()
    assert 99 <= lifetime_years(load(tree.pki / "apiserver.crt")) < 99.1
    openssl_verify(tree.pki / "ca.crt", tree.pki / "apiserver.crt")


def test_leaves_never_outlive_a_kept_short_lived_ca(tree: Tree) -> None:
    certs("--years", "1")
    certs("--years", "99")
    assert lifetime_years(load(tree.pki / "ca.crt")) < 2  # the CA is never replaced...
    cert = load(tree.pki / "apiserver.crt")  # ...and no leaf outlives it
    assert cert.not_valid_after_utc <= load(tree.pki / "ca.crt").not_valid_after_utc


def test_an_expired_ca_stops_us_and_is_not_replaced(tree: Tree) -> None:
    now = dt.datetime.now(dt.UTC)
    old = pki.Pki(tree.pki, 1, now=now - dt.timedelta(days=800))
    old.ensure_cas(create=True)
    for w in old.writes:
        w.path.parent.mkdir(parents=True, exist_ok=True)
        w.path.write_bytes(w.data)
    before = snapshot(tree.pki)
    out = run("certs", *MASTERS, "--version", "v1.30.4", "--node-name", "m0")
    assert out.exit_code == 1
    assert "ca.crt: it expired on" in out.output and "not replacing it" in out.output
    assert snapshot(tree.pki) == before


def test_a_ca_certificate_without_its_key_stops_us(tree: Tree) -> None:
    certs()
    (tree.pki / "etcd" / "ca.key").unlink()
    out = run("certs", *MASTERS, "--version", "v1.30.4", "--node-name", "m0")
    assert out.exit_code == 1
    assert "etcd/ca.crt exists but" in out.output


def test_joining_master_makes_its_own_leaves_from_the_cluster_cas(
    tree: Tree, kubeadm: Kubeadm, tmp_path: Path
) -> None:
    certs()
    shared = {name: (tree.pki / name).read_bytes() for name in pki.SHARED_FILES}
    shutil.rmtree(tree.kube)
    for name, data in shared.items():
        (tree.pki / name).parent.mkdir(parents=True, exist_ok=True)
        (tree.pki / name).write_bytes(data)
    out = run(
        "master",
        "--join",
        *MASTERS,
        "--version",
        "v1.30.4",
        "--node-name",
        "m1",
        "--ip",
        "192.168.0.3",
        "--token",
        TOKEN,
        "--discovery-token-ca-cert-hash",
        CA_HASH,
    )
    assert out.exit_code == 0, out.output
    for name, data in shared.items():
        assert (tree.pki / name).read_bytes() == data
    for name, (ca, *_rest) in LEAVES.items():
        openssl_verify(tree.pki / f"{ca}.crt", tree.pki / f"{name}.crt")
    dns, ips = pki.cert_names(load(tree.pki / "apiserver.crt"))
    assert "m1" in dns and "m0" not in dns and "192.168.0.3" in ips
    assert pki.cert_names(load(tree.pki / "etcd/peer.crt")) == (
        {"m1", "localhost"},
        {"192.168.0.3", "127.0.0.1", "::1"},
    )
    # kubeadm join refuses to run with a kubelet.conf: the only one is the stand-in's own
    assert (tree.kube / "kubelet.conf").read_text() == "written by kubeadm join\n"
    assert not (tree.kube / "super-admin.conf").exists()
    cm = yaml.safe_load((tree.kube / "controller-manager.conf").read_bytes())
    assert cm["clusters"][0]["cluster"]["server"] == "https://192.168.0.3:6443"


def test_joining_master_without_the_cluster_cas_is_told_what_to_copy(
    tree: Tree, kubeadm: Kubeadm
) -> None:
    out = run(
        "master",
        "--join",
        *MASTERS,
        "--version",
        "v1.30.4",
        "--node-name",
        "m1",
        "--ip",
        "192.168.0.3",
        "--token",
        TOKEN,
        "--discovery-token-ca-cert-hash",
        CA_HASH,
    )
    assert out.exit_code == 1
    assert "ca.crt is missing: copy the cluster's CAs" in out.output
    assert kubeadm.argvs() == []
    assert not tree.pki.exists() or not any(tree.pki.rglob("*.crt"))
