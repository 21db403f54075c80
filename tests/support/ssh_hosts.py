"""SSH hosts for tests: real OpenSSH servers, each in its own network and mount namespace.

A host is `/usr/sbin/sshd -D` started by `ip netns exec NS unshare -m -u`: its own address
on a bridge (198.19.K.0/24, K picked free), its own hostname, and an overlay (upper layer in
a tmpfs) over /etc, /usr, /var, /root, /opt, /home, /srv, /work and /tmp, and a fresh /run.
Whatever remote commands write or delete (/etc/hosts, /etc/kubernetes, /usr/local/bin,
/var/lib/lvscare-py, /opt/lvscare-py, ...) lands in that tmpfs and is gone with the
namespace; this machine's files are never touched. Tests read a host's files through
/proc/PID/root, which sees that namespace's mounts. SFTP is Debian's sftp-server, which logs
every file it opens with the mode it creates it with (`Host.sftp_opens`).

Faults a test can cause on a host: `cut()` (its SSH connections die, as when the network
drops them), `reboot()` (every process killed, sshd started again on the same disk, /run
fresh), `limit_rate()` (a slow link), and at start a skewed clock (`clock=`, libfaketime
preloaded into every session, the offset read from /etc/faketimerc, so removing that file
sets the clock right for every process started after).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.wait import wait_until

PREFIX = "lvpy-ssh-"
OVERLAID = ("/etc", "/usr", "/var", "/root", "/opt", "/home", "/srv", "/work", "/tmp")
CALLS_LOG = "/var/log/lvpy-calls.jsonl"


def overlaid_for(hidden: list[str]) -> tuple[str, ...]:
    """OVERLAID, and the top directory of every hidden path outside it (a checkout under
    /check, as CI has it), before /tmp: a whiteout needs an overlay to live in."""
    extra = sorted(
        {
            "/" + p.split("/")[1]
            for p in hidden
            if not any(p.startswith(d + "/") for d in OVERLAID) and p.count("/") > 1
        }
    )
    return (*OVERLAID[:-1], *extra, OVERLAID[-1])


FAIL_FILE = "/etc/lvpy-fail"  # "join" in it: the stand-in kubeadm fails `kubeadm join`
SLOW_FILE = "/etc/lvpy-slow"  # seconds in it: each stand-in kubeadm call takes that long
# Debian's sftp-server, logging every open with the mode it passes to open(2) (internal-sftp
# logs nowhere a test can read).
SFTP_LOG = "/run/lvpy-sftp.log"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
_SFTP_OPEN = re.compile(r'open "(.*)" flags (\S+) mode 0([0-7]+)$')
SLOW_INIT_FILE = "/etc/lvpy-slow-init"  # seconds in it: the test package's init.sh sleeps first
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"  # Debian's `faketime`
FAKETIME_RC = "/etc/faketimerc"  # libfaketime's offset (e.g. "+1h") when $FAKETIME is unset
# Inside a host, the overlays' upper layers (under up/): every file its processes wrote.
UPPER_VIEW = "/mnt"
SSHD = "/usr/sbin/sshd"
# How long sshd may take to answer: in the kernel lab (emulated CPU, the overlays over 9p)
# a host's boot takes tens of seconds.
SSHD_START = 180.0 if os.environ.get("LVSCARE_LAB_VM") else 10.0
HOST_KEY = "/run/lvpy-host-key"  # inside the host's own /run, so rekey() can replace it
# What preflight asks of a host, given to every lab host so init and join go through it:
# IPVS modules `modprobe -n` finds (this kernel has none: empty .ko files and the index
# depmod makes of them, in the host's /usr; a kernel that has them, as the kernel lab VM's,
# is left alone) and a container runtime's socket with something listening (a stand-in that
# accepts and closes; the kernel lab has the real IPVS, and can give hosts a real
# containerd's socket). RUNTIME_FILE holds the socket's path; a test's `setup` may change it,
# remove it (no runtime) or put a real socket there (no stand-in), before boot starts it.
IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh")
RUNTIME_FILE = "/etc/lvpy-runtime"
CONTAINERD_SOCK = "/run/containerd/containerd.sock"
RUNTIME_CLIENTS = ("/usr/bin/ctr", "/usr/local/bin/ctr", "/usr/bin/docker", "/usr/local/bin/docker")
RUNTIME_MARK = "lvpy-runtime-stand-in"  # in its argv: cut() spares it, as a daemon
RUNTIME_STAND_IN = """\
import os, socket, sys
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(64)
while True:
    s.accept()[0].close()
