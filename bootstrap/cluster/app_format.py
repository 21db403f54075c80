"""An app package, read and checked on this machine before any host sees it (`open_app`);
`bootstrap package app` checks what it writes with it too, so the two cannot disagree.

The layout: `manifests/` (Kubernetes YAML, applied in order), `images/` (archives for the
container runtime), optionally `shell/install.sh` and `shell/uninstall.sh`, and `app.json`
(name, version, the manifests' order); the tree may sit under one top directory. Without
app.json the name and version come from the file name, NAME-VERSION.tar.gz.
"""

from __future__ import annotations

import json
import re
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bootstrap.build.image import looks_like_image_archive
from bootstrap.cluster.cluster_file import AppRecord
from bootstrap.cluster.package import REMOTE_DIR
from bootstrap.errors import BadInput
from bootstrap.fsutil import file_sha256
from bootstrap.inputs import parse_manifest

APPS_DIR = f"{REMOTE_DIR}/apps"  # the package (NAME.pkg) and its tree (NAME/) on a host
# What was done for each app on a host; under REMOTE_DIR, so that `clean` (which removes
# it) leaves no record saying an app is there on a host a new cluster is made on.
STATE_DIR = f"{REMOTE_DIR}/app-state"

METADATA = "app.json"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
IMAGE_SUFFIXES = (".tar", ".tar.gz")  # what init.sh loads too
APP_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")
APP_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
# dashboard-v2.7.0.tar.gz -> (dashboard, v2.7.0): the version starts at the last '-' that a
# digit (or v and a digit) follows.
_FILE_NAME = re.compile(r"(?P<name>.+)-(?P<version>v?[0-9][A-Za-z0-9._+-]*)")
UNKNOWN_VERSION = "unknown"


@dataclass(frozen=True)
class AppPackage:
    """A checked app package on this machine."""

    source: str
    path: Path
    sha256: str
    size: int
    name: str
    version: str
    named_by: str  # "app.json" or "the file name"
    top: str  # "" or the one top directory, with its "/"
    manifests: tuple[str, ...]  # in apply order, e.g. "manifests/00-namespace.yaml"
    images: tuple[str, ...]  # e.g. "images/dashboard.tar"
    install_sh: bool
    uninstall_sh: bool

    @property
    def tree(self) -> str:
        """The unpacked package's root on a host."""
        return f"{APPS_DIR}/{self.name}" + (f"/{self.top.rstrip('/')}" if self.top else "")

    @property
    def state(self) -> str:
        return f"{STATE_DIR}/{self.name}"

    def record(self) -> AppRecord:
        return AppRecord(
            self.name, self.version, self.sha256, list(self.images), list(self.manifests)
        )


def check_name(name: str, where: str) -> str:
    if not APP_NAME.fullmatch(name) or ".." in name:
        raise BadInput(
            f"{where}: app name {name!r} is not one (lower-case letters, digits, '.', '_', '-', "
            "at most 63, starting and ending with a letter or digit)"
        )
    return name


def check_version(version: str, where: str) -> str:
    if not APP_VERSION.fullmatch(version):
        raise BadInput(f"{where}: app version {version!r} is not one (letters, digits, . _ + -)")
    return version


def name_from_file(path: Path) -> tuple[str, str]:
    """NAME-VERSION.tar.gz -> (NAME, VERSION); without a version, (stem, "unknown")."""
    stem = path.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    match = _FILE_NAME.fullmatch(stem)
    if match:
        return match["name"].lower(), match["version"]
    return stem.lower(), UNKNOWN_VERSION


def _top(names: list[str]) -> str:
    """The one top directory the tree sits under, if it does ("" if not)."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        top = tops.pop()
        if top not in ("manifests", "images", "shell"):
            return top + "/"
    return ""


def _metadata(raw: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(f"{where}: {METADATA} is not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: {METADATA} is not a JSON object")
    for key in ("name", "version"):
        if key in doc and not isinstance(doc[key], str):
            raise BadInput(f"{where}: {METADATA} {key} is not a string")
    order = doc.get("manifests")
    if order is not None and (
        not isinstance(order, list) or not all(isinstance(m, str) for m in order)
    ):
        raise BadInput(f"{where}: {METADATA} manifests is not a list of file names")
    return doc


def open_app(source: str) -> AppPackage:
    """Read the whole app package once (gzip's CRC too) and check it: one BadInput line
    naming what is wrong, before any host sees it."""
    if "://" in source and not source.startswith("file://"):
        raise BadInput(f"--pkg-url {source!r}: give an app package as a local file")
    try:
        path = Path(source.removeprefix("file://")).expanduser()
    except RuntimeError:
        raise BadInput(f"--pkg-url {source!r}: no such file") from None
    if not path.is_file():
        raise BadInput(f"--pkg-url {source!r}: no such file")
    bad = f"--pkg-url {source!r}"
    files: dict[str, bytes] = {}
    images: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lvscare-py-app.") as tmp:
        try:
            digest = file_sha256(path)
            with tarfile.open(path, "r:*") as tar:
                names: list[str] = []
                members = []
                for member in tar:
                    name = member.name.removeprefix("./")
                    parts = PurePosixPath(name).parts
                    if name.startswith("/") or ".." in parts:
                        raise BadInput(f"{bad}: member {member.name!r} lies outside the package")
                    if not (member.isfile() or member.isdir()):
                        raise BadInput(f"{bad}: member {member.name!r} is not a file or directory")
                    if member.isfile():
                        names.append(name)
                        members.append((name, member))
                top = _top(names)
                for name, member in members:
                    rel = name.removeprefix(top)
                    f = tar.extractfile(member)
                    assert f is not None
                    if rel.startswith("images/") and rel.count("/") == 1:
                        if rel.endswith(IMAGE_SUFFIXES):
                            out = Path(tmp) / "image"
                            with open(out, "wb") as o:
                                while chunk := f.read(1 << 20):
                                    o.write(chunk)
                            why = looks_like_image_archive(out)
                            if why is not None:
                                raise BadInput(f"{bad}: {rel} is not an image archive ({why})")
                            images.append(rel)
                        continue
                    files[rel] = f.read()
                while tar.fileobj is not None and tar.fileobj.read(1 << 20):
                    pass
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise BadInput(f"{bad}: not a usable app package ({type(e).__name__}: {e})") from None
    found = sorted(
        n
        for n in files
        if n.startswith("manifests/") and n.count("/") == 1 and n.endswith(MANIFEST_SUFFIXES)
    )
    if not found:
        raise BadInput(
            f"{bad}: no manifests/*.yaml in the app package (layout: manifests/ images/ shell/)"
        )
    meta = _metadata(files[METADATA], bad) if METADATA in files else {}
    order = [f"manifests/{m.removeprefix('manifests/')}" for m in meta.get("manifests") or []]
    if order:
        if sorted(order) != found:
            raise BadInput(f"{bad}: {METADATA} lists manifests {order}, the package holds {found}")
        found = order
    for name in found:
        parse_manifest(files[name].decode("utf-8", errors="replace"), f"{bad}: {name}")
    by_file = name_from_file(path)
    named_by = METADATA if "name" in meta else "the file name"
    name = check_name(meta.get("name") or by_file[0], bad)
    version = check_version(meta.get("version") or by_file[1], bad)
    return AppPackage(
        source=source,
        path=path,
        sha256=digest,
        size=path.stat().st_size,
        name=name,
        version=version,
        named_by=named_by,
        top=top,
        manifests=tuple(found),
        images=tuple(sorted(images)),
        install_sh="shell/install.sh" in files,
        uninstall_sh="shell/uninstall.sh" in files,
    )
