"""Validated settings of `lvscare care`: flags become a CareConfig here and nowhere else.

`build_config` takes the flags by the names click gives them, so the CLI passes its options
straight through and bootstrap calls it as a library with the same words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from lvscare.address import HostPort, IPAddress, parse_hostport, parse_ip_literal
from lvscare.errors import BadInput
from lvscare.logs import FORMATS

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "sh", "dh")

DEFAULT_VIP = "10.103.97.2"
DEFAULT_INTERVAL = 5.0
DEFAULT_WEIGHT = 1
# Real-time round-robin at the lowest level while serving, so a busy node's workloads never
# queue a drain (see realtime.py); 0 turns it off.
DEFAULT_RT_PRIORITY = 1
# Every this many rounds hostnames in --rs are looked up again.
RESOLVE_EVERY_ROUNDS = 5

# The daemon's own HTTP endpoint (/healthz, /readyz, /metrics, /status). 10271 is outside
# the ports of Kubernetes' own components (kubelet 10248/10250/10255, kube-proxy
# 10249/10256, controller managers 10257/10258, scheduler 10259, etcd 2379-2381), of
# OpenYurt's 10261-10267, of the NodePort range (30000-32767) and of the ephemeral range
# (32768-60999).
DEFAULT_PORT = 10271
DEFAULT_HEALTH_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"
DISABLED = ("", "off", "none")

TRUE_WORDS = {"true", "t", "1", "yes"}
FALSE_WORDS = {"false", "f", "0", "no"}

_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", re.ASCII)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)", re.ASCII)
# Go's time.Duration ends here (int64 nanoseconds, about 292 years).
MAX_DURATION = (2**63 - 1) / 1e9
# An HTTP header name (RFC 9110 token) and a value: no control characters but tab.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


class Mode(StrEnum):
    """How locally generated traffic finds the VIP before IPVS takes it."""

    ROUTE = "route"  # a route for the VIP via --ip (or none: the default route will do)
    LINK = "link"  # VIP/32 on a dummy interface, as kube-proxy does


class Action(StrEnum):
    """What `lvscare care` does with the config: keep caring, or do one thing and exit."""

    SERVE = "serve"
    RUN_ONCE = "run-once"  # the table with every real server, without probing
    CLEAN = "clean"  # -C: remove the virtual server and what we made for the VIP


def parse_duration(value: str, flag: str) -> float:
    """Seconds from `5`, `0.5`, `5s`, `500ms` or Go's `1m30s`; must be positive."""
    text = value.strip()
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise BadInput(
                f"{flag} {value!r}: not a duration, write seconds (5) or a duration (5s, 500ms)"
            ) from None
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if not seconds > 0:
        raise BadInput(f"{flag} {value!r}: must be greater than zero")
    if seconds > MAX_DURATION:
        raise BadInput(f"{flag} {value!r}: longer than Go's longest duration (about 292 years)")
    return seconds


def parse_status_codes(values: Iterable[str]) -> frozenset[int]:
    """`--health-status 401,403` (repeatable) as a set of HTTP codes."""
    codes: set[int] = set()
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not re.fullmatch(r"[0-9]{3}", part, re.ASCII) or not 100 <= int(part) <= 599:
                raise BadInput(f"--health-status {part!r}: not an HTTP status code (100-599)")
            codes.add(int(part))
    return frozenset(codes)


