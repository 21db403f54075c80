"""Host fixtures: a temp tree for the host's files, the recording `kubeadm` on PATH, and
lvscare's IPVS calls recorded."""

from tests.support.host_tree import rules, tree
from tests.support.kubeadm import kubeadm

__all__ = ["kubeadm", "rules", "tree"]
