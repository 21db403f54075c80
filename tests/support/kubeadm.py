"""The recording stand-in `kubeadm`, one for the host suite (on PATH) and the SSH suite (in
the offline package): no kubeadm, kubelet or cluster exists here. It prints what the real one
prints where bootstrap reads it (the join commands), and records every call."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "0123456789abcdef" * 4
CERT_KEY = "fedcba9876543210" * 4

# Shaped like the end of a real `kubeadm init --upload-certs`: tabs, backslash continuations.
INIT_OUTPUT = f"""\
[init] Using Kubernetes version: v1.30.4
[certs] Using existing ca certificate authority
[certs] Using existing apiserver certificate and key on disk
[kubeconfig] Using existing kubeconfig file: "/etc/kubernetes/admin.conf"
Your Kubernetes control-plane has initialized successfully!

To start using your cluster, you need to run the following as a regular user:

  mkdir -p $HOME/.kube
  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config

You can now join any number of the control-plane node running the following command on each as root:

  kubeadm join apiserver.cluster.local:6443 --token {TOKEN} \\
\t--discovery-token-ca-cert-hash {CA_HASH} \\
\t--control-plane --certificate-key {CERT_KEY}

Please note that the certificate-key gives access to cluster sensitive data, keep it secret!

Then you can join any number of worker nodes by running the following on each as root:

kubeadm join apiserver.cluster.local:6443 --token {TOKEN} \\
\t--discovery-token-ca-cert-hash {CA_HASH}
"""

# What `kubeadm token create --print-join-command` prints (a second token, as after 24 hours).
TOKEN2 = "zyxwvu.9876543210zyxwvu"

_KUBEADM = """\
#!{python}
import json, os, stat, sys, time
env = os.environ.get
args = sys.argv[1:]
kdir = env("BOOTSTRAP_KUBERNETES_DIR", "/etc/kubernetes")
entry = {{"argv": ["kubeadm", *args], "ns": time.time_ns()}}
if "--config" in args:
    with open(args[args.index("--config") + 1]) as f:
        entry["config"] = f.read()
        entry["config_mode"] = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
with open(env("BOOTSTRAP_HOSTS_FILE", "/etc/hosts"), "rb") as f:
    entry["hosts"] = f.read().decode()
with open(env("KUBEADM_LOG", {log!r}), "a") as f:
    f.write(json.dumps(entry) + "\\n")
def shorten(kdir):
    # What kubeadm does unless told --certificate-renewal=false: certificates for a year
    # (only where the renew file exists, so a test can see the check catch it).
    if "--certificate-renewal=false" in args and not os.path.exists({renew_file!r} + ".always"):
        return
    if not ({renew_file!r} and os.path.exists({renew_file!r})):
        return
    import subprocess
    pki = os.path.join(kdir, "pki")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
                    "-subj", "/CN=kube-apiserver", "-keyout", os.path.join(pki, "apiserver.key"),
                    "-out", os.path.join(pki, "apiserver.crt")], check=True, capture_output=True)
fail = [env("KUBEADM_FAIL", "")]
if {fail_file!r} and os.path.exists({fail_file!r}):
    fail += open({fail_file!r}).read().split()
if {slow_file!r} and os.path.exists({slow_file!r}):
    time.sleep(float(open({slow_file!r}).read()))  # long enough to be seen in the process table
if args[:1] and args[0] in fail:
    print("error execution phase preflight: [stand-in] told to fail", file=sys.stderr)
    sys.exit(1)
manifests = os.path.join(kdir, "manifests")
own = env("KUBEADM_VERSION", {version!r})
if args[:1] == ["version"]:
    print(own)
elif args[:2] == ["upgrade", "plan"]:
    print("[upgrade] Fetching available versions to upgrade to")
    print("You can now apply the upgrade by executing the following command:")
    print(f"\tkubeadm upgrade apply {{args[2] if len(args) > 2 else own}}")
elif args[:2] == ["upgrade", "apply"]:
    want = args[2]
    if [int(x) for x in want[1:].split("-")[0].split(".")[:2]] > [
        int(x) for x in own[1:].split("-")[0].split(".")[:2]
    ]:
        print(f'[upgrade/version] FATAL: the specified version to upgrade to "{{want}}" is '
              f'higher than the kubeadm version "{{own}}"', file=sys.stderr)
        sys.exit(1)
    shorten(kdir)
    print(f'[upgrade/successful] SUCCESS! Your cluster was upgraded to "{{want}}". Enjoy!')
