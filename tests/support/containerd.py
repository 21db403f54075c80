"""Debian's containerd, started by a test: its binaries, configuration, root and state on a
tmpfs of its own, one socket, and at the end every task, shim and mount it made gone.

The kernel lab's root file system is read-only and read over 9p without a cache: on the
tmpfs, containerd can write, and every `ctr` does not read its 23 MB from the host again.

Who uses it:

- tests/lab/test_image_lab.py runs the lvscare image with `ctr run` (no CRI plugin, the
  native snapshotter);
- tests/lab/test_bare_hosts_lab.py lets SSH test hosts reach it through a link at their own
  /run/containerd/containerd.sock (`host_setup`): the default socket is under /dev/shm,
  which those hosts do not overlay;
- the sandboxes of init.sh's tests (tests/support/sandbox.py) run it in their namespaces
  (`enter`, `root`) on their own /run/containerd/containerd.sock, its configuration where
  the test puts it.

init.sh reads the cgroup driver (`SystemdCgroup`) from the configuration of the containerd
process behind the socket: `systemd_cgroup` sets it there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tests.support.wait import wait_until

SOCKET_DIR = Path("/dev/shm/lvpy-containerd")
DEFAULT_CONFIG = "/etc/containerd/config.toml"  # read when no --config is given
NAMESPACE = "k8s.io"  # kubelet's
BINARIES = ("containerd", "ctr", "containerd-shim-runc-v2", "runc")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CRI = "io.containerd.grpc.v1.cri"
# Snapshotters nothing here uses: each would probe the file system at every start.
UNUSED = [f"io.containerd.snapshotter.v1.{s}" for s in ("btrfs", "zfs", "aufs", "devmapper")]
START_TIMEOUT = 180.0  # seconds; the lab's emulated CPU loads containerd's plugins slowly


class ContainerdError(RuntimeError):
    pass


def config(base: Path, socket: Path, *, systemd_cgroup: bool = False, cri: bool = True) -> str:
    """containerd 1.6's configuration: everything on `base`, the CRI plugin's runc options
    (its cgroup driver is what init.sh reads)."""
    disabled = UNUSED if cri else [CRI, *UNUSED]
    return (
        "version = 2\n"
        f'root = "{base}/root"\n'
        f'state = "{base}/state"\n'
        f"disabled_plugins = {json.dumps(disabled)}\n"
        f'[grpc]\n  address = "{socket}"\n'
        f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{base}/opt"\n'
        f'[plugins."{CRI}".containerd.runtimes.runc]\n'
        '  runtime_type = "io.containerd.runc.v2"\n'
        f'[plugins."{CRI}".containerd.runtimes.runc.options]\n'
        f"  SystemdCgroup = {'true' if systemd_cgroup else 'false'}\n"
    )


class Containerd:
    """One containerd; `with Containerd(...) as daemon:` starts it and stops it.

    `base`: the tmpfs's mount point (default: a new directory under /tmp); `socket`: where
    it listens (default: under /dev/shm); `log`: its output (default: next to `base`);
    `config_file`: where its configuration goes (default: on the tmpfs), named with
    --config unless it is containerd's default file; `enter`: an argv prefix that runs a
    command in other namespaces (nsenter), and `root`: where this process sees their /.
    Every path but `log` is as those namespaces see it."""

    def __init__(
        self,
        base: Path | None = None,
        *,
        socket: Path | None = None,
        log: Path | None = None,
        systemd_cgroup: bool = False,
        cri: bool = True,
        config_file: str | None = None,
        enter: Sequence[str] = (),
        root: Path = Path("/"),
    ) -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix="lvpy-containerd.", dir="/tmp"))
        self.socket = socket or SOCKET_DIR / f"{self.base.name}.sock"
        self.log = log or Path(f"{self.base}.log")
        self.bin = self.base / "bin"
        self.config_file = config_file or str(self.base / "config.toml")
        self.config = config(self.base, self.socket, systemd_cgroup=systemd_cgroup, cri=cri)
        self.enter = list(enter)
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None

    def seen(self, path: Path | str) -> Path:
        """`path` of the namespaces, as this process reaches it."""
        return self.root / str(path).lstrip("/")

    def start(self) -> Containerd:
        self.seen(self.base).mkdir(parents=True, exist_ok=True)
        copies = " && ".join(f'cp "$(command -v {name})" {self.bin}/{name}' for name in BINARIES)
        self._sh(
            f"mount -t tmpfs -o size=1500m,mode=0700 lvpy-containerd {self.base}",
            f"mkdir {self.bin}",
            f"{copies} || {{ echo 'containerd is not installed: run scripts/setup' >&2; exit 1; }}",
        )
        # `ctr run` needs a cgroup file system; the lab VM mounts none.
        self._sh(
            "[ -e /sys/fs/cgroup/cgroup.controllers ] || mountpoint -q /sys/fs/cgroup || "
            "mount -t cgroup2 cgroup2 /sys/fs/cgroup",
            check=False,
        )
        conf = self.seen(self.config_file)
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(self.config)
        self.seen(self.socket.parent).mkdir(parents=True, exist_ok=True)
        named = [] if self.config_file == DEFAULT_CONFIG else ["--config", self.config_file]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.enter, str(self.bin / "containerd"), *named],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                start_new_session=True,
            )
        proc = self.proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise ContainerdError(f"containerd exited {proc.returncode}:\n{self.log_tail()}")
            return self.ctr("version", check=False, timeout=60).returncode == 0

        if not wait_until(answers, START_TIMEOUT, 0.5):
            raise ContainerdError(f"containerd did not answer on {self.socket}:\n{self.log_tail()}")
        return self

    def __enter__(self) -> Containerd:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is not None and self.log.exists():
            print(f"containerd log:\n{self.log_tail()}", file=sys.stderr)
        self.close()

    def _sh(self, *lines: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        script = "set -e\n" + "\n".join(lines)
        proc = subprocess.run(
            [*self.enter, "sh", "-c", script],
            capture_output=True,
            text=True,
            env={**os.environ, "PATH": PATH},
            timeout=300,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ContainerdError(f"{script}\nexited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin}:{PATH}"}

    def argv(self, *args: str, namespace: str = NAMESPACE) -> list[str]:
        """`ctr` on this containerd (run where it runs)."""
        return [*self.enter, str(self.bin / "ctr"), "-a", str(self.socket), "-n", namespace, *args]

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 600, namespace: str = NAMESPACE
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(*args, namespace=namespace),
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ContainerdError(
                f"ctr {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def images(self, namespace: str = NAMESPACE) -> list[str]:
        return sorted(self.ctr("images", "ls", "-q", namespace=namespace).stdout.split())

    def task_pid(self, name: str) -> int:
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == name:
                return int(fields[1])
        raise ContainerdError(f"no task {name}")

    def host_setup(self) -> str:
        """Shell for an SSH test host: its runtime socket is this containerd's."""
        return f"mkdir -p /run/containerd && ln -sf {self.socket} /run/containerd/containerd.sock"

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return f"(no log at {self.log})"

    def stop(self) -> None:
        """Every task and container gone, containerd stopped (its tmpfs stays)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for line in self.ctr("task", "ls", check=False).stdout.splitlines()[1:]:
                name = line.split()[0]
                self.ctr("task", "kill", "-s", "SIGKILL", name, check=False)
                self.ctr("task", "delete", "--force", name, check=False)
            for line in self.ctr("container", "ls", "-q", check=False).stdout.splitlines():
                self.ctr("container", "delete", line.strip(), check=False)
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.proc = None

    def close(self) -> None:
        """`stop`, then its shims (they outlive it) killed, the tmpfs and every mount under
        it out, the sockets gone."""
        self.stop()
        for pid in _processes_naming(f"{self.bin}/"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        mounts = self._sh("cat /proc/self/mounts", check=False).stdout.splitlines()
        ours = [
            m
            for m in (line.split()[1] for line in mounts if len(line.split()) > 1)
            if m == str(self.base) or m.startswith(f"{self.base}/")
        ]
        for mount in reversed(ours):
            if self._sh(f"umount {mount}", check=False).returncode != 0:
                self._sh(f"umount -l {mount}", check=False)
        with contextlib.suppress(OSError):
            self.seen(self.base).rmdir()
        for sock in (self.socket, Path(f"{self.socket}.ttrpc")):  # the shims' socket too
            with contextlib.suppress(OSError):
                self.seen(sock).unlink()


def _processes_naming(word: str) -> list[int]:
    """Pids whose command line holds `word` (a containerd's own bin/: it and its shims)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if word.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found
