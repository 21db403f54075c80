"""SSH hosts for tests: real OpenSSH servers, each in its own network and mount namespace.

A host is `/usr/sbin/sshd -D` started by `ip netns exec NS unshare -m -u`: its own address
on a bridge (198.19.K.0/24, K picked free), its own hostname, and an overlay (upper layer in
a tmpfs) over /etc, /usr, /var, /root, /opt, /home, /srv, /work and /tmp, and a fresh /run.
Whatever remote commands write or delete (/etc/hosts, /etc/kubernetes, /usr/local/bin,
/var/lib/lvscare-py, /opt/lvscare-py, ...) lands in that tmpfs and is gone with the
namespace; this machine's files are never touched. Tests read a host's files through
/proc/PID/root, which sees that namespace's mounts.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.wait import wait_until

PREFIX = "lvpy-ssh-"
OVERLAID = ("/etc", "/usr", "/var", "/root", "/opt", "/home", "/srv", "/work", "/tmp")
CALLS_LOG = "/var/log/lvpy-calls.jsonl"
FAIL_FILE = "/etc/lvpy-fail"  # "join" in it: the stand-in kubeadm fails `kubeadm join`
SSHD = "/usr/sbin/sshd"
HOST_KEY = "/run/lvpy-host-key"  # inside the host's own /run, so rekey() can replace it


def sh(*argv: str, check: bool = True, input: bytes | None = None) -> str:
    proc = subprocess.run(list(argv), input=input, capture_output=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode(errors="replace")


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "") -> str:
    """A new key pair; the public key line."""
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    sh("ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "lvpy-test", "-f", str(path))
    return path.with_name(path.name + ".pub").read_text().strip()


def _free_subnet() -> int:
    used = sh("ip", "-4", "-o", "addr", "show")
    candidates = [k for k in range(1, 255) if f"198.19.{k}." not in used]
    return random.choice(candidates)


def _answers(ip: str, port: int) -> bool:
    with socket.create_connection((ip, port), timeout=0.5):
        return True


def _wait_port(ip: str, port: int, proc: subprocess.Popen[bytes], stderr: Path) -> None:
    """Until sshd answers; an sshd that exits stops the wait at once, with its stderr."""
    up = wait_until(lambda: proc.poll() is not None or _answers(ip, port), 10.0, 0.025)
    if proc.poll() is not None:
        raise RuntimeError(f"sshd on {ip}:{port} exited: {stderr.read_text(errors='replace')}")
    if not up:
        raise RuntimeError(f"sshd on {ip}:{port} does not answer")


@dataclass
class Host:
    lab: Lab
    name: str
    ns: str
    ip: str
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    host_key_pub: str = ""

    @property
    def addr(self) -> str:
        return self.ip if self.port == 22 else f"{self.ip}:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        name = self.ip if self.port == 22 else f"[{self.ip}]:{self.port}"
        kind, b64 = self.host_key_pub.split()[:2]
        return f"{name} {kind} {b64}"

    @property
    def root(self) -> Path:
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/root")

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def read(self, path: str) -> str:
        return self.path(path).read_text()

    def exists(self, path: str) -> bool:
        return self.path(path).exists()

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        target = self.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def calls(self) -> list[dict[str, Any]]:
        """What the stand-ins recorded on this host, in order."""
        log = self.path(CALLS_LOG)
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls() if c["argv"][1:2] != ["version"]]

    def in_ns(self, script: str) -> str:
        """Run a shell script inside this host's namespaces (as its sshd sees the world)."""
        assert self.proc is not None
        pid = str(self.proc.pid)
        return sh("nsenter", "-t", pid, "-m", "-u", "-n", "sh", "-c", script)

    def rekey(self) -> None:
        """A new host key (as after a reinstall): SIGHUP makes sshd re-exec and reload it."""
        assert self.proc is not None
        self.host_key_pub = keygen(self.dir / "host_key")
        self.path(HOST_KEY).write_bytes((self.dir / "host_key").read_bytes())
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        _wait_port(self.ip, self.port, self.proc, self.dir / "sshd.err")


