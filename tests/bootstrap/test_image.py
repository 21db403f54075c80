"""The lvscare image archive: one tar that `ctr images import` and `docker load` both take,
the same bytes from the same root, and a root that runs lvscare with no Python on the host.

Most tests use a fake one-directory build (a static busybox named lvscare): the archive's
format does not depend on what the executable is. The tests that run lvscare from the root
need the real PyInstaller build: the one the offline package takes, from the cache
tests/support/built_package.py keeps (built now if this checkout has none).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.build import executables, image
from bootstrap.errors import BadInput
from tests.support import built_package

REFERENCE = "lvscare-py:0.1.0"
QUALIFIED = "docker.io/library/lvscare-py:0.1.0"
BUSYBOX = Path("/usr/bin/busybox")  # static (busybox-static): needs no library of its own


def fake_onedir(where: Path) -> Path:
    """What PyInstaller's one-dir build looks like from outside: `lvscare` and `_internal/`."""
    onedir = where / "onedir"
    (onedir / "_internal").mkdir(parents=True)
    shutil.copyfile(BUSYBOX, onedir / "lvscare")
    os.chmod(onedir / "lvscare", 0o755)
    (onedir / "_internal" / "base_library.zip").write_bytes(b"not really a zip")
    return onedir


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("fake")
    root = where / "root"
    image.image_root(fake_onedir(where), root)
    return root


@pytest.fixture(scope="module")
def archive(
    fake_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, image.ImageInfo]:
    out = tmp_path_factory.mktemp("archive") / "lvscare-py-0.1.0.tar"
    return out, image.write_archive(fake_root, out)


def members(path: Path) -> dict[str, bytes]:
    """Every regular file of a tar by name."""
    with tarfile.open(path, "r:") as tar:
        found = {}
        for m in tar.getmembers():
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                found[m.name] = f.read()
        return found


def rewrite(src: Path, dst: Path, change: Callable[[str, bytes], bytes | None]) -> None:
    """A copy of the tar `src` whose files `change(name, data)` replaces (None drops them)."""
    with tarfile.open(src, "r:") as old, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as new:
        for m in old.getmembers():
            if not m.isfile():
                new.addfile(m)
                continue
            f = old.extractfile(m)
            assert f is not None
            data = change(m.name, f.read())
            if data is not None:
                m.size = len(data)
                new.addfile(m, io.BytesIO(data))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- the archive ------------------------------------------------------------------------------


def test_the_same_inputs_give_the_byte_identical_archive(tmp_path: Path) -> None:
    """Two layouts made at different times from two copies: the files' own times, the
    umask and the order of the directory listing must not reach the archive."""
    outs = []
    for n in (1, 2):
        where = tmp_path / f"build{n}"
        root = where / "root"
        image.image_root(fake_onedir(where), root)
        os.utime(root / "etc" / "passwd", (n * 1000, n * 1000))
        outs.append(image.write_archive(root, where / "image.tar"))
    a, b = (tmp_path / f"build{n}" / "image.tar" for n in (1, 2))
    assert a.read_bytes() == b.read_bytes()
    assert outs[0] == outs[1]


def test_the_archive_is_an_oci_layout_and_a_docker_save_archive_that_agree(
    archive: tuple[Path, image.ImageInfo],
) -> None:
    path, info = archive
    files = members(path)
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert sha256(data) == "sha256:" + name.rsplit("/", 1)[1], name
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    [entry] = index["manifests"]
    assert entry["digest"] == info.digest
    assert entry["annotations"] == {
        "io.containerd.image.name": QUALIFIED,
        "org.opencontainers.image.ref.name": QUALIFIED,
    }
    manifest = json.loads(files[f"blobs/sha256/{info.digest[7:]}"])
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    config_name = f"blobs/sha256/{manifest['config']['digest'][7:]}"
    layer_name = f"blobs/sha256/{layer['digest'][7:]}"
    [docker] = json.loads(files["manifest.json"])
    assert docker == {"Config": config_name, "RepoTags": [REFERENCE], "Layers": [layer_name]}

    config = json.loads(files[config_name])
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": [sha256(gzip.decompress(files[layer_name]))],
    }
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["config"]["Entrypoint"] == ["lvscare"]
    assert config["config"]["Cmd"] == ["care", "--help"]
    assert config["config"]["User"] == "0"
    assert any(e.startswith("PATH=") and "/usr/sbin" in e for e in config["config"]["Env"])
    assert info.size == path.stat().st_size
    assert info.reference == REFERENCE and info.qualified == QUALIFIED


