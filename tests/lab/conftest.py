"""Fixtures for kernel tests: one lab per session, reset between tests, and loud failures.

A kernel test outside the lab VM FAILS (never skips): a lab that cannot run must not look green.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from pathlib import Path

import pytest

from tests.support.lab_lvscare import LVSCARE, VS, CareFn, care_argv
from tests.support.labnet import (
    Lab,
    LabError,
    LabFactory,
    LabProcess,
    SpawnFn,
    lab_unavailable_reason,
    sh,
)


class _Shared:
    """The session's 3-master lab, built on first use and rebuilt if a reset fails."""

    lab: Lab | None = None


def _require_lab() -> None:
    reason = lab_unavailable_reason()
    if reason:
        pytest.fail(f"kernel lab unavailable: {reason}", pytrace=False)


@pytest.fixture(autouse=True)
def _kernel_only_in_lab(request: pytest.FixtureRequest) -> None:
    """Every test marked `kernel` fails at once outside the lab VM."""
    if request.node.get_closest_marker("kernel") is not None:
        _require_lab()


@pytest.fixture(scope="session")
def _shared_lab() -> Generator[type[_Shared], None, None]:
    yield _Shared
    if _Shared.lab is not None:
        _Shared.lab.destroy()
        _Shared.lab = None


@pytest.fixture
def lab(_shared_lab: type[_Shared]) -> Generator[Lab, None, None]:
    """Three masters m1..m3 serving on :6443, all healthy, IPVS table empty.

    Built once per session (fake apiservers start in seconds, not milliseconds, in the VM) and
    reset after each test: daemons stopped, servers restarted in mode ok, qdiscs, IPVS table,
    extra links/addresses/routes/namespaces, nft rules, vs sysctls and /etc/hosts restored.
    """
    _require_lab()
    if _shared_lab.lab is None:
        _shared_lab.lab = Lab(3).build()
    current = _shared_lab.lab
    yield current
    try:
        current.reset()
    except (LabError, OSError) as exc:
        _shared_lab.lab = None
        current.destroy()
        raise LabError(f"lab reset failed; it will be rebuilt for the next test: {exc}") from exc


@pytest.fixture
def lab_factory(_shared_lab: type[_Shared], tmp_path: Path) -> Generator[LabFactory, None, None]:
    """``lab_factory(masters=5)`` -> a fresh Lab of its own, destroyed after the test.

    For tests that need another number of masters or a lab nobody else touched; costs a full
    build (the shared lab is torn down first and rebuilt later on demand).
    """
    _require_lab()
    made: list[Lab] = []

    def make(masters: int = 3) -> Lab:
        if _shared_lab.lab is not None:
            _shared_lab.lab.destroy()
            _shared_lab.lab = None
        for old in made:
            old.destroy()
        fresh = Lab(masters, workdir=tmp_path / f"lab{len(made)}").build()
        made.append(fresh)
        return fresh

    yield make
    for built in made:
        built.destroy()


@pytest.fixture
def spawn(lab: Lab, tmp_path: Path) -> SpawnFn:
    """``spawn(argv, name="lvscare", env=None)`` -> LabProcess with stderr in tmp_path/NAME-N.log.

    Every process is stopped (SIGTERM, then SIGKILL) before the lab is reset.
    """
    counter = [0]

    def start(
        argv: Sequence[str], name: str = "proc", env: dict[str, str] | None = None
    ) -> LabProcess:
        log = tmp_path / f"{name}-{counter[0]}.log"
        counter[0] += 1
        return lab.spawn(argv, log, env)

    return start


@pytest.fixture
def care(lab: Lab, spawn: SpawnFn) -> CareFn:
    """``care(*flags)``: `lvscare care` on the lab's VIP and masters with just these flags.

    ``vs`` and ``rs_flags`` (``["--rs", ADDR, ...]``) replace the lab's VIP and masters,
    ``command`` the lvscare command (the blocking test hook), ``env`` adds to its environment.
    The lab's reset stops it and restores the kernel (table, links, nft, sysctls).
    """

    def start(
        *flags: str,
        vs: str = VS,
        rs_flags: Sequence[str] | None = None,
        command: Sequence[str] = LVSCARE,
        env: dict[str, str] | None = None,
    ) -> LabProcess:
        rs = lab.rs_args() if rs_flags is None else rs_flags
        return spawn(care_argv(rs, *flags, vs=vs, command=command), name="lvscare", env=env)

    return start


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, None, None]:
    """On failure, attach what the VM will not keep: process logs, server logs, the IPVS table."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed or report.when != "call":
        return
    current = _Shared.lab
    funcargs = getattr(item, "funcargs", {})
    if isinstance(funcargs.get("lab"), Lab):
        current = funcargs["lab"]
    if current is None or not current.built:
        return
    for proc in current.processes:
        report.sections.append((f"lab process {proc.log_path.name}", proc.tail(60)))
    for m in current.masters:
        report.sections.append((f"lab {m.name} apiserver log", m.log_tail(15)))
    try:
        table = sh("ipvsadm", "-Ln", check=False).stdout
    except OSError as exc:
        table = repr(exc)
    report.sections.append(("lab ipvsadm -Ln", table))
