"""A cluster made elsewhere (the seed system, sealos v3) taken over with the seed's forms:
`join --master M --node N` and `clean --master M --node N --user root --passwd P` with no
cluster file, a seed-made node adopted, and `--cluster NAME` keeping clusters side by side.

Real sshd hosts (tests/support/ssh_hosts.py). m0 stands for the seed's master: the recording
kubeadm and kubectl stand-ins put on its PATH by hand, no package of ours. n1 is a node the
seed made (its lvscare pod, its kubelet.conf, its hosts line); n2 a fresh host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import Result

from tests.support import ssh_package
from tests.support.seed_pod import seed_pod
from tests.support.ssh_client import Client, bootstrap, lab_and_client
from tests.support.ssh_hosts import Host, Lab

SEED_MANIFEST = "/etc/kubernetes/manifests/kube-sealyun-lvscare.yaml"
OUR_MANIFEST = "/etc/kubernetes/manifests/kube-lvscare.yaml"
KEPT = "/var/lib/lvscare-py/adopted/kube-sealyun-lvscare.yaml"
SEED_LINE = "10.103.97.2 apiserver.cluster.local"


@dataclass
class Seed:
    lab: Lab
    client: Client
    m0: Host
    n1: Host
    n2: Host

    def file(self, name: str) -> Any:
        path = self.client.home / ".lvscare-py" / "clusters" / name / "cluster.json"
        return json.loads(path.read_text())

    def key(self) -> tuple[str, str, str, str]:
        return ("--pk", str(self.client.key), "--pkg-url", str(self.client.package))


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    with lab_and_client(tmp_path_factory.mktemp("adopt")) as (lab, client):
        m0, n1, n2 = lab.many(["m0", "n1", "n2"])
        client.trust(m0, n1, n2)
        m0.write("/usr/local/bin/kubeadm", ssh_package.KUBEADM, 0o755)
        m0.write("/usr/local/bin/kubectl", ssh_package.KUBECTL, 0o755)
        n1.write(SEED_MANIFEST, seed_pod(master=m0.ip))
        n1.write("/etc/kubernetes/kubelet.conf", "written by kubeadm join (the seed's)\n")
        n1.write("/etc/hosts", n1.read("/etc/hosts") + SEED_LINE + "\n")
        yield Seed(lab, client, m0, n1, n2)


@pytest.fixture(scope="module")
def adopted(seed: Seed) -> Result:
    """The seed's join form, no cluster file, n1 a node the seed made."""
    return bootstrap(
        "join", "--cluster", "seed", "--master", seed.m0.addr, "--node", seed.n1.addr, *seed.key()
    )


@pytest.fixture(scope="module")
def second(seed: Seed, adopted: Result) -> Result:
    """A second cluster file beside the first: the same master, the fresh n2 joined."""
    assert adopted.exit_code == 0, adopted.output
    args = ("--cluster", "seed2", "--master", seed.m0.addr, "--node", seed.n2.addr)
    return bootstrap("join", *args, "--version", "v1.30.4", *seed.key())


def apiserver_lines(host: Host) -> list[str]:
    return [line for line in host.read("/etc/hosts").splitlines() if "apiserver.cluster" in line]


def argvs(host: Host, *prefix: str) -> list[list[str]]:
    return [c["argv"] for c in host.calls() if c["argv"][: len(prefix)] == list(prefix)]


def test_a_seed_made_node_is_taken_over_by_the_seeds_join_form(seed: Seed, adopted: Result) -> None:
    assert adopted.exit_code == 0, adopted.output
    n1 = seed.n1
    assert sorted(p.name for p in n1.path("/etc/kubernetes/manifests").iterdir()) == [
        "kube-lvscare.yaml"
    ]
    assert n1.read(KEPT) == seed_pod(master=seed.m0.ip)  # kept, out of kubelet's sight
    assert apiserver_lines(n1) == ["10.103.97.2 apiserver.cluster.local # lvscare-py"]
    assert argvs(n1, "kubeadm", "join") == []  # the seed's join is kept
    assert argvs(n1, "ipvs") == [["ipvs", "create", "10.103.97.2:6443", f"{seed.m0.ip}:6443"]]
    assert argvs(seed.m0, "kubeadm", "version") == [["kubeadm", "version", "-o", "short"]]
    assert argvs(seed.m0, "kubeadm", "token") == [
        ["kubeadm", "token", "create", "--print-join-command"]
    ]


def test_the_join_writes_a_cluster_file_of_what_it_learned(seed: Seed, adopted: Result) -> None:
    assert adopted.exit_code == 0, adopted.output
    record = seed.file("seed")
    assert record["masters"] == [seed.m0.addr] and record["nodes"] == [seed.n1.addr]
    assert record["version"] == "v1.30.4" and record["vip"] == "10.103.97.2"
    assert record["hosts"][seed.n1.addr]["result"] == "ok"
    assert not seed.client.cluster_file.exists()  # --cluster seed: not the default file


