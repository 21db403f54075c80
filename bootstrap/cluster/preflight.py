"""Every host checked before `init` or `join` changes any, in one table.

Hosts have no Python, so each gets one POSIX sh script (`SCRIPT`, one SSH command) that
prints raw facts: its hostname, /proc/swaps, /proc/net/tcp and tcp6, which IPVS modules are
loaded or found by `modprobe -n`, the container runtimes' sockets and whether their clients
answer, the listening unix sockets from /proc/net/unix. Everything else happens here, with
no SSH: `parse` turns a host's output into `Facts`, `evaluate` turns the facts of all hosts
into rows and verdicts (hostnames are compared across hosts, clocks spread between them),
`table` into what the operator reads. A failure here costs a minute; the same problem found
by kubeadm half way through a cluster costs a clean-up.
"""

from __future__ import annotations

import ipaddress
import shlex
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bootstrap.cluster import clock
from bootstrap.defaults import KUBERNETES_DIR

MASTER_PORTS = (6443, 2379, 2380, 10250)
NODE_PORTS = (10250,)
PORT_USERS = {6443: "kube-apiserver", 2379: "etcd", 2380: "etcd peers", 10250: "kubelet"}
IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh")
FOUND = ("loaded", "builtin", "loadable")  # a module state that is not a problem
CLIENT_TIMEOUT = 10  # seconds `ctr version` / `docker version` may take
KUBELET_CONF = f"{KUBERNETES_DIR}/kubelet.conf"  # kubeadm init or join made it


@dataclass(frozen=True)
class Runtime:
    name: str
    socket: str
    client: str
    version: tuple[str, ...]  # the client's argv that asks this socket's daemon


RUNTIMES = (
    Runtime(
        "containerd",
        "/run/containerd/containerd.sock",
        "ctr",
        ("ctr", "--address", "/run/containerd/containerd.sock", "version"),
    ),
    Runtime(
        "docker",
        "/var/run/docker.sock",
        "docker",
        ("docker", "-H", "unix:///var/run/docker.sock", "version"),
    ),
)

MARK = "@@lvpy "  # starts a section of the script's output; no /proc line starts so


def _runtime_lines(rt: Runtime) -> str:
    version = shlex.join(rt.version)
    return f"""\
s=missing
if [ -S {rt.socket} ]; then s=socket; elif [ -e {rt.socket} ]; then s=other; fi
echo "{rt.name}.socket=$s"
if [ "$s" = socket ] && command -v {rt.client} >/dev/null 2>&1; then
    out=$(timeout {CLIENT_TIMEOUT} {version} 2>&1); rc=$?
    if [ $rc = 0 ]; then echo "{rt.name}.client=answered"
    elif [ $rc = 124 ]; then echo "{rt.name}.client=failed no answer in {CLIENT_TIMEOUT} s"
    else echo "{rt.name}.client=failed $(printf '%s\\n' "$out" | grep . | tail -n 1)"; fi
else
    echo "{rt.name}.client=absent"
fi
"""


# Reads only; writes nothing anywhere. Root, for the clients' sockets.
SCRIPT = f"""\
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
export LC_ALL=C
echo "{MARK}hostname"; hostname 2>/dev/null || cat /proc/sys/kernel/hostname
echo "{MARK}kernel"; uname -r
echo "{MARK}kubeadm"; [ -e {KUBELET_CONF} ] && echo {KUBELET_CONF}
echo "{MARK}swaps"; cat /proc/swaps 2>/dev/null
echo "{MARK}tcp"; cat /proc/net/tcp 2>/dev/null
echo "{MARK}tcp6"; cat /proc/net/tcp6 2>/dev/null
echo "{MARK}modules"
for m in {" ".join(IPVS_MODULES)}; do
    if grep -q "^$m " /proc/modules 2>/dev/null; then s=loaded
    elif [ -d /sys/module/$m ] || {{ [ $m = ip_vs ] && [ -e /proc/net/ip_vs ]; }}; then s=builtin
    elif ! command -v modprobe >/dev/null 2>&1; then s=no-modprobe
    elif modprobe -n -q $m 2>/dev/null; then s=loadable
    else s=missing; fi
    echo "$m=$s"
done
echo "{MARK}runtime"
{"".join(_runtime_lines(rt) for rt in RUNTIMES)}echo "{MARK}unix"
grep -F -e {" -e ".join(shlex.quote(rt.socket.rsplit("/", 1)[1]) for rt in RUNTIMES)} \
/proc/net/unix 2>/dev/null
echo "{MARK}end"
"""


