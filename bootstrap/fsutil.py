"""Writing files so that a crash leaves the old file or the new one, never a mix.

The normal way is a temporary file in the same directory, fsync, rename over the target,
fsync the directory. A file that is a mount point (Docker and kubelet bind-mount
/etc/hosts into containers) cannot be renamed over: the kernel answers EBUSY (or EXDEV,
EPERM). Then the file is rewritten in place, with a backup copy beside it that lives
until the new content is on disk; `recover_in_place` puts that backup back after a crash.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path

BACKUP_SUFFIX = ".lvscare-py.bak"
TEMP_PREFIX = ".lvscare-py."
# What rename(2) answers when the target cannot be replaced this way.
IN_PLACE_ERRNOS = frozenset({errno.EBUSY, errno.EXDEV, errno.EPERM})


def file_sha256(path: Path) -> str:
    """A file's sha256, read in 1 MiB chunks (packages are large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def resolve(path: Path) -> Path:
    """Where the bytes live: /etc/hosts may be a symlink, which must stay one."""
    return Path(os.path.realpath(path))


def backup_paths(path: Path) -> tuple[Path, Path]:
    """Where an in-place rewrite keeps the old content: beside the file, else in /tmp."""
    return (
        path.with_name(path.name + BACKUP_SUFFIX),
        Path(tempfile.gettempdir()) / (path.name + BACKUP_SUFFIX),
    )


def _write_synced(path: Path, data: bytes) -> None:
    """A new file, 0600 from its creation whatever the umask: it may be a key's copy."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace `path` with `data`; keep its mode and owner unless `mode` is given.

    New files get `mode` (default 0644). Parent directories are created (0755).
    """
    target = resolve(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    new_mode = mode if mode is not None else (stat.S_IMODE(st.st_mode) if st else 0o644)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX + target.name + ".", dir=target.parent)
    except OSError:
        if st is None:
            raise
        write_in_place(target, data, new_mode)
        return
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), new_mode)
            owner_kept = True
            if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
                except PermissionError:
                    owner_kept = False  # not root: only the file's own inode keeps its owner
            os.fsync(f.fileno())
        if not owner_kept:
            assert st is not None
            tmp.unlink()
            write_in_place(target, data, new_mode)
            return
        try:
            os.replace(tmp, target)
        except OSError as e:
            if e.errno not in IN_PLACE_ERRNOS or st is None:
                raise
            tmp.unlink()
            write_in_place(target, data, new_mode)
            return
        fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_in_place(target: Path, data: bytes, mode: int) -> None:
    """Rewrite an existing file through its own inode (bind mounts, read-only directories).

    Order: backup written (0600) and synced, file overwritten, truncated, synced, backup
    removed. A crash in between leaves the backup for `recover_in_place`.
    """
    old = target.read_bytes()
    beside, elsewhere = backup_paths(target)
    try:
        _write_synced(beside, old)
        backup = beside
    except OSError:
        _write_synced(elsewhere, old)
        backup = elsewhere
    current = stat.S_IMODE(os.stat(target).st_mode)
    if current & ~mode:  # narrowed first: the new bytes never sit under a wider mode
        with contextlib.suppress(OSError):
            os.chmod(target, current & mode)
    _overwrite(target, data)
    if stat.S_IMODE(os.stat(target).st_mode) != mode:
        with contextlib.suppress(OSError):
            os.chmod(target, mode)
    backup.unlink()


def _overwrite(target: Path, data: bytes) -> None:
    with open(target, "r+b") as f:
        f.write(data)
        f.truncate(len(data))
        f.flush()
        os.fsync(f.fileno())


def recover_in_place(path: Path) -> bool:
    """Put back the content an interrupted in-place rewrite saved; True if it did."""
    target = resolve(path)
    for backup in backup_paths(target):
        old = read_bytes(backup)
        if old is None:
            continue
        current = read_bytes(target)
        if current is None:
            write_atomic(target, old)
        elif current != old:
            _overwrite(target, old)
        backup.unlink()
        return True
    return False


def remove(path: Path) -> bool:
    """Remove a file; True if it was there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    with contextlib.suppress(OSError):
        fsync_dir(path.parent)
    return True