def parse_headers(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """`--health-req-headers k=v` (repeatable, also comma-separated as pflag's StringToString)."""
    headers: list[tuple[str, str]] = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            name, sep, content = part.partition("=")
            if not sep or not name.strip():
                raise BadInput(f"--health-req-headers {part!r}: write NAME=VALUE")
            name, content = name.strip(), content.strip()
            if not _HEADER_NAME.fullmatch(name):
                raise BadInput(f"--health-req-headers {part!r}: {name!r} is not a header name")
            if _CONTROL.search(content) or not _encodable(content):
                raise BadInput(
                    f"--health-req-headers {part!r}: the value holds a control character "
                    "or text that is not UTF-8"
                )
            headers.append((name, content))
    return tuple(headers)


def _encodable(text: str) -> bool:
    """Whether `text` can be sent as UTF-8 (command-line bytes that were not UTF-8 arrive
    as lone surrogates, which cannot)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_bool_word(value: str | bool, flag: str) -> bool:
    """pflag's bool words (`--health-insecure-skip-verify=false`); a bool passes through."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BadInput(f"{flag} {value!r}: use true or false")


def parse_health_address(value: str | None) -> tuple[str, int] | None:
    """`IP:PORT` or `[IPv6]:PORT` (port 0: any free port); None for "", off, none."""
    if value is None or value.strip().lower() in DISABLED:
        return None
    text = value.strip()
    any_port = text.endswith(":0")
    ep = parse_hostport(text[:-1] + "1" if any_port else text, "--health-address",
                        allow_hostname=False)  # fmt: skip
    return ep.host, 0 if any_port else ep.port


def split_list(values: Iterable[str]) -> list[str]:
    """Repeatable flags that also take comma-separated lists, as Go's StringSlice does."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class ProbeSettings:
    """How one real server is asked whether it is healthy (the --health-* flags)."""

    scheme: str = "https"
    path: str = "/healthz"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    extra_status: frozenset[int] = frozenset()
    insecure_skip_verify: bool = True
    ca_file: str | None = None
    timeout: float = 2.5

    def healthy_status(self, status: int) -> bool:
        return 200 <= status < 300 or status in self.extra_status


@dataclass(frozen=True)
class CareConfig:
    """Everything `care` needs, already checked; the daemon never parses strings again."""

    vs: HostPort
    rs: tuple[HostPort, ...]
    scheduler: str = "rr"
    interval: float = DEFAULT_INTERVAL
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    mode: Mode = Mode.ROUTE
    iface: str = "lvscare"
    route_via: IPAddress | None = None
    rise: int = 1
    fall: int = 1
    weight: int = DEFAULT_WEIGHT
    debug: bool = False
    all_down: str = "keep"  # keep (fail open) | drain
    watch: bool = True  # idle connection per server for instant crash detection
    rt_priority: int = DEFAULT_RT_PRIORITY  # SCHED_RR priority while serving; 0: ordinary
    action: Action = Action.SERVE
    # Where /healthz, /readyz, /metrics and /status listen; None: nowhere (off, or not serving).
    status_address: tuple[str, int] | None = None
    log_format: str | None = None  # json | console; None: json unless stderr is a terminal

    @property
    def vip(self) -> IPAddress:
        ip = self.vs.ip
        assert ip is not None, "validated in build_config"
        return ip


def default_timeout(interval: float) -> float:
    """Half the interval, so a round (bounded by the timeout) ends well before the next."""
    return max(0.1, min(5.0, interval / 2))


def build_config(
    *,
    vs: str,
    rs: Iterable[str],
    scheduler: str = "rr",
    interval: str = "5",
    health_path: str = "/healthz",
    health_scheme: str = "https",
    health_req_method: str = "GET",
    health_req_headers: Iterable[str] = (),
    health_req_body: str = "",
    health_status: Iterable[str] = (),
    health_insecure_skip_verify: str | bool = True,
    health_ca_file: str | None = None,
    health_timeout: str | None = None,
    rise: int = 1,
    fall: int = 1,
    mode: str = "route",
    iface: str = "lvscare",
    ip: str | None = None,
    all_down: str = "keep",
    watch: bool = True,
    rt_priority: int = DEFAULT_RT_PRIORITY,
    run_once: bool = False,
    clean: bool = False,
    logger: str = "INFO",
    log_format: str | None = None,
    health_address: str | None = DEFAULT_HEALTH_ADDRESS,
) -> CareConfig:
    """Check every flag and build the config; raises BadInput naming the first bad value.

    The keywords are the option names of `lvscare care`; with `clean` no --rs is needed.
    """
    vs_ep = parse_hostport(vs, "--vs", allow_hostname=False)
    vip = vs_ep.ip
    assert vip is not None
    rs_eps: list[HostPort] = []
    for text in split_list(rs):
        ep = parse_hostport(text, "--rs")
        if ep.ip is not None and ep.ip.version != vip.version:
            raise BadInput(
                f"--rs {text!r}: IPv{ep.ip.version} real server for an IPv{vip.version} --vs"
            )
        if ep not in rs_eps:
            rs_eps.append(ep)
    action = Action.CLEAN if clean else Action.RUN_ONCE if run_once else Action.SERVE
    if action is not Action.CLEAN and not rs_eps:
        raise BadInput("--rs: at least one real server is required (or -C to clean)")
    if scheduler not in SCHEDULERS:
        raise BadInput(f"--scheduler {scheduler!r}: unknown, use one of {', '.join(SCHEDULERS)}")
    interval_s = parse_duration(interval, "--interval")
    if health_scheme not in ("http", "https"):
        raise BadInput(f"--health-schem {health_scheme!r}: use https or http")
    path = health_path if health_path.startswith("/") else "/" + health_path
    if re.search(r"\s", path) or not path.isprintable() or not _encodable(path):
        raise BadInput(
            f"--health-path {health_path!r}: a URL path has no blanks or control characters"
        )
    method = health_req_method.upper()
    if not re.fullmatch(r"[A-Z]+", method) or not health_req_method.isascii():
        raise BadInput(f"--health-req-method {health_req_method!r}: not an HTTP method")
    if not _encodable(health_req_body):
        raise BadInput(f"--health-req-body {health_req_body!r}: not UTF-8 text")
    skip_verify = parse_bool_word(health_insecure_skip_verify, "--health-insecure-skip-verify")
    timeout = (
        parse_duration(health_timeout, "--health-timeout")
        if health_timeout
        else default_timeout(interval_s)
    )
    try:
        mode_v = Mode(mode)
    except ValueError:
        raise BadInput(f"--mode {mode!r}: use route or link") from None
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", iface) or iface in (".", ".."):
        raise BadInput(f"--iface {iface!r}: not a valid interface name (1-15 characters)")
    route_via: IPAddress | None = None
    if ip:
        try:
            route_via = parse_ip_literal(ip)
        except ValueError:
            raise BadInput(f"--ip {ip!r}: not an IP address") from None
        if route_via.version != vip.version:
            raise BadInput(
                f"--ip {ip!r}: IPv{route_via.version} gateway for an IPv{vip.version} --vs"
            )
    for flag, count in (("--rise", rise), ("--fall", fall)):
        if count < 1:
            raise BadInput(f"{flag} {count}: must be at least 1")
    if logger.upper() not in ("INFO", "DEBG", "DEBUG"):
        raise BadInput(f"--logger {logger!r}: use INFO or DEBG")
    if not 0 <= rt_priority <= 99:
        raise BadInput(f"--rt-priority {rt_priority}: use 0 (off) to 99")
    if all_down not in ("keep", "drain"):
        raise BadInput(f"--all-down {all_down!r}: use keep or drain")
    if health_ca_file is not None:
        try:
            with open(health_ca_file, "rb"):
                pass
        except OSError as e:
            raise BadInput(f"--health-ca-file {health_ca_file!r}: {e.strerror}") from None
        except ValueError:  # a NUL byte in the name
            raise BadInput(f"--health-ca-file {health_ca_file!r}: not a file name") from None
    if log_format is not None and log_format not in FORMATS:
        raise BadInput(f"--log-format {log_format!r}: use {' or '.join(FORMATS)}")
    # Only a serving daemon listens; run-once and -C never read the address.
    status_address = parse_health_address(health_address) if action is Action.SERVE else None
    return CareConfig(
        vs=vs_ep,
        rs=tuple(rs_eps),
        scheduler=scheduler,
        interval=interval_s,
        probe=ProbeSettings(
            scheme=health_scheme,
            path=path,
            method=method,
            headers=parse_headers(health_req_headers),
            body=health_req_body,
            extra_status=parse_status_codes(health_status),
            insecure_skip_verify=skip_verify,
            ca_file=health_ca_file,
            timeout=timeout,
        ),
        mode=mode_v,
        iface=iface,
        route_via=route_via,
        rise=rise,
        fall=fall,
        debug=logger.upper() != "INFO",
        all_down=all_down,
        watch=watch,
        rt_priority=rt_priority,
        action=action,
        status_address=status_address,
        log_format=log_format,
    )
