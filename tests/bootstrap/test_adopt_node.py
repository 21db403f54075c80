"""`bootstrap node` on a node the seed system (sealos v3) made: its lvscare pod is moved out
of the manifests directory (kept in the state dir), ours replaces it, its kubeadm join is
kept, its hosts line becomes our one line; `clean` afterwards does not put the seed's back."""

from __future__ import annotations

import stat

import pytest
import yaml

from bootstrap.host import hosts
from bootstrap.host.seed import seed_vs
from tests.support.host_tree import Rules, Tree, run
from tests.support.kubeadm import CA_HASH, TOKEN, Kubeadm
from tests.support.seed_pod import seed_pod

MASTERS = ["--master", "192.168.0.2", "--master", "192.168.0.3"]
NODE = ["node", *MASTERS, "--vip", "10.103.97.2", "--token", TOKEN]
NODE += ["--discovery-token-ca-cert-hash", CA_HASH, "--node-name", "n1", "--version", "v1.30.4"]


def seed_node(tree: Tree, vs: str = "10.103.97.2:6443", joined: bool = True) -> bytes:
    """What sealos left: its pod, its hosts line, and (joined) kubeadm's kubelet.conf."""
    manifests = tree.kube / "manifests"
    manifests.mkdir(parents=True)
    pod = seed_pod(vs=vs).encode()
    (manifests / "kube-sealyun-lvscare.yaml").write_bytes(pod)
    if joined:
        (tree.kube / "kubelet.conf").write_text("written by kubeadm join (the seed's)\n")
    tree.hosts.write_bytes(tree.hosts.read_bytes() + b"\n10.103.97.2 apiserver.cluster.local\n")
    return pod


def apiserver_lines(tree: Tree) -> list[bytes]:
    lines = tree.hosts.read_bytes().split(b"\n")
    return [x for x in lines if b"apiserver.cluster" in x and not x.startswith(b"#")]


def test_a_seed_node_is_taken_over_its_pod_kept_aside_and_its_join_kept(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    pod = seed_node(tree)
    out = run(*NODE)
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tree.kube / "manifests").iterdir()) == ["kube-lvscare.yaml"]
    kept = tree.state / "adopted" / "kube-sealyun-lvscare.yaml"
    assert kept.read_bytes() == pod
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kubeadm.argvs() == []  # the seed's join is kept, not made again
    assert rules.calls == [("create", "10.103.97.2:6443", ["192.168.0.2:6443", "192.168.0.3:6443"])]
    assert apiserver_lines(tree) == [hosts.managed_line("10.103.97.2")]
    ours = yaml.safe_load((tree.kube / "manifests" / "kube-lvscare.yaml").read_text())
    assert "--vs" in ours["spec"]["containers"][0]["args"]


def test_a_seed_pod_for_another_vip_has_its_virtual_server_removed(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    seed_node(tree, vs="10.103.97.9:6443")
    out = run(*NODE)
    assert out.exit_code == 0, out.output
    assert [c[:2] for c in rules.calls] == [
        ("create", "10.103.97.2:6443"),
        ("remove", "10.103.97.9:6443"),
    ]


def test_a_half_made_seed_node_has_its_pod_moved_then_joins(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    seed_node(tree, joined=False)
    out = run(*NODE)
    assert out.exit_code == 0, out.output
    assert [a[:2] for a in kubeadm.argvs()] == [["kubeadm", "join"]]  # into an empty manifests/


def test_adopting_again_changes_nothing(tree: Tree, kubeadm: Kubeadm, rules: Rules) -> None:
    seed_node(tree)
    assert run(*NODE).exit_code == 0
    before = {p: p.read_bytes() for p in tree.root.rglob("*") if p.is_file()}
    again = run(*NODE)
    assert again.exit_code == 0, again.output
    assert {p: p.read_bytes() for p in tree.root.rglob("*") if p.is_file()} == before
    assert kubeadm.argvs() == []


def test_dry_run_on_a_seed_node_changes_nothing_and_says_what_it_would_move(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    seed_node(tree)
    before = {p: p.read_bytes() for p in tree.root.rglob("*") if p.is_file()}
    out = run(*NODE, "--dry-run")
    assert out.exit_code == 0, out.output
    assert {p: p.read_bytes() for p in tree.root.rglob("*") if p.is_file()} == before
    assert "would remove" in out.output and "kube-sealyun-lvscare.yaml" in out.output
    assert rules.calls == []


def test_clean_after_adoption_does_not_put_the_seed_pod_back(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    pod = seed_node(tree)
    assert run(*NODE).exit_code == 0
    out = run("clean")
    assert out.exit_code == 0, out.output
    assert not (tree.kube / "manifests" / "kube-sealyun-lvscare.yaml").exists()
    assert not (tree.kube / "manifests" / "kube-lvscare.yaml").exists()
    assert (tree.state / "adopted" / "kube-sealyun-lvscare.yaml").read_bytes() == pod
    assert "not put back" in out.output
    assert apiserver_lines(tree) == []  # the seed's line became ours, and ours is gone


@pytest.mark.parametrize(
    ("line", "count"),
    [
        (b"10.103.97.2 apiserver.cluster.local", 1),
        (b"10.103.97.2 apiserver.cluster.local #sealos", 1),
        (b"10.103.97.2\tapiserver.cluster.local\r", 1),
    ],
)
def test_a_seed_hosts_line_ends_as_exactly_one_line_of_ours(line: bytes, count: int) -> None:
    before = b"127.0.0.1 localhost\n" + line + b"\n" + line + b"\n"
    after = hosts.set_entry(before, "10.103.97.2")
    ours = [x for x in after.split(b"\n") if b"apiserver.cluster.local" in x]
    assert len(ours) == count
    assert ours[0].rstrip(b"\r") == hosts.managed_line("10.103.97.2")
    assert after.startswith(b"127.0.0.1 localhost\n")


@pytest.mark.parametrize(
    ("text", "vs"),
    [
        (seed_pod(), "10.103.97.2:6443"),
        ("spec:\n  containers:\n  - args: [care, --vs=10.1.1.1:6443]\n", "10.1.1.1:6443"),
        ("not: [yaml\n  lvscare care --vs 10.2.2.2:6443 --rs x\n", "10.2.2.2:6443"),
        ("kind: Pod\n", None),
    ],
)
def test_the_seed_pods_virtual_server_is_read_from_its_manifest(text: str, vs: str | None) -> None:
    assert seed_vs(text.encode()) == vs
