"""An offline package in the seed documents' layout, with recording stand-ins in bin/.

kube/bin/kubeadm (the host suite's stand-in, failing what FAIL_FILE lists, as slow as
SLOW_FILE says) and kube/bin/kubectl
record their argv (and the --config file, and the host's /etc/hosts) to the host's CALLS_LOG;
kube/bin/bootstrap is lvscare-py's real single-host command from this checkout, with only the
IPVS calls recorded instead of made (this kernel has no IPVS; the kernel lab proves those).
shell/init.sh installs bin/ into /usr/local/bin, as the seed packages do; on a host whose
SLOW_INIT_FILE holds seconds it sleeps that long first, and where FAIL_FILE lists `init.sh`
it fails.
"""

from __future__ import annotations

import io
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

KUBEADM = kubeadm_stand_in(log=CALLS_LOG, fail_file=FAIL_FILE, slow_file=SLOW_FILE)

KUBECTL = f"""\
#!{sys.executable}
{RECORD}
record(["kubectl", *sys.argv[1:]])
print("node deleted")
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
    path: Path, padding: int = 1024, top: str = "kube", noise: int = 0, cni: str | None = None
) -> Path:
    """The package as kube.tar.gz; `padding` random-ish bytes in images/ to give it size,
    `noise` bytes that do not compress (the package is then at least that big), `cni` a
    manifest in conf/net/."""
    files = {
        "bin/kubeadm": (KUBEADM, 0o755),
        "bin/kubectl": (KUBECTL, 0o755),
        "bin/bootstrap": (BOOTSTRAP, 0o755),
        "shell/init.sh": (INIT_SH, 0o755),
        "shell/clean.sh": (CLEAN_SH, 0o755),
        "conf/README": ("configuration files of the package\n", 0o644),
    }
    if cni is not None:
        files["conf/net/cni.yaml"] = (cni, 0o644)
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
