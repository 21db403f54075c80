"""The offline package's shell/init.sh and clean.sh on a real kernel: modules loaded now and
listed for boot, sysctls set, a real swap device turned off and its fstab line commented
out, Debian's containerd found with its cgroup driver and given the package's images.

Each run is in a sandbox (tests/support/sandbox.py): a private mount namespace, with overlays
over the VM's read-only /etc, /usr, /var, /opt and /root whose upper layers are on a tmpfs,
and a private network namespace, so the sysctls do not change the other lab tests' network.
The swap is a loop device over a file on a tmpfs. The modules are unloaded before the test
(as far as the kernel lets them go) and the lab's kernel gets its own set back after it, so
the tests after it see the kernel as before.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap.host import runtime
from tests.support.labnet import loaded_modules
from tests.support.sandbox import IMAGE, IMAGE_GZ, MODULES, SYSCTLS, Sandbox, lines, package

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(1200)]

# Unloading in this order lets each go once nothing uses it (ip_vs needs nf_conntrack).
UNLOAD_ORDER = ("ip_vs_sh", "ip_vs_wrr", "ip_vs_rr", "ip_vs", "br_netfilter", "nf_conntrack")
FSTAB = "# /etc/fstab of the lab's test host\ntmpfs /scratch tmpfs defaults 0 0\n"


loaded = loaded_modules


def active_swaps() -> list[str]:
    return [line.split()[0] for line in Path("/proc/swaps").read_text().splitlines()[1:]]


@pytest.fixture
def kernel_as_before(_shared_lab: Any) -> Iterator[set[str]]:
    """The modules init.sh is to load, unloaded first as far as the kernel lets them go (what
    is left is yielded); after the test the lab's kernel gets back the modules it had
    (scripts/lab loads ip_vs at boot) and loses the others, where nothing uses them. The
    shared lab of masters is taken down first, and built again by the next test that wants
    it: under it the modules' coming and going left its bridge gone (seen in CI)."""
    if _shared_lab.lab is not None:
        _shared_lab.lab.destroy()
        _shared_lab.lab = None
    lab_had = loaded()
    for name in UNLOAD_ORDER:
        subprocess.run(["modprobe", "-r", "-q", name], check=False)
    yield loaded()
    for name in UNLOAD_ORDER:
        if name not in lab_had:
            subprocess.run(["modprobe", "-r", "-q", name], check=False)
    for name in sorted(lab_had & set(UNLOAD_ORDER)):
        subprocess.run(["modprobe", name], check=True)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(
        tmp_path / "sandbox",
        overlaid=("/etc", "/usr", "/var", "/opt", "/root"),
        fake_kernel=False,
        netns=True,
    )
    box.start(systemd=False)
    devices: list[str] = []
    try:
        devices.append(swap_device(box))
        yield box
    finally:
        for dev in devices:
            subprocess.run(["swapoff", dev], capture_output=True, check=False)
            subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
        box.stop()


def swap_device(box: Sandbox) -> str:
    """A loop device over a file on a tmpfs, made swap, turned on and put in fstab."""
    subprocess.run(["modprobe", "loop"], check=False)
    area = box.dir / "swapfs"
    dev = box.run(
        f"mkdir -p {area} && mount -t tmpfs -o size=40m lvpy-swap {area} && "
        f"dd if=/dev/zero of={area}/swap bs=1M count=16 status=none && "
        f"mkswap {area}/swap >/dev/null && losetup -f --show {area}/swap"
    ).stdout.strip()
    assert dev.startswith("/dev/loop"), dev
    box.run(f"swapon {dev}")
    box.write("/etc/fstab", (FSTAB + f"{dev} none swap sw 0 0\n").encode())
    assert dev in active_swaps()
    return dev


def sysctl(box: Sandbox, key: str) -> str:
    """As the sandbox's network namespace has it."""
    return box.run(f"cat /proc/sys/{key}").stdout.strip()


def test_init_prepares_the_kernel_swap_and_containerd_and_clean_undoes_its_files(
    host: Sandbox, kernel_as_before: set[str], tmp_path: Path
) -> None:
    pkg = package(tmp_path / "pkg")
    host.start_containerd(systemd_cgroup=True)
    (dev,) = [d for d in active_swaps() if d.startswith("/dev/loop")]
    root_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    before, images = host.contents(), host.images()

    out = host.init_sh(pkg)
    assert out.returncode == 0, lines(out)

    assert set(MODULES) <= loaded() | _builtin()
    # A module another one needs (nf_conntrack for ip_vs) comes in with it, unnamed.
    absent = [m for m in MODULES if m not in kernel_as_before | _builtin()]
    said = re.findall(r"^init.sh: loaded kernel module (\S+)$", out.stdout, re.MULTILINE)
    assert absent, "the kernel let none of the modules go before the test: nothing to prove"
    assert said[:1] == absent[:1] and set(said) <= set(absent), (absent, said)
    boot = host.read("/etc/modules-load.d/lvscare-py.conf").decode().splitlines()
    assert [m for m in boot if not m.startswith("#")] == list(MODULES)
    for key in SYSCTLS:
        assert sysctl(host, key) == "1", key
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == root_forward  # not the VM's
    assert dev not in active_swaps()
    assert host.read("/etc/fstab").decode() == FSTAB + f"#lvscare-py# {dev} none swap sw 0 0\n"
    env = runtime.read_env(host.path("/etc/lvscare-py/runtime.env"))
    assert env == {
        "RUNTIME": "containerd",
        "CGROUP_DRIVER": "systemd",
        "CRI_SOCKET": "unix:///run/containerd/containerd.sock",
    }
    assert {IMAGE, IMAGE_GZ} <= set(host.images())

    written, imported = host.upper(), host.images()
    again = host.init_sh(pkg)
    assert again.returncode == 0, lines(again)
    assert host.upper() == written  # every file: content, mode, mtime
    assert host.images() == imported
    assert again.stdout.splitlines()[-1] == (
        "init.sh: nothing to change: this host is as init.sh leaves it"
    )

    out = host.clean_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert host.contents() == before  # fstab as it was, every file init.sh made gone
    assert host.images() == images
    assert not host.path("/var/lib/lvscare-py-init").exists()


def _builtin() -> set[str]:
    """Modules built into the running kernel (never in /proc/modules)."""
    release = Path("/proc/sys/kernel/osrelease").read_text().strip()
    path = Path(f"/lib/modules/{release}/modules.builtin")
    if not path.exists():
        return set()
    return {Path(line).name.removesuffix(".ko") for line in path.read_text().split()}
