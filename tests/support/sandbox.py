"""A sandbox for the offline package's shell/init.sh and clean.sh, and package trees for
them to run from.

`Sandbox`: a private mount namespace (and, with `netns`, network namespace) with overlays
over /etc, /usr, /var and /opt whose upper layers are on a tmpfs, and a fresh /run, so
nothing of this machine changes. Without a kernel of its own to prove things on
(`fake_kernel`, the host's case: no IPVS), a tmpfs over /sys/module that a stand-in modprobe
fills, a tmpfs over /proc/sys/net holding the sysctls, a file over /proc/swaps that a
stand-in swapoff empties, and a stand-in systemctl (with /run/systemd/system, as under
systemd). containerd is Debian's, really running in the sandbox (tests/support/containerd.py);
Docker is a stand-in.

Used by tests/bootstrap/test_package_shell.py (the host) and tests/lab/test_init_sh_lab.py
(a real kernel: modules, sysctls, a real swap device).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.containerd import DEFAULT_CONFIG, Containerd

BUILD = Path(__file__).resolve().parents[2] / "bootstrap" / "build"
SCRIPTS = (BUILD / "shell" / "init.sh", BUILD / "shell" / "clean.sh")
HOST_OVERLAID = ("/etc", "/usr", "/var", "/opt")
SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
CONTAINERD_SOCK = "/run/containerd/containerd.sock"  # where init.sh looks
# What init.sh loads and sets.
MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack", "br_netfilter", "overlay")
SYSCTLS = (
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/ipv4/ip_forward",
)
# What package() puts in.
BINARIES = ("kubeadm", "kubelet", "kubectl", "bootstrap", "lvscare")
CNI_PLUGINS = ("bridge", "loopback")
IMAGE = "docker.io/lvscare-py/test:1"
IMAGE_GZ = "docker.io/lvscare-py/test-gz:1"


# ---------------------------------------------------------------- package and images


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_archive(ref: str, content: bytes) -> bytes:
    """A one-layer image as `docker save` writes it: `docker load` and `ctr images import`
    both take it."""
    layer = tar_bytes({"hello.txt": content})
    diff_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        }
    ).encode()
    config_id = hashlib.sha256(config).hexdigest()
    manifest = [
        {"Config": f"{config_id}.json", "RepoTags": [ref], "Layers": [f"{diff_id}/layer.tar"]}
    ]
    return tar_bytes(
        {
            f"{config_id}.json": config,
            f"{diff_id}/layer.tar": layer,
            "manifest.json": json.dumps(manifest).encode(),
        }
    )


def package(root: Path, version: str = "1", images: dict[str, bytes] | None = None) -> Path:
    """A package tree under one top directory (kube/): stand-in binaries that say their
    version, CNI plugins, conf/ and shell/ as built, and `images` (name -> bytes)."""
    top = root / "kube"
    for sub in ("bin/cni", "conf", "images", "shell"):
        (top / sub).mkdir(parents=True, exist_ok=True)
    for name in BINARIES:
        (top / "bin" / name).write_text(f"#!/bin/sh\necho {name} {version}\n")
    for name in CNI_PLUGINS:
        (top / "bin" / "cni" / name).write_text(f"#!/bin/sh\necho cni {name} {version}\n")
    for src in (*SCRIPTS, *(BUILD / "conf").iterdir()):
        shutil.copy(src, top / src.parent.name / src.name)
    if images is None:
        images = {
            "test.tar": image_archive(IMAGE, b"plain\n"),
            "test-gz.tar.gz": gzip_bytes(image_archive(IMAGE_GZ, b"gzipped\n")),
        }
    for name, data in images.items():
        (top / "images" / name).write_bytes(data)
    return top


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- the sandbox

STAND_INS = {
    "modprobe": """\
#!/bin/sh
echo "modprobe $*" >> {calls}
for m in ${{LVPY_MODPROBE_FAIL:-}}; do
    if [ "$1" = "$m" ]; then
        echo "modprobe: FATAL: Module $1 not found in directory /lib/modules/lvpy" >&2
        exit 1
    fi
