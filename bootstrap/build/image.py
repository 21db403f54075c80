"""The lvscare container image, written as a file: no Docker engine, no registry, no base image.

Hosts import it with `ctr -n k8s.io images import` (containerd) or `docker load`, so one tar
is both an OCI image layout and a `docker save` archive, as Docker 25 and later write it:
`oci-layout`, `index.json` and `blobs/sha256/...` for the first, `manifest.json` pointing at
the same blobs for the second. Unlike Docker, which writes the tag alone there,
`org.opencontainers.image.ref.name` carries the full name, as `io.containerd.image.name` does,
so tools that name an OCI image by it (podman, `skopeo oci-archive:FILE:NAME`) name it as
kubelet does. One gzip layer holds a root file system with only what lvscare
runs: its PyInstaller one-directory build (the interpreter and every library it carries),
`modprobe` and `nft` from this machine, the shared libraries those need (glibc included, which
PyInstaller leaves to the host), `/tmp`, and a passwd/group naming root.

The same root and arguments give the same bytes: members sorted, owners 0, one fixed time
everywhere, no gzip time or name, JSON with sorted keys. The package's digest is then a fact
about its content, not about when it was built.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol, cast

from bootstrap.errors import BadInput, StepFailed

DEFAULT_REFERENCE = "lvscare-py:0.1.0"
EPOCH = "1970-01-01T00:00:00Z"
ARCHITECTURE = "amd64"
OS = "linux"
ENTRYPOINT = ["lvscare"]
CMD = ["care", "--help"]
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

APP_DIR = "opt/lvscare"  # the one-directory build, inside the root
APP_NAME = "lvscare"  # its executable, and the command on PATH
LINK = "usr/local/bin/lvscare"
TOOLS_DIR = "usr/sbin"
TOOLS = ("modprobe", "nft")  # lvscare runs these: kernel modules, the masquerade rule
# Where Debian's loader looks without an ld.so.cache; the image has no cache.
LIB_DIR = "lib/x86_64-linux-gnu"
PASSWD = "root:x:0:0:root:/:/usr/sbin/nologin\n"
GROUP = "root:x:0:\n"

OCI_LAYOUT = "oci-layout"
OCI_INDEX = "index.json"
DOCKER_MANIFEST = "manifest.json"
BLOBS = "blobs/sha256"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
GZIP_LAYERS = frozenset({MT_LAYER_GZIP, MT_DOCKER_LAYER_GZIP})
TAR_LAYERS = frozenset({MT_LAYER_TAR, MT_DOCKER_LAYER_TAR})
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
CHUNK = 1 << 20
COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


@dataclass(frozen=True)
class ImageInfo:
    """One image archive: `reference` as a pod names it, `digest` of its OCI manifest,
    `size` of the archive file and `root_size` (bytes of the files in its root)."""

    reference: str
    digest: str
    size: int
    root_size: int

    @property
    def qualified(self) -> str:
        """The name containerd and kubelet use: `docker.io/library/lvscare-py:0.1.0`."""
        return parse_reference(self.reference)[1]


# ------------------------------------------------------------------ the reference


_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


def parse_reference(reference: str) -> tuple[str, str, str]:
    """`NAME:TAG` -> (familiar, fully qualified, tag), by Docker's rules.

    `lvscare-py:0.1.0` -> (`lvscare-py:0.1.0`, `docker.io/library/lvscare-py:0.1.0`, `0.1.0`).
    A tag is required: a static pod names the image by tag and kubelet must find it.
    """
    bad = f"image reference {reference!r}"
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag or not _TAG.fullmatch(tag):
        raise BadInput(f"{bad}: give NAME:TAG (a tag is required)")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
        if not _DOMAIN.fullmatch(domain):
            raise BadInput(f"{bad}: {domain!r} is not a registry name")
    else:
        domain, path = "docker.io", name
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    if not path or not all(_COMPONENT.fullmatch(c) for c in path.split("/")):
        raise BadInput(f"{bad}: the name must be lower-case words joined by '/', '.', '_' or '-'")
    qualified = f"{domain}/{path}:{tag}"
    familiar = f"{domain}/{path}"
    if domain == "docker.io":
        short = path.removeprefix("library/")
        familiar = short if "/" not in short else path
    return f"{familiar}:{tag}", qualified, tag


def _epoch(created: str) -> int:
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"created {created!r}: not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise BadInput(f"created {created!r}: give a time zone (Z for UTC)")
    if when.timestamp() < 0:
        raise BadInput(f"created {created!r}: before 1970")
    return int(when.timestamp())


# ------------------------------------------------------------------ the root file system


def image_root(onedir: Path, root: Path) -> None:
    """Lay out the image's root file system in `root` (absent or empty).

    The one-directory build goes to /opt/lvscare, reached by /usr/local/bin/lvscare (a
    symlink: PyInstaller's bootloader finds its `_internal/` through /proc/self/exe, which
    names the target). Everything else is there because something in the root needs it.
    """
    onedir = Path(onedir)
    root = Path(root)
    if not (onedir / APP_NAME).is_file() or not (onedir / "_internal").is_dir():
        raise BadInput(
            f"{onedir}: not a PyInstaller one-directory build of lvscare "
            f"(no executable {APP_NAME} and _internal/ in it)"
        )
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise BadInput(f"{root}: the image root must be a new or empty directory")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)

    app = root / APP_DIR
    _mkdirs(app.parent)
    shutil.copytree(onedir, app, symlinks=True)
    link = root / LINK
    _mkdirs(link.parent)
    link.symlink_to(os.path.relpath(app / APP_NAME, link.parent))

    tools = root / TOOLS_DIR
    _mkdirs(tools)
    for tool in TOOLS:
        found = shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
        if found is None:
            raise StepFailed(f"{tool}: not on this machine (Debian packages kmod and nftables)")
        # The file itself, not a symlink: Debian's modprobe is a link to kmod, which looks
        # at the name it was called by.
        shutil.copyfile(os.path.realpath(found), tools / tool)
        os.chmod(tools / tool, 0o755)

    etc = root / "etc"
    _mkdirs(etc)
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    for name in ("passwd", "group"):
        os.chmod(etc / name, 0o644)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)

    _add_libraries(root, app)


def _mkdirs(path: Path) -> None:
    """Directories 0755 whatever the umask, as the layer will record them."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        p.mkdir()
        os.chmod(p, 0o755)


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _ldd(path: Path) -> list[tuple[str, str | None]]:
    """(name, path on this machine or None if not found) of every library `path` loads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    try:
        proc = subprocess.run(
            ["ldd", str(path)], capture_output=True, text=True, env=env, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StepFailed(f"ldd {path}: {e}") from None
    out = proc.stdout + proc.stderr
    if "not a dynamic executable" in out or "statically linked" in out:
        return []
    if proc.returncode != 0:
        raise StepFailed(f"ldd {path} exited {proc.returncode}: {out.strip()[:200]}")
    found: list[tuple[str, str | None]] = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        name, arrow, rest = line.partition(" => ")
        if arrow:
            target = rest.split(" (", 1)[0].strip()
            found.append((name, None if target == "not found" else target or None))
        elif line.startswith("/"):  # the loader itself, by its absolute path
            loader = line.split(" (", 1)[0]
            found.append((loader, loader))
        # else linux-vdso.so.1: the kernel's, in no file
    return found


def _add_libraries(root: Path, app: Path) -> None:
    """Copy in every shared library an ELF file of the root needs and will not find there.

    Inside the one-directory build, libraries come from `_internal/` (the bootloader starts
    itself again with LD_LIBRARY_PATH pointing there), except for the bootloader's own first
    start, which has only the system's directories. Everything else looks in LIB_DIR.
    """
    internal = app / "_internal"
    bundled = {p.name for p in internal.iterdir()}
    bootloader = app / APP_NAME
    done: set[Path] = set()
    while True:
        elves = [
            p
            for p in sorted(_walk(root))
            if p not in done and not p.is_symlink() and p.is_file() and _is_elf(p)
        ]
        if not elves:
            return
        for elf in elves:
            done.add(elf)
            own = elf != bootloader and elf.is_relative_to(app)
            for name, host_path in _ldd(elf):
                if own and name in bundled:
                    continue
                # The loader goes where every ELF file names it, the rest to LIB_DIR.
                dest = root / (name.lstrip("/") if name.startswith("/") else f"{LIB_DIR}/{name}")
                if dest.exists():
                    continue
                if host_path is None:
                    raise StepFailed(
                        f"{elf.relative_to(root)} needs {name}, which this machine does not have"
                    )
                _mkdirs(dest.parent)
                shutil.copyfile(os.path.realpath(host_path), dest)
                os.chmod(dest, 0o755)


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            yield Path(dirpath, name)


# ------------------------------------------------------------------ writing the archive


class _Sink(Protocol):
    def write(self, data: Any, /) -> Any: ...


class _Source(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to `sink`."""

    def __init__(self, sink: _Sink) -> None:
        super().__init__()
        self.sink = sink
        self.sha = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.sink.write(view)
        self.count += len(view)
        return len(view)


