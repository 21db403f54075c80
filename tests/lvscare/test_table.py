"""The planner: smallest change set, adoption without churn, repair of foreign edits."""

from __future__ import annotations

import ipaddress

from lvscare.kernel.table import DRAIN, Dest, DestState, Op, Service, ServiceState, plan

SVC = Service(ipaddress.ip_address("10.103.97.2"), 6443, "rr")
A = Dest(ipaddress.ip_address("198.18.0.11"), 6443)
B = Dest(ipaddress.ip_address("198.18.0.12"), 6443)
C = Dest(ipaddress.ip_address("198.18.0.13"), 6443)


def test_missing_service_is_created_with_every_wanted_dest() -> None:
    assert plan(SVC, None, {A: 1, B: 1}) == [
        Op("add-service"),
        Op("add-dest", A, 1),
        Op("add-dest", B, 1),
    ]


def test_matching_table_is_adopted_without_any_change() -> None:
    actual = ServiceState("rr", {A: DestState(1), B: DestState(1)})
    assert plan(SVC, actual, {A: 1, B: 1}) == []


def test_drain_sets_weight_zero_only_when_present() -> None:
    actual = ServiceState("rr", {A: DestState(1)})
    assert plan(SVC, actual, {A: DRAIN, B: DRAIN}) == [Op("set-dest", A, 0)]
    assert plan(SVC, ServiceState("rr", {A: DestState(0)}), {A: DRAIN}) == []


def test_foreign_dest_weight_and_scheduler_changes_are_repaired() -> None:
    actual = ServiceState("wlc", {A: DestState(5), C: DestState(1)})
    assert plan(SVC, actual, {A: 1, B: 1}) == [
        Op("set-service"),
        Op("set-dest", A, 1),
        Op("add-dest", B, 1),
        Op("del-dest", C),
    ]


def test_servers_are_added_before_others_are_drained_or_removed() -> None:
    # Seen in the chaos lab: A drained first, then B added, left a moment with nothing to
    # schedule, and IPVS refused the connection that came in it.
    actual = ServiceState("rr", {A: DestState(1), C: DestState(1)})
    ops = plan(SVC, actual, {A: DRAIN, B: 1})
    assert ops == [Op("add-dest", B, 1), Op("set-dest", A, 0), Op("del-dest", C)]


def test_direct_routing_dest_is_switched_to_nat() -> None:
    actual = ServiceState("rr", {A: DestState(1, fwd_method=3)})
    assert plan(SVC, actual, {A: 1}) == [Op("set-dest", A, 1)]