done
mkdir -p "/sys/module/$1"
""",
    "swapoff": """\
#!/bin/sh
echo "swapoff $*" >> {calls}
head -n 1 {swaps} > {swaps}.new && cat {swaps}.new > {swaps}
""",
    "systemctl": """\
#!/bin/sh
echo "systemctl $*" >> {calls}
case $1 in
is-enabled) [ -f {dir}/kubelet-enabled ] ;;
enable) : > {dir}/kubelet-enabled ;;
disable) rm -f {dir}/kubelet-enabled ;;
esac
""",
    # `docker`: images in a JSON file, loaded from `docker save` archives.
    "docker": """\
#!{python}
import json, sys, tarfile
state, args = {dir!r} + "/docker-images.json", sys.argv[1:]
if args[:1] == ["-H"]:
    args = args[2:]
with open({calls!r}, "a") as f:
    f.write("docker " + " ".join(args) + "\\n")
try:
    images = json.load(open(state))
except FileNotFoundError:
    images = {{}}
if args[0] == "info":
    print(open({dir!r} + "/docker-driver").read().strip())
elif args[0] == "load":
    with tarfile.open(args[2]) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    for entry in manifest:
        for tag in entry["RepoTags"]:
            tag = tag.removeprefix("docker.io/")  # as Docker shows names from Docker Hub
            images[tag] = "sha256:" + entry["Config"].removesuffix(".json")
            print("Loaded image: " + tag)
elif args[:2] == ["image", "ls"]:
    for tag, image_id in images.items():
        print(tag, image_id)
elif args[:2] == ["image", "rm"]:
    if args[2] not in images:
        sys.exit("Error: No such image: " + args[2])
    del images[args[2]]
    print("Untagged: " + args[2])
