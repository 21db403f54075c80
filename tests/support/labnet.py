"""The kernel lab: fake masters in network namespaces behind a bridge, and the probes tests need.

Runs only inside the lab VM (``scripts/lab``): it builds bridges and namespaces, flushes the
IPVS table and rewrites sysctls, which must never happen on a real host.

Topology, all inside the VM's root namespace::

    root ns: labbr0 198.18.0.1/24 fd00:18::1/64
             default via 198.18.0.254, ::/0 via fd00:18::254 (nobody answers; see below)
      |-- veth-m1 <-> netns m1: eth0 198.18.0.11/24 fd00:18::11/64, fake apiserver :6443
      |-- veth-m2 <-> netns m2: eth0 198.18.0.12/24 fd00:18::12/64, fake apiserver :6443
      `-- ...

What a locally generated connection to a VIP through IPVS NAT (masq) needs, as found in this VM
(Debian 6.1 kernel, see tests/lab/test_lab_smoke.py which checks each point):

- A route lookup for the VIP that succeeds. IPVS takes the packet at NF_INET_LOCAL_OUT, which
  comes after the socket's route lookup: with no route connect() fails with ENETUNREACH before
  IPVS sees anything. Any route will do: a default route via an on-link gateway that never
  answers (IPVS re-routes to the real server, so the gateway is never ARPed), ``VIP/32 via GW``,
  or the VIP as a local address (dummy interface).
- The source address comes from that route. Via a gateway on labbr0 the source is 198.18.0.1,
  which the masters can answer directly: no conntrack, no masquerade needed, and
  ``net.ipv4.vs.conntrack`` may stay 0.
- With the VIP on a dummy interface (or any local route) the source becomes the VIP itself
  (IPv4; IPv6 still picked fd00:18::1 for a ``local`` route but the VIP for a dummy address).
  Masters then answer the VIP, which only works if they route it back to this node. Without
  that, it needs masquerade (nft ``ct original ip daddr VIP masquerade`` in a srcnat
  postrouting chain) AND ``net.ipv4.vs.conntrack=1``: with conntrack=0 IPVS marks its packets
  untracked and the NAT rule never matches.
- ``Lab.set_return_routes(False)`` removes the masters' default routes, so they only reach
  198.18.0.0/24 and fd00:18::/64 like masters that know nothing about this node's VIP.

Traffic to the VIP never leaves the VM: the VM has no network device, and anything IPVS does
not take ends on labbr0, where only the lab's namespaces listen.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict, get_args

HERE = Path(__file__).resolve().parent
FAKE_APISERVER = HERE / "fake_apiserver.py"

BRIDGE = "labbr0"
BRIDGE_IP = "198.18.0.1"
BRIDGE_IP6 = "fd00:18::1"
PREFIX = 24
PREFIX6 = 64
GATEWAY = "198.18.0.254"  # on-link next hop that never answers: a route for the VIP to match
GATEWAY6 = "fd00:18::254"
API_PORT = 6443
# VIPs that go into every master certificate, so a client may check the name it dialled.
CERT_VIPS = ("10.103.97.2", "fd00::2", "apiserver.cluster.local")

Mode = Literal["ok", "fail", "hang", "tls", "close-kept", "hang-kept"]

VM_MARKER_ENV = "LVSCARE_LAB_VM"
SIGTERM = signal.SIGTERM  # LabProcess.signal() shadows the module inside the class
SIGKILL = signal.SIGKILL


class LabError(RuntimeError):
    """The lab itself is broken (not the code under test)."""


# -- where we are ---------------------------------------------------------------------------


def in_lab_vm() -> bool:
    """True inside the VM that scripts/lab booted: its marker variable and a virtme kernel."""
    if os.environ.get(VM_MARKER_ENV) != "1":
        return False
    try:
        return "virtme" in Path("/proc/cmdline").read_text()
    except OSError:
        return False


def lab_unavailable_reason() -> str | None:
    """Why kernel tests cannot run here, or None when they can."""
    if not in_lab_vm():
        return (
            "kernel tests run only inside the lab VM (they build namespaces and flush IPVS): "
            "run them with scripts/lab"
        )
    if os.geteuid() != 0:
        return "the lab needs root inside the VM"
    if not Path("/proc/net/ip_vs").exists():
        subprocess.run(["modprobe", "ip_vs"], capture_output=True, check=False)
        if not Path("/proc/net/ip_vs").exists():
            return "this kernel has no IPVS (modprobe ip_vs failed; /proc/net/ip_vs is missing)"
    return None


# -- running commands -------------------------------------------------------------------------


def sh(
    *argv: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise LabError with its output (a lab step must not fail)."""
    proc = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=60
    )
    if check and proc.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} exited {proc.returncode}\n{stdin or ''}{proc.stdout}{proc.stderr}"
        )
    return proc


