"""The offline package on each host: sent (or fetched) once, checked by sha256, unpacked,
`shell/init.sh` run; and taken away again by `clean`.

Layout (as the seed documents' kube*.tar.gz): bin/ (kubeadm, kubectl, kubelet, and
lvscare-py's `bootstrap`), conf/, images/, shell/init.sh (installs them), optionally
shell/clean.sh; the tree may sit under one top directory. On the host everything is under
REMOTE_DIR, with a marker per finished step so a re-run skips it.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from bootstrap.cluster.ssh import Connection, Progress
from bootstrap.errors import BadInput, StepFailed
from bootstrap.fsutil import file_sha256

REMOTE_DIR = "/opt/lvscare-py"
REMOTE_PKG = f"{REMOTE_DIR}/package.tar.gz"
REMOTE_TREE = f"{REMOTE_DIR}/package"
REMOTE_TEMPLATE = f"{REMOTE_DIR}/kubeadm.tmpl"
UNPACKED_MARK = ".lvscare-py-unpacked"
INIT_MARK = ".lvscare-py-init-done"
# Where init.sh puts bin/; clean removes from here only files identical to the package's.
BIN_DIRS = ("/usr/local/bin", "/usr/bin")
FULL_KIB = 1024  # less free than this after a failed unpack: the disk is what stopped it
_SHA = re.compile(r"[0-9a-f]{64}")


def parse_sha256(value: str, flag: str = "--pkg-sha256") -> str:
    text = value.strip().lower()
    if not _SHA.fullmatch(text):
        raise BadInput(f"{flag} {value!r}: not a sha256 (64 hex digits)")
    return text


@dataclass(frozen=True)
class Package:
    """A local file (`path`) or a URL the hosts download themselves."""

    source: str
    path: Path | None
    sha256: str | None  # known up front for a local file or with --pkg-sha256
    size: int = 0

    @property
    def is_url(self) -> bool:
        return self.path is None


def check_contents(path: Path, flag_value: str) -> None:
    """Read the whole archive once before any host sees it: a truncated or corrupt package
    (gzip's CRC, tar's headers), one without shell/init.sh, or one with a member that would
    land outside its tree is one line here, not a failed unpack on every host."""
    bad = f"--pkg-url {flag_value!r}: not a usable package"
    init_sh = False
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.name.startswith("/") or ".." in parts:
                    raise BadInput(f"{bad}: member {member.name!r} lies outside the package")
                if member.isfile() and parts[-2:] == ["shell", "init.sh"] and len(parts) <= 3:
                    init_sh = True
                if member.isfile():
                    f = tar.extractfile(member)
                    while f is not None and f.read(1 << 20):
                        pass
            # To the end of the gzip stream, past tar's last block: gzip checks its CRC and
            # length there, and a download cut short loses exactly that part.
            while tar.fileobj is not None and tar.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise BadInput(f"{bad} ({type(e).__name__}: {e or 'truncated'})") from None
    if not init_sh:
        raise BadInput(f"{bad}: no shell/init.sh (layout: bin/ conf/ images/ shell/)")


def open_package(source: str, expected: str | None) -> Package:
    try:
        url = urlparse(source)
    except ValueError as e:  # e.g. an unclosed [ in the host part
        raise BadInput(f"--pkg-url {source!r}: not a URL ({e})") from None
    scheme = url.scheme
    if scheme in ("http", "https"):
        if not url.hostname:
            raise BadInput(f"--pkg-url {source!r}: no host in the URL")
        return Package(source, None, expected)
    if scheme and scheme != "file" and len(scheme) > 1:
        raise BadInput(f"--pkg-url {source!r}: give a local file or an http(s) URL")
    path = Path(source[len("file://") :] if scheme == "file" else source)
    try:
        path = path.expanduser()
    except RuntimeError:  # ~user of a user that does not exist
        raise BadInput(f"--pkg-url {source!r}: no such file") from None
    if not path.is_file():
        raise BadInput(f"--pkg-url {source!r}: no such file")
    try:
        digest = file_sha256(path)
    except OSError as e:
        raise BadInput(f"--pkg-url {source!r}: cannot read it ({e.strerror or e})") from None
    if expected and expected != digest:
        raise BadInput(f"--pkg-sha256 {expected}: {path} has sha256 {digest}")
    check_contents(path, source)
    return Package(source, path, digest, path.stat().st_size)


def distribute(
    conn: Connection, pkg: Package, progress: Progress | None, dest: str = REMOTE_PKG
) -> tuple[str, bool]:
    """Get the package to the host (at `dest`: an app package has its own place); its sha256
    and whether it was sent (False: already there)."""
    have = conn.sha256(dest)
    if have is not None and pkg.sha256 is not None and have == pkg.sha256:
        return have, False
    if have is not None:  # another package (or a damaged one): its room is for the new one
        conn.check(f"rm -f -- {shlex.quote(dest)}", f"removing the old {dest}")
    if pkg.path is not None:
        conn.require_space(posixpath.dirname(dest), pkg.size, "the package")
        with open(pkg.path, "rb") as f:
            conn.put(f, pkg.size, dest, 0o600, progress)
    else:
        url, target = shlex.quote(pkg.source), shlex.quote(dest)
        part = shlex.quote(dest + ".lvscare-py-part")
        conn.check(
            f"mkdir -p {shlex.quote(posixpath.dirname(dest))} && "
            f"if command -v curl >/dev/null; then curl -fsSL --retry 2 -o {part} -- {url}; "
            f"elif command -v wget >/dev/null; then wget -q -O {part} -- {url}; "
            "else echo 'neither curl nor wget on the host' >&2; exit 1; fi && "
            f"chmod 600 {part} && mv -f {part} {target}",
            f"downloading {pkg.source}",
        )
    got = conn.sha256(dest)
    if got is None:
        raise StepFailed(f"{dest} is missing after the transfer")
    if pkg.sha256 is not None and got != pkg.sha256:
        conn.run(f"rm -f -- {shlex.quote(dest)}")
        raise StepFailed(f"sha256 mismatch: expected {pkg.sha256}, the host has {got}")
    return got, True


def _mark_is(conn: Connection, mark: str, digest: str) -> bool:
    result = conn.run(f"cat -- {shlex.quote(mark)} 2>/dev/null")
    return result.code == 0 and result.output.strip() == digest


def unpack(conn: Connection, digest: str) -> bool:
    """Unpack into REMOTE_TREE (replaced whole); False if this package is unpacked already."""
    if _mark_is(conn, f"{REMOTE_TREE}/{UNPACKED_MARK}", digest):
        return False
    tree, new = shlex.quote(REMOTE_TREE), shlex.quote(REMOTE_TREE + ".new")
    # A tree that failed half way is taken away at once, not left for later. GNU tar says
    # only "Wrote only N of M bytes" when the disk is full: the free space says why.
    conn.check(
        f"rm -rf -- {new} && mkdir -p -- {new} && "
        f"if ! tar -xzf {shlex.quote(REMOTE_PKG)} -C {new} --no-same-owner; then "
        f"free=$(df -Pk -- {new} | awk 'NR==2 {{print $4}}'); "
        f'if [ "${{free:-0}}" -lt {FULL_KIB} ]; then '
        f'echo "No space left on device: {REMOTE_DIR} has $free KiB free with the tree half '
        f'unpacked"; fi; rm -rf -- {new}; exit 1; fi && '
        f"rm -rf -- {tree} && mv -- {new} {tree} && "
        f"echo {digest} > {shlex.quote(REMOTE_TREE + '/' + UNPACKED_MARK)}",
        f"unpacking the package into {REMOTE_TREE}",
    )
    return True


def package_root(conn: Connection) -> str:
    """The directory holding shell/init.sh: the tree itself or its one top directory."""
    out = conn.check(
        f"find {shlex.quote(REMOTE_TREE)} -maxdepth 3 -path '*/shell/init.sh' | sort | head -n 1",
        "looking for shell/init.sh",
    ).strip()
    if not out:
        raise StepFailed("the package has no shell/init.sh (layout: bin/ conf/ images/ shell/)")
    return os.path.dirname(os.path.dirname(out))


def run_init(conn: Connection, root: str, digest: str, on_line: Progress | None = None) -> bool:
    """`cd shell && sh init.sh`, as the seed documents do; False if it ran for this package."""
    mark = f"{REMOTE_TREE}/{INIT_MARK}"
    if _mark_is(conn, mark, digest):
        return False
    conn.check(
        f"cd {shlex.quote(root + '/shell')} && sh init.sh && echo {digest} > {shlex.quote(mark)}",
        "shell/init.sh",
    )
    return True


def remove_from_host(conn: Connection) -> list[str]:
    """Undo init: the package's shell/clean.sh, which knows what its init.sh did; for a
    package without one, the bin/ files init.sh installed (only where identical to the
    package's, so a runtime there before stays); then REMOTE_DIR. A clean.sh that fails
    keeps REMOTE_DIR, so that running clean again runs it again."""
    problems: list[str] = []
    exists = conn.run(f"[ -d {shlex.quote(REMOTE_TREE)} ]")
    if exists.code == 0:
        try:
            root = package_root(conn)
        except StepFailed:
            root = ""
        if root:
            q = shlex.quote(root)
            has_clean = conn.run(f"[ -f {q}/shell/clean.sh ]").code == 0
            if has_clean:
                result = conn.run(f"cd {q}/shell && sh clean.sh")
                if result.code != 0:
                    return [f"shell/clean.sh: {result.last_line()} (run clean again to retry)"]
                root = ""
        if root:
            q = shlex.quote(root)
            dirs = " ".join(shlex.quote(d) for d in BIN_DIRS)
            result = conn.run(
                f'for f in {q}/bin/*; do [ -f "$f" ] || continue; n=$(basename "$f"); '
                f'for d in {dirs}; do if cmp -s "$f" "$d/$n"; then rm -f "$d/$n"; fi; '
                "done; done"
            )
            if result.code != 0:
                problems.append(f"removing the package's bin/ files: {result.last_line()}")
    result = conn.run(f"rm -rf -- {shlex.quote(REMOTE_DIR)}")
    if result.code != 0:
        problems.append(f"rm -rf {REMOTE_DIR}: {result.last_line()}")
    return problems