def _sorted_entries(root: Path) -> list[PurePosixPath]:
    """Every path under `root`, parents before children, siblings by name."""
    rel = [PurePosixPath(p.relative_to(root).as_posix()) for p in _walk(root)]
    return sorted(rel, key=lambda p: p.parts)


def _layer_member(root: Path, rel: PurePosixPath, mtime: int) -> tuple[tarfile.TarInfo, int]:
    """The tar header of one root entry (owner 0, the fixed time) and its file size."""
    path = root / rel
    st = path.lstat()
    info = tarfile.TarInfo(str(rel))
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = mtime
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    else:
        raise BadInput(f"{path}: an image root holds files, directories and symlinks only")
    return info, info.size


def _write_layer(root: Path, sink: IO[bytes], mtime: int) -> tuple[str, str, int, int]:
    """The gzip layer into `sink`: (its digest, the tar's digest, its size, root bytes)."""
    compressed = _HashingWriter(sink)
    root_size = 0
    with gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=compressed, mtime=0) as gz:
        plain = _HashingWriter(gz)
        with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for rel in _sorted_entries(root):
                info, size = _layer_member(root, rel, mtime)
                root_size += size
                if info.isreg():
                    with open(root / rel, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return (
        "sha256:" + compressed.sha.hexdigest(),
        "sha256:" + plain.sha.hexdigest(),
        compressed.count,
        root_size,
    )


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(digest: str) -> str:
    return f"{BLOBS}/{digest.removeprefix('sha256:')}"


def _archive_member(name: str, size: int, mtime: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = 0 if directory else size
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = mtime
    return info


def write_archive(
    root: Path,
    out: Path,
    reference: str = DEFAULT_REFERENCE,
    created: str = EPOCH,
) -> ImageInfo:
    """Write the image of `root` to `out`: an OCI layout and a `docker save` archive at once.

    The archive is written beside `out` under a temporary name and renamed when complete,
    so `out` is either the old file or the whole new one.
    """
    root, out = Path(root), Path(out)
    familiar, qualified, _tag = parse_reference(reference)
    mtime = _epoch(created)
    if not root.is_dir():
        raise BadInput(f"{root}: no image root there")
    out.parent.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []

    def temp(suffix: str) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=suffix, dir=out.parent)
        temps.append(Path(name))
        return fd, Path(name)

    try:
        fd, layer_path = temp(".layer")
        with os.fdopen(fd, "wb") as sink:
            layer_digest, diff_id, layer_size, root_size = _write_layer(root, sink, mtime)

        config = _json(
            {
                "architecture": ARCHITECTURE,
                "os": OS,
                "created": created,
                "config": {
                    "Entrypoint": ENTRYPOINT,
                    "Cmd": CMD,
                    "Env": [PATH_ENV],
                    "User": "0",
                    "WorkingDir": "/",
                },
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": created, "created_by": "bootstrap package build"}],
            }
        )
        config_digest = _digest(config)
        manifest = _json(
            {
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [
                    {"mediaType": MT_LAYER_GZIP, "digest": layer_digest, "size": layer_size}
                ],
            }
        )
        manifest_digest = _digest(manifest)
        index = _json(
            {
                "schemaVersion": 2,
                "mediaType": MT_INDEX,
                "manifests": [
                    {
                        "mediaType": MT_MANIFEST,
                        "digest": manifest_digest,
                        "size": len(manifest),
                        "platform": {"architecture": ARCHITECTURE, "os": OS},
                        "annotations": {
                            ANNOTATION_IMAGE_NAME: qualified,
                            ANNOTATION_REF_NAME: qualified,
                        },
                    }
                ],
            }
        )
        docker = _json(
            [
                {
                    "Config": _blob(config_digest),
                    "RepoTags": [familiar],
                    "Layers": [_blob(layer_digest)],
                }
            ]
        )
        small = {
            _blob(config_digest): config,
            _blob(manifest_digest): manifest,
            OCI_INDEX: index,
            DOCKER_MANIFEST: docker,
            OCI_LAYOUT: _json({"imageLayoutVersion": "1.0.0"}),
        }
        names = sorted([*small, _blob(layer_digest)])

        fd, archive_path = temp(".tmp")
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_archive_member("blobs", 0, mtime, directory=True))
                tar.addfile(_archive_member(BLOBS, 0, mtime, directory=True))
                for name in names:
                    if name in small:
                        data = small[name]
                        tar.addfile(_archive_member(name, len(data), mtime), io.BytesIO(data))
                    else:
                        with open(layer_path, "rb") as layer:
                            tar.addfile(_archive_member(name, layer_size, mtime), layer)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(archive_path, 0o644)
        os.replace(archive_path, out)
        temps.remove(archive_path)
    finally:
        for path in temps:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return ImageInfo(familiar, manifest_digest, out.stat().st_size, root_size)