def ip_batch(lines: Sequence[str], netns: str | None = None, check: bool = True) -> None:
    """Many `ip` commands in one process: each exec costs real time in the emulated VM."""
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    if not check:
        argv.insert(1, "-force")
    sh(*argv, stdin="\n".join(lines) + "\n", check=check)


def ip_json(*argv: str, netns: str | None = None) -> list[dict[str, Any]]:
    out = sh("ip", "-j", *(["-n", netns] if netns else []), *argv).stdout
    return json.loads(out) if out.strip() else []


# -- HTTPS probes -----------------------------------------------------------------------------


class ConnectFailed(OSError):
    """A connection or request failed; ``reason`` is one word a test can compare.

    Reasons: refused, timeout, reset, unreachable, tls, closed, http, error.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: str
    headers: dict[str, str]


_current_ca: Path | None = None  # the CA of the lab that is up, for the module-level helpers


def client_context(
    ca_file: Path | str | None = None, check_hostname: bool = False
) -> ssl.SSLContext:
    """TLS client context: verifies against the lab CA when one is known, else verifies nothing."""
    ca = ca_file if ca_file is not None else _current_ca
    if ca is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = check_hostname
    return ctx


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectFailed):
        return exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno in (101, 113):  # ENETUNREACH, EHOSTUNREACH
        return "unreachable"
    return "error"


@contextlib.contextmanager
def _failures() -> Iterator[None]:
    """Turn every socket/TLS error into ConnectFailed with a reason."""
    try:
        yield
    except ConnectFailed:
        raise
    except (OSError, ssl.SSLError) as exc:
        raise ConnectFailed(_reason(exc), f"{type(exc).__name__}: {exc}") from exc


def _open_tls(
    host: str, port: int, timeout: float, ctx: ssl.SSLContext, server_hostname: str | None
) -> ssl.SSLSocket:
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname if ctx.check_hostname else None)
    except BaseException:
        raw.close()
        raise


def _read_response(sock: ssl.SSLSocket) -> HttpResult:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    if not data:
        raise ConnectFailed("closed", "connection closed before any response")
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ConnectFailed("http", f"not an HTTP response: {data[:80]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return HttpResult(int(parts[1]), body.decode("utf-8", "replace"), headers)


def https_get(
    host: str,
    port: int = API_PORT,
    path: str = "/healthz",
    *,
    timeout: float = 3.0,
    ca_file: Path | str | None = None,
    check_hostname: bool = False,
) -> HttpResult:
    """One GET over a fresh TLS connection; raises ConnectFailed (reason) on any failure.

    With ``check_hostname`` the certificate must name ``host`` (the masters' certs carry their
    IPs, names and the default VIPs).
    """
    ctx = client_context(ca_file, check_hostname)
    with _failures(), _open_tls(host, port, timeout, ctx, host) as sock:
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: lab\r\n"
        sock.sendall(f"{head}Connection: close\r\n\r\n".encode())
        return _read_response(sock)


def connect_via(vip: str, port: int = API_PORT, timeout: float = 3.0) -> str:
    """Open a real TLS connection to vip:port and return the name of the master that answered.

    Raises ConnectFailed (with ``.reason``) when the connection or request fails.
    """
    result = https_get(vip, port, "/whoami", timeout=timeout)
    if result.status != 200:
        raise ConnectFailed("http", f"/whoami answered {result.status}")
    return result.body.strip()


def reach(vip: str, port: int = API_PORT, count: int = 9, timeout: float = 3.0) -> Counter[str]:
    """``count`` fresh connections through vip:port: master name -> hits, failures as "<reason>"."""
    hits: Counter[str] = Counter()
    for _ in range(count):
        try:
            hits[connect_via(vip, port, timeout)] += 1
        except ConnectFailed as exc:
            hits[f"<{exc.reason}>"] += 1
    return hits


class HeldConnection:
    """A long-lived connection through a VIP (``/hold``); a thread keeps reading so a test can
    ask later whether bytes still flow."""

    def __init__(self, sock: ssl.SSLSocket, master: str) -> None:
        self.master = master
        self._sock = sock
        self._cond = threading.Condition()
        self._received = 0
        self._closed = False
        self.error: str | None = None
        self._thread = threading.Thread(target=self._read, daemon=True, name=f"hold-{master}")
        self._thread.start()

    def _read(self) -> None:
        self._sock.settimeout(0.2)
        while True:
            try:
                chunk = self._sock.recv(4096)
            except TimeoutError:
                if self._closed:
                    return
                continue
            except (OSError, ssl.SSLError) as exc:
                with self._cond:
                    if not self._closed:
                        self.error = f"{_reason(exc)}: {exc}"
                    self._closed = True
                    self._cond.notify_all()
                return
            with self._cond:
                if not chunk:
                    self.error = self.error or "closed: EOF"
                    self._closed = True
                else:
                    self._received += len(chunk)
                self._cond.notify_all()
                if self._closed:
                    return

    @property
    def received(self) -> int:
        """Bytes of the stream seen so far (after the name line)."""
        with self._cond:
            return self._received

    def alive(self, within: float = 3.0) -> bool:
        """True if new bytes arrive within ``within`` seconds from now (the server sends every
        100 ms), False once the connection broke or went quiet."""
        deadline = time.monotonic() + within
        with self._cond:
            start = self._received
            while self._received == start and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return self._received > start

    def close(self) -> None:
        """Stop reading (the thread notices within 0.2 s) and close the socket."""
        with self._cond:
            self._closed = True
        self._thread.join(2)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> HeldConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hold_connection(
    vip: str, port: int = API_PORT, timeout: float = 3.0, seconds: float = 600
) -> HeldConnection:
    """Open a connection through vip:port that streams a byte every 100 ms for ``seconds``."""
    ctx = client_context()
    with _failures():
        sock = _open_tls(vip, port, timeout, ctx, vip)
        try:
            hostport = f"[{vip}]:{port}" if ":" in vip else f"{vip}:{port}"
            sock.sendall(
                f"GET /hold?seconds={seconds:g} HTTP/1.1\r\nHost: {hostport}\r\n\r\n".encode()
            )
            data = b""
            while b"\r\n\r\n" not in data or b"\n" not in data.partition(b"\r\n\r\n")[2]:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectFailed("closed", f"/hold closed early: {data[:80]!r}")
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise ConnectFailed("http", f"/hold answered {head[:40]!r}")
            name = rest.partition(b"\n")[0].decode()
        except BaseException:
            sock.close()
            raise
    return HeldConnection(sock, name)


# -- IPVS -------------------------------------------------------------------------------------


class Service(TypedDict):
    """One virtual service as plain data."""

    scheduler: str
    dests: dict[tuple[str, int], int]  # (real server ip, port) -> weight
    forward: dict[tuple[str, int], str]  # (real server ip, port) -> masq | local | tunnel | route
    flags: int
    timeout: int


FORWARD = {0: "masq", 1: "local", 2: "tunnel", 3: "route", 4: "bypass"}
PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}


def _norm(addr: str) -> str:
    return str(ipaddress.ip_address(addr))


def ipvs_table(protocol: str = "tcp") -> dict[tuple[str, int], Service]:
    """The kernel's IPVS services of one protocol, read over netlink (pyroute2).

    ``{(vip, port): {"scheduler": "rr", "dests": {(rs ip, port): weight}, "forward": {...}}}``.
    Addresses are normalised (``ipaddress``); fwmark services are left out.
    """
    from pyroute2 import IPVS, IPVSService

    proto = PROTOCOLS[protocol]
    table: dict[tuple[str, int], Service] = {}
    ipvs = IPVS()
    try:
        for msg in ipvs.service("dump"):
            svc = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
            if svc.get_attr("IPVS_SVC_ATTR_PROTOCOL") != proto:
                continue
            addr = svc.get_attr("IPVS_SVC_ATTR_ADDR")
            if addr is None or svc.get_attr("IPVS_SVC_ATTR_FWMARK"):
                continue
            port = svc.get_attr("IPVS_SVC_ATTR_PORT")
            flags = svc.get_attr("IPVS_SVC_ATTR_FLAGS")
            key = IPVSService(
                af=svc.get_attr("IPVS_SVC_ATTR_AF"), protocol=proto, addr=addr, port=port
            )
            entry: Service = {
                "scheduler": svc.get_attr("IPVS_SVC_ATTR_SCHED_NAME"),
                "dests": {},
                "forward": {},
                "flags": flags["flags"] if flags else 0,
                "timeout": svc.get_attr("IPVS_SVC_ATTR_TIMEOUT") or 0,
            }
            for dmsg in ipvs.dest("dump", service=key):
                d = dmsg.get_attr("IPVS_CMD_ATTR_DEST")
                rs = (_norm(d.get_attr("IPVS_DEST_ATTR_ADDR")), d.get_attr("IPVS_DEST_ATTR_PORT"))
                entry["dests"][rs] = d.get_attr("IPVS_DEST_ATTR_WEIGHT")
                fwd = d.get_attr("IPVS_DEST_ATTR_FWD_METHOD") & 0x7
                entry["forward"][rs] = FORWARD.get(fwd, str(fwd))
            table[(_norm(addr), port)] = entry
    finally:
        ipvs.close()
    return table


def ipvsadm_table(protocol: str = "tcp") -> dict[tuple[str, int], Service]:
    """The same view parsed from ``ipvsadm -Ln`` (a second opinion for the harness's own tests)."""
    out = sh("ipvsadm", "-Ln").stdout
    fwd = {"Masq": "masq", "Local": "local", "Tunnel": "tunnel", "Route": "route"}
    table: dict[tuple[str, int], Service] = {}
    current: Service | None = None
    for line in out.splitlines():
        svc = re.match(r"^(TCP|UDP|SCTP)\s+(\S+):(\d+)\s+(\S+)", line)
        if svc:
            current = None
            if svc.group(1).lower() == protocol:
                current = {
                    "scheduler": svc.group(4),
                    "dests": {},
                    "forward": {},
                    "flags": 0,
                    "timeout": 0,
                }
                table[(_norm(svc.group(2).strip("[]")), int(svc.group(3)))] = current
            continue
        dest = re.match(r"^\s+->\s+(\S+):(\d+)\s+(\w+)\s+(\d+)", line)
        if dest and current is not None:
            rs = (_norm(dest.group(1).strip("[]")), int(dest.group(2)))
            current["dests"][rs] = int(dest.group(4))
            current["forward"][rs] = fwd.get(dest.group(3), dest.group(3))
    return table


def ipvs_clear() -> None:
    """Empty the IPVS table as an outside actor would (``ipvsadm -C``), loading ip_vs if needed."""
    sh("modprobe", "ip_vs")
    sh("ipvsadm", "-C")


# -- processes under test ---------------------------------------------------------------------


def loaded_modules() -> set[str]:
    """The kernel modules loaded now (/proc/modules)."""
    return {line.split()[0] for line in Path("/proc/modules").read_text().splitlines()}


@contextlib.contextmanager
def modules_as_before() -> Iterator[set[str]]:
    """Modules loaded during the block are unloaded after it, where nothing uses them: the
    lab's kernel is shared by every test of a boot, and one module changes the others'
    network (br_netfilter, which the package's init.sh loads, sends bridged traffic
    through netfilter, the lab's masters' bridge included)."""
    before = loaded_modules()
    try:
        yield before
    finally:
        for _ in range(3):  # a module goes once the ones using it have gone
            for name in sorted(loaded_modules() - before):
                subprocess.run(["modprobe", "-r", "-q", name], capture_output=True, check=False)


@dataclass
class Stopped:
    code: int
    lines: list[str]
    killed: bool  # needed SIGKILL after the polite signal


class LabProcess:
    """A command under test (the daemon) with stderr in a file the test can read at any time."""

    def __init__(
        self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.stdout_path = log_path.with_suffix(".stdout")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(log_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=full_env
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def lines(self) -> list[str]:
        """Captured stderr lines so far."""
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """stderr as JSON log records; a non-JSON line becomes {"event": "<text>", "text": ...}."""
        out: list[dict[str, Any]] = []
        for line in self.lines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            out.append(record if isinstance(record, dict) else {"event": "<text>", "text": line})
        return out

    def find(self, event: str, **fields: object) -> list[dict[str, Any]]:
        """JSON records whose "event" and given fields match."""
        return [
            e
            for e in self.events()
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
        ]

    def signal(self, sig: int) -> None:
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        """Exit code; raises subprocess.TimeoutExpired (a guard against hangs, not a timing)."""
        return self.proc.wait(timeout=timeout)

    def stop(self, sig: int = SIGTERM, timeout: float = 20.0) -> Stopped:
        """Send ``sig``, wait up to ``timeout`` s, then SIGKILL; exit code and stderr lines."""
        killed = False
        if self.running():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                killed = True
                self.proc.kill()
                self.proc.wait(timeout=30)
        code = self.proc.returncode
        assert code is not None
        return Stopped(code, self.lines(), killed)

    def kill(self) -> Stopped:
        return self.stop(SIGKILL, timeout=30)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines()[-n:])


# What the lab's fixtures hand to tests: spawn(argv, name=..., env=...) and lab_factory(masters=N).
SpawnFn = Callable[..., "LabProcess"]
LabFactory = Callable[..., "Lab"]


def start_process(
    argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None
) -> LabProcess:
    """Start ``argv`` with stderr to ``log_path`` (stdout next to it, ``.stdout``)."""
    return LabProcess(argv, log_path, env)


# -- the lab ----------------------------------------------------------------------------------


@dataclass(eq=False)  # identity: masters go in sets and dicts
class Master:
    """One fake control-plane node: a namespace, a veth into labbr0 and a fake apiserver."""

    lab: Lab = field(repr=False)
    index: int
    name: str
    ip: str
    ip6: str
    netns: str
    veth: str  # host side, enslaved to labbr0; the namespace side is eth0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _blackholed: bool = field(default=False, repr=False)

    @property
    def dir(self) -> Path:
        return self.lab.workdir / self.name

    @property
    def mode_file(self) -> Path:
        return self.dir / "mode"

    @property
    def ready_file(self) -> Path:
        return self.dir / "ready"

    @property
    def log_file(self) -> Path:
        return self.dir / "apiserver.log"

    @property
    def cert_file(self) -> Path:
        return self.dir / "server.pem"

    def addr(self, v6: bool = False, port: int = API_PORT) -> str:
        """``ip:port`` or ``[ip6]:port``, as --rs takes it."""
        return f"[{self.ip6}]:{port}" if v6 else f"{self.ip}:{port}"

    # server control

    def _spawn(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "ip", "netns", "exec", self.netns,
                    sys.executable, "-S", str(FAKE_APISERVER),
                    "--name", self.name, "--listen", self.ip, "--listen", self.ip6,
                    "--port", str(API_PORT), "--cert", str(self.cert_file),
                    "--mode-file", str(self.mode_file), "--ready-file", str(self.ready_file),
                ],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def _ready(self) -> bool:
        if self.proc is None:
            raise LabError(f"{self.name}: server not started")
        if self.proc.poll() is not None:
            raise LabError(
                f"{self.name}: fake apiserver exited {self.proc.returncode}:\n{self.log_tail()}"
            )
        try:
            return self.ready_file.read_text().strip() == str(self.proc.pid)
        except FileNotFoundError:
            return False

    def _wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: fake apiserver not ready after {timeout}s")
            time.sleep(0.05)

    def start(self) -> None:
        """Start the fake apiserver (no-op if it runs) and wait until it listens."""
        if self.running():
            return
        self._spawn()
        self._wait_ready()

    def kill(self) -> None:
        """SIGKILL the server: new connections are refused, open ones reset."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def set_mode(self, mode: Mode) -> None:
        """ok: 200; fail: 500 with a body; hang: never answer (health endpoints only); tls: no
        TLS on any path (every connection gets plain text where the ServerHello belongs);
        close-kept, hang-kept: a kept-alive connection's later requests are closed without an
        answer, or never answered (its first request is answered 200)."""
        if mode not in get_args(Mode):
            raise ValueError(mode)
        tmp = self.mode_file.with_suffix(".tmp")
        tmp.write_text(mode + "\n")
        os.replace(tmp, self.mode_file)

    @property
    def mode(self) -> str:
        return self.mode_file.read_text().strip()

    # network control

    def blackhole(self) -> float:
        """Drop every packet both ways (netem loss 100% on both veth ends): connects time out.

        Returns the time.time() at which the first qdisc (towards the master) was in place:
        starting `tc` takes a while under emulation, and timings count from the fault itself.
        """
        return blackhole_together([self])

    def unblackhole(self) -> None:
        self._blackholed = False
        for argv in (["tc"], ["tc", "-n", self.netns]):
            dev = self.veth if len(argv) == 1 else "eth0"
            qdisc = sh(*argv, "qdisc", "show", "dev", dev).stdout
            if "netem" in qdisc:
                sh(*argv, "qdisc", "del", "dev", dev, "root")

    @property
    def blackholed(self) -> bool:
        return "netem" in sh("tc", "qdisc", "show", "dev", self.veth).stdout

    # probes

    def get(self, path: str = "/healthz", v6: bool = False, timeout: float = 3.0) -> HttpResult:
        """GET straight to this master (not through a VIP), verifying CA and name."""
        return https_get(
            self.ip6 if v6 else self.ip, API_PORT, path,
            timeout=timeout, ca_file=self.lab.ca_file, check_hostname=True,
        )  # fmt: skip

    def requests(self) -> list[str]:
        """The fake apiserver's access log: ``<time> <peer> <method> <target> <status>``."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return [line for line in lines if " LISTEN " not in line]

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside this master's namespace."""
        return sh("ip", "netns", "exec", self.netns, *argv, check=check)


NETEM_LOSS = "root netem loss 100%"


def blackhole_together(masters: Sequence[Master]) -> float:
    """Blackhole several masters at one moment: every qdisc towards them from one `tc -batch`
    (one process: under emulation each exec takes long enough for a round to fall between two
    masters), then their own sides. The time.time() at which the first batch was in place."""
    for m in masters:
        m._blackholed = True
    sh(
        "tc",
        "-batch",
        "-",
        stdin="".join(f"qdisc replace dev {m.veth} {NETEM_LOSS}\n" for m in masters),
    )
    effective = time.time()
    for m in masters:
        sh("tc", "-n", m.netns, "qdisc", "replace", "dev", "eth0", *NETEM_LOSS.split())
    return effective


class Lab:
    """Bridge + N masters in the VM; build() once, reset() between tests, destroy() at the end."""

    def __init__(self, masters: int = 3, workdir: Path | None = None) -> None:
        if not 1 <= masters <= 200:
            raise ValueError("between 1 and 200 masters")
        self.workdir = workdir or Path(f"/tmp/lab-{os.getpid()}")
        self.bridge = BRIDGE
        self.bridge_ip = BRIDGE_IP
        self.bridge_ip6 = BRIDGE_IP6
        self.gateway = GATEWAY
        self.gateway6 = GATEWAY6
        self.port = API_PORT
        self.ca_file = self.workdir / "ca.pem"
        self.masters = [
            Master(
                self, i, name=f"m{i}", ip=f"198.18.0.{10 + i}", ip6=f"fd00:18::{10 + i}",
                netns=f"m{i}", veth=f"veth-m{i}",
            )
            for i in range(1, masters + 1)
        ]  # fmt: skip
        self.processes: list[LabProcess] = []
        self._baseline: dict[str, Any] = {}
        self._return_routes_on = True
        self.built = False

    def master(self, name: str) -> Master:
        return next(m for m in self.masters if m.name == name)

    def rs_args(self, v6: bool = False, port: int = API_PORT) -> list[str]:
        """``["--rs", "198.18.0.11:6443", "--rs", ...]`` for every master."""
        return [a for m in self.masters for a in ("--rs", m.addr(v6, port))]

    # building

    def build(self) -> Lab:
        global _current_ca
        reason = lab_unavailable_reason()
        if reason:
            raise LabError(reason)
        _cleanup_leftovers([m.netns for m in self.masters])
        self.workdir.mkdir(parents=True, exist_ok=True)
        for m in self.masters:
            m.dir.mkdir(exist_ok=True)
            m.set_mode("ok")
        # Imports take many seconds in the emulated VM: overlap trustme (cryptography) with the
        # `ip` commands, and pyroute2 (needed by ipvs_table) with the servers' start-up.
        threading.Thread(target=_preload_pyroute2, daemon=True).start()
        certs_error: list[BaseException] = []
        certs = threading.Thread(target=self._write_certs, args=(certs_error,), daemon=True)
        certs.start()
        self._build_network()
        certs.join()
        if certs_error:
            raise LabError(f"certificates: {certs_error[0]!r}") from certs_error[0]
        _current_ca = self.ca_file
        for m in self.masters:  # start all servers, then wait: python start-up is the slow part
            m._spawn()
        for m in self.masters:
            m._wait_ready()
        self.built = True
        self._baseline = self._snapshot()
        return self

    def _write_certs(self, errors: list[BaseException]) -> None:
        try:
            import trustme

            # RSA-2048, as kubeadm issues the cluster CA and the apiserver's serving certificate
            rsa = trustme.KeyType.RSA
            ca = trustme.CA(organization_name="lvscare kernel lab", key_type=rsa)
            ca.cert_pem.write_to_path(str(self.ca_file))
            for m in self.masters:
                names = (m.ip, m.ip6, m.name, f"{m.name}.lab", *CERT_VIPS)
                cert = ca.issue_cert(*names, key_type=rsa)
                cert.private_key_and_cert_chain_pem.write_to_path(str(m.cert_file))
        except BaseException as exc:
            errors.append(exc)

    def _build_network(self) -> None:
        sh("ip", "link", "set", "lo", "up")
        root = [f"netns add {m.netns}" for m in self.masters]
        root += [
            f"link add {self.bridge} type bridge mcast_snooping 0",
            f"addr add {self.bridge_ip}/{PREFIX} dev {self.bridge}",
            f"addr add {self.bridge_ip6}/{PREFIX6} dev {self.bridge} nodad",
            f"link set {self.bridge} up",
        ]
        for m in self.masters:
            root += [
                f"link add {m.veth} type veth peer name eth0 netns {m.netns}",
                f"link set {m.veth} addrgenmode none",  # no fe80:: on bridge ports
                f"link set {m.veth} master {self.bridge}",
                f"link set {m.veth} up",
            ]
        root += [
            f"route replace default via {self.gateway} dev {self.bridge}",
            f"route replace ::/0 via {self.gateway6} dev {self.bridge}",
        ]
        ip_batch(root)
        for m in self.masters:
            ip_batch(
                [
                    "link set lo up",
                    "link set eth0 up",
                    f"addr add {m.ip}/{PREFIX} dev eth0",
                    f"addr add {m.ip6}/{PREFIX6} dev eth0 nodad",
                    *self._return_routes(m, "replace"),
                ],
                netns=m.netns,
            )

    def _return_routes(self, m: Master, verb: str) -> list[str]:
        return [
            f"route {verb} default via {self.bridge_ip} dev eth0",
            f"route {verb} ::/0 via {self.bridge_ip6} dev eth0",
        ]

    def set_return_routes(self, enabled: bool) -> None:
        """Masters' default routes back via labbr0 (on by default). Off, they reach only the lab
        subnets, like real masters that never heard of this node's VIP: traffic whose source
        is the VIP then needs masquerade. reset() turns them back on."""
        for m in self.masters:
            verb = "replace" if enabled else "del"
            ip_batch(self._return_routes(m, verb), m.netns, check=enabled)
        self._return_routes_on = enabled

    # between tests

    def _net_state(self) -> dict[str, Any]:
        """Links, addresses and main-table routes of the root namespace, in two `ip` runs."""
        out = sh("ip", "-j", "-batch", "-", stdin="link show\naddr show\nroute show\n").stdout
        links, addrs, routes4 = _json_values(out)
        routes6 = ip_json("-6", "route", "show")
        return {
            "links": {link["ifname"] for link in links},
            "addrs": _addr_keys(addrs),
            "routes4": {_route_key(r): r for r in routes4 if not _kernel_route(r)},
            "routes6": {_route_key(r): r for r in routes6 if not _kernel_route(r)},
        }

    def _snapshot(self) -> dict[str, Any]:
        vs = Path("/proc/sys/net/ipv4/vs")
        sysctls = {
            str(p): p.read_text()
            for p in [
                *(sorted(vs.iterdir()) if vs.is_dir() else []),
                Path("/proc/sys/net/ipv4/ip_forward"),
                Path("/proc/sys/net/ipv6/conf/all/forwarding"),
            ]
        }
        return {
            **self._net_state(),
            "netns": set(os.listdir("/run/netns")),
            "sysctls": sysctls,
            "hosts": Path("/etc/hosts").read_text(),
        }

    def reset(self) -> None:
        """Back to the built state: processes stopped, servers up in mode ok, no qdiscs, empty
        IPVS table, nothing a test added (links, addresses, routes, nft rules, namespaces,
        sysctls, /etc/hosts). Raises LabError if that fails; the caller then rebuilds.

        Every `ip`/`tc` exec costs real time in the VM, so this looks first and batches.
        """
        for p in self.processes:
            p.stop(timeout=10)
        self.processes.clear()
        base = self._baseline
        dead = [m for m in self.masters if not m.running()]
        for m in dead:  # python start-up is the slow part: let it run while we clean
            m._spawn()
        ipvs_clear()
        qdiscs = sh("tc", "qdisc", "show").stdout
        for m in self.masters:
            m.set_mode("ok")
            netem = any("netem" in q and f" dev {m.veth} " in q for q in qdiscs.splitlines())
            if m._blackholed or netem:
                m.unblackhole()
        if not self._return_routes_on:
            self.set_return_routes(True)
        for ns in sorted(set(os.listdir("/run/netns")) - base["netns"]):
            sh("ip", "netns", "del", ns, check=False)

        now = self._net_state()
        fix = [f"link del {name}" for name in sorted(now["links"] - base["links"])]
        gone = set(now["links"]) - set(base["links"])  # their routes and addresses go with them
        for fam, key in (("4", "routes4"), ("6", "routes6")):
            for rkey, route in now[key].items():
                if rkey not in base[key] and route.get("dev") not in gone:
                    dst = "::/0" if fam == "6" and route["dst"] == "default" else route["dst"]
                    dev = f" dev {route['dev']}" if "dev" in route else ""
                    fix.append(f"route del {dst}{dev}")
        fix += [
            f"addr del {addr} dev {dev}"
            for dev, addr in sorted(now["addrs"] - base["addrs"])
            if dev not in gone
        ]
        missing = [r for key in ("routes4", "routes6") for k, r in base[key].items()]
        missing = [r for r in missing if _route_key(r) not in now["routes4"] | now["routes6"]]
        fix += [_route_add(r) for r in missing]
        if fix:
            ip_batch(fix, check=False)
        nft_loaded = Path("/sys/module/nf_tables").exists()
        if nft_loaded and sh("nft", "list", "ruleset", check=False).stdout.strip():
            sh("nft", "flush", "ruleset")
        for path, value in base["sysctls"].items():
            knob = Path(path)
            with contextlib.suppress(OSError):
                if knob.read_text() != value:
                    knob.write_text(value)
        hosts = Path("/etc/hosts")
        if hosts.read_text() != base["hosts"]:
            hosts.write_text(base["hosts"])
        for m in dead:
            m._wait_ready()
        if fix:
            after = self._net_state()
            for key in ("links", "addrs"):
                if after[key] != base[key]:
                    raise LabError(f"reset: {key} {sorted(after[key] ^ base[key])}")
            for key in ("routes4", "routes6"):
                if set(after[key]) != set(base[key]):
                    raise LabError(f"reset: {key} {sorted(set(after[key]) ^ set(base[key]))}")

    def spawn(
        self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None
    ) -> LabProcess:
        """start_process(), and stop it at the next reset()/destroy()."""
        proc = start_process(argv, log_path, env)
        self.processes.append(proc)
        return proc

    def destroy(self) -> None:
        """Remove everything: processes, servers, namespaces, bridge, routes, IPVS table."""
        global _current_ca
        for p in self.processes:
            p.stop(timeout=10)
        self.processes.clear()
        for m in self.masters:
            m.kill()
        _cleanup_leftovers([m.netns for m in self.masters])
        with contextlib.suppress(LabError):
            ipvs_clear()
        if _current_ca == self.ca_file:
            _current_ca = None
        self.built = False


def _preload_pyroute2() -> None:
    with contextlib.suppress(Exception):
        import pyroute2  # noqa: F401


def _cleanup_leftovers(netns: Sequence[str]) -> None:
    """Remove what a crashed lab may have left (deleting a namespace removes its veth pair)."""
    lines = [f"netns del {ns}" for ns in netns if Path("/run/netns", ns).exists()]
    if Path("/sys/class/net", BRIDGE).exists():
        lines.append(f"link del {BRIDGE}")
    if lines:
        ip_batch(lines, check=False)
    for fam, dst in (("-4", "default"), ("-6", "default")):
        routes = ip_json(fam, "route", "show", dst)
        if any(r.get("gateway") in (GATEWAY, GATEWAY6) for r in routes):
            sh("ip", fam, "route", "del", dst, check=False)


def _json_values(text: str) -> list[Any]:
    """Consecutive JSON documents, as `ip -j -batch` prints them."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return values
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)


def _route_add(route: dict[str, Any]) -> str:
    fam6 = ":" in route.get("gateway", "") or ":" in route.get("dst", "")
    dst = "::/0" if fam6 and route["dst"] == "default" else route["dst"]
    via = f" via {route['gateway']}" if "gateway" in route else ""
    dev = f" dev {route['dev']}" if "dev" in route else ""
    return f"route replace {dst}{via}{dev}"


def _route_key(route: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        route.get("type", "unicast"),
        route.get("dst", ""),
        route.get("gateway", ""),
        route.get("dev", ""),
    )


def _kernel_route(route: dict[str, Any]) -> bool:
    """Routes the kernel makes for addresses (subnet, link-local, multicast) come and go with
    those; reset() restores addresses and the routes a person adds, not these."""
    dst = route.get("dst", "")
    return (
        dst.startswith(("fe80", "ff"))
        or route.get("type", "unicast") != "unicast"
        or route.get("protocol") == "kernel"
    )


def _addr_keys(links: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (link["ifname"], f"{a['local']}/{a['prefixlen']}")
        for link in links
        for a in link.get("addr_info", [])
        if a.get("scope") != "link"
    }
