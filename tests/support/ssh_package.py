"""An offline package in the seed documents' layout, with recording stand-ins in bin/.

kube/bin/kubeadm (the host suite's stand-in, failing what FAIL_FILE lists, as slow as
SLOW_FILE says, saying the package's version), kube/bin/kubectl (`get node` says Ready unless
NOT_READY_FILE names the node), kube/bin/etcdctl and kube/bin/systemctl (the lab has no systemd)
record their argv (and the --config file, and the host's /etc/hosts) to the host's CALLS_LOG;
kube/bin/bootstrap is lvscare-py's real single-host command from this checkout, with only the
IPVS calls recorded instead of made (this kernel has no IPVS; the kernel lab proves those).
shell/init.sh installs bin/ into /usr/local/bin, as the seed packages do; on a host whose
SLOW_INIT_FILE holds seconds it sleeps that long first, and where FAIL_FILE lists `init.sh`
it fails.
"""

from __future__ import annotations

import io
import json
import random
import sys
import tarfile
from pathlib import Path

from tests.support.kubeadm import kubeadm_stand_in
from tests.support.ssh_hosts import CALLS_LOG, FAIL_FILE, SLOW_FILE, SLOW_INIT_FILE

RECORD = f"""\
import json, os, sys, time
def record(argv, **extra):
    entry = {{"argv": argv, "ns": time.time_ns(), **extra}}
    with open({CALLS_LOG!r}, "a") as f:
        f.write(json.dumps(entry) + "\\n")
"""

# Where it exists on a host, `kubeadm upgrade` there renews the apiserver certificate for a
# year, as the real one does unless told --certificate-renewal=false (RENEW_FILE.always: even
# then, to see `upgrade` catch a shorter certificate).
RENEW_FILE = "/etc/lvpy-renew"
# Node names listed here (on the host running kubectl): `kubectl get node NAME` says not Ready.
NOT_READY_FILE = "/etc/lvpy-not-ready"
KUBEADM = kubeadm_stand_in(
    log=CALLS_LOG, fail_file=FAIL_FILE, slow_file=SLOW_FILE, renew_file=RENEW_FILE
)

KUBECTL = f"""\
#!{sys.executable}
{RECORD}
args = sys.argv[1:]
record(["kubectl", *args])
words = [a for i, a in enumerate(args) if not a.startswith("-") and args[i - 1] != "--kubeconfig"]
if words[:2] == ["get", "node"]:
    listed = open({NOT_READY_FILE!r}).read().split() if os.path.exists({NOT_READY_FILE!r}) else []
    print("False" if words[2] in listed else "True", end="")
elif words[:1] in (["drain"], ["uncordon"]):
    print(f"node/{{words[1]}} {{words[0]}}ed")
else:
    print("node deleted")
"""

# The package's etcdctl (a real package may carry one): `snapshot save PATH` writes PATH.
ETCDCTL = f"""\
#!{sys.executable}
{RECORD}
args = sys.argv[1:]
record(["etcdctl", *args], env={{"ETCDCTL_API": os.environ.get("ETCDCTL_API", "")}})
if args[-3:-1] == ["snapshot", "save"]:
    with open(args[-1], "wb") as f:
        f.write(b"etcd snapshot stand-in\\n")
    print(f"Snapshot saved at {{args[-1]}}")
"""

# The lab has no systemd: `systemctl` records what it was asked.
SYSTEMCTL = f"""\
#!{sys.executable}
{RECORD}
record(["systemctl", *sys.argv[1:]])
"""

BOOTSTRAP = f"""\
#!{sys.executable}
import sys
sys.dont_write_bytecode = True
{RECORD}
from bootstrap.cli import main
from bootstrap.host import lvscare_rules
lvscare_rules.create_rules = lambda vs, rs, daemon: record(
    ["ipvs", "create", vs, *rs, *([f"--mode={{daemon.mode}}"] if daemon.mode != "route" else [])]
)
lvscare_rules.remove_rules = lambda vs: record(["ipvs", "remove", vs])
main()
"""

INIT_SH = f"""\
#!/bin/sh
set -e
cd "$(dirname "$0")/.."
if [ -f {SLOW_INIT_FILE} ]; then sleep "$(cat {SLOW_INIT_FILE})"; fi
if grep -qx init.sh {FAIL_FILE} 2>/dev/null; then
    echo "init.sh: [stand-in] told to fail" >&2
    exit 1
fi
mkdir -p /usr/local/bin
for f in bin/*; do install -m 0755 "$f" /usr/local/bin/; done
echo '{{"argv": ["init.sh"]}}' >> {CALLS_LOG}
"""

CLEAN_SH = f"""\
#!/bin/sh
cd "$(dirname "$0")/.."
for f in bin/*; do
    n=/usr/local/bin/$(basename "$f")
    if cmp -s "$f" "$n"; then rm -f "$n"; fi
done
echo '{{"argv": ["clean.sh"]}}' >> {CALLS_LOG}
"""


def build(
    path: Path,
    padding: int = 1024,
    top: str = "kube",
    noise: int = 0,
    cni: str | None = None,
    version: str = "v1.30.4",
    manifest: bool = False,
) -> Path:
    """The package as kube.tar.gz; `padding` random-ish bytes in images/ to give it size,
    `noise` bytes that do not compress (the package is then at least that big), `cni` a
    manifest in conf/net/; its kubeadm says `version`; `manifest`: a manifest.json naming
    that version too, as `bootstrap package build` writes (else none, as sealos' packages)."""
    kubeadm = kubeadm_stand_in(
        log=CALLS_LOG,
        fail_file=FAIL_FILE,
        slow_file=SLOW_FILE,
        renew_file=RENEW_FILE,
        version=version,
    )
    files = {
        "bin/kubeadm": (kubeadm, 0o755),
        "bin/kubectl": (KUBECTL, 0o755),
        "bin/etcdctl": (ETCDCTL, 0o755),
        "bin/systemctl": (SYSTEMCTL, 0o755),
        "bin/bootstrap": (BOOTSTRAP, 0o755),
        "shell/init.sh": (INIT_SH, 0o755),
        "shell/clean.sh": (CLEAN_SH, 0o755),
        "conf/README": ("configuration files of the package\n", 0o644),
    }
    if cni is not None:
        files["conf/net/cni.yaml"] = (cni, 0o644)
    if manifest:
        doc = {"format": 1, "kubernetes": version, "files": {}}
        files["manifest.json"] = (json.dumps(doc) + "\n", 0o644)
    with tarfile.open(path, "w:gz") as tar:
        for name, (text, mode) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        blob = (bytes(range(256)) * (padding // 256 + 1))[:padding]
        info = tarfile.TarInfo(f"{top}/images/images.tar")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
        if noise:
            data = random.Random(noise).randbytes(noise)
            info = tarfile.TarInfo(f"{top}/images/noise.tar")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