def owners_script(inodes: Iterable[int]) -> str:
    """Which processes hold these sockets: `socket:[INODE] PID COMM` lines (for held ports,
    so the operator reads what to stop; one `ls` over every process's fds)."""
    want = " " + " ".join(f"socket:[{i}]" for i in sorted(set(inodes))) + " "
    program = (
        '/^\\/proc\\/[0-9]+\\/fd:$/ { split($0, p, "/"); pid = p[3]; next } '
        'index(want, " " $NF " ") { c = ""; f = "/proc/" pid "/comm"; getline c < f; '
        "close(f); print $NF, pid, c }"
    )
    awk = f"awk -v want={shlex.quote(want)} {shlex.quote(program)}"
    return f"ls -l /proc/[0-9]*/fd 2>/dev/null | {awk}"


@dataclass
class RuntimeFacts:
    socket: str = "missing"  # socket, other (a file that is no socket), missing
    client: str = "absent"  # answered, failed, absent (not installed, or no socket)
    detail: str = ""  # the client's last line when it failed


@dataclass
class Facts:
    """What the script printed, parsed; nothing judged yet."""

    hostname: str = ""
    kernel: str = ""
    swaps: list[str] = field(default_factory=list)  # "/dev/sda2 (2.0 GiB)"
    listening: dict[int, set[int]] = field(default_factory=dict)  # TCP port -> socket inodes
    modules: dict[str, str] = field(default_factory=dict)  # loaded, builtin, loadable, ...
    runtimes: dict[str, RuntimeFacts] = field(default_factory=dict)
    unix: set[str] = field(default_factory=set)  # paths of listening unix sockets
    owners: dict[int, str] = field(default_factory=dict)  # socket inode -> "nc (pid 81)"
    kubelet_conf: bool = False  # kubeadm made the host a node (of some cluster)


class BadFacts(ValueError):
    """The script's output is not what it prints (cut short, or not our script)."""


