"""The lvscare image on a real kernel: containerd imports the archive and runs it as the static
pod does (privileged, host network, /lib/modules read-only), and lvscare from it keeps the
lab's masters in the IPVS table; without /lib/modules it stops with one line.

The archive is the one in the offline package the host built last (the VM cannot run
PyInstaller, and building there would take minutes):

    .venv/bin/python -m tests.support.built_package

containerd (tests/support/containerd.py) runs with its root, state and binaries on a tmpfs
of its own, and is stopped, with everything it started, when the module ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.build import image
from tests.support.built_package import existing_package
from tests.support.containerd import Containerd
from tests.support.lab_lvscare import VS, all_up, dests
from tests.support.labnet import Lab, LabError, LabProcess, SpawnFn, ipvs_clear, sh
from tests.support.wait import wait_until

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
MEMBER = "kube/images/lvscare-py-0.1.0.tar"  # the image archive in the package
FIGURES = REPO / ".lab" / "image" / "figures.json"  # measured in the VM, for the notes
IMAGE = "docker.io/library/lvscare-py:0.1.0"
MODULES_MOUNT = "type=bind,src=/lib/modules,dst=/lib/modules,options=rbind:ro"
KERNEL_MODPROBE = Path("/proc/sys/kernel/modprobe")


# -- in the VM: the archive and containerd ----------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image archive, taken out of the package the host built last."""
    package = existing_package()
    if package is None:
        pytest.fail(
            "no offline package built for this checkout: build it on the host before the VM "
            "boots (.venv/bin/python -m tests.support.built_package)",
            pytrace=False,
        )
    out = tmp_path_factory.mktemp("image") / Path(MEMBER).name
    with tarfile.open(package, "r:gz") as tar:
        try:
            member = tar.getmember(MEMBER)
        except KeyError:
            pytest.fail(f"{package} holds no {MEMBER}", pytrace=False)
        source = tar.extractfile(member)
        assert source is not None, f"{MEMBER} in {package} is not a file"
        with source, open(out, "wb") as sink:
            while chunk := source.read(1 << 20):
                sink.write(chunk)
    return out


@pytest.fixture(scope="module")
def containerd(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """containerd with the lvscare image imported, as `ctr -n k8s.io images import` does."""
    log = tmp_path_factory.mktemp("containerd") / "containerd.log"
    with Containerd(log=log, cri=False) as daemon:
        out = daemon.ctr("images", "import", "--snapshotter", "native", str(archive)).stdout
        assert IMAGE in daemon.images(), out
        yield daemon


def run_argv(daemon: Containerd, name: str, *command: str, lib_modules: bool) -> list[str]:
    """`ctr run` as the static pod runs lvscare: privileged, host network, and (unless told)
    /lib/modules read-only. `command` replaces the image's entrypoint and command."""
    mount = ["--mount", MODULES_MOUNT] if lib_modules else []
    return daemon.argv(
        "run", "--rm", "--snapshotter", "native", "--privileged", "--net-host", *mount,
        IMAGE, name, *command,
    )  # fmt: skip


# -- in the VM: the kernel's modules ----------------------------------------------------------


@contextlib.contextmanager
def modules_only_from_lib_modules() -> Iterator[None]:
    """IPVS out of the kernel, and the kernel's own module loading off (it would load ip_vs
    and ip_vs_rr itself, through the VM's modprobe, when lvscare asks for IPVS): only a
    modprobe that reads /lib/modules can bring them back. Restored afterwards."""
    ipvs_clear()
    for module in sorted(os.listdir("/sys/module")):
        if module.startswith("ip_vs_"):
            sh("rmmod", module, check=False)
    removed = sh("rmmod", "ip_vs", check=False)
    if Path("/sys/module/ip_vs").exists():
        raise LabError(f"ip_vs could not be removed: {removed.stderr.strip()}")
    helper = KERNEL_MODPROBE.read_text()
    KERNEL_MODPROBE.write_text("/nonexistent/modprobe\n")
    try:
        yield
    finally:
        KERNEL_MODPROBE.write_text(helper)
        sh("modprobe", "ip_vs")


def vm_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def output(proc: LabProcess) -> list[str]:
    """What the container printed (ctr passes its stdout and stderr through), non-empty lines."""
    return [line for line in [*proc.lines(), *proc.stdout().splitlines()] if line.strip()]


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.timeout(1500)
def test_lvscare_from_the_image_keeps_every_master_in_the_table(
    lab: Lab, spawn: SpawnFn, containerd: Containerd, archive: Path
) -> None:
    """Also the image's modprobe: with IPVS out of the kernel and the kernel's own loading off,
    lvscare loads ip_vs and ip_vs_rr from the mounted /lib/modules."""
    with modules_only_from_lib_modules():
        ctr = spawn(
            run_argv(containerd, "lvscare-image", "lvscare", "care", "--vs", VS,
                     *lab.rs_args(), lib_modules=True),
            name="ctr-lvscare",
        )  # fmt: skip
        assert wait_until(lambda: dests() == all_up(lab), 600), (dests(), output(ctr))
        assert {e["module"] for e in ctr.find("module loaded")} == {"ip_vs", "ip_vs_rr"}
        pid = containerd.task_pid("lvscare-image")
        assert os.readlink(f"/proc/{pid}/exe") == "/opt/lvscare/lvscare"
        time.sleep(10)  # a few rounds of probes, for a settled RSS
        memory = vm_status(pid)
        containerd.ctr("task", "kill", "-s", "SIGTERM", "lvscare-image")
        assert ctr.wait(120) == 0, output(ctr)
    assert dests() == all_up(lab), "SIGTERM leaves the table in place"
    assert not any("Traceback" in line for line in output(ctr))

    built = image.read_archive(archive)
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(
        json.dumps(
            {
                "rss_kib": memory["VmRSS"],
                "hwm_kib": memory["VmHWM"],
                "archive_bytes": built.size,
                "root_bytes": built.root_size,
                "digest": built.digest,
                "kernel": os.uname().release,
            },
            indent=1,
        )
    )


@pytest.mark.timeout(900)
def test_without_lib_modules_the_image_stops_with_one_line_naming_the_module(
    lab: Lab, spawn: SpawnFn, containerd: Containerd
) -> None:
    with modules_only_from_lib_modules():
        ctr = spawn(
            run_argv(containerd, "lvscare-no-modules", "lvscare", "care", "--vs", VS,
                     *lab.rs_args(), lib_modules=False),
            name="ctr-no-modules",
        )  # fmt: skip
        code = ctr.wait(600)
    lines = output(ctr)
    assert code == 1, lines
    assert len(lines) == 1, lines
    assert "ip_vs" in lines[0] and "/lib/modules" in lines[0], lines
    assert lines[0].startswith("lvscare: ")
    assert dests() == {}
    with contextlib.suppress(OSError, ValueError):
        FIGURES.write_text(
            json.dumps({**json.loads(FIGURES.read_text()), "error": lines[0]}, indent=1)
        )
