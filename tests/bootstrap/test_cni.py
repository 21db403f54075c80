"""The CNI manifest gets the cluster's pod network (kubeadm's podSubnet and the CNI's own
setting must agree), for the CNIs bootstrap knows; any other is left as it is."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from bootstrap.build.assemble import cni_kind
from bootstrap.cluster.cni import set_pod_network
from bootstrap.errors import StepFailed
from tests.support.built_package import CALICO

POD = "172.20.0.0/16"

FLANNEL = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  cni-conf.json: |
    {"name": "cbr0", "cniVersion": "0.3.1"}
  net-conf.json: |
    {
      "Network": "10.244.0.0/16",
      "Backend": {"Type": "vxlan"}
    }
"""

TIGERA = """\
apiVersion: operator.tigera.io/v1
kind: Installation
metadata:
  name: default
spec:
  calicoNetwork:
    ipPools:
    - cidr: 192.168.0.0/16
      encapsulation: VXLANCrossSubnet
    - cidr: fd00:10::/64
"""

OTHER = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: weave-net
spec: {}
"""


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_calico_gets_its_pool_even_where_the_manifest_has_it_commented_out() -> None:
    text, how = set_pod_network(CALICO, POD)
    ds = next(d for d in docs(text) if d["kind"] == "DaemonSet")
    env = ds["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": POD} in env
    assert {"name": "CALICO_IPV4POOL_IPIP", "value": "Always"} in env  # the rest kept
    assert "CALICO_IPV4POOL_CIDR" in how


def test_calico_replaces_a_pool_that_is_set() -> None:
    first, _ = set_pod_network(CALICO, "10.1.0.0/16")
    text, _ = set_pod_network(first, POD)
    env = next(d for d in docs(text) if d["kind"] == "DaemonSet")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    pools = [e for e in env if e["name"] == "CALICO_IPV4POOL_CIDR"]
    assert pools == [{"name": "CALICO_IPV4POOL_CIDR", "value": POD}]


def test_the_calico_operator_gets_its_ipv4_pool_and_keeps_the_ipv6_one() -> None:
    text, how = set_pod_network(TIGERA, POD)
    pools = docs(text)[0]["spec"]["calicoNetwork"]["ipPools"]
    assert pools[0]["cidr"] == POD and pools[0]["encapsulation"] == "VXLANCrossSubnet"
    assert pools[1]["cidr"] == "fd00:10::/64"
    assert "Installation" in how


def test_flannel_gets_its_network_and_keeps_its_backend() -> None:
    text, how = set_pod_network(FLANNEL, POD)
    conf = json.loads(docs(text)[0]["data"]["net-conf.json"])
    assert conf == {"Network": POD, "Backend": {"Type": "vxlan"}}
    assert "flannel" in how


def test_another_cni_is_applied_as_it_is() -> None:
    text, how = set_pod_network(OTHER, POD)
    assert text == OTHER
    assert "as it is" in how


def test_a_manifest_that_is_not_yaml_fails_the_step() -> None:
    with pytest.raises(StepFailed, match="not YAML"):
        set_pod_network("kind: [unclosed\n", POD)


@pytest.mark.parametrize(
    ("text", "kind"),
    [(CALICO, "calico"), (TIGERA, "calico"), (FLANNEL, "flannel"), (OTHER, "other")],
)
def test_the_package_records_which_cni_it_carries(text: str, kind: str) -> None:
    assert cni_kind(docs(text)) == kind
