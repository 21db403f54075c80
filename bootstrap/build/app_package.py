"""`bootstrap package app DIR`: an app package from a directory of manifests and images.

DIR holds manifests/*.yaml (or .yml, .json), optionally images/*.tar[.gz] (image archives:
`docker save`, `ctr images export`, or our own writer's), shell/install.sh and
shell/uninstall.sh, and app.json. The package gets app.json with the name, the version and
the manifests' order, so `bootstrap install` need not guess them from the file name. The
tar is the same bytes from the same inputs (sorted, owner root, time 0), written under a
temporary name, read back with the installer's own check, and renamed.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from bootstrap.build.image import looks_like_image_archive
from bootstrap.cluster import app_format
from bootstrap.errors import BadInput
from bootstrap.inputs import parse_manifest


@dataclass(frozen=True)
class AppInputs:
    name: str
    version: str
    files: dict[str, Path]  # name in the package -> the file here
    manifests: list[str]
    output: Path


def check_inputs(
    directory: str, name: str | None, version: str | None, output: str | None
) -> AppInputs:
    """Every input checked before anything is written: one BadInput line naming it."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise BadInput(f"{directory!r}: no such directory")
    meta: dict[str, object] = {}
    if (root / app_format.METADATA).is_file():
        try:
            loaded = json.loads((root / app_format.METADATA).read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:
            raise BadInput(f"{root / app_format.METADATA}: not JSON ({e})") from None
        if not isinstance(loaded, dict):
            raise BadInput(f"{root / app_format.METADATA}: not a JSON object")
        meta = loaded
    app_name = name or str(meta.get("name") or root.resolve().name.lower())
    app_format.check_name(app_name, "--name" if name else directory)
    app_version = version or meta.get("version")
    if not isinstance(app_version, str) or not app_version:
        raise BadInput(f"{directory!r}: no version: give --version (or app.json's version)")
    app_format.check_version(app_version, "--version")
    manifests = sorted(
        p.name
        for p in (root / "manifests").glob("*")
        if p.is_file() and p.name.endswith(app_format.MANIFEST_SUFFIXES)
    )
    if not manifests:
        raise BadInput(f"{directory!r}: no manifests/*.yaml (layout: manifests/ images/ shell/)")
    files = {f"manifests/{m}": root / "manifests" / m for m in manifests}
    for path in files.values():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BadInput(f"{path}: cannot read it ({e})") from None
        parse_manifest(text, str(path))
    for path in sorted((root / "images").glob("*")) if (root / "images").is_dir() else []:
        if not path.is_file():
            continue
        if not path.name.endswith(app_format.IMAGE_SUFFIXES):
            raise BadInput(f"{path}: not an image archive (.tar or .tar.gz)")
        why = looks_like_image_archive(path)
        if why is not None:
            raise BadInput(f"{path}: not an image archive ({why})")
        files[f"images/{path.name}"] = path
    for script in ("install.sh", "uninstall.sh"):
        if (root / "shell" / script).is_file():
            files[f"shell/{script}"] = root / "shell" / script
    out = Path(output).expanduser() if output else Path(f"{app_name}-{app_version}.tar.gz")
    if out.is_dir() or not out.resolve().parent.is_dir():
        raise BadInput(f"-o {str(out)!r}: not a file in an existing directory")
    if not os.access(out.resolve().parent, os.W_OK):
        raise BadInput(f"-o {str(out)!r}: its directory is not writable")
    return AppInputs(app_name, app_version, files, [f"manifests/{m}" for m in manifests], out)


def _info(name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type = size, mode, kind
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def build(inputs: AppInputs) -> app_format.AppPackage:
    """Write the package, check it as `install` will, and put it in place."""
    meta = {"name": inputs.name, "version": inputs.version, "manifests": inputs.manifests}
    meta_bytes = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    tmp = inputs.output.with_name(f".{inputs.output.name}.lvscare-py-part")
    try:
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            tar.addfile(_info(app_format.METADATA, len(meta_bytes), 0o644), io.BytesIO(meta_bytes))
            dirs = sorted({n.split("/", 1)[0] for n in inputs.files})
            for d in dirs:
                tar.addfile(_info(d, 0, 0o755, tarfile.DIRTYPE))
            for name in sorted(inputs.files):
                path = inputs.files[name]
                mode = 0o755 if name.startswith("shell/") else 0o644
                with open(path, "rb") as f:
                    tar.addfile(_info(name, path.stat().st_size, mode), f)
        app_format.open_app(str(tmp))  # as `install` will read it
        os.replace(tmp, inputs.output)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return app_format.open_app(str(inputs.output))
