"""The offline package as `bootstrap package build` makes it, from recording stand-ins.

No kubeadm, kubelet or kubectl exists here, so `--bin` holds stand-ins written in POSIX sh
(the hosts of the bare-host tests have no Python). Each records its argv as a JSON line in
the host's CALLS_LOG, as the host suite's Python stand-in does, and keeps a copy of any
file given to `--config` or `-f` under CALLS_DIR (the line names it). Everything else in
the package is real: the one-file `bootstrap` and `lvscare` from PyInstaller, the lvscare
image archive, init.sh and clean.sh.

Built once per checkout state (the executables' cache key and these scripts) under
.lab/built/ by `built_package()`: `python -m tests.support.built_package` (the test script
runs it before the host tests) or a host test's fixture. The kernel lab, which cannot run
PyInstaller, takes the one the host built last (`existing_package()`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.kubeadm import CA_HASH, INIT_OUTPUT, TOKEN2
from tests.support.ssh_hosts import CALLS_LOG, FAIL_FILE

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / ".lab" / "built"
CACHE = ROOT / ".lab" / "executables"
VERSION = "v1.30.4"
CALLS_DIR = "/var/log/lvpy-calls.d"
CNI_FILE = "calico.yaml"
LATEST = "latest"  # names the package built last

# One JSON line per call: the argv, and the copy of a --config / -f file if there is one.
RECORD = f"""\
json_str() {{ printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g')"; }}
record() {{
    mkdir -p {CALLS_DIR}
    n=$(ls {CALLS_DIR} | wc -l)
    copy=""
    prev=""
    for a in "$@"; do
        case "$prev" in --config|-f)
            cp "$a" "{CALLS_DIR}/$n.file" && copy="{CALLS_DIR}/$n.file" ;;
        esac
        prev="$a"
    done
    line='{{"argv": ['
    sep=""
    for a in "$@"; do line="$line$sep$(json_str "$a")"; sep=", "; done
    line="$line], \\"file\\": $(json_str "$copy"), \\"stand_in\\": \\"sh\\"}}"
    printf '%s\\n' "$line" >> {CALLS_LOG}
}}
fails() {{ [ -f {FAIL_FILE} ] && grep -qx "$1" {FAIL_FILE}; }}
"""

KUBEADM = f"""\
#!/bin/sh
# Recording stand-in for kubeadm (there is none here); POSIX sh, no Python.
set -eu
{RECORD}
record kubeadm "$@"
if fails "${{1:-}}"; then
    echo "error execution phase preflight: [stand-in] told to fail" >&2
    exit 1
fi
case "${{1:-}}" in
version) echo {VERSION} ;;
init) cat <<'EOF'
{INIT_OUTPUT}EOF
;;
join)
    if [ -d /etc/kubernetes/manifests ] && [ -n "$(ls -A /etc/kubernetes/manifests)" ]; then
        echo "[ERROR DirAvailable--etc-kubernetes-manifests]: not empty" >&2; exit 1
    fi
    mkdir -p /etc/kubernetes
    echo "written by kubeadm join" > /etc/kubernetes/kubelet.conf
    echo "This node has joined the cluster:" ;;
token)
    echo "kubeadm join apiserver.cluster.local:6443 --token {TOKEN2}" \
        "--discovery-token-ca-cert-hash {CA_HASH} " ;;
reset)
    if grep -qs "kubeadm join" /etc/kubernetes/kubelet.conf; then
        rm -f /etc/kubernetes/kubelet.conf
    fi
    echo "[reset] Deleted contents of the etcd data directory: /var/lib/etcd" ;;
esac
"""

KUBECTL = f"""\
#!/bin/sh
# Recording stand-in for kubectl; POSIX sh, no Python.
set -eu
{RECORD}
record kubectl "$@"
if fails kubectl; then echo "error: [stand-in] told to fail" >&2; exit 1; fi
case " $* " in
*" apply "*) echo "daemonset.apps/calico-node created" ;;
*" delete node "*) echo "node deleted" ;;
*) echo "kubectl stand-in" ;;
esac
"""

KUBELET = f"""\
#!/bin/sh
# Stand-in for kubelet: answers --version, records anything else.
set -eu
{RECORD}
case "${{1:-}}" in --version) echo "Kubernetes {VERSION}"; exit 0 ;; esac
record kubelet "$@"
"""

# A Calico manifest as calico.yaml ships it, cut to the part bootstrap changes.
CALICO = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: calico-node
  namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: calico-node
  namespace: kube-system
spec:
  selector:
    matchLabels:
      k8s-app: calico-node
  template:
    metadata:
      labels:
        k8s-app: calico-node
    spec:
      hostNetwork: true
      containers:
        - name: calico-node
          image: docker.io/calico/node:v3.28.1
          env:
            - name: DATASTORE_TYPE
              value: "kubernetes"
            # - name: CALICO_IPV4POOL_CIDR
            #   value: "192.168.0.0/16"
            - name: CALICO_IPV4POOL_IPIP
              value: "Always"
"""

STAND_INS = {"kubeadm": KUBEADM, "kubectl": KUBECTL, "kubelet": KUBELET}


def write_bin(directory: Path) -> Path:
    """A --bin directory of stand-ins."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in STAND_INS.items():
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
    return directory


def _key() -> str:
    from bootstrap.build.executables import source_key

    h = hashlib.sha256(source_key().encode())
    for text in (*STAND_INS.values(), CALICO, VERSION):
        h.update(text.encode())
    return h.hexdigest()[:16]


def _path() -> Path:
    return BUILT / f"kube-{VERSION}-{_key()}.tar.gz"


def existing_package() -> Path | None:
    """The package the host last built (the kernel lab cannot build one, and its run must
    not depend on files edited while it runs)."""
    latest = BUILT / LATEST
    if not latest.is_file():
        return None
    out = BUILT / latest.read_text().strip()
    return out if out.is_file() else None


def built_package() -> Path:
    """The package, built with the real `bootstrap package build` if this state has none."""
    out = _path()
    if not out.is_file():
        _build(out)
    (BUILT / LATEST).write_text(out.name + "\n")
    return out


def _build(out: Path) -> None:
    BUILT.mkdir(parents=True, exist_ok=True)
    for old in BUILT.glob("kube-*.tar.gz"):
        old.unlink()
    with tempfile.TemporaryDirectory(dir=BUILT) as tmp:
        build_package(Path(tmp), out)


def build_package(work: Path, out: Path, cache: Path = CACHE) -> None:
    """`bootstrap package build` as a user runs it (its own process), from the stand-ins
    and the Calico manifest written into `work`."""
    bin_dir = write_bin(work / "bin")
    cni = work / CNI_FILE
    cni.write_text(CALICO)
    argv = [
        sys.executable,
        "-c",
        "from bootstrap.cli import main; main()",
        "package",
        "build",
        "--bin",
        str(bin_dir),
        "--cni",
        str(cni),
        "--cache",
        str(cache),
        "-o",
        str(out),
    ]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0"}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bootstrap package build failed:\n{proc.stdout}{proc.stderr}")


if __name__ == "__main__":
    print(built_package())