elif args[:2] == ["upgrade", "node"]:
    shorten(kdir)
    print("[upgrade] The configuration for this node was successfully updated!")
elif args[:2] == ["config", "migrate"]:
    old = args[args.index("--old-config") + 1]
    new = args[args.index("--new-config") + 1]
    with open(old) as f:
        text = f.read()
    # as the real one: kubeadm's own documents only, the others (kubelet's, kube-proxy's) dropped
    docs = [d for d in text.split("\\n---\\n") if "apiVersion: kubeadm.k8s.io/" in d]
    with open(new, "w") as f:
        f.write("\\n---\\n".join(docs).replace("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"))
elif args[:1] == ["init"]:
    if env("KUBEADM_INIT_OUTPUT"):
        with open(env("KUBEADM_INIT_OUTPUT")) as f:
            sys.stdout.write(f.read())
    else:
        sys.stdout.write({init_output!r})
elif args[:1] == ["join"]:
    if os.path.isdir(manifests) and os.listdir(manifests):
        print("[ERROR DirAvailable--etc-kubernetes-manifests]: not empty", file=sys.stderr)
        sys.exit(1)
    os.makedirs(kdir, exist_ok=True)
    with open(os.path.join(kdir, "kubelet.conf"), "w") as f:
        f.write("written by kubeadm join\\n")
    print("This node has joined the cluster:")
elif args[:2] == ["token", "create"]:
    print("kubeadm join apiserver.cluster.local:6443 --token {token2} "
          "--discovery-token-ca-cert-hash {ca_hash} ")
elif args[:1] == ["reset"]:
    kubelet_conf = os.path.join(kdir, "kubelet.conf")
    if os.path.exists(kubelet_conf) and "kubeadm join" in open(kubelet_conf).read():
        os.remove(kubelet_conf)
    print("[reset] Deleted contents of the etcd data directory: /var/lib/etcd")
"""


def kubeadm_stand_in(
    *,
    log: str = "",
    fail_file: str = "",
    slow_file: str = "",
    renew_file: str = "",
    version: str = "v1.30.4",
) -> str:
    """The recording `kubeadm` of the host suite (on PATH) and of the SSH suite (in the
    package). Each call's argv, --config file (and its mode) and hosts file go as one JSON
    line to $KUBEADM_LOG or `log`; it fails the subcommand named in $KUBEADM_FAIL or listed
    in `fail_file`; it takes as many seconds as `slow_file` says, if there; paths follow
    $BOOTSTRAP_KUBERNETES_DIR and $BOOTSTRAP_HOSTS_FILE as bootstrap's do, else the real
    ones. `version` is what `kubeadm version` says ($KUBEADM_VERSION overrides it); `upgrade
    apply` refuses a newer minor than that, as the real one does. Where `renew_file` exists,
    `upgrade apply/node` renew the apiserver certificate for one year as the real kubeadm does
    by default (not with --certificate-renewal=false, unless `renew_file`.always exists too).
    `config migrate` writes the old file as v1beta4."""
    return _KUBEADM.format(
        python=sys.executable,
        log=log,
        fail_file=fail_file,
        slow_file=slow_file,
        renew_file=renew_file,
        version=version,
        init_output=INIT_OUTPUT,
        token2=TOKEN2,
        ca_hash=CA_HASH,
    )


@dataclass
class Kubeadm:
    """The stand-in's record: every call's argv, and the --config file as it was given."""

    log: Path
    calls: list[dict[str, Any]] = field(default_factory=list)

    def read(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.read() if c["argv"][1:2] != ["version"]]


@pytest.fixture
def kubeadm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kubeadm:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubeadm"
    script.write_text(kubeadm_stand_in())
    script.chmod(0o755)
    output = tmp_path / "init-output.txt"
    output.write_text(INIT_OUTPUT)
    log = tmp_path / "kubeadm.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBEADM_LOG", str(log))
    monkeypatch.setenv("KUBEADM_INIT_OUTPUT", str(output))
    monkeypatch.delenv("KUBEADM_FAIL", raising=False)
    return Kubeadm(log)