@dataclass
class Lab:
    root: Path
    tag: str = field(default_factory=lambda: f"{random.randrange(16**5):05x}")
    subnet: int = field(default_factory=_free_subnet)
    hosts: list[Host] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    bridge: str = ""
    root_password: str = "lvpy root pw"
    client_pub: str = ""

    @property
    def gateway(self) -> str:
        return f"198.19.{self.subnet}.1"

    def up(self) -> None:
        self.bridge = f"lvpyb{self.tag}"
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")

    def down(self) -> None:
        for host in self.hosts:
            if host.proc is not None and host.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(host.proc.pid, signal.SIGKILL)
                host.proc.wait()
        for ns in self.namespaces:
            for pid in sh("ip", "netns", "pids", ns, check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", ns, check=False)
            veth = f"lvpyv{self.tag}{ns.rsplit('-', 1)[1]}"
            if veth in sh("ip", "-o", "link", "show", check=False):
                sh("ip", "link", "del", veth, check=False)  # the pair, if the netns lingers
        if self.bridge:
            sh("ip", "link", "del", self.bridge, check=False)

    def netns(self, index: int) -> tuple[str, str]:
        """A namespace on the bridge with address .(10+index); its name and address."""
        ns = f"{PREFIX}{self.tag}-{index}"
        veth = f"lvpyv{self.tag}{index}"
        ip = f"198.19.{self.subnet}.{10 + index}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", self.gateway)
        return ns, ip

    def host(self, name: str, port: int = 22, setup: str = "") -> Host:
        """Start one SSH host; `setup` is shell run inside it before sshd starts."""
        index = len(self.namespaces) + 1
        ns, ip = self.netns(index)
        hdir = self.root / f"host-{index}-{name}"
        hdir.mkdir(parents=True)
        host = Host(self, name, ns, ip, port, hdir)
        host.host_key_pub = keygen(hdir / "host_key")
        (hdir / "sshd_config").write_text(
            f"Port {port}\nListenAddress {ip}\nHostKey {HOST_KEY}\nPidFile none\n"
            "PermitRootLogin yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n"
            "AuthorizedKeysFile .ssh/authorized_keys\nMaxStartups 200\nMaxSessions 100\n"
            "LogLevel ERROR\n"
        )
        (hdir / "authorized_keys").write_text(self.client_pub + "\n")
        scratch = hdir / "scratch"
        scratch.mkdir()
        overlays = []
        for d in OVERLAID:  # /tmp last: hdir is under it
            if os.path.isdir(d):
                u, w = f"{scratch}/up{d}", f"{scratch}/work{d}"
                overlays.append(
                    f"mkdir -p {u} {w} && chmod --reference={d} {u} && "
                    f"chown --reference={d} {u} && mount -t overlay overlay "
                    f"-o lowerdir={d},upperdir={u},workdir={w} {d}"
                )
        script = "\n".join(
            [
                "set -e",
                f"mount -t tmpfs -o size=2g lvpy {scratch}",
                f"cp {hdir}/sshd_config {hdir}/host_key {scratch}/",
                *[o for o in overlays if not o.endswith(" /tmp")],
                *[o for o in overlays if o.endswith(" /tmp")],
                "mount -t tmpfs -o mode=755 lvpy-run /run",
                "mkdir -p /run/sshd",
                f"install -m 600 {hdir}/host_key {HOST_KEY}",
                f"hostname {name}",
                f"printf '127.0.0.1\\tlocalhost\\n{ip}\\t{name}\\n' > /etc/hosts",
                f"echo {shlex.quote('root:' + self.root_password)} | chpasswd",
                "mkdir -p /root/.ssh && chmod 700 /root/.ssh",
                f"cp {hdir}/authorized_keys /root/.ssh/authorized_keys",
                f"rm -f {CALLS_LOG} /usr/local/bin/kubeadm /usr/local/bin/kubectl "
                "/usr/local/bin/bootstrap",
                setup,
                f"exec {SSHD} -D -e -f {hdir}/sshd_config",
            ]
        )
        err = hdir / "sshd.err"
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "unshare",
                "-m",
                "-u",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(err, "wb"),  # noqa: SIM115 - kept open for the life of sshd
            start_new_session=True,
        )
        host.proc = proc
        self.hosts.append(host)
        _wait_port(ip, port, proc, err)
        return host

    def empty_host(self) -> str:
        """A namespace with an address and nothing listening: connections are refused."""
        _ns, ip = self.netns(len(self.namespaces) + 1)
        return ip