# ------------------------------------------------------------------ reading one back


class _HashingReader(io.RawIOBase):
    """A read-only stream that hashes and counts what is read from `source`."""

    def __init__(self, source: _Source) -> None:
        super().__init__()
        self.source = source
        self.sha = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha.update(data)
        self.count += n
        return n

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class _NotAnImage(Exception):
    """Why a file is not an image archive, as the end of one line."""


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    return {os.path.normpath(m.name): m for m in tar.getmembers()}


def _read_json(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> Any:
    member = members.get(name)
    if member is None or not member.isfile():
        raise _NotAnImage(f"no {name}")
    if member.size > 16 << 20:
        raise _NotAnImage(f"{name} is {member.size} bytes, too big for JSON metadata")
    f = tar.extractfile(member)
    assert f is not None
    try:
        return json.loads(f.read())
    except ValueError:
        raise _NotAnImage(f"{name} is not JSON") from None


def _descriptor(doc: Any, what: str) -> tuple[str, int]:
    if not isinstance(doc, dict):
        raise _NotAnImage(f"{what}: not a descriptor")
    digest, size = doc.get("digest"), doc.get("size")
    if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise _NotAnImage(f"{what}: digest {digest!r} is not sha256")
    if not isinstance(size, int):
        raise _NotAnImage(f"{what}: no size")
    return digest, size


def _read_blob(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], digest: str, size: int, what: str
) -> bytes:
    member = members.get(_blob(digest))
    if member is None or not member.isfile():
        raise _NotAnImage(f"{what} {digest} is missing")
    if member.size != size or size > 16 << 20:
        raise _NotAnImage(f"{what} {digest}: {member.size} bytes, its descriptor says {size}")
    f = tar.extractfile(member)
    assert f is not None
    data = f.read()
    if _digest(data) != digest:
        raise _NotAnImage(f"{what} {digest}: its content has another digest")
    return data


