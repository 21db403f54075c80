"""Flags become a CareConfig or one clear BadInput naming the value."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lvscare.address import HostPort, parse_hostport
from lvscare.config import (
    DEFAULT_HEALTH_ADDRESS,
    Action,
    Mode,
    build_config,
    default_timeout,
    parse_duration,
    parse_health_address,
)
from lvscare.errors import BadInput


def test_sealos_arguments_parse_to_route_mode_with_three_masters() -> None:
    cfg = build_config(
        vs="10.103.97.2:6443",
        rs=["192.168.0.2:6443", "192.168.0.3:6443", "192.168.0.4:6443"],
        health_path="/healthz",
        health_scheme="https",
    )
    assert cfg.vs == HostPort("10.103.97.2", 6443)
    assert [str(r) for r in cfg.rs] == ["192.168.0.2:6443", "192.168.0.3:6443", "192.168.0.4:6443"]
    assert cfg.mode is Mode.ROUTE and cfg.scheduler == "rr" and cfg.interval == 5.0
    assert cfg.probe.insecure_skip_verify


def test_rs_accepts_comma_separated_and_repeated_and_drops_duplicates() -> None:
    cfg = build_config(
        vs="10.103.97.2:6443", rs=["198.18.0.11:6443,198.18.0.12:6443", "198.18.0.11:6443"]
    )
    assert [str(r) for r in cfg.rs] == ["198.18.0.11:6443", "198.18.0.12:6443"]


def test_ipv6_with_brackets_is_accepted() -> None:
    cfg = build_config(vs="[fd00::2]:6443", rs=["[fd00:1::2]:6443"])
    assert cfg.vip == ipaddress.ip_address("fd00::2")
    assert str(cfg.rs[0]) == "[fd00:1::2]:6443"


def test_hostname_real_servers_are_kept_for_resolution() -> None:
    cfg = build_config(vs="10.103.97.2:6443", rs=["Master1.example:6443"])
    assert cfg.rs[0].host == "master1.example" and cfg.rs[0].ip is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vs": "10.103.97.2"}, "--vs '10.103.97.2': missing port"),
        ({"vs": "10.103.97.2:0"}, "port 0 is out of range"),
        ({"vs": "10.103.97.2:65536"}, "port 65536 is out of range"),
        ({"vs": "fd00::2:6443"}, "IPv6 addresses need brackets"),
        ({"vs": "apiserver:6443"}, "'apiserver' is not an IP address"),
        ({"rs": ["192.168.0.2"]}, "--rs '192.168.0.2': missing port"),
        ({"rs": ["[fd00::3]:6443"]}, "IPv6 real server for an IPv4 --vs"),
        ({"rs": []}, "--rs: at least one real server is required"),
        ({"scheduler": "fifo"}, "--scheduler 'fifo': unknown"),
        ({"interval": "soon"}, "--interval 'soon': not a duration"),
        ({"interval": "0"}, "must be greater than zero"),
        ({"health_scheme": "ftp"}, "--health-schem 'ftp'"),
        ({"health_status": ["200,abc"]}, "--health-status 'abc'"),
        ({"health_req_headers": ["novalue"]}, "--health-req-headers 'novalue'"),
        ({"mode": "tunnel"}, "--mode 'tunnel'"),
        ({"ip": "gateway"}, "--ip 'gateway'"),
        ({"rise": 0}, "--rise 0"),
        ({"rt_priority": 100}, "--rt-priority 100: use 0 (off) to 99"),
        ({"rt_priority": -1}, "--rt-priority -1"),
        ({"health_ca_file": "/nonexistent/ca.crt"}, "--health-ca-file '/nonexistent/ca.crt'"),
    ],
)
def test_bad_input_names_the_bad_value(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"vs": "10.103.97.2:6443", "rs": ["192.168.0.2:6443"]}
    args.update(kwargs)
    with pytest.raises(BadInput) as err:
        build_config(**args)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_clean_needs_no_real_servers() -> None:
    cfg = build_config(vs="10.103.97.2:6443", rs=[], clean=True)
    assert cfg.rs == () and cfg.action is Action.CLEAN


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5", 5.0), ("0.5", 0.5), ("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0)],
)
def test_durations_take_seconds_or_go_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text, "--interval") == pytest.approx(seconds)


def test_default_timeout_is_half_the_interval_within_bounds() -> None:
    assert default_timeout(1.0) == 0.5
    assert default_timeout(5.0) == 2.5
    assert default_timeout(60.0) == 5.0
    assert build_config(vs="10.103.97.2:6443", rs=["1.2.3.4:1"], interval="1").probe.timeout == 0.5


def test_extra_status_codes_count_as_healthy() -> None:
    cfg = build_config(vs="10.103.97.2:6443", rs=["1.2.3.4:1"], health_status=["401,403"])
    assert cfg.probe.healthy_status(200) and cfg.probe.healthy_status(403)
    assert not cfg.probe.healthy_status(500)


@given(st.ip_addresses(), st.integers(min_value=1, max_value=65535))
def test_any_address_and_port_round_trips_through_its_text(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    text = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    ep = parse_hostport(text, "--rs")
    assert ep.ip == ip and ep.port == port and str(ep) == text


@given(st.text(max_size=30))
def test_parser_never_crashes_on_garbage(text: str) -> None:
    try:
        parse_hostport(text, "--rs")
    except BadInput as e:
        assert "--rs" in str(e)


def test_health_address_parsing() -> None:
    assert parse_health_address(DEFAULT_HEALTH_ADDRESS) == ("127.0.0.1", 10271)
    assert parse_health_address("[::1]:9") == ("::1", 9)
    assert parse_health_address("0.0.0.0:0") == ("0.0.0.0", 0)
    for off in ("", "off", "none", None):
        assert parse_health_address(off) is None
    with pytest.raises(BadInput, match="--health-address 'localhost:1'"):
        parse_health_address("localhost:1")
    with pytest.raises(BadInput, match="missing port"):
        parse_health_address("127.0.0.1")
