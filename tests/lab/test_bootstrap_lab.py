"""`bootstrap node` and `bootstrap clean` on a real kernel: the IPVS rules exist before
`kubeadm join` runs (kubelet must reach the VIP during the join) and are gone after clean.

kubeadm is the host suite's recording stand-in, wrapped so that it also writes down the
kernel's IPVS table at the moment `kubeadm join` is called.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.host_tree import Tree, run, tree
from tests.support.kubeadm import CA_HASH, TOKEN, Kubeadm, kubeadm
from tests.support.labnet import Lab, ipvs_table, ipvsadm_table

__all__ = ["kubeadm", "tree"]  # fixtures, imported for this module's tests

pytestmark = pytest.mark.kernel

VIP = "10.103.97.2"
KEY = (VIP, 6443)


@pytest.fixture
def table_at_join(kubeadm: Kubeadm, tmp_path: Path) -> Path:
    """Wrap the stand-in: on `join`, dump the IPVS table first."""
    record = tmp_path / "ipvs-at-join.txt"
    bin_dir = Path(os.environ["PATH"].split(os.pathsep)[0])
    inner = bin_dir / "kubeadm-recorder"
    (bin_dir / "kubeadm").rename(inner)
    wrapper = bin_dir / "kubeadm"
    wrapper.write_text(
        f'#!/bin/sh\nif [ "$1" = join ]; then ipvsadm -Ln > {record}; fi\nexec {inner} "$@"\n'
    )
    wrapper.chmod(0o755)
    return record


def test_node_creates_ipvs_rules_before_join_and_clean_removes_them(
    lab: Lab, tree: Tree, kubeadm: Kubeadm, table_at_join: Path
) -> None:
    masters = [a for m in lab.masters for a in ("--master", m.ip)]
    out = run(
        "node", *masters, "--vip", VIP, "--token", TOKEN,
        "--discovery-token-ca-cert-hash", CA_HASH, "--node-name", "n1",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    at_join = table_at_join.read_text()
    assert f"TCP  {VIP}:6443 rr" in at_join
    for m in lab.masters:
        assert f"{m.ip}:6443" in at_join
    assert ipvs_table()[KEY]["dests"] == {(m.ip, 6443): 1 for m in lab.masters}
    assert ipvsadm_table()[KEY]["forward"] == {(m.ip, 6443): "masq" for m in lab.masters}
    assert (tree.kube / "manifests" / "kube-lvscare.yaml").exists()

    for _ in range(2):  # clean twice: the second finds nothing and is still fine
        out = run("clean")
        assert out.exit_code == 0, out.output
        assert KEY not in ipvs_table()