def test_the_layer_is_sorted_owned_by_root_and_carries_no_build_time(
    archive: tuple[Path, image.ImageInfo], fake_root: Path
) -> None:
    path, _info = archive
    files = members(path)
    [docker] = json.loads(files["manifest.json"])
    blob = files[docker["Layers"][0]]
    assert blob[4:8] == b"\0\0\0\0", "gzip header time"
    assert not blob[3] & 0x08, "gzip header carries a file name"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)), mode="r:") as layer:
        entries = layer.getmembers()
    names = [m.name for m in entries]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in entries} == {(0, 0, "", "", 0)}
    assert all(not m.pax_headers.keys() & {"mtime", "atime", "ctime"} for m in entries)
    sizes = sum(m.size for m in entries if m.isfile())
    assert sizes == sum(
        p.stat().st_size for p in fake_root.rglob("*") if p.is_file() and not p.is_symlink()
    )


def test_read_archive_checks_and_reports_what_write_archive_wrote(
    archive: tuple[Path, image.ImageInfo],
) -> None:
    path, info = archive
    assert image.read_archive(path) == info
    assert image.looks_like_image_archive(path) is None


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="scripts/setup installs skopeo")
def test_skopeo_reads_it_both_as_an_oci_archive_and_as_a_docker_archive(
    archive: tuple[Path, image.ImageInfo],
) -> None:
    """An independent reader: containers/image, the library of podman and CRI-O."""
    path, info = archive

    def skopeo(*argv: str) -> dict[str, object]:
        proc = subprocess.run(
            ["skopeo", *argv], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        doc: dict[str, object] = json.loads(proc.stdout)
        return doc

    oci = skopeo("inspect", f"oci-archive:{path}:{QUALIFIED}")
    assert oci["Digest"] == info.digest
    docker = skopeo("inspect", f"docker-archive:{path}:{REFERENCE}")
    for doc in (oci, docker):
        assert (doc["Architecture"], doc["Os"]) == ("amd64", "linux")
    assert skopeo("list-tags", f"docker-archive:{path}")["Tags"] == [REFERENCE]


def test_an_archive_is_written_whole_or_not_at_all(tmp_path: Path, fake_root: Path) -> None:
    out = tmp_path / "image.tar"
    out.write_bytes(b"the previous archive")
    broken = tmp_path / "root"
    shutil.copytree(fake_root, broken, symlinks=True)
    os.mkfifo(broken / "tmp" / "fifo")
    with pytest.raises(BadInput, match="fifo"):
        image.write_archive(broken, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tar", "root"]
    assert out.read_bytes() == b"the previous archive"


def test_a_reference_is_named_as_docker_names_it(tmp_path: Path, fake_root: Path) -> None:
    assert image.parse_reference("lvscare-py:0.1.0") == (REFERENCE, QUALIFIED, "0.1.0")
    assert image.parse_reference("docker.io/library/lvscare-py:0.1.0")[0] == REFERENCE
    assert image.parse_reference("docker.io/ops/lvscare:1")[:2] == (
        "ops/lvscare:1",
        "docker.io/ops/lvscare:1",
    )
    assert image.parse_reference("registry.local:5000/ops/lvscare:v1") == (
        "registry.local:5000/ops/lvscare:v1",
        "registry.local:5000/ops/lvscare:v1",
        "v1",
    )
    for bad in ("lvscare-py", "LVSCARE:1", "lvscare-py:", "a/b:c/d"):
        with pytest.raises(BadInput, match="image reference"):
            image.write_archive(fake_root, tmp_path / "x.tar", reference=bad)
    with pytest.raises(BadInput, match="created"):
        image.write_archive(fake_root, tmp_path / "x.tar", created="yesterday")
    assert list(tmp_path.iterdir()) == []


# -- refusing what is not one -----------------------------------------------------------------


def test_read_archive_refuses_a_file_that_is_no_image_archive_in_one_line(
    tmp_path: Path, archive: tuple[Path, image.ImageInfo]
) -> None:
    good, _info = archive
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    empty_tar = tmp_path / "empty.tar"
    with tarfile.open(empty_tar, "w"):
        pass
    gz = tmp_path / "image.tar.gz"
    gz.write_bytes(gzip.compress(good.read_bytes()))
    docker_only = tmp_path / "docker-only.tar"
    rewrite(good, docker_only, lambda n, d: None if n in ("oci-layout", "index.json") else d)
    wrong_tag = tmp_path / "wrong-tag.tar"
    rewrite(
        good,
        wrong_tag,
        lambda n, d: d.replace(b"lvscare-py:0.1.0", b"other:1") if n == "manifest.json" else d,
    )
    [docker] = json.loads(members(good)["manifest.json"])
    damaged = tmp_path / "damaged.tar"
    # Another time in the gzip header: the same size and layer, a blob of another digest.
    rewrite(good, damaged, lambda n, d: d[:4] + b"\1" + d[5:] if n == docker["Layers"][0] else d)

    for path, why in [
        (text, "not an uncompressed tar"),
        (empty_tar, "no oci-layout"),
        (gz, "not an uncompressed tar"),
        (docker_only, "no oci-layout"),
        (wrong_tag, "does not tag the image lvscare-py:0.1.0"),
        (damaged, "another digest"),
        (tmp_path / "missing.tar", "cannot read it (No such file or directory)"),
    ]:
        with pytest.raises(BadInput) as caught:
            image.read_archive(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: not an image archive"), message
        assert why in message and "\n" not in message, message


def test_looks_like_image_archive_takes_either_format_and_names_what_is_wrong(
    tmp_path: Path, archive: tuple[Path, image.ImageInfo]
) -> None:
    good, _info = archive
    oci_only = tmp_path / "oci.tar"
    rewrite(good, oci_only, lambda n, d: None if n == "manifest.json" else d)
    docker_only = tmp_path / "docker.tar"
    rewrite(good, docker_only, lambda n, d: None if n in ("oci-layout", "index.json") else d)
    assert image.looks_like_image_archive(oci_only) is None
    assert image.looks_like_image_archive(docker_only) is None

    [docker] = json.loads(members(good)["manifest.json"])
    no_layer = tmp_path / "no-layer.tar"
    rewrite(good, no_layer, lambda n, d: None if n == docker["Layers"][0] else d)
    no_layer_docker = tmp_path / "no-layer-docker.tar"
    rewrite(docker_only, no_layer_docker, lambda n, d: None if n == docker["Layers"][0] else d)
    gz = tmp_path / "image.tar.gz"
    gz.write_bytes(gzip.compress(good.read_bytes()))
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    plain_tar = tmp_path / "plain.tar"
    with tarfile.open(plain_tar, "w") as tar:
        tar.add(text, "notes.txt")
    bad_json = tmp_path / "bad-json.tar"
    rewrite(good, bad_json, lambda n, d: b"{" if n == "index.json" else d)

    assert image.looks_like_image_archive(gz) is None  # docker save | gzip: init.sh takes it
    bz2_file = tmp_path / "image.tar.bz2"
    bz2_file.write_bytes(bz2.compress(good.read_bytes()[:4096]))
    gz_text = tmp_path / "notes.tar.gz"
    gz_text.write_bytes(gzip.compress(b"hello\n"))
    expected = {
        bz2_file: "bzip2-compressed",
        gz_text: "not a tar file",
        text: "not a tar file",
        plain_tar: "without oci-layout (OCI layout) or manifest.json (docker save)",
        bad_json: "index.json is not JSON",
        no_layer_docker: "is missing",
        tmp_path / "missing.tar": "cannot read it",
    }
    for path, why in expected.items():
        reason = image.looks_like_image_archive(path)
        assert reason is not None and why in reason, (path.name, reason)
    # The cheap check reads no layer: an OCI layout missing one still passes it.
    assert image.looks_like_image_archive(no_layer) is None


# -- the root file system ---------------------------------------------------------------------


def test_the_root_holds_lvscare_its_tools_their_libraries_and_nothing_else(
    fake_root: Path,
) -> None:
    assert sorted(p.name for p in fake_root.iterdir()) == [
        "etc",
        "lib",
        "lib64",
        "opt",
        "tmp",
        "usr",
    ]
    assert (fake_root / "lib64/ld-linux-x86-64.so.2").is_file()
    assert (fake_root / "lib/x86_64-linux-gnu/libc.so.6").is_file()
    for tool in ("modprobe", "nft"):
        path = fake_root / "usr/sbin" / tool
        assert path.is_file() and not path.is_symlink() and os.access(path, os.X_OK)
    link = fake_root / "usr/local/bin/lvscare"
    assert link.is_symlink() and link.resolve() == (fake_root / "opt/lvscare/lvscare").resolve()
    assert stat.S_IMODE((fake_root / "tmp").stat().st_mode) == 0o1777
    assert list((fake_root / "tmp").iterdir()) == []
    assert (fake_root / "etc/passwd").read_text().splitlines()[0].startswith("root:x:0:0:")
    assert len((fake_root / "etc/passwd").read_text().splitlines()) == 1
    assert (fake_root / "etc/group").read_text() == "root:x:0:\n"
    assert sorted(p.name for p in (fake_root / "etc").iterdir()) == ["group", "passwd"]


def test_image_root_refuses_what_is_no_onedir_build_and_a_used_root(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a PyInstaller one-directory build"):
        image.image_root(tmp_path, tmp_path / "root")
    onedir = fake_onedir(tmp_path)
    used = tmp_path / "used"
    used.mkdir()
    (used / "file").write_text("x")
    with pytest.raises(BadInput, match="new or empty directory"):
        image.image_root(onedir, used)


# -- lvscare from the root, with no Python on the "host" ------------------------------------


@pytest.fixture(scope="module")
def real_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    onedir = executables.build(built_package.CACHE).lvscare_dir
    root = tmp_path_factory.mktemp("real") / "root"
    image.image_root(onedir, root)
    return root


def chroot(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`argv` in `root` as its file system and in a network namespace of its own."""
    return subprocess.run(
        ["unshare", "--net", "chroot", str(root), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/local/bin:/usr/sbin:/usr/bin"},
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot and unshare need root")
def test_lvscare_runs_from_the_image_root_alone(real_root: Path) -> None:
    """Nothing of this machine's but its kernel: the loader, glibc and every library come
    from the root. An unresolvable master stops lvscare after all its imports (TLS, aiohttp,
    pyroute2) and before any kernel change, with its one-line error and exit code 2."""
    version = chroot(real_root, "/usr/local/bin/lvscare", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("lvscare, version ")
    care = chroot(
        real_root, "lvscare", "care", "--vs", "10.103.97.2:6443", "--rs", "nowhere.invalid:6443",
        "--run-once",
    )  # fmt: skip
    assert care.returncode == 2, care.stderr
    assert care.stderr.count("\n") <= 1 and "nowhere.invalid" in care.stderr, care.stderr
    assert "Traceback" not in care.stderr
    for tool in ("modprobe", "nft"):
        assert chroot(real_root, tool, "--version").returncode == 0, tool


def test_the_root_adds_only_what_the_onedir_build_does_not_carry(real_root: Path) -> None:
    """The bootloader's first start sees only the system's directories (libz from there);
    the libraries it finds in _internal/ afterwards (libssl) are not copied again."""
    libs = real_root / "lib/x86_64-linux-gnu"
    assert (real_root / "lib64/ld-linux-x86-64.so.2").is_file()
    assert (libs / "libc.so.6").is_file()
    assert (libs / "libz.so.1").is_file()
    assert (real_root / "opt/lvscare/_internal/libssl.so.3").is_file()
    assert not (libs / "libssl.so.3").exists()