def _check_layer(
    tar: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    desc: Any,
    diff_id: str,
    index: int,
) -> int:
    """Check one layer against its digest and diff_id; return the bytes of its files."""
    what = f"layer {index + 1}"
    digest, size = _descriptor(desc, what)
    media = desc.get("mediaType")
    if media not in GZIP_LAYERS | TAR_LAYERS:
        raise _NotAnImage(f"{what}: media type {media!r} is neither tar nor gzip")
    member = members.get(_blob(digest))
    if member is None or not member.isfile():
        raise _NotAnImage(f"{what} {digest} is missing")
    if member.size != size:
        raise _NotAnImage(f"{what} {digest}: {member.size} bytes, its descriptor says {size}")
    f = tar.extractfile(member)
    assert f is not None
    outer = _HashingReader(f)
    inner = _HashingReader(
        gzip.GzipFile(fileobj=outer, mode="rb") if media in GZIP_LAYERS else outer
    )
    files = 0
    try:
        with tarfile.open(fileobj=inner, mode="r|") as layer:
            for m in layer:
                if m.isfile():
                    files += m.size
        inner.drain()
        outer.drain()
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as e:
        raise _NotAnImage(f"{what} {digest}: not a readable layer ({e})") from None
    if "sha256:" + outer.sha.hexdigest() != digest:
        raise _NotAnImage(f"{what} {digest}: its content has another digest")
    if "sha256:" + inner.sha.hexdigest() != diff_id:
        raise _NotAnImage(f"{what}: its uncompressed digest is not the config's diff_id")
    return files


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:")
    except tarfile.TarError as e:
        raise _NotAnImage(f"not an uncompressed tar file ({e})") from None
    except OSError as e:
        raise _NotAnImage(f"cannot read it ({e.strerror or e})") from None


def _read(path: Path) -> ImageInfo:
    with _open_tar(path) as tar:
        members = _members(tar)
        layout = _read_json(tar, members, OCI_LAYOUT)
        if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
            raise _NotAnImage(f"{OCI_LAYOUT} does not say imageLayoutVersion 1.0.0")
        index = _read_json(tar, members, OCI_INDEX)
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list) or len(manifests) != 1:
            raise _NotAnImage(f"{OCI_INDEX} must list exactly one image")
        entry = manifests[0]
        manifest_digest, manifest_size = _descriptor(entry, f"{OCI_INDEX}'s image")
        annotations = entry.get("annotations") or {}
        name = annotations.get(ANNOTATION_IMAGE_NAME) or annotations.get(ANNOTATION_REF_NAME)
        if not isinstance(name, str):
            raise _NotAnImage(f"{OCI_INDEX}'s image has no name ({ANNOTATION_IMAGE_NAME})")
        try:
            familiar, _qualified, _tag = parse_reference(name)
        except BadInput as e:
            raise _NotAnImage(str(e)) from None
        manifest = json.loads(_read_blob(tar, members, manifest_digest, manifest_size, "manifest"))
        if not isinstance(manifest, dict):
            raise _NotAnImage("the manifest is not a JSON object")
        config_digest, config_size = _descriptor(manifest.get("config"), "config")
        config = json.loads(_read_blob(tar, members, config_digest, config_size, "config"))
        layers = manifest.get("layers")
        rootfs = config.get("rootfs") if isinstance(config, dict) else None
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(layers, list) or not isinstance(diff_ids, list):
            raise _NotAnImage("the manifest has no layers or the config no rootfs.diff_ids")
        if len(layers) != len(diff_ids):
            raise _NotAnImage(f"{len(layers)} layers but {len(diff_ids)} diff_ids")
        root_size = sum(
            _check_layer(tar, members, desc, diff_id, i)
            for i, (desc, diff_id) in enumerate(zip(layers, diff_ids, strict=True))
        )

        docker = _read_json(tar, members, DOCKER_MANIFEST)
        if not isinstance(docker, list) or len(docker) != 1 or not isinstance(docker[0], dict):
            raise _NotAnImage(f"{DOCKER_MANIFEST} must list exactly one image")
        item = docker[0]
        if item.get("Config") != _blob(config_digest):
            raise _NotAnImage(f"{DOCKER_MANIFEST} names another config than {OCI_INDEX}")
        if item.get("Layers") != [_blob(d["digest"]) for d in layers]:
            raise _NotAnImage(f"{DOCKER_MANIFEST} names other layers than {OCI_INDEX}")
        if familiar not in (item.get("RepoTags") or []):
            raise _NotAnImage(f"{DOCKER_MANIFEST} does not tag the image {familiar}")
    return ImageInfo(familiar, manifest_digest, path.stat().st_size, root_size)


def read_archive(path: Path) -> ImageInfo:
    """Read an image archive as `write_archive` makes it, checking every digest in it.

    Raises BadInput, one line naming the file, when it is not one: a damaged or foreign
    file must stop a package build or an inspection, not a host's `ctr images import`.
    """
    path = Path(path)
    try:
        return _read(path)
    except _NotAnImage as e:
        raise BadInput(f"{path}: not an image archive: {e}") from None


def looks_like_image_archive(path: Path) -> str | None:
    """None when `path` is a tar (plain, or gzip-compressed: init.sh decompresses it on the
    way) that `ctr images import` and `docker load` take (an OCI layout or a `docker save`
    archive); else the reason, for one line.

    Reads only the tar's headers and its small JSON files, not the layers: it guards
    `bootstrap package build --images` against a wrong file, cheaply.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            return _archive_reason(raw)
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"


def _archive_reason(raw: IO[bytes]) -> str | None:
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):  # a docker save | gzip: read through the gzip
        try:
            with gzip.GzipFile(fileobj=raw) as gz:
                return _archive_reason(cast(IO[bytes], gz))
        except (OSError, EOFError) as e:
            return f"a damaged gzip file ({e})"
    for prefix, kind in COMPRESSED:
        if magic.startswith(prefix):
            return f"it is {kind}-compressed; give the tar, or gzip it"
    try:
        with tarfile.open(fileobj=raw, mode="r:") as tar:
            members = _members(tar)
            if OCI_LAYOUT in members:
                return _oci_reason(tar, members)
            if DOCKER_MANIFEST in members:
                return _docker_reason(tar, members)
    except (tarfile.TarError, EOFError) as e:
        return f"not a tar file ({e})"
    except _NotAnImage as e:
        return str(e)
    return f"a tar file without {OCI_LAYOUT} (OCI layout) or {DOCKER_MANIFEST} (docker save)"


def _oci_reason(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> str | None:
    index = _read_json(tar, members, OCI_INDEX)
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not manifests:
        return f"{OCI_INDEX} lists no image"
    for i, entry in enumerate(manifests):
        digest, _size = _descriptor(entry, f"{OCI_INDEX} entry {i + 1}")
        if _blob(digest) not in members:
            return f"{OCI_INDEX} entry {i + 1}: blob {digest} is missing"
    return None


def _docker_reason(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> str | None:
    docker = _read_json(tar, members, DOCKER_MANIFEST)
    if not isinstance(docker, list) or not docker:
        return f"{DOCKER_MANIFEST} lists no image"
    for i, item in enumerate(docker):
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            return f"{DOCKER_MANIFEST} entry {i + 1} has no Config"
        layers = item.get("Layers")
        if not isinstance(layers, list):
            return f"{DOCKER_MANIFEST} entry {i + 1} has no Layers"
        for name in [item["Config"], *layers]:
            if not isinstance(name, str) or os.path.normpath(name) not in members:
                return f"{DOCKER_MANIFEST} entry {i + 1}: {name!r} is missing"
    return None
