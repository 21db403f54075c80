"""`bootstrap package build` and `inspect`: a real package from recording stand-ins.

The executables are PyInstaller's real one-file builds and the image archive is real; only
kubeadm, kubelet and kubectl are the stand-ins of tests/support/built_package.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from bootstrap.build import assemble, image
from bootstrap.cli import cli
from tests.support import built_package as bp

pytestmark = pytest.mark.timeout(900)  # the first build of the executables takes minutes


@pytest.fixture(scope="module")
def package() -> Path:
    return bp.built_package()


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path, "r:gz") as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def build(tmp_path: Path, *extra: str, bin_dir: Path | None = None) -> tuple[int, str, Path]:
    out = tmp_path / "out" / "kube.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    bin_dir = bin_dir or bp.write_bin(tmp_path / "bin")
    args = ["package", "build", "--bin", str(bin_dir), "--cache", str(bp.CACHE), "-o", str(out)]
    result = CliRunner().invoke(cli, [*args, *extra])
    return result.exit_code, result.output, out


def test_the_package_has_the_seed_layout_and_a_manifest_of_every_file(package: Path) -> None:
    names = members(package)
    for name in (
        "kube/bin/kubeadm",
        "kube/bin/kubelet",
        "kube/bin/kubectl",
        "kube/bin/bootstrap",
        "kube/bin/lvscare",
        "kube/shell/init.sh",
        "kube/shell/clean.sh",
        "kube/conf/kubelet.service",
        "kube/conf/10-kubeadm.conf",
        f"kube/conf/net/{bp.CNI_FILE}",
        f"kube/images/{assemble.IMAGE_ARCHIVE}",
        "kube/manifest.json",
    ):
        assert name in names, name
    assert names["kube/bin/bootstrap"].mode == 0o755
    assert names["kube/shell/init.sh"].mode == 0o755
    doc = json.loads(read_member(package, "kube/manifest.json"))
    assert doc["kubernetes"] == bp.VERSION  # read from the stand-in's `kubeadm version`
    assert doc["image"] == "lvscare-py:0.1.0"
    assert doc["cni"] == f"conf/net/{bp.CNI_FILE}" and doc["cni_kind"] == "calico"
    files = {n.removeprefix("kube/") for n, m in names.items() if m.isfile()} - {"manifest.json"}
    assert set(doc["files"]) == files
    data = read_member(package, "kube/bin/kubeadm")
    assert doc["files"]["bin/kubeadm"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_the_executables_run_with_no_python_anywhere_on_the_path(
    package: Path, tmp_path: Path
) -> None:
    """One-file builds: an empty environment, a PATH with no Python, a fresh working
    directory. The bare-host SSH tests prove it on hosts with no Python installed at all."""
    with tarfile.open(package, "r:gz") as tar:
        tar.extractall(tmp_path, filter="tar")
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path)}
    for name, args, expect in (
        ("bootstrap", ["--help"], "Bootstrap one host"),
        ("lvscare", ["--version"], "lvscare, version 0.1.0"),
        ("lvscare", ["care", "--help"], "--vs"),
    ):
        exe = tmp_path / "kube" / "bin" / name
        assert exe.read_bytes()[:4] == b"\x7fELF"
        proc = subprocess.run(
            [str(exe), *args], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert expect in proc.stdout


def test_the_lvscare_image_archive_in_the_package_is_one(package: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(read_member(package, f"kube/images/{assemble.IMAGE_ARCHIVE}"))
    info = image.read_archive(archive)
    assert info.reference.endswith("lvscare-py:0.1.0")


def test_inspect_prints_the_manifest_and_checks_every_file(package: Path) -> None:
    result = CliRunner().invoke(cli, ["package", "inspect", str(package)])
    assert result.exit_code == 0, result.output
    assert f"Kubernetes   {bp.VERSION}" in result.output
    assert "bin/bootstrap" in result.output
    assert "files match the manifest" in result.output
    raw = CliRunner().invoke(cli, ["package", "inspect", "--json", str(package)])
    assert json.loads(raw.output)["kubernetes"] == bp.VERSION


def test_inspect_finds_a_file_that_differs_from_the_manifest(package: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(package, "r:gz") as src, tarfile.open(tampered, "w:gz") as dst:
        for m in src.getmembers():
            f = src.extractfile(m) if m.isfile() else None
            data = f.read() if f is not None else b""
            if m.name == "kube/bin/kubectl":
                data += b"# changed\n"
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if m.isfile() else None)
    result = CliRunner().invoke(cli, ["package", "inspect", str(tampered)])
    assert result.exit_code == 1
    assert "bin/kubectl: sha256" in result.output


def test_building_twice_from_the_same_inputs_gives_the_same_bytes(
    package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the executables from the build cache (PyInstaller's own reproducibility is
    measured by bench/package_build.py), the package is byte for byte the same."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    cni = tmp_path / bp.CNI_FILE
    cni.write_text(bp.CALICO)
    digests = []
    for run in ("a", "b"):
        code, output, out = build(tmp_path / run, "--cni", str(cni))
        assert code == 0, output
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        with gzip.open(out) as gz:
            assert gz.read(1)  # a whole gzip stream
    assert digests[0] == digests[1]


def test_image_archives_the_user_brings_go_to_images_plain_or_gzipped(
    package: Path, tmp_path: Path
) -> None:
    image_tar = read_member(package, f"kube/images/{assemble.IMAGE_ARCHIVE}")
    (tmp_path / "pause.tar").write_bytes(image_tar)
    (tmp_path / "etcd.tar.gz").write_bytes(gzip.compress(image_tar, compresslevel=1))
    code, output, out = build(
        tmp_path / "run",
        "--images",
        str(tmp_path / "pause.tar"),
        "--images",
        str(tmp_path / "etcd.tar.gz"),
    )
    assert code == 0, output
    doc = json.loads(read_member(out, "kube/manifest.json"))
    assert {"images/pause.tar", "images/etcd.tar.gz"} <= set(doc["files"])


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("no-kubeadm", "--bin"),
        ("cni-not-yaml", "not YAML"),
        ("cni-not-k8s", "not a Kubernetes manifest"),
        ("image-not-archive", "not an image archive"),
        ("image-bad-name", "NAME.tar or NAME.tar.gz"),
        ("output-unwritable", "-o"),
        ("bad-version", "--version"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_no_file(
    tmp_path: Path, case: str, expect: str
) -> None:
    bin_dir = bp.write_bin(tmp_path / "bin")
    extra: list[str] = []
    if case == "no-kubeadm":
        (bin_dir / "kubeadm").unlink()
    elif case == "cni-not-yaml":
        (tmp_path / "cni.yaml").write_text("kind: [unclosed\n")
        extra = ["--cni", str(tmp_path / "cni.yaml")]
    elif case == "cni-not-k8s":
        (tmp_path / "cni.yaml").write_text("just: a mapping\n")
        extra = ["--cni", str(tmp_path / "cni.yaml")]
    elif case == "image-not-archive":
        (tmp_path / "pause.tar").write_bytes(os.urandom(4096))
        extra = ["--images", str(tmp_path / "pause.tar")]
    elif case == "image-bad-name":
        (tmp_path / "pause.img").write_bytes(b"")
        extra = ["--images", str(tmp_path / "pause.img")]
    elif case == "bad-version":
        extra = ["--version", "1.x"]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "kube.tar.gz"
    if case == "output-unwritable":
        out = Path("/proc/kube.tar.gz")  # no file can be made there, even by root
    args = ["package", "build", "--bin", str(bin_dir), "-o", str(out), *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], result.output
    assert list(out_dir.iterdir()) == []


def test_a_build_that_fails_half_way_leaves_no_partial_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(assemble, "_tar_info", broken)
    code, _output, out = build(tmp_path)
    assert code != 0
    assert list(out.parent.iterdir()) == []
