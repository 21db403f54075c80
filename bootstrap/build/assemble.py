"""The offline package as one .tar.gz, in the layout sealos users know, with its manifest.

    kube/bin/       kubeadm kubelet kubectl [crictl] bootstrap lvscare, cni/ (CNI plugins)
    kube/conf/      kubelet.service, 10-kubeadm.conf, net/CNI.yaml
    kube/images/    lvscare-py-VERSION.tar and the archives the user brought
    kube/shell/     init.sh clean.sh
    kube/manifest.json   versions, and the sha256 and size of every other file

Inputs are all checked before anything is written: a bad one is one line and exit 2 with no
file left behind. The archive is written under a temporary name beside the output and
renamed once whole. Members are sorted, owned by root and dated SOURCE_DATE_EPOCH (else 0),
and the gzip header carries no time, so the same inputs give the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bootstrap.build import image as image_build
from bootstrap.build.executables import Executables
from bootstrap.errors import BadInput, StepFailed
from bootstrap.inputs import KubeVersion, parse_manifest, parse_version
from lvscare import __version__ as LVSCARE_VERSION
from lvscare.manifest import DEFAULT_IMAGE

TOP = "kube"
MANIFEST = "manifest.json"
FORMAT = 1
REQUIRED_BINARIES = ("kubeadm", "kubelet", "kubectl")
OPTIONAL_BINARIES = ("crictl",)
OURS = ("bootstrap", "lvscare")
SHELL_FILES = ("init.sh", "clean.sh")
CONF_FILES = ("kubelet.service", "10-kubeadm.conf")
CNI_DIR = "conf/net"
KUBEADM_VERSION_TIMEOUT = 30.0
IMAGE_ARCHIVE = DEFAULT_IMAGE.replace(":", "-") + ".tar"  # images/lvscare-py-0.1.0.tar
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")

Log = Callable[[str], None]


@dataclass(frozen=True)
class Inputs:
    """What the user brought, checked."""

    bin_dir: Path
    version: KubeVersion
    binaries: dict[str, Path]  # name in bin/ -> file (kubeadm, kubelet, kubectl, crictl)
    cni_plugins: dict[str, Path]  # name in bin/cni/ -> file
    images: list[Path]
    cni: Path | None
    cni_kind: str | None
    output: Path


@dataclass
class Member:
    name: str  # path inside the package, under TOP
    mode: int
    source: Path | None = None
    data: bytes | None = None

    def open(self) -> io.BufferedIOBase:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.source is not None
        return open(self.source, "rb")

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.source is not None
        return self.source.stat().st_size


@dataclass
class Built:
    path: Path
    sha256: str
    size: int
    manifest: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------ checking the inputs


def _executable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def kubeadm_version(kubeadm: Path) -> str | None:
    """What `kubeadm version -o short` prints, or None if it cannot run here."""
    try:
        proc = subprocess.run(
            [str(kubeadm), "version", "-o", "short"],
            capture_output=True,
            text=True,
            timeout=KUBEADM_VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip().splitlines()
    return out[-1].strip() if proc.returncode == 0 and out else None


def cni_kind(docs: list[Any]) -> str:
    """calico, flannel, or other: the two whose pod network bootstrap knows how to set."""
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        name = str((doc.get("metadata") or {}).get("name", ""))
        if doc.get("kind") == "DaemonSet" and name == "calico-node":
            return "calico"
        if doc.get("kind") == "Installation" and "tigera" in str(doc.get("apiVersion", "")):
            return "calico"
        if doc.get("kind") == "ConfigMap" and "net-conf.json" in (doc.get("data") or {}):
            return "flannel"
    return "other"


def read_cni(path: Path, flag: str = "--cni") -> list[Any]:
    """The manifest's documents; BadInput unless it is YAML of Kubernetes objects."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{flag} {str(path)!r}: no such file (or `none` for no CNI)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{flag} {str(path)!r}: cannot read it ({e})") from None
    return list(parse_manifest(text, f"{flag} {str(path)!r}"))


def _check_output(output: Path) -> Path:
    """The output's directory exists and takes a new file: tried now, before the build."""
    output = output.expanduser()
    if output.is_dir():
        raise BadInput(f"-o {str(output)!r}: is a directory; give the package's file name")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"-o {str(output)!r}: no directory {str(parent)!r}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".lvscare-py-probe.", dir=parent)
    except OSError as e:
        raise BadInput(f"-o {str(output)!r}: cannot write there ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
    return output.resolve()


def check_inputs(
    bin_dir: str,
    version: str | None,
    images: tuple[str, ...],
    cni: str | None,
    output: str | None,
) -> Inputs:
    """Every input checked, in the order a user reads the command; nothing written."""
    bdir = Path(bin_dir).expanduser()
    if not bdir.is_dir():
        raise BadInput(f"--bin {bin_dir!r}: no such directory")
    binaries: dict[str, Path] = {}
    for name in REQUIRED_BINARIES:
        path = bdir / name
        if not _executable_file(path):
            why = "not executable" if path.is_file() else "missing"
            raise BadInput(f"--bin {bin_dir!r}: {name} {why} (it needs kubeadm, kubelet, kubectl)")
        binaries[name] = path
    for name in OPTIONAL_BINARIES:
        if _executable_file(bdir / name):
            binaries[name] = bdir / name
    plugins: dict[str, Path] = {}
    if (bdir / "cni").is_dir():
        plugins = {p.name: p for p in sorted((bdir / "cni").iterdir()) if _executable_file(p)}
    if version is not None:
        parsed = parse_version(version)
    else:
        said = kubeadm_version(binaries["kubeadm"])
        if said is None:
            raise BadInput(
                f"--bin {bin_dir!r}: `kubeadm version -o short` does not run here; give --version"
            )
        parsed = parse_version(said, "kubeadm version")
    image_paths: list[Path] = []
    names: set[str] = {IMAGE_ARCHIVE}
    for value in images:
        path = Path(value).expanduser()
        if not path.is_file():
            raise BadInput(f"--images {value!r}: no such file")
        if not path.name.endswith((".tar", ".tar.gz")):
            raise BadInput(
                f"--images {value!r}: name it NAME.tar or NAME.tar.gz (init.sh loads those)"
            )
        reason = image_build.looks_like_image_archive(path)
        if reason:
            raise BadInput(f"--images {value!r}: not an image archive ({reason})")
        if path.name in names or not _SAFE_NAME.fullmatch(path.name):
            raise BadInput(f"--images {value!r}: another archive has the name {path.name!r}")
        names.add(path.name)
        image_paths.append(path)
    cni_path: Path | None = None
    kind: str | None = None
    if cni is not None and cni != "none":
        cni_path = Path(cni).expanduser()
        kind = cni_kind(read_cni(cni_path))
        if not _SAFE_NAME.fullmatch(cni_path.name):
            raise BadInput(f"--cni {cni!r}: give the file a plain name (letters, digits, .-_)")
    out = _check_output(Path(output or f"kube{parsed}.tar.gz"))
    return Inputs(bdir, parsed, binaries, plugins, image_paths, cni_path, kind, out)


# ------------------------------------------------------------ writing the package


def _data_file(*parts: str) -> bytes:
    return resources.files("bootstrap.build").joinpath(*parts).read_bytes()


def members(inputs: Inputs, exe: Executables, image_archive: Path) -> list[Member]:
    """Every file of the package but the manifest, by its path under TOP."""
    found = [Member(f"bin/{n}", 0o755, p) for n, p in inputs.binaries.items()]
    found += [Member(f"bin/cni/{n}", 0o755, p) for n, p in inputs.cni_plugins.items()]
    found += [
        Member("bin/bootstrap", 0o755, exe.bootstrap),
        Member("bin/lvscare", 0o755, exe.lvscare),
    ]
    found += [Member(f"shell/{n}", 0o755, data=_data_file("shell", n)) for n in SHELL_FILES]
    found += [Member(f"conf/{n}", 0o644, data=_data_file("conf", n)) for n in CONF_FILES]
    if inputs.cni is not None:
        found.append(Member(f"{CNI_DIR}/{inputs.cni.name}", 0o644, inputs.cni))
    found.append(Member(f"images/{IMAGE_ARCHIVE}", 0o644, image_archive))
    found += [Member(f"images/{p.name}", 0o644, p) for p in inputs.images]
    return sorted(found, key=lambda m: m.name)


def _sha256(member: Member) -> str:
    h = hashlib.sha256()
    with member.open() as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def manifest(inputs: Inputs, exe: Executables, files: list[Member]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "kubernetes": str(inputs.version),
        "lvscare_py": LVSCARE_VERSION,
        "image": DEFAULT_IMAGE,
        "image_archive": f"images/{IMAGE_ARCHIVE}",
        "cni": f"{CNI_DIR}/{inputs.cni.name}" if inputs.cni is not None else None,
        "cni_kind": inputs.cni_kind,
        "executables_key": exe.key,
        "files": {
            m.name: {"sha256": _sha256(m), "size": m.size(), "mode": f"{m.mode:04o}"} for m in files
        },
    }


def _epoch() -> int:
    try:
        return max(0, int(os.environ.get("SOURCE_DATE_EPOCH", "0")))
    except ValueError:
        return 0


def _tar_info(name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type = size, mode, kind
    info.mtime, info.uid, info.gid, info.uname, info.gname = _epoch(), 0, 0, "root", "root"
    return info


def _directories(names: list[str]) -> list[str]:
    dirs = {TOP}
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join([TOP, *parts[:i]]))
    return sorted(dirs)


def write_package(out: Path, files: list[Member], manifest_doc: dict[str, Any]) -> Built:
    """The .tar.gz, written beside `out` under a temporary name and renamed when whole."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            with (
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
            ):
                for d in _directories([m.name for m in files]):
                    tar.addfile(_tar_info(d, 0, 0o755, tarfile.DIRTYPE))
                doc = (json.dumps(manifest_doc, indent=2, sort_keys=True) + "\n").encode()
                tar.addfile(_tar_info(f"{TOP}/{MANIFEST}", len(doc), 0o644), io.BytesIO(doc))
                for m in files:
                    with m.open() as f:
                        tar.addfile(_tar_info(f"{TOP}/{m.name}", m.size(), m.mode), f)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    h = hashlib.sha256()
    with open(out, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return Built(out, h.hexdigest(), out.stat().st_size, manifest_doc)


def build(inputs: Inputs, exe: Executables, log: Log) -> Built:
    """The image archive from the one-directory lvscare, then the package."""
    with tempfile.TemporaryDirectory(prefix=".lvscare-py-build.", dir=inputs.output.parent) as t:
        work = Path(t)
        log("image: laying out its root file system")
        root = work / "rootfs"
        image_build.image_root(exe.lvscare_dir, root)
        archive = work / IMAGE_ARCHIVE
        info = image_build.write_archive(root, archive, DEFAULT_IMAGE)
        log(f"image: {DEFAULT_IMAGE}, {info.size / 1e6:.1f} MB")
        shutil.rmtree(root)
        files = members(inputs, exe, archive)
        log(f"package: hashing {len(files)} files")
        doc = manifest(inputs, exe, files)
        log(f"package: writing {inputs.output}")
        return write_package(inputs.output, files, doc)


# ------------------------------------------------------------ reading one back


def iter_members(path: Path) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                yield info, tar
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as e:
        raise BadInput(f"{path}: not a readable package ({type(e).__name__}: {e})") from None


def read_manifest(path: Path, verify: bool = True) -> tuple[dict[str, Any], list[str]]:
    """The package's manifest, and (verify) every way its files differ from it."""
    doc: dict[str, Any] | None = None
    seen: dict[str, tuple[str, int]] = {}
    for info, tar in iter_members(path):
        parts = info.name.split("/", 1)
        if len(parts) != 2 or not info.isfile():
            continue
        rel = parts[1]
        if rel == MANIFEST:
            f = tar.extractfile(info)
            assert f is not None
            try:
                doc = json.loads(f.read())
            except ValueError:
                raise BadInput(f"{path}: its {MANIFEST} is not JSON") from None
        elif verify:
            f = tar.extractfile(info)
            assert f is not None
            h = hashlib.sha256()
            while chunk := f.read(1 << 20):
                h.update(chunk)
            seen[rel] = (h.hexdigest(), info.size)
    if doc is None or not isinstance(doc.get("files"), dict):
        raise BadInput(f"{path}: no {MANIFEST} (not a package `bootstrap package build` made)")
    problems: list[str] = []
    if verify:
        listed: dict[str, Any] = doc["files"]
        for name, entry in sorted(listed.items()):
            got = seen.get(name)
            if got is None:
                problems.append(f"{name}: missing")
            elif got != (entry.get("sha256"), entry.get("size")):
                problems.append(f"{name}: sha256 {got[0][:16]}... differs from the manifest")
        problems += [f"{name}: not in the manifest" for name in sorted(set(seen) - set(listed))]
    return doc, problems


def describe(doc: dict[str, Any]) -> str:
    """The manifest as a person reads it."""
    files: dict[str, Any] = doc.get("files", {})
    total = sum(int(e.get("size", 0)) for e in files.values())
    lines = [
        f"Kubernetes   {doc.get('kubernetes')}",
        f"lvscare-py   {doc.get('lvscare_py')}  (image {doc.get('image')})",
        f"CNI          {doc.get('cni') or 'none'}"
        + (f"  ({doc.get('cni_kind')})" if doc.get("cni") else ""),
        f"files        {len(files)}, {total / 1e6:.1f} MB unpacked",
        "",
    ]
    width = max((len(n) for n in files), default=4)
    for name, entry in sorted(files.items()):
        lines.append(f"{name:<{width}}  {int(entry['size']):>11}  {entry['sha256']}")
    return "\n".join(lines)


def check_built(path: Path) -> None:
    """A package we just wrote reads back whole and matches its manifest."""
    _doc, problems = read_manifest(path)
    if problems:
        raise StepFailed(f"{path}: " + "; ".join(problems))
