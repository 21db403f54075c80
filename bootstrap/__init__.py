"""bootstrap: thin kubeadm wrapper that gives every node a highly available control plane path."""
