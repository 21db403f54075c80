"""What the daemon loads: the parts of its libraries it uses, not their every module.

Each check runs in a fresh interpreter, where nothing else could have loaded a module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# `lvscare care --run-once` with the IPVS table in memory: the daemon's whole import path.
RUN_ONCE_AND_TELL = """\
import json, sys
sys.argv = ["lvscare", "care", "--vs", "10.103.97.2:6443", "--rs", "198.18.0.11:6443",
            "--rs", "198.18.0.12:6443", "--run-once"]
from lvscare.imports import init_deferred
try:
    from bench.host_daemon import main
    main()
except SystemExit as e:
    code = e.code
print(json.dumps({"exit": code, "modules": sorted(sys.modules),
                  "deferred": [init_deferred("pyroute2"), init_deferred("prometheus_client")]}))
"""


def fresh_python(code: str, *, cwd: Path = ROOT, pythonpath: str | None = None) -> str:
    env = None if pythonpath is None else {"PYTHONPATH": pythonpath, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return proc.stdout.splitlines()[-1]


def test_the_daemon_loads_only_the_library_parts_it_uses() -> None:
    told = json.loads(fresh_python(RUN_ONCE_AND_TELL))
    assert told["exit"] in (0, None)
    modules = set(told["modules"])
    # used: IPVS over generic netlink, the metrics, the HTTPS probes
    assert {"pyroute2.ipvs", "prometheus_client.metrics", "aiohttp.client"} <= modules
    # never needed in the default mode (route, no --ip): pyroute2's package __init__ and
    # its rtnetlink stack (which imports unittest), aiohttp's server, PyYAML (manifests)
    assert told["deferred"] == [True, True]
    unused = {"pyroute2.ndb", "pyroute2.conntrack", "pyroute2.iproute.linux", "unittest",
              "aiohttp.web", "yaml", "prometheus_client.gc_collector"}  # fmt: skip
    assert not unused & modules


def test_the_rtnetlink_stack_is_loaded_when_a_mode_needs_it() -> None:
    code = """\
import asyncio, sys
from lvscare.kernel.hostnet import HostNetwork
before = "pyroute2.iproute.linux" in sys.modules
net = HostNetwork()
try:
    net._rt()
except Exception:
    pass  # a kernel without permission still had to import it first
print(before, "pyroute2.iproute.linux" in sys.modules)
"""
    assert fresh_python(code) == "False True"


def package(root: Path) -> None:
    """`pkgx`: an __init__ that tells when it runs, a plain submodule, and a submodule that
    asks the package for a name only its __init__ defines."""
    pkg = root / "pkgx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import sys\nsys.stdout.write('init ran;')\nfrom pkgx.sub import VALUE\nNAME = 'x'\n"
    )
    (pkg / "sub.py").write_text("VALUE = 41\n")
    (pkg / "needs_init.py").write_text("from pkgx import NAME\n")


def test_a_deferred_package_runs_its_init_only_when_asked_for_a_name_it_lacks(
    tmp_path: Path,
) -> None:
    package(tmp_path)
    code = """\
import sys
from lvscare.imports import defer_package_init, init_deferred
defer_package_init("pkgx")
import pkgx.sub
from pkgx import sub
sys.stdout.write(f"sub {sub.VALUE} pending {init_deferred('pkgx')};")
from pkgx import NAME
sys.stdout.write(f"NAME {NAME} pending {init_deferred('pkgx')};")
import pkgx
try:
    pkgx.missing
except AttributeError as e:
    sys.stdout.write(f"{e};")
print()
"""
    out = fresh_python(code, pythonpath=f"{tmp_path}:{ROOT}")
    assert out == (
        "sub 41 pending True;init ran;NAME x pending False;"
        "module 'pkgx' has no attribute 'missing';"
    )


def test_a_submodule_that_needs_the_package_init_gets_it(tmp_path: Path) -> None:
    package(tmp_path)
    code = """\
from lvscare.imports import defer_package_init
defer_package_init("pkgx")
import pkgx.needs_init
print(pkgx.needs_init.NAME)
"""
    assert fresh_python(code, pythonpath=f"{tmp_path}:{ROOT}") == "init ran;x"


def test_an_imported_package_is_left_as_it_is(tmp_path: Path) -> None:
    package(tmp_path)
    code = """\
import pkgx
from lvscare.imports import defer_package_init, init_deferred
defer_package_init("pkgx")
print(init_deferred("pkgx"), pkgx.NAME)
"""
    assert fresh_python(code, pythonpath=f"{tmp_path}:{ROOT}") == "init ran;False x"


def test_other_code_in_the_process_still_gets_the_whole_library() -> None:
    code = """\
import lvscare.daemon
from pyroute2 import IPRoute, NetlinkError
from prometheus_client import REGISTRY, Counter
print(IPRoute.__name__, NetlinkError.__name__, type(REGISTRY).__name__, Counter.__name__)
"""
    assert fresh_python(code) == "IPRoute NetlinkError CollectorRegistry Counter"


def test_a_frozen_build_gives_its_children_the_callers_library_path() -> None:
    """PyInstaller's bootloader points LD_LIBRARY_PATH at its bundle and keeps the caller's
    in LD_LIBRARY_PATH_ORIG: modprobe, nft and kubeadm must get the caller's back (and none
    when the caller had none). Importing lvscare does it, once."""
    code = """\
import os, subprocess, sys
sys.frozen = True
os.environ["LD_LIBRARY_PATH"] = "/tmp/_MEI1234"
{orig}
import lvscare
from lvscare.imports import restore_library_path
restore_library_path()  # again: changes nothing
script = 'echo "${{LD_LIBRARY_PATH-unset}};${{LD_LIBRARY_PATH_ORIG-unset}}"'
print(subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout.strip())
"""
    with_orig = code.format(orig='os.environ["LD_LIBRARY_PATH_ORIG"] = "/opt/site/lib"')
    assert fresh_python(with_orig) == "/opt/site/lib;unset"
    assert fresh_python(code.format(orig="")) == "unset;unset"