"""


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
    up = wait_until(lambda: proc.poll() is not None or _answers(ip, port), SSHD_START, 0.025)
    if proc.poll() is not None:
        raise RuntimeError(f"sshd on {ip}:{port} exited: {stderr.read_text(errors='replace')}")
    if not up:
        raise RuntimeError(f"sshd on {ip}:{port} does not answer")


def ipvs_modules() -> list[str]:
    """Shell giving the host IPVS modules `modprobe -n` finds, where the kernel has none."""
    ipvs = "/usr/lib/modules/$(uname -r)/kernel/net/netfilter/ipvs"
    return [
        f"if ! modprobe -n -q {IPVS_MODULES[-1]} 2>/dev/null &&",
        '    [ "$(readlink -f /lib)" = /usr/lib ]; then',  # only into the overlaid /usr
        f"    mkdir -p {ipvs}",
        f"    for m in {' '.join(IPVS_MODULES)}; do : > {ipvs}/$m.ko; done",
        '    depmod "$(uname -r)" 2>/dev/null || true',
        "fi",
    ]


@dataclass
class Host:
    lab: Lab
    name: str
    ns: str
    ip: str
    port: int
    dir: Path
    veth: str = ""  # the bridge's end of the host's link
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

    def sftp_opens(self) -> list[tuple[str, str, int]]:
        """Every file opened over SFTP on this host: path, flags, the mode given to open(2)."""
        found = []
        for line in self.read(SFTP_LOG).splitlines():
            match = _SFTP_OPEN.search(line)
            if match:
                found.append((match[1], match[2], int(match[3], 8)))
        return found

    def written(self) -> list[str]:
        """Every file the host's processes wrote or replaced, as paths on the host."""
        up = self.path(UPPER_VIEW) / "up"
        found = []
        for dirpath, _dirs, files in os.walk(up):
            found += ["/" + str(Path(dirpath, f).relative_to(up)) for f in files]
        return sorted(found)

    def in_ns(self, script: str) -> str:
        """Run a shell script inside this host's namespaces (as its sshd sees the world)."""
        assert self.proc is not None
        pid = str(self.proc.pid)
        return sh("nsenter", "-t", pid, "-m", "-u", "-n", "sh", "-c", script)

    def pids(self) -> list[int]:
        """Every process of this host (all that live in its network namespace)."""
        return [int(p) for p in sh("ip", "netns", "pids", self.ns, check=False).split()]

    def processes(self) -> list[list[str]]:
        """The command lines of this host's processes."""
        found = []
        for pid in self.pids():
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
                found.append([a.decode(errors="replace") for a in argv])
        return found

    def _kill(self, spare: frozenset[int] = frozenset()) -> None:
        """SIGKILL every process of the host but `spare`, until none is left (they fork)."""
        for _ in range(50):
            pids = [p for p in self.pids() if p not in spare]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        raise RuntimeError(f"{self.name}: processes left after SIGKILL: {self.pids()}")

    def cut(self) -> None:
        """Kill every SSH session (sshd's per-connection processes and what they run), not
        the listener: the client's connections end as when the network drops them."""
        assert self.proc is not None
        spare = {self.proc.pid}
        for pid in self.pids():  # the runtime stand-in is a daemon, not a session
            with contextlib.suppress(OSError):
                if RUNTIME_MARK.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    spare.add(pid)
        self._kill(spare=frozenset(spare))

    def reboot(self) -> None:
        """As a power cut and a boot: every process killed, then sshd started again in the
        same mount namespace (the disk survives), with a fresh /run and hostname."""
        assert self.proc is not None
        keep = self.dir / "mnt.ns"  # holds the mount namespace while no process does
        keep.touch()
        sh("mount", "--bind", f"/proc/{self.proc.pid}/ns/mnt", str(keep))
        try:
            self._kill()
            self.proc.wait()
            # Not through `ip netns exec`: a mount namespace held by a file cannot be
            # entered from the new one it makes.
            net = f"--net=/run/netns/{self.ns}"
            start = ["nsenter", net, f"--mount={keep}", "unshare", "-u", "sh", "-c"]
            script = "\n".join(["set -e", *self.boot_script(), *self.services()])
            self.proc = self.lab.start(self, start, script)
            _wait_port(self.ip, self.port, self.proc, self.dir / "sshd.err")
        finally:
            sh("umount", str(keep), check=False)

    def boot_script(self) -> list[str]:
        """What a boot does before sshd: a fresh /run (its host key, the SFTP log), the
        hostname; then sshd in the foreground."""
        return [
            "mount -t tmpfs -o mode=755 lvpy-run /run",
            "mkdir -p /run/sshd",
            f"install -m 666 /dev/null {SFTP_LOG}",  # any user's sftp-server logs here
            f"install -m 600 {self.dir}/host_key {HOST_KEY}",
            f"hostname {self.name}",
        ]

    def services(self) -> list[str]:
        """What a boot starts after `setup`: the container runtime stand-in on the socket
        RUNTIME_FILE names (none if it is gone, or if `setup` put a real runtime's socket
        there), waited for until it listens. It speaks no runtime API, so the clients this
        machine may have (ctr would wait on it) are taken from the host, as kubeadm is."""
        start = (
            f'{sys.executable} -S -c {shlex.quote(RUNTIME_STAND_IN)} "$sock" {RUNTIME_MARK}'
            " </dev/null >/dev/null 2>&1 &"
        )
        return [
            f'if [ -s {RUNTIME_FILE} ] && sock=$(cat {RUNTIME_FILE}) && [ ! -S "$sock" ]; then',
            f"    rm -f {' '.join(RUNTIME_CLIENTS)}; {start}",
            '    i=0; while [ ! -S "$sock" ] && [ $i -lt 250 ]; do sleep 0.02; i=$((i+1)); done',
            "fi",
        ]

    def limit_rate(self, mbit: float) -> None:
        """Traffic to the host at most `mbit` Mbit/s (a token bucket on the bridge's end)."""
        sh(
            "tc",
            "qdisc",
            "replace",
            "dev",
            self.veth,
            "root",
            "tbf",
            "rate",
            f"{mbit}mbit",
            "burst",
            "16kb",
            "latency",
            "1s",
        )

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

    def host(self, name: str, port: int = 22, setup: str = "", clock: str = "") -> Host:
        """Start one SSH host; `setup` is shell run inside it before sshd starts; `clock`
        (e.g. "+1h") sets its clock off by that much for every command run there."""
        host = self.boot(name, port, setup, clock)
        assert host.proc is not None
        _wait_port(host.ip, port, host.proc, host.dir / "sshd.err")
        return host

    def many(self, names: list[str], setup: str = "", hide: tuple[str, ...] = ()) -> list[Host]:
        """Several hosts started at once (a big lab in the time of one host); `hide`: paths
        (globs) that do not exist on them (see `boot`)."""
        hosts = [self.boot(name, 22, setup, "", hide) for name in names]
        for host in hosts:
            assert host.proc is not None
            _wait_port(host.ip, host.port, host.proc, host.dir / "sshd.err")
        return hosts

    def boot(
        self, name: str, port: int, setup: str, clock: str, hide: tuple[str, ...] = ()
    ) -> Host:
        """A new host's namespaces, disk and sshd, started; not waited for. `hide`: paths
        (globs, under the overlaid directories) the host does not have, as whiteouts in the
        upper layers made before the overlays are mounted: removing a big tree through an
        overlay (a Python installation) writes a whiteout per file, which takes minutes
        over the kernel lab's 9p."""
        hidden = sorted({p for pattern in hide for p in glob.glob(pattern)})
        index = len(self.namespaces) + 1
        ns, ip = self.netns(index)
        hdir = self.root / f"host-{index}-{name}"
        hdir.mkdir(parents=True)
        host = Host(self, name, ns, ip, port, hdir, veth=f"lvpyv{self.tag}{index}")
        host.host_key_pub = keygen(hdir / "host_key")
        if clock and not os.path.exists(FAKETIME_LIB):
            raise RuntimeError(
                f"{FAKETIME_LIB} is missing: install Debian's faketime (scripts/setup)"
            )
        skew = f"SetEnv LD_PRELOAD={FAKETIME_LIB}\n" if clock else ""
        (hdir / "sshd_config").write_text(
            f"Port {port}\nListenAddress {ip}\nHostKey {HOST_KEY}\nPidFile none\n"
            "PermitRootLogin yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\n"
            f"Subsystem sftp {SFTP_SERVER} -e -l INFO 2>>{SFTP_LOG}\n"
            "AuthorizedKeysFile .ssh/authorized_keys\nMaxStartups 200\nMaxSessions 100\n"
            f"LogLevel ERROR\n{skew}"
        )
        (hdir / "authorized_keys").write_text(self.client_pub + "\n")
        scratch = hdir / "scratch"
        scratch.mkdir()
        overlays = []
        for d in overlaid_for(hidden):  # /tmp last: hdir is under it
            if os.path.isdir(d):
                u, w = f"{scratch}/up{d}", f"{scratch}/work{d}"
                whiteouts = "".join(
                    f"mkdir -p {shlex.quote(os.path.dirname(u + p[len(d) :]))} && "
                    f"mknod {shlex.quote(u + p[len(d) :])} c 0 0 && "
                    for p in hidden
                    if p.startswith(d + "/")
                )
                overlays.append(
                    f"mkdir -p {u} {w} && chmod --reference={d} {u} && {whiteouts}"
                    f"chown --reference={d} {u} && mount -t overlay overlay "
                    f"-o lowerdir={d},upperdir={u},workdir={w} {d}"
                    # The lab VM's /tmp takes no overlay: a fresh one there.
                    + (" || mount -t tmpfs -o mode=1777 lvpy-tmp /tmp" if d == "/tmp" else "")
                )
        script = "\n".join(
            [
                "set -e",
                f"mount -t tmpfs -o size=2g lvpy {scratch}",
                f"cp {hdir}/sshd_config {hdir}/host_key {scratch}/",
                f"mount --bind {scratch} {UPPER_VIEW}",  # the /tmp overlay hides scratch
                *[o for o in overlays if not o.endswith((" /tmp", "lvpy-tmp /tmp"))],
                *[o for o in overlays if o.endswith((" /tmp", "lvpy-tmp /tmp"))],
                *host.boot_script(),
                f"printf '127.0.0.1\\tlocalhost\\n{ip}\\t{name}\\n' > /etc/hosts",
                f"echo {shlex.quote('root:' + self.root_password)} | chpasswd",
                # Not this machine's dotfiles: a pyenv .bashrc would run (and lock) in every
                # remote command, and a lock left by a killed one stalls the next for a minute.
                "rm -f /root/.bashrc /root/.profile /root/.bash_profile",
                "mkdir -p /root/.ssh && chmod 700 /root/.ssh",
                f"cp {hdir}/authorized_keys /root/.ssh/authorized_keys",
                f"rm -f {CALLS_LOG} {FAKETIME_RC} /usr/local/bin/kubeadm /usr/local/bin/kubectl "
                "/usr/local/bin/bootstrap",
                f"echo {shlex.quote(clock)} > {FAKETIME_RC}" if clock else "",
                *ipvs_modules(),
                f"echo {CONTAINERD_SOCK} > {RUNTIME_FILE}",
                setup,
                *host.services(),
            ]
        )
        argv = ["ip", "netns", "exec", ns, "unshare", "-m", "-u", "--propagation", "private"]
        host.proc = self.start(host, [*argv, "sh", "-c"], script)
        self.hosts.append(host)
        return host

    def start(self, host: Host, argv: list[str], script: str) -> subprocess.Popen[bytes]:
        """`argv script`, the script ending in sshd in the foreground."""
        return subprocess.Popen(
            [*argv, f"{script}\nexec {SSHD} -D -e -f {host.dir}/sshd_config"],
            stdout=subprocess.DEVNULL,
            stderr=open(host.dir / "sshd.err", "ab"),  # kept open for the life of sshd
            start_new_session=True,
        )

    def empty_host(self) -> str:
        """A namespace with an address and nothing listening: connections are refused."""
        _ns, ip = self.netns(len(self.namespaces) + 1)
        return ip
