"""The offline package's shell/init.sh and shell/clean.sh, run for real on this machine in a
sandbox (tests/support/sandbox.py): a private mount namespace with overlays over /etc, /usr,
/var and /opt whose upper layers are on a tmpfs, and a fresh /run, so nothing of this
machine changes.

This kernel has no IPVS, so its side is stood in for (the sandbox's `fake_kernel`): modules,
sysctls, /proc/swaps, systemctl. containerd is Debian's, really running in the sandbox;
Docker is a stand-in. tests/lab/test_init_sh_lab.py runs the same scripts on a real kernel
(modules, sysctls, a real swap device).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.host import runtime
from tests.support.sandbox import (
    BINARIES,
    BUILD,
    CNI_PLUGINS,
    IMAGE,
    IMAGE_GZ,
    MODULES,
    SCRIPTS,
    SWAPS_HEADER,
    SYSCTLS,
    Sandbox,
    gzip_bytes,
    image_archive,
    lines,
    package,
)

REC = "/var/lib/lvscare-py-init"
# A configuration that is not the one containerd runs with.
PLAIN = (
    'version = 2\n[plugins."io.containerd.internal.v1.opt"]\n  path = "/var/lib/containerd/opt"\n'
)
FSTAB = (
    b"# /etc/fstab: static file system information.\n"
    b"UUID=1234-abcd /               ext4    errors=remount-ro 0       1\n"
    b"/dev/lvpy-swap0 none swap sw 0 0\n"
    b"  # /dev/old-swap none swap sw 0 0\n"
    b"/srv/swapfile\tnone\tswap\tsw,pri=5\t0\t0\n"
    b"tmpfs /scratch tmpfs defaults 0 0"  # no newline at the end: kept so
)
SWAPS = ["/dev/lvpy-swap0\tpartition\t1048572\t0\t-2", "/srv/swapfile\tfile\t1024\t0\t5"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path / "sandbox")
    yield box
    box.stop()


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    return package(tmp_path / "pkg")


def ready(
    box: Sandbox, systemd_cgroup: bool = True, cri: bool = True, systemd: bool = True
) -> Sandbox:
    """The usual host: swap on and in fstab, containerd running."""
    box.start(swaps=tuple(SWAPS), systemd=systemd)
    box.write("/etc/fstab", FSTAB)
    box.start_containerd(systemd_cgroup=systemd_cgroup, cri=cri)
    return box


# ---------------------------------------------------------------- the scripts as text


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_posix_sh_that_shellcheck_finds_clean(script: Path) -> None:
    assert script.read_text().startswith("#!/bin/sh\n")
    for argv in (["dash", "-n", str(script)], ["shellcheck", "--shell=sh", str(script)]):
        assert shutil.which(argv[0]), f"{argv[0]} is missing: run scripts/setup"
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_units_run_the_kubelet_init_sh_installs() -> None:
    unit = (BUILD / "conf" / "kubelet.service").read_text()
    dropin = (BUILD / "conf" / "10-kubeadm.conf").read_text()
    assert "ExecStart=/usr/local/bin/kubelet\n" in unit
    assert "WantedBy=multi-user.target" in unit
    assert dropin.splitlines()[-2:] == [
        "ExecStart=",
        "ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
        "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS",
    ]
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in dropin


# ---------------------------------------------------------------- init.sh


def test_init_installs_the_package_and_prepares_kernel_swap_boot_and_runtime(
    sandbox: Sandbox, pkg: Path
) -> None:
    ready(sandbox)
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)

    for name in BINARIES:
        path = sandbox.path(f"/usr/local/bin/{name}")
        assert path.read_bytes() == (pkg / "bin" / name).read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
    for name in CNI_PLUGINS:
        assert sandbox.read(f"/opt/cni/bin/{name}") == (pkg / "bin" / "cni" / name).read_bytes()
    assert (
        sandbox.read("/etc/systemd/system/kubelet.service")
        == (pkg / "conf" / "kubelet.service").read_bytes()
    )
    assert (
        sandbox.read("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf")
        == (pkg / "conf" / "10-kubeadm.conf").read_bytes()
    )
    boot = sandbox.read("/etc/modules-load.d/lvscare-py.conf").decode().splitlines()
    assert [m for m in boot if not m.startswith("#")] == list(MODULES)
    assert sorted(os.listdir(sandbox.path("/sys/module"))) == sorted(MODULES)
    sysctls = sandbox.read("/etc/sysctl.d/lvscare-py.conf").decode()
    for key in SYSCTLS:
        assert f"{key.replace('/', '.')} = 1\n" in sysctls
        assert sandbox.read(f"/proc/sys/{key}") == b"1\n"

    assert sandbox.read("/proc/swaps").decode() == SWAPS_HEADER
    assert (
        sandbox.read("/etc/fstab")
        == FSTAB.replace(b"/dev/lvpy-swap0", b"#lvscare-py# /dev/lvpy-swap0").replace(
            b"/srv/swapfile", b"#lvscare-py# /srv/swapfile"
        )
        + b"\n"
    )
    assert [c for c in sandbox.calls() if not c.startswith("modprobe")] == [
        "swapoff -a",
        "systemctl daemon-reload",
        "systemctl is-enabled --quiet kubelet.service",
        "systemctl enable kubelet.service",
    ]

    env = sandbox.path("/etc/lvscare-py/runtime.env")
    assert runtime.read_env(env) == {
        "RUNTIME": "containerd",
        "CGROUP_DRIVER": "systemd",
        "CRI_SOCKET": "unix:///run/containerd/containerd.sock",
    }
    assert runtime.cgroup_driver("auto", env) == "systemd"
    named = [i for i in sandbox.images() if not i.startswith("sha256:")]
    assert named == [IMAGE_GZ, IMAGE]
    found = "init.sh: container runtime: containerd, cgroup driver systemd (from the "
    assert f"{found}configuration of containerd (pid " in out.stdout
    assert out.stdout.splitlines()[-1].startswith("init.sh: done: ")


def test_init_again_changes_no_file_imports_nothing_and_says_so(
    sandbox: Sandbox, pkg: Path
) -> None:
    ready(sandbox)
    assert sandbox.init_sh(pkg).returncode == 0
    written, images, calls = sandbox.upper(), sandbox.images(), len(sandbox.calls())
    again = sandbox.init_sh(pkg)
    assert again.returncode == 0, lines(again)
    assert sandbox.upper() == written  # content, mode and mtime of every file
    assert sandbox.images() == images
    assert sandbox.calls()[calls:] == ["systemctl is-enabled --quiet kubelet.service"]
    assert "init.sh: images/test.tar: imported already" in again.stdout
    assert "init.sh: images/test-gz.tar.gz: imported already" in again.stdout
    assert again.stdout.splitlines()[-1] == (
        "init.sh: nothing to change: this host is as init.sh leaves it"
    )
    assert again.stderr == ""


def test_a_file_that_was_there_is_replaced_with_a_warning_and_kept_for_clean(
    sandbox: Sandbox, pkg: Path
) -> None:
    ready(sandbox)
    sandbox.write("/usr/local/bin/kubectl", b"the admin's own kubectl\n", 0o750)
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert sandbox.read("/usr/local/bin/kubectl") == (pkg / "bin" / "kubectl").read_bytes()
    assert sandbox.read(f"{REC}/backup/usr/local/bin/kubectl") == b"the admin's own kubectl\n"
    assert (
        "init.sh: warning: /usr/local/bin/kubectl was there before and differs from the "
        f"package's: replaced; the old one is kept as {REC}/backup/usr/local/bin/kubectl and "
        "clean.sh puts it back\n"
    ) in out.stderr


def test_a_file_the_same_as_the_package_s_is_left_to_its_owner(sandbox: Sandbox, pkg: Path) -> None:
    ready(sandbox)
    sandbox.write("/usr/local/bin/kubeadm", (pkg / "bin" / "kubeadm").read_bytes(), 0o755)
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert "/usr/local/bin/kubeadm: already there, the same as the package's" in out.stdout
    assert "/usr/local/bin/kubeadm" not in sandbox.read(f"{REC}/files").decode()
    assert sandbox.clean_sh(pkg).returncode == 0
    assert sandbox.read("/usr/local/bin/kubeadm") == (pkg / "bin" / "kubeadm").read_bytes()


def test_without_a_runtime_init_stops_before_changing_anything(sandbox: Sandbox, pkg: Path) -> None:
    sandbox.start(swaps=tuple(SWAPS))
    sandbox.write("/etc/fstab", FSTAB)
    before = sandbox.upper()
    out = sandbox.init_sh(pkg)
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == (
        "init.sh: error: no container runtime answers (containerd: no socket "
        "/run/containerd/containerd.sock; Docker: no socket /var/run/docker.sock): start "
        "containerd or Docker, then run init.sh again"
    )
    assert sandbox.upper() == before
    assert sandbox.calls() == []


def test_a_module_that_does_not_load_stops_init_naming_it_before_any_file_changes(
    sandbox: Sandbox, pkg: Path
) -> None:
    ready(sandbox)
    before = sandbox.upper()
    out = sandbox.init_sh(pkg, LVPY_MODPROBE_FAIL="ip_vs_sh")
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == (
        "init.sh: error: cannot load kernel module ip_vs_sh (modprobe ip_vs_sh: modprobe: "
        "FATAL: Module ip_vs_sh not found in directory /lib/modules/lvpy)"
    )
    assert sandbox.upper() == before


def test_containerd_without_systemd_cgroup_is_cgroupfs(sandbox: Sandbox, pkg: Path) -> None:
    ready(sandbox, systemd_cgroup=False)
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    env = runtime.read_env(sandbox.path("/etc/lvscare-py/runtime.env"))
    assert env["CGROUP_DRIVER"] == "cgroupfs"


def test_the_configuration_containerd_was_started_with_is_the_one_read(
    sandbox: Sandbox, pkg: Path
) -> None:
    sandbox.start()
    sandbox.write("/etc/containerd/config.toml", PLAIN.encode())  # not the one it runs with
    sandbox.start_containerd(systemd_cgroup=True, config_file="/etc/lvpy/containerd.toml")
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    env = runtime.read_env(sandbox.path("/etc/lvscare-py/runtime.env"))
    assert env["CGROUP_DRIVER"] == "systemd"
    assert "(from the configuration of containerd (pid " in out.stdout
    assert "): /etc/lvpy/containerd.toml)" in out.stdout


def test_without_containerd_config_dump_config_toml_is_read(sandbox: Sandbox, pkg: Path) -> None:
    ready(sandbox)
    fake = sandbox.dir / "bin" / "containerd"  # on PATH before the real one, for init.sh
    fake.write_text("#!/bin/sh\necho 'containerd: unknown command' >&2\nexit 1\n")
    fake.chmod(0o755)
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert "cgroup driver systemd (from /etc/containerd/config.toml)" in out.stdout


def test_docker_is_found_loaded_into_once_and_cleaned(sandbox: Sandbox, pkg: Path) -> None:
    sandbox.start()
    sandbox.docker_socket()
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert runtime.read_env(sandbox.path("/etc/lvscare-py/runtime.env")) == {
        "RUNTIME": "docker",
        "CGROUP_DRIVER": "cgroupfs",
        "CRI_SOCKET": "unix:///run/cri-dockerd.sock",
    }
    assert out.stderr == (
        "init.sh: warning: Docker runs, but kubelet reaches it only through cri-dockerd, "
        "and there is no /run/cri-dockerd.sock\n"
    )
    assert sandbox.init_sh(pkg).returncode == 0
    assert [c for c in sandbox.calls() if c.startswith("docker load")] == [
        f"docker load -i {pkg}/images/test.tar",
        f"docker load -i {pkg}/images/test-gz.tar.gz",
    ]
    clean = sandbox.clean_sh(pkg)
    assert clean.returncode == 0, lines(clean)
    removed = sorted(c for c in sandbox.calls() if c.startswith("docker image rm"))
    assert removed == ["docker image rm lvscare-py/test-gz:1", "docker image rm lvscare-py/test:1"]


def test_without_systemd_the_unit_is_installed_but_not_enabled(sandbox: Sandbox, pkg: Path) -> None:
    ready(sandbox, systemd=False)
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert sandbox.path("/etc/systemd/system/kubelet.service").exists()
    assert "init.sh: systemd does not run here: kubelet.service not enabled" in out.stdout
    assert not [c for c in sandbox.calls() if c.startswith("systemctl")]
    assert sandbox.clean_sh(pkg).returncode == 0
    assert not [c for c in sandbox.calls() if c.startswith("systemctl")]


def test_swap_on_but_not_in_fstab_is_warned_about(sandbox: Sandbox, pkg: Path) -> None:
    sandbox.start(swaps=(*SWAPS, "/dev/zram0\tpartition\t4096\t0\t100"))
    sandbox.write("/etc/fstab", FSTAB)
    sandbox.start_containerd(systemd_cgroup=True)
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    warnings = [w for w in out.stderr.splitlines() if "swap" in w]
    assert warnings == [
        "init.sh: warning: swap /dev/zram0 is on but not in /etc/fstab: whatever turned it on "
        "will do so again at boot, and kubelet then refuses to start; turn that off too"
    ]


def test_a_broken_gzip_archive_stops_init_naming_it(sandbox: Sandbox, tmp_path: Path) -> None:
    whole = gzip_bytes(image_archive(IMAGE_GZ, b"cut short\n"))
    pkg = package(tmp_path / "cut", images={"cut.tar.gz": whole[: len(whole) // 2]})
    ready(sandbox)
    out = sandbox.init_sh(pkg)
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == (
        "init.sh: error: images/cut.tar.gz: not a whole gzip file (gzip -dc failed)"
    )
    archives = sandbox.path(f"{REC}/archives")
    assert not archives.exists() or b"cut.tar.gz" not in archives.read_bytes()


def test_a_new_package_replaces_what_the_old_one_installed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    old, new = package(tmp_path / "old", "1"), package(tmp_path / "new", "2")
    ready(sandbox)
    before = sandbox.contents()
    assert sandbox.init_sh(old).returncode == 0
    out = sandbox.init_sh(new)
    assert out.returncode == 0, lines(out)
    assert out.stderr == ""  # ours are replaced without a word
    assert sandbox.read("/usr/local/bin/kubeadm") == b"#!/bin/sh\necho kubeadm 2\n"
    assert sandbox.clean_sh(new).returncode == 0
    assert sandbox.contents() == before


# ---------------------------------------------------------------- clean.sh


def test_clean_leaves_the_host_as_it_was_before_init(sandbox: Sandbox, pkg: Path) -> None:
    ready(sandbox)
    sandbox.write("/usr/local/bin/kubectl", b"the admin's own kubectl\n", 0o750)
    before, images = sandbox.contents(), sandbox.images()
    assert sandbox.init_sh(pkg).returncode == 0
    calls = len(sandbox.calls())
    out = sandbox.clean_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert out.stderr == ""
    assert sandbox.contents() == before  # fstab byte for byte, kubectl back, the rest gone
    assert sandbox.images() == images  # also containerd's sha256:... names for them
    assert sandbox.calls()[calls:] == [
        "systemctl disable --now kubelet.service",
        "systemctl daemon-reload",
    ]
    assert not sandbox.path(REC).exists()
    assert out.stdout.splitlines()[-1] == "clean.sh: done: what init.sh changed is undone"

    again = sandbox.clean_sh(pkg)
    assert again.returncode == 0, lines(again)
    assert again.stdout == (
        f"clean.sh: nothing to undo: no {REC} (init.sh never ran here, or clean.sh undid it "
        "already)\n"
    )
    assert sandbox.contents() == before


def test_clean_where_init_never_ran_changes_nothing(sandbox: Sandbox, pkg: Path) -> None:
    ready(sandbox)
    before = sandbox.upper()
    out = sandbox.clean_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert "nothing to undo" in out.stdout
    assert sandbox.upper() == before
    assert sandbox.calls() == []


def test_a_file_changed_since_init_is_left_alone_by_init_and_clean(
    sandbox: Sandbox, pkg: Path
) -> None:
    ready(sandbox)
    sandbox.write("/usr/local/bin/kubelet", b"the admin's own kubelet\n", 0o755)
    assert sandbox.init_sh(pkg).returncode == 0
    sandbox.write("/usr/local/bin/kubelet", b"patched since\n", 0o755)
    again = sandbox.init_sh(pkg)
    assert again.returncode == 0, lines(again)
    assert sandbox.read("/usr/local/bin/kubelet") == b"patched since\n"
    assert (
        "init.sh: warning: /usr/local/bin/kubelet changed since init.sh put it there: left as "
        "it is" in again.stderr
    )
    out = sandbox.clean_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert sandbox.read("/usr/local/bin/kubelet") == b"patched since\n"
    assert out.stderr.splitlines() == [
        "clean.sh: warning: /usr/local/bin/kubelet changed since init.sh put it there: kept",
        f"clean.sh: warning: the file it replaced is kept as {REC}/backup/usr/local/bin/kubelet",
    ]
    assert sandbox.read(f"{REC}/backup/usr/local/bin/kubelet") == b"the admin's own kubelet\n"
    assert not sandbox.path("/usr/local/bin/kubeadm").exists()


def test_fstab_edited_after_init_gets_its_swap_lines_back_and_keeps_the_edit(
    sandbox: Sandbox, pkg: Path
) -> None:
    ready(sandbox)
    assert sandbox.init_sh(pkg).returncode == 0
    edited = sandbox.read("/etc/fstab") + b"/dev/sdb1 /data ext4 defaults 0 2\n"
    sandbox.write("/etc/fstab", edited)
    out = sandbox.clean_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert sandbox.read("/etc/fstab") == FSTAB + b"\n/dev/sdb1 /data ext4 defaults 0 2\n"


def test_clean_keeps_the_record_of_images_it_could_not_remove(sandbox: Sandbox, pkg: Path) -> None:
    ready(sandbox)
    assert sandbox.init_sh(pkg).returncode == 0
    sandbox.stop_containerd()
    out = sandbox.clean_sh(pkg)
    assert out.returncode == 1
    assert f"clean.sh: cannot remove image {IMAGE}: containerd does not answer" in out.stderr
    assert out.stderr.splitlines()[-1] == (
        f"clean.sh: not everything was undone (above); {REC} keeps what is left: run clean.sh again"
    )
    assert not sandbox.path("/usr/local/bin/kubeadm").exists()  # the rest is undone
    assert IMAGE in sandbox.read(f"{REC}/images").decode()


def test_init_never_overwrites_a_file_while_the_record_keeps_another(
    sandbox: Sandbox, pkg: Path
) -> None:
    ready(sandbox)
    sandbox.write("/usr/local/bin/kubelet", b"the admin's own kubelet\n", 0o755)
    assert sandbox.init_sh(pkg).returncode == 0
    sandbox.write("/usr/local/bin/kubelet", b"patched since\n", 0o755)
    assert sandbox.clean_sh(pkg).returncode == 0  # keeps both: the file and the backup
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert sandbox.read("/usr/local/bin/kubelet") == b"patched since\n"
    assert sandbox.read(f"{REC}/backup/usr/local/bin/kubelet") == b"the admin's own kubelet\n"
    assert (
        f"init.sh: warning: /usr/local/bin/kubelet is not the package's, and {REC}/backup/usr/"
        "local/bin/kubelet keeps another file that was there: left as it is" in out.stderr
    )


def test_fstab_edited_between_two_inits_keeps_the_edit_after_clean(
    sandbox: Sandbox, pkg: Path
) -> None:
    ready(sandbox)
    assert sandbox.init_sh(pkg).returncode == 0
    edited = sandbox.read("/etc/fstab").replace(b"#lvscare-py# /dev/lvpy-swap0", b"/dev/lvpy-swap0")
    sandbox.write("/etc/fstab", edited + b"/dev/sdb1 /data ext4 defaults 0 2\n")
    again = sandbox.init_sh(pkg)
    assert again.returncode == 0, lines(again)
    assert b"#lvscare-py# /dev/lvpy-swap0" in sandbox.read("/etc/fstab")
    assert sandbox.clean_sh(pkg).returncode == 0
    assert sandbox.read("/etc/fstab") == FSTAB + b"\n/dev/sdb1 /data ext4 defaults 0 2\n"


def test_docker_s_containerd_without_cri_leaves_the_images_to_docker(
    sandbox: Sandbox, pkg: Path
) -> None:
    ready(sandbox, cri=False)
    sandbox.docker_socket()
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert (
        "init.sh: containerd runs without its CRI plugin (Docker's containerd): Docker it is\n"
        in out.stdout
    )
    assert runtime.read_env(sandbox.path("/etc/lvscare-py/runtime.env"))["RUNTIME"] == "docker"
    assert sandbox.images() == []
    assert len([c for c in sandbox.calls() if c.startswith("docker load")]) == 2


def test_containerd_without_cri_and_no_docker_is_used_with_a_warning(
    sandbox: Sandbox, pkg: Path
) -> None:
    ready(sandbox, cri=False)
    out = sandbox.init_sh(pkg)
    assert out.returncode == 0, lines(out)
    assert out.stderr == (
        "init.sh: warning: containerd runs without its CRI plugin (disabled_plugins in its "
        "configuration?): kubelet cannot use it until it does\n"
    )
    assert runtime.read_env(sandbox.path("/etc/lvscare-py/runtime.env"))["RUNTIME"] == "containerd"
