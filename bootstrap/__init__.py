"""bootstrap: thin kubeadm wrapper that gives every node a highly available control plane path.

host/ does one host's work, cluster/ drives every host over SSH, cli/ is the command line;
the modules here (errors, defaults, inputs, join, fsutil) are shared by all three.
"""