json.dump(images, open(state, "w"))
""",
}


@dataclass
class Sandbox:
    """A private mount namespace (and, with `netns`, network namespace) held open by a
    sleeping process; commands enter it with nsenter. The overlays' upper layers, every
    file written there, are on a tmpfs at `dir`/layers inside the namespace."""

    dir: Path
    overlaid: tuple[str, ...] = HOST_OVERLAID
    fake_kernel: bool = True
    netns: bool = False
    proc: subprocess.Popen[bytes] | None = None
    containerd: Containerd | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def calls_log(self) -> Path:
        return self.dir / "calls.log"

    @property
    def swaps(self) -> Path:
        return self.dir / "swaps"

    def start(self, swaps: tuple[str, ...] = (), systemd: bool = True) -> Sandbox:
        (self.dir / "bin").mkdir(parents=True)
        (self.dir / "layers").mkdir()
        self.swaps.write_text(SWAPS_HEADER + "".join(f"{s}\n" for s in swaps))
        self.calls_log.touch()
        (self.dir / "docker-driver").write_text("cgroupfs\n")
        names = dict(dir=str(self.dir), calls=str(self.calls_log), swaps=str(self.swaps))
        if self.fake_kernel:
            for name, text in STAND_INS.items():
                path = self.dir / "bin" / name
                path.write_text(text.format(python=sys.executable, **names))
                path.chmod(0o755)
        layers = self.dir / "layers"
        lines = ["set -e", f"mount -t tmpfs -o size=1g lvpy-initsh {layers}"]
        for d in self.overlaid:
            up, work = f"{layers}/up{d}", f"{layers}/work{d}"
            lines += [
                f"mkdir -p {up} {work}",
                f"chmod --reference={d} {up} && chown --reference={d} {up}",
                f"mount -t overlay lvpy-initsh -o lowerdir={d},upperdir={up},workdir={work} {d}",
            ]
        lines.append("mount -t tmpfs -o mode=755 lvpy-initsh-run /run")
        if systemd:
            lines.append("mkdir -p /run/systemd/system")
        if self.fake_kernel:
            lines += [
                "mount -t tmpfs lvpy-initsh-modules /sys/module",
                "mount -t tmpfs lvpy-initsh-sysctl /proc/sys/net",
                "mkdir /proc/sys/net/ipv4 /proc/sys/net/bridge",
                "for f in ipv4/ip_forward bridge/bridge-nf-call-iptables "
                "bridge/bridge-nf-call-ip6tables; do echo 0 > /proc/sys/net/$f; done",
                f"mount --bind {self.swaps} /proc/swaps",
            ]
        if self.netns:
            lines.append("ip link set lo up")
        lines += ["echo ready", "exec sleep 86400"]
        argv = ["unshare", "-m", "--propagation", "private", *(["-n"] if self.netns else [])]
        self.proc = subprocess.Popen(
            [*argv, "sh", "-c", "\n".join(lines)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        if self.proc.stdout.readline() != b"ready\n":
            raise RuntimeError(f"the sandbox did not start: {self.proc.stderr.read().decode()}")
        return self

    def _enter(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", *(["-n"] if self.netns else [])]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.dir / 'bin'}:{os.environ['PATH']}", **(extra or {})}

    def run(
        self, script: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self._enter(), "sh", "-c", script],
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{script}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc

    def init_sh(self, pkg: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run(f"cd {pkg}/shell && sh init.sh", env, check=False)

    def clean_sh(self, pkg: Path) -> subprocess.CompletedProcess[str]:
        return self.run(f"cd {pkg}/shell && sh clean.sh", check=False)

    def path(self, path: str) -> Path:
        """A path as the namespace sees it."""
        return Path(f"/proc/{self.pid}/root") / path.lstrip("/")

    def read(self, path: str) -> bytes:
        return self.path(path).read_bytes()

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = self.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)

    def calls(self) -> list[str]:
        return self.calls_log.read_text().splitlines()

    def upper(self) -> dict[str, tuple[str, int, int]]:
        """Everything written in the overlays: per path its content (sha256, link target,
        whiteout, or dir for a directory the lower layer does not have), mode and mtime."""
        up = self.path(str(self.dir / "layers" / "up"))
        found: dict[str, tuple[str, int, int]] = {}
        for dirpath, dirs, files in os.walk(up):
            for name in dirs + files:
                full = Path(dirpath, name)
                rel = "/" + str(full.relative_to(up))
                st = full.lstat()
                if stat.S_ISDIR(st.st_mode):
                    if os.path.isdir(rel):  # the lower layer's, copied up
                        continue
                    what = "dir"
                elif stat.S_ISLNK(st.st_mode):
                    what = "link:" + os.readlink(full)
                elif stat.S_ISCHR(st.st_mode):
                    what = "whiteout"
                else:
                    what = sha256(full.read_bytes())
                found[rel] = (what, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
        return found

    def contents(self) -> dict[str, tuple[str, int]]:
        """`upper()` without the times: what a file holds and its mode."""
        return {p: (what, mode) for p, (what, mode, _) in self.upper().items()}

    def start_containerd(
        self, systemd_cgroup: bool = False, cri: bool = True, config_file: str = DEFAULT_CONFIG
    ) -> Containerd:
        """Debian's containerd in the sandbox, on the socket init.sh looks for, its
        configuration at `config_file` (named with --config unless it is the default)."""
        assert self.containerd is None, "one containerd a sandbox"
        daemon = Containerd(
            self.dir / "containerd",
            socket=Path(CONTAINERD_SOCK),
            log=self.dir / "containerd.log",
            systemd_cgroup=systemd_cgroup,
            cri=cri,
            config_file=config_file,
            enter=self._enter(),
            root=self.path("/"),
        )
        try:
            daemon.start()
        except BaseException:
            daemon.close()
            raise
        self.containerd = daemon
        return daemon

    def stop_containerd(self) -> None:
        if self.containerd is not None:
            self.containerd.close()
            self.containerd = None

    def images(self) -> list[str]:
        assert self.containerd is not None, "no containerd runs in the sandbox"
        return self.containerd.images()

    def docker_socket(self) -> None:
        """A socket where Docker's is: the stand-in docker answers for it."""
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(self.path("/run/docker.sock")))

    def stop(self) -> None:
        self.stop_containerd()  # while the namespace is there to unmount its tmpfs in
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def lines(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr
