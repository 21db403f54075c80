"""One host: the steps of `master0`, `master --join`, `node`, `certs` and `clean`, and all they
make (hosts line, PKI, kubeconfigs, kubeadm configuration, lvscare rules). Never the cluster."""
