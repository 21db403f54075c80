"""The static pod the seed system (sealos) leaves on a node it joined, as adoption finds it."""

from __future__ import annotations

SEED_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: kube-sealyun-lvscare
  namespace: kube-system
spec:
  containers:
  - command:
    - /usr/bin/lvscare
    - care
    - --vs
    - {vs}
    - --health-path
    - /healthz
    - --health-schem
    - https
    - --rs
    - {master}:6443
    image: fanux/lvscare:latest
    name: kube-sealyun-lvscare
  hostNetwork: true
"""


def seed_pod(vs: str = "10.103.97.2:6443", master: str = "192.168.0.2") -> str:
    """The seed's `kube-sealyun-lvscare.yaml` guarding `vs` with one master."""
    return SEED_POD.format(vs=vs, master=master)