def _sections(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(MARK):
            current = found.setdefault(line[len(MARK) :].strip(), [])
        elif current is not None:
            current.append(line)
    return found


def _tcp_listening(lines: list[str], into: dict[int, set[int]]) -> None:
    """Sockets in LISTEN (state 0A) from /proc/net/tcp or tcp6: port -> inodes."""
    for line in lines:
        parts = line.split()
        if len(parts) < 10 or parts[3] != "0A" or ":" not in parts[1]:
            continue
        try:
            port = int(parts[1].rsplit(":", 1)[1], 16)
            inode = int(parts[9])
        except ValueError:
            continue
        into.setdefault(port, set()).add(inode)


def _swaps(lines: list[str]) -> list[str]:
    found = []
    for line in lines[1:]:  # the header
        parts = line.split()
        if len(parts) >= 3 and parts[2].isdigit():
            found.append(f"{parts[0]} ({int(parts[2]) / (1 << 20):.1f} GiB)")
        elif parts:
            found.append(parts[0])
    return found


def _unix_listening(lines: list[str]) -> set[str]:
    """Paths of unix sockets that listen: flags __SO_ACCEPTCON (00010000), state 01."""
    found = set()
    for line in lines:
        parts = line.split()
        if len(parts) >= 8 and parts[3] == "00010000" and parts[5] == "01":
            found.add(_same_dir(parts[7]))
    return found


def _same_dir(path: str) -> str:
    """/var/run is /run on every current distribution: one name for both."""
    return "/run/" + path[len("/var/run/") :] if path.startswith("/var/run/") else path


def parse(text: str) -> Facts:
    """The script's output as facts; BadFacts if it was cut short."""
    sections = _sections(text)
    if "end" not in sections or "hostname" not in sections:
        raise BadFacts("the preflight script's output was cut short")
    facts = Facts()
    names = [line.strip() for line in sections["hostname"] if line.strip()]
    facts.hostname = names[0].lower() if names else ""
    kernel = [line.strip() for line in sections.get("kernel", []) if line.strip()]
    facts.kernel = kernel[0] if kernel else ""
    facts.swaps = _swaps(sections.get("swaps", []))
    for name in ("tcp", "tcp6"):
        _tcp_listening(sections.get(name, []), facts.listening)
    for line in sections.get("modules", []):
        module, _, state = line.strip().partition("=")
        if module:
            facts.modules[module] = state
    for line in sections.get("runtime", []):
        key, _, value = line.strip().partition("=")
        name, _, what = key.partition(".")
        rt = facts.runtimes.setdefault(name, RuntimeFacts())
        if what == "socket":
            rt.socket = value
        elif what == "client":
            rt.client, _, rt.detail = value.partition(" ")
    facts.unix = _unix_listening(sections.get("unix", []))
    facts.kubelet_conf = any(line.strip() for line in sections.get("kubeadm", []))
    return facts


def parse_owners(text: str) -> dict[int, str]:
    """`owners_script`'s output: socket inode -> "COMM (pid PID)"."""
    found: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("socket:[") or not parts[1].isdigit():
            continue
        try:
            inode = int(parts[0][len("socket:[") : -1])
        except ValueError:
            continue
        comm = parts[2].strip() if len(parts) > 2 else ""
        found.setdefault(inode, f"{comm} (pid {parts[1]})" if comm else f"pid {parts[1]}")
    return found


def ports_for(role: str) -> tuple[int, ...]:
    return MASTER_PORTS if role == "master" else NODE_PORTS


def held_ports(facts: Facts, role: str) -> list[int]:
    return [p for p in ports_for(role) if p in facts.listening]


def ran_kubeadm(result: str | None, failed_step: str | None) -> bool:
    """Whether the cluster file says an earlier run got this host as far as kubeadm: then
    its own API server, etcd and kubelet hold the ports (a re-run is no conflict)."""
    if result == "ok":
        return True
    step = failed_step or ""
    return step.startswith(("bootstrap ", "copy CAs", "rewrite manifest", "kubectl", "kubeadm"))


# ------------------------------------------------------------ verdicts

CHECKS = ("clock", "swap", "ports", "ipvs", "runtime", "hostname")
OK, NOTE, WARN, FAIL, SKIP = "ok", "note", "warn", "FAIL", "-"


@dataclass(frozen=True)
class Finding:
    """One check on one host: its level, the grid's cell, and the line that says why."""

    level: str
    cell: str
    detail: str = ""


@dataclass
class HostInput:
    """One host as the orchestrator saw it: its facts (None: the script did not run there,
    as for join's first master), its clock, and what the cluster file says of it."""

    addr: str
    role: str
    facts: Facts | None = None
    offset: float | None = None
    member: bool = False  # the cluster file says an earlier run took it to kubeadm
    error: str = ""  # not reached, or the checks could not run: it fails alone
    known: bool = False  # the cluster file has it from an earlier run (however that ended)

    def in_cluster(self) -> bool:
        """Its ports are its own cluster's: the cluster file says kubeadm ran there, or it
        knows the host and kubeadm's kubelet.conf is there (the record's last result may be
        a later failure before kubeadm, e.g. a lost connection on a re-run)."""
        if self.member:
            return True
        return self.known and self.facts is not None and self.facts.kubelet_conf


@dataclass
class Row:
    addr: str
    role: str
    findings: dict[str, Finding]
    error: str = ""

    def failures(self) -> list[str]:
        """The checks it failed, in table order."""
        return [c for c in CHECKS if self.findings[c].level == FAIL]

    def reason(self) -> str:
        return "; ".join(self.findings[c].detail for c in self.failures())


@dataclass
class Verdict:
    rows: list[Row]
    notes: list[str]  # about the hosts together (the clocks' spread)

    def failing(self) -> list[Row]:
        """Rows that stop the run (an unreachable host only fails itself)."""
        return [r for r in self.rows if not r.error and r.failures()]

    def blame(self) -> str:
        """Why nothing is done, by check: "the clock of A is off; ports in use on B"."""
        phrases = {
            "clock": "the clock of {} is off",
            "swap": "swap on {}",
            "ports": "ports in use on {}",
            "ipvs": "IPVS modules missing on {}",
            "runtime": "no container runtime on {}",
            "hostname": "hostnames shared by {}",
        }
        out = []
        for check in CHECKS:
            names = [r.addr for r in self.failing() if check in r.failures()]
            if names:
                out.append(phrases[check].format(", ".join(names)))
        return "; ".join(out)


def check_clock(offset: float | None, max_skew: float) -> Finding:
    if offset is None or max_skew <= 0:
        return Finding(SKIP, SKIP)
    trouble = clock.problem(offset, max_skew)
    if trouble:
        return Finding(FAIL, f"FAIL {_seconds(offset)}", trouble)
    return Finding(OK, _seconds(offset))


def _seconds(offset: float) -> str:
    return f"{round(offset):+d} s"  # never "-0 s"


def check_swap(facts: Facts) -> Finding:
    if not facts.swaps:
        return Finding(OK, "off")
    return Finding(
        WARN,
        "warn: on",
        f"swap is on ({', '.join(facts.swaps)}): the kubelet does not start with swap; "
        "shell/init.sh turns it off now and at boot, so this is no failure",
    )


def check_ports(facts: Facts, role: str, member: bool) -> Finding:
    if member:
        return Finding(
            NOTE,
            "skipped",
            "ports not checked: the host is in this cluster already (an earlier run, as the "
            "cluster file says, or the seed system joined it), so its own API server, etcd "
            "and kubelet listen there",
        )
    held = held_ports(facts, role)
    if not held:
        return Finding(OK, OK)
    parts = []
    for port in held:
        owners = sorted({facts.owners[i] for i in facts.listening[port] if i in facts.owners})
        by = f" by {', '.join(owners)}" if owners else ""
        parts.append(f"port {port} ({PORT_USERS[port]}) is in use{by}")
    return Finding(
        FAIL,
        "FAIL " + ",".join(str(p) for p in held),
        f"{', '.join(parts)}: a {role} needs {'them' if len(held) > 1 else 'it'} free; stop "
        "what listens there",
    )


def check_ipvs(facts: Facts) -> Finding:
    missing = [m for m in IPVS_MODULES if facts.modules.get(m) not in FOUND]
    if not missing:
        return Finding(OK, OK)
    where = f"/lib/modules/{facts.kernel}" if facts.kernel else "/lib/modules"
    if any(facts.modules.get(m) == "no-modprobe" for m in missing):
        how = "not loaded, and no modprobe to load them"
    else:
        how = f"neither loaded nor found by `modprobe -n` in {where}"
    return Finding(
        FAIL,
        "FAIL",
        f"IPVS modules missing: {', '.join(missing)} ({how}); lvscare and kube-proxy need "
        "them: install the kernel's modules package",
    )


def _runtime_problem(rt: Runtime, got: RuntimeFacts, unix: set[str]) -> str | None:
    """None if the runtime answers; else why not (a missing socket is said by the caller)."""
    if got.socket == "other":
        return f"{rt.socket} is there but is no socket"
    if got.client == "answered":
        return None
    if got.client == "failed":
        said = f": {got.detail}" if got.detail else ""
        return f"`{rt.client} version` got no answer from {rt.socket}{said}"
    if _same_dir(rt.socket) in unix:
        return None
    return f"{rt.socket} is a stale socket: nothing listens on it ({rt.name} is not running)"


def check_runtime(facts: Facts) -> Finding:
    problems = []
    for rt in RUNTIMES:
        got = facts.runtimes.get(rt.name, RuntimeFacts())
        if got.socket == "missing":
            continue
        problem = _runtime_problem(rt, got, facts.unix)
        if problem is None:
            return Finding(OK, rt.name)
        problems.append(problem)
    if problems:
        return Finding(FAIL, "FAIL", "; ".join(problems) + ": start the container runtime")
    sockets = " nor ".join(rt.socket for rt in RUNTIMES)
    return Finding(
        FAIL,
        "FAIL",
        f"no container runtime: neither {sockets} is there; kubeadm needs containerd (or "
        "Docker) running",
    )


def _hostnames(hosts: Sequence[HostInput], others: Mapping[str, str]) -> dict[str, Finding]:
    """addr -> the hostname check: a name two hosts share fails on each, naming the rest."""
    holders: dict[str, list[str]] = {}
    for host in hosts:
        if host.facts is not None and not host.error:
            holders.setdefault(host.facts.hostname, []).append(host.addr)
    found = {}
    for name, addrs in holders.items():
        for addr in addrs:
            rest = [a for a in addrs if a != addr]
            if name in others:
                rest.append(f"{others[name]} (in the cluster)")
            if not name:
                found[addr] = Finding(FAIL, "FAIL", "the host has no hostname: set one")
            elif rest:
                found[addr] = Finding(
                    FAIL,
                    f"FAIL {name}",
                    f"hostname {name!r} is also that of {', '.join(rest)}: kubeadm names "
                    "nodes by hostname, so each host needs its own (hostnamectl)",
                )
            else:
                found[addr] = Finding(OK, name)
    return found


def evaluate(
    hosts: Sequence[HostInput], max_skew: float, others: Mapping[str, str] | None = None
) -> Verdict:
    """Every host's row; `others`: hostname -> address of cluster hosts not checked here
    (join: the cluster's), which a new host must not share."""
    names = _hostnames(hosts, others or {})
    rows = []
    for host in hosts:
        skipped = dict.fromkeys(CHECKS, Finding(SKIP, SKIP))
        if host.error:
            rows.append(Row(host.addr, host.role, skipped, host.error))
            continue
        findings = {**skipped, "clock": check_clock(host.offset, max_skew)}
        if host.facts is not None:
            findings.update(
                swap=check_swap(host.facts),
                ports=check_ports(host.facts, host.role, host.in_cluster()),
                ipvs=check_ipvs(host.facts),
                runtime=check_runtime(host.facts),
                hostname=names[host.addr],
            )
        rows.append(Row(host.addr, host.role, findings))
    return Verdict(rows, _clock_notes(hosts, max_skew))


def _clock_notes(hosts: Sequence[HostInput], max_skew: float) -> list[str]:
    if max_skew <= 0:  # no clock check
        return []
    offsets = {h.addr: h.offset for h in hosts if h.offset is not None and not h.error}
    found = clock.spread({a: o for a, o in offsets.items() if o is not None})
    if found is None:
        return []
    gap, slow, fast = found
    if gap < 2:  # each offset is good to about a second (`date +%s`)
        return ["clocks: the hosts agree among themselves, to about a second"]
    line = (
        f"clocks: the hosts are {gap:.0f} s apart among themselves (from {slow}, "
        f"{_seconds(offsets[slow])}, to {fast}, {_seconds(offsets[fast])} from this machine's)"
    )
    off = any(clock.problem(o, max_skew) for o in offsets.values())
    if 0 < max_skew < gap and not off:  # a host off from ours says it already
        line = (
            f"WARNING: {line}: more than {max_skew:g} s; etcd members and certificates "
            "want the same time on every host (NTP)"
        )
    return [line]


def table(verdict: Verdict) -> list[str]:
    """The grid (a row per host checked, a column per check), then one line per finding
    that says more than ok (and per host not reached), then the clocks, then the verdict:
    reads the same for 1 host and 20."""
    head = ["PREFLIGHT", "ROLE", *(c.upper() for c in CHECKS)]
    grid = [head]
    for row in verdict.rows:
        if not row.error:  # a host not reached has its line below, not a row of dashes
            grid.append([row.addr, row.role, *(row.findings[c].cell for c in CHECKS)])
    widths = [max(len(r[i]) for r in grid) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in grid]
    addr_w = max(len(r.addr) for r in verdict.rows) if verdict.rows else 0
    for row in verdict.rows:
        if row.error:
            lines.append(f"{row.addr.ljust(addr_w)}  connect   FAIL  {row.error} (it fails alone)")
        for check in CHECKS:
            f = row.findings[check]
            if f.detail:
                lines.append(f"{row.addr.ljust(addr_w)}  {check:<8}  {f.level:<4}  {f.detail}")
    lines += verdict.notes
    failing = verdict.failing()
    if failing:
        lines.append(
            f"preflight: {len(failing)} of {len(verdict.rows)} hosts failed: nothing is changed "
            "on any host; fix what they say and run the same command again (or pass "
            "--skip-preflight)"
        )
    else:
        unreached = [r.addr for r in verdict.rows if r.error]
        warned = any(f.level == WARN for r in verdict.rows for f in r.findings.values())
        lines.append(
            "preflight: passed"
            + (" by every host reached" if unreached else "")
            + (", with warnings above" if warned else "")
        )
    return lines


# ------------------------------------------------------------ the cluster's addresses


def vip_warning(vip: str, svc_cidr: str, pod_cidr: str) -> str | None:
    """A loud paragraph if the VIP lies inside the service or pod CIDR (each may be a
    comma-separated dual-stack pair); None if it does not. Not a host's failure: the
    cluster works until a Service or Pod is given that address."""
    ip = ipaddress.ip_address(vip)
    inside = []
    for flag, cidrs in (("--svc-cidr", svc_cidr), ("--pod-cidr", pod_cidr)):
        for text in cidrs.split(","):
            net = ipaddress.ip_network(text.strip(), strict=False)
            if net.version == ip.version and ip in net:
                inside.append((flag, str(net)))
    if not inside:
        return None
    why = []
    for flag, cidr in inside:
        if flag == "--svc-cidr":
            why.append(
                f"It lies inside the service CIDR {cidr}: Kubernetes may give a Service that "
                "ClusterIP, and kube-proxy's IPVS would then hold the same address as "
                "lvscare's virtual server for the masters. kube-proxy is configured with "
                f"excludeCIDRs [{vip}/{ip.max_prefixlen}], so it leaves the VIP's rules alone, "
                "but a Service with that ClusterIP would be unreachable."
            )
        else:
            why.append(
                f"It lies inside the pod CIDR {cidr}: a Pod may be given that address, and "
                "its traffic would go to lvscare's virtual server for the masters instead."
            )
    text = (
        f"WARNING: the VIP {vip} (--vip) is not a safe choice. {' '.join(why)} Choose a "
        f"--vip outside --svc-cidr ({svc_cidr}) and --pod-cidr ({pod_cidr}), and outside the "
        "hosts' networks."
    )
    bar = "!" * 78
    return "\n".join([bar, *textwrap.wrap(text, 78), bar])