def test_a_second_cluster_file_lives_beside_the_first(seed: Seed, second: Result) -> None:
    assert second.exit_code == 0, second.output
    assert [a[:2] for a in argvs(seed.n2, "kubeadm", "join")] == [["kubeadm", "join"]]
    assert len(argvs(seed.m0, "kubeadm", "version")) == 1  # --version given: not asked again
    assert seed.file("seed2")["nodes"] == [seed.n2.addr]
    assert seed.file("seed")["nodes"] == [seed.n1.addr]


def test_clean_of_the_adopted_node_does_not_put_the_seed_pod_back(
    seed: Seed, adopted: Result, second: Result
) -> None:
    assert adopted.exit_code == 0, adopted.output
    assert second.exit_code == 0, second.output
    result = bootstrap(
        "clean", "--cluster", "seed", "--node", seed.n1.addr, "--pk", str(seed.client.key)
    )
    assert result.exit_code == 0, result.output
    n1 = seed.n1
    assert not n1.exists(SEED_MANIFEST) and not n1.exists(OUR_MANIFEST)
    assert n1.read(KEPT) == seed_pod(master=seed.m0.ip)
    assert apiserver_lines(n1) == []
    assert argvs(seed.m0, "kubectl")[-1][-3:] == ["node", "n1", "--ignore-not-found"]
    assert seed.file("seed")["nodes"] == []
    assert seed.n2.exists(OUR_MANIFEST)  # the other cluster's node: untouched


def test_clean_without_a_cluster_file_cleans_exactly_the_hosts_named(
    seed: Seed, second: Result
) -> None:
    assert second.exit_code == 0, second.output
    assert seed.n2.exists(OUR_MANIFEST)
    n1_calls = len(seed.n1.calls())
    password = seed.lab.root_password
    args = (
        "--master",
        seed.m0.addr,
        "--node",
        seed.n2.addr,
        "--user",
        "root",
        "--passwd",
        password,
    )
    result = bootstrap("clean", *args)
    assert result.exit_code == 0, result.output
    n2 = seed.n2
    assert not n2.exists(OUR_MANIFEST) and not n2.exists("/var/lib/lvscare-py/state.json")
    assert apiserver_lines(n2) == []
    assert [c["argv"][:2] for c in n2.calls()][-3:-1] == [["kubeadm", "reset"], ["ipvs", "remove"]]
    assert not argvs(seed.m0, "kubeadm", "reset")  # no bootstrap of ours there: left alone
    assert len(seed.n1.calls()) == n1_calls  # not named: untouched
    assert f"nothing of ours to undo): {seed.m0.addr}" in result.output  # the seed's master
    assert "not done" in result.output and "`kubectl delete node` of n2" in result.output
    assert not seed.client.cluster_file.exists()  # nothing recorded


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("join", "--node", "N1", "--pkg-url", "P"), "give --master"),
        (("join", "--master", "N1", "--node", "N1", "--pkg-url", "P"), "also given as --master"),
        (("clean", "--master", "N1", "--node", "N1", "--passwd", "x"), "also given as --master"),
        (("join", "--cluster", "../x", "--master", "M0", "--node", "N1"), "--cluster"),
        (("clean", "--cluster", "Bad_Name", "--node", "N1"), "--cluster"),
        (
            (
                "init",
                "--cluster",
                "a/b",
                "--master",
                "M0",
                "--pkg-url",
                "P",
                "--version",
                "v1.30.4",
            ),
            "--cluster",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    seed: Seed, args: tuple[str, ...], says: str
) -> None:
    hosts = {"M0": seed.m0.addr, "N1": seed.n1.addr, "P": str(seed.client.package)}
    before = {h.name: len(h.calls()) for h in (seed.m0, seed.n1, seed.n2)}
    files = sorted(seed.client.home.rglob("cluster.json"))
    result = bootstrap(*[hosts.get(a, a) for a in args], "--pk", str(seed.client.key))
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and says in result.output
    assert {h.name: len(h.calls()) for h in (seed.m0, seed.n1, seed.n2)} == before
    assert sorted(seed.client.home.rglob("cluster.json")) == files


def test_a_seed_form_join_that_joins_no_node_leaves_no_cluster_file(seed: Seed) -> None:
    gone = seed.lab.empty_host()  # connections refused
    args = ("--cluster", "failed", "--master", seed.m0.addr, "--node", gone)
    result = bootstrap("join", *args, "--version", "v1.30.4", *seed.key())
    assert result.exit_code == 1, result.output
    assert f"1 of 2 hosts failed: {gone}" in result.output
    path = seed.client.home / ".lvscare-py" / "clusters" / "failed" / "cluster.json"
    assert not path.exists()  # the same command can be run again as it was
