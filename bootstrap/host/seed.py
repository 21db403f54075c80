"""What the seed system (sealos v3) leaves on a node it made, read without changing anything.

Its node runs lvscare as the static pod /etc/kubernetes/manifests/kube-sealyun-lvscare.yaml
(`lvscare care --vs 10.103.97.2:6443 --health-path /healthz --health-schem https --rs
m1:6443 ...`, image fanux/lvscare or sealyun/lvscare). `bootstrap node` takes such a node
over: that manifest moves out of kubelet's sight (so never two daemons guard one VIP) and
ours takes its place; the kubeadm join the seed already made is kept.
"""

from __future__ import annotations

import re

import yaml

SEED_MANIFEST = "kube-sealyun-lvscare.yaml"
ADOPTED_DIR = "adopted"  # under the state dir: the seed's files we moved away, kept

_VS_FLAG = re.compile(r"--vs(?:=|\s+)(\S+)")


def seed_vs(manifest: bytes) -> str | None:
    """The virtual server (`--vs HOST:PORT`) the seed's lvscare pod guards; None if the
    manifest does not say (or is not YAML we can read)."""
    text = manifest.decode(errors="replace")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    words: list[str] = []
    if isinstance(doc, dict):
        for container in (doc.get("spec") or {}).get("containers") or []:
            if isinstance(container, dict):
                for key in ("command", "args"):
                    value = container.get(key)
                    if isinstance(value, list):
                        words += [str(v) for v in value]
    for i, word in enumerate(words):
        if word == "--vs" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--vs="):
            return word.removeprefix("--vs=")
    match = _VS_FLAG.search(text) if not words else None
    return match.group(1).strip("'\"") if match else None
