"""One SSH connection to one host (paramiko): host keys, auth, quoted commands, SFTP.

Every remote command is built from an argv with `shlex.quote`, run through `sh -c`, and
wrapped in `sudo` when the user is not root. A password (for the login or for sudo) goes to
paramiko or to sudo's stdin, never onto a command line, so it never shows in `ps` or a log.
Uploads go into files the server creates 0600, so a key is never readable to others there,
under a temporary name moved into place only once whole: a cut connection or a full disk
leaves no file that could be taken for the real one (and the temporary one is removed when
the connection still allows it, else by the next upload).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import shlex
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import paramiko
from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_EXCL, SFTP_FLAG_WRITE

from bootstrap.cluster.progress import human_bytes
from bootstrap.defaults import PASSPHRASE_ENV, SSH_PORT
from bootstrap.errors import BadInput, StepFailed
from bootstrap.inputs import parse_host
from bootstrap.join import redact
from lvscare.address import format_hostport

Progress = Callable[[int, int], None]
# What a dropped or broken connection raises (besides our StepFailed).
TRANSPORT_ERRORS = (paramiko.SSHException, OSError, EOFError)
CHUNK = 32768
# Where a tool prints why it failed before a summary line ("tar: Exiting with failure
# status"): the line with one of these is the reason.
CAUSES = ("No space left on device", "Disk quota exceeded", "Read-only file system")


class ConnectionLost(StepFailed):
    """The connection ended under a command or a transfer: the host went down (a reboot,
    a crash) or the network dropped it. Nothing tells how far the remote side got."""

    def __init__(self, detail: str = "") -> None:
        why = f" ({detail})" if detail else ""
        super().__init__(
            f"the SSH connection was lost{why}: the host went down or the network failed"
        )


def describe(e: BaseException) -> str:
    """An exception as a few words: its text, else its kind (EOFError has no text)."""
    return str(e).strip() or type(e).__name__


@dataclass(frozen=True, order=True)
class Target:
    """A host as given on the command line: `IP` or `IP:PORT` (`[v6]:PORT`)."""

    ip: str
    port: int = SSH_PORT

    def __str__(self) -> str:
        """As the user wrote it and the cluster file keeps it: the port only if not 22."""
        return self.ip if self.port == SSH_PORT else format_hostport(self.ip, self.port)

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH names this host in known_hosts: `[ip]:port` unless the port is 22."""
        return self.ip if self.port == SSH_PORT else f"[{self.ip}]:{self.port}"


def parse_target(value: str, flag: str) -> Target:
    given = parse_host(value, flag, SSH_PORT)
    return Target(given.host, given.port)


@dataclass(frozen=True)
class Auth:
    """Who we log in as. `password` also answers sudo; it is never stored or logged."""

    user: str
    password: str | None = None
    key_path: Path | None = None
    key_passphrase: str | None = None

    @property
    def root(self) -> bool:
        return self.user == "root"

    def load_key(self) -> paramiko.PKey | None:
        if self.key_path is None:
            return None
        try:
            phrase = self.key_passphrase.encode() if self.key_passphrase is not None else None
            return paramiko.PKey.from_path(self.key_path, phrase)  # type: ignore[arg-type]
        except (paramiko.PasswordRequiredException, TypeError):
            # paramiko, or cryptography under it (TypeError), when no passphrase was given
            if self.key_passphrase:
                raise BadInput(f"--pk {self.key_path}: wrong passphrase") from None
            raise BadInput(
                f"--pk {self.key_path}: the key has a passphrase: give --pk-passwd "
                f"or {PASSPHRASE_ENV}"
            ) from None
        except (OSError, paramiko.SSHException, ValueError) as e:
            hint = "; is the passphrase right?" if self.key_passphrase else ""
            raise BadInput(f"--pk {self.key_path}: cannot read the key ({e}{hint})") from None


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class KnownHosts(paramiko.MissingHostKeyPolicy):
    """OpenSSH's known_hosts rules: a known key must match (paramiko checks that), an
    unknown one is refused, or with `accept_new` appended to the file (`accept-new`)."""

    _lock = threading.Lock()

    def __init__(self, path: Path, accept_new: bool) -> None:
        self.path = path
        self.accept_new = accept_new

    def load_into(self, client: paramiko.SSHClient) -> None:
        if self.path.exists():
            try:
                client.load_host_keys(str(self.path))
            except (OSError, paramiko.SSHException) as e:
                raise BadInput(f"{self.path}: cannot read known hosts ({e})") from None
        client.set_missing_host_key_policy(self)

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if not self.accept_new:
            raise StepFailed(
                f"unknown host key ({key.get_name()} {fingerprint(key)}): check it and add it "
                f"to {self.path}, or pass --accept-new-host-keys"
            )
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="ascii") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        client.get_host_keys().add(hostname, key.get_name(), key)


@dataclass(frozen=True)
class Result:
    code: int
    output: str

    def last_line(self) -> str:
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {self.code}"

    def reason(self) -> str:
        """Why it failed: the line naming a full or read-only disk, else the last line."""
        for line in self.output.splitlines():
            if any(cause in line for cause in CAUSES):
                return line.strip()
        return self.last_line()


def shell_line(argv: Sequence[str]) -> str:
    return shlex.join(argv)


class Connection:
    """An open SSH session to one host, for commands and file transfers."""

    def __init__(self, target: Target, auth: Auth, known: KnownHosts, timeout: float) -> None:
        self.target = target
        self.auth = auth
        self.timeout = timeout
        self.client = paramiko.SSHClient()
        known.load_into(self.client)
        try:
            self.client.connect(
                target.ip,
                port=target.port,
                username=auth.user,
                password=auth.password,
                pkey=auth.load_key(),
                allow_agent=False,
                look_for_keys=False,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
            )
        except paramiko.BadHostKeyException as e:
            self.client.close()
            raise StepFailed(
                f"host key changed ({e.key.get_name()} {fingerprint(e.key)}, known "
                f"{fingerprint(e.expected_key)}): refused; if the host was reinstalled, "
                f"remove its line from {known.path}"
            ) from None
        except paramiko.AuthenticationException:
            self.client.close()
            raise StepFailed(f"authentication failed for user {auth.user}") from None
        except StepFailed:
            self.client.close()
            raise
        except (OSError, paramiko.SSHException, EOFError) as e:
            self.client.close()
            raise StepFailed(f"cannot connect: {e or type(e).__name__}") from None
        transport = self.client.get_transport()
        assert transport is not None
        transport.set_keepalive(15)
        self._sftp: paramiko.SFTPClient | None = None

    def close(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(*TRANSPORT_ERRORS):
                self._sftp.close()
        self.client.close()

    def alive(self) -> bool:
        """Whether the connection still carries a command. Asked, not read from the
        transport's state: that lags a cut connection by as long as it takes paramiko's
        reader to see the end (a dead session channel can come first)."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            return False
        try:
            chan = transport.open_session(timeout=self.timeout)
            try:
                chan.exec_command("true")
                return chan.status_event.wait(self.timeout) and chan.exit_status == 0
            finally:
                chan.close()
        except TRANSPORT_ERRORS:
            return False

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ commands

    def wrap(
        self, script: str, as_root: bool = True, keep_stdin: bool = False
    ) -> tuple[str, bytes]:
        """The command line for `script` as root, and what goes to its stdin.

        `keep_stdin`: the script reads the channel's stdin (the relay streams the package
        into it); refused where sudo reads a password from that same stdin."""
        if keep_stdin and as_root and not self.auth.root and self.auth.password is not None:
            raise StepFailed("no stdin for a command under sudo with a password")
        # The script's own stdin is empty: a password meant for sudo never reaches it.
        script = script if keep_stdin else f"exec </dev/null\n{script}"
        if self.auth.root or not as_root:
            return shell_line(["sh", "-c", script]), b""
        if self.auth.password is not None:
            # -S: the password from stdin, -k: always (no cached credential leaves it unread),
            # -p '': no prompt text mixed into the output.
            line = shell_line(["sudo", "-k", "-S", "-p", "", "--", "sh", "-c", script])
            return line, (self.auth.password + "\n").encode()
        return shell_line(["sudo", "-n", "--", "sh", "-c", script]), b""

    def open_command(self, line: str, stdin: bytes) -> paramiko.Channel:
        """`line` (as `wrap` made it) running on a channel of its own, stdout and stderr
        together, `stdin` (sudo's password, if any) already sent; the caller closes it."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise StepFailed("the SSH connection was lost")
        chan = transport.open_session()
        try:
            chan.set_combine_stderr(True)
            chan.exec_command(line)
            if stdin:
                chan.sendall(stdin)
        except BaseException:
            chan.close()
            raise
        return chan

    def run(
        self, script: str, *, on_line: Callable[[str], None] | None = None, as_root: bool = True
    ) -> Result:
        """Run a shell script as root (sudo if needed); stdout and stderr together."""
        line, stdin = self.wrap(script, as_root)
        chan = self.open_command(line, stdin)
        try:
            chan.shutdown_write()
            out = bytearray()
            pending = b""
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                out += data
                if on_line is not None:
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        on_line(raw.decode(errors="replace"))
            code = chan.recv_exit_status()
        finally:
            chan.close()
        if code == -1 and not self.alive():  # no exit status: the connection went
            raise ConnectionLost("while a command ran")
        return Result(code, out.decode(errors="replace"))

    def check(
        self,
        script: str,
        what: str,
        *,
        on_line: Callable[[str], None] | None = None,
        as_root: bool = True,
    ) -> str:
        result = self.run(script, on_line=on_line, as_root=as_root)
        if result.code != 0:
            raise StepFailed(redact(f"{what}: {result.reason()}"))
        return result.output

    def run_argv(self, argv: Sequence[str], what: str) -> str:
        return self.check(shell_line(argv), what)

    # ------------------------------------------------------------ files

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    def sha256(self, path: str) -> str | None:
        """The sha256 of a remote file, None if it is not there."""
        q = shlex.quote(path)
        result = self.run(f"if [ -f {q} ]; then sha256sum -- {q}; fi")
        if result.code != 0:
            raise StepFailed(f"sha256sum {path}: {result.last_line()}")
        words = result.output.split()
        return words[0] if words else None

    def free_bytes(self, directory: str) -> int:
        """Free space where files in `directory` go (made if missing), for the root user."""
        q = shlex.quote(directory)
        out = self.check(f"mkdir -p -- {q} && df -Pk -- {q}", f"df {directory}")
        try:
            return int(out.strip().splitlines()[-1].split()[3]) * 1024
        except (IndexError, ValueError):
            raise StepFailed(f"df {directory}: cannot read its output {out!r}") from None

    def require_space(self, directory: str, size: int, what: str) -> None:
        """Refuse before writing a byte when `size` cannot fit: a clear line, not an SFTP
        "Failure" half way through with a partial file left."""
        free = self.free_bytes(directory)
        if free < size:
            raise StepFailed(
                f"no space left on device for {what}: {directory} has {human_bytes(free)} "
                f"free, {human_bytes(size)} needed"
            )

    def read_file(self, path: str) -> bytes:
        """A root-owned file's bytes (keys included), through `cat` as root, base64-safe."""
        out = self.check(f"base64 < {shlex.quote(path)}", f"reading {path}")
        return base64.b64decode(out)

    def _staging(self) -> str:
        """A directory the login user can write to over SFTP (root moves files on)."""
        return self.check("mktemp -d", "mktemp", as_root=False).strip().splitlines()[-1]

    def put(
        self,
        source: BinaryIO,
        size: int,
        dest: str,
        mode: int,
        progress: Progress | None = None,
    ) -> None:
        """Upload to a temporary name, then move into place as root: never half a file.

        A transfer that fails (or that `progress` stops by raising) takes its temporary
        file away when the connection still allows; a lost connection leaves it, under a
        name nothing reads, for the next upload to replace."""
        if self.auth.root:
            tmp = f"{dest}.lvscare-py-part"
            self.check(
                f"mkdir -p -- {shlex.quote(os.path.dirname(dest))} && rm -f -- {shlex.quote(tmp)}",
                "mkdir",
            )
            with self._removed_on_failure(tmp, os.path.dirname(dest), size):
                self._send(source, size, tmp, progress)
            self.check(
                f"chmod {mode:o} -- {shlex.quote(tmp)} && mv -f -- {shlex.quote(tmp)} "
                f"{shlex.quote(dest)}",
                f"moving {dest} into place",
            )
            return
        staging = self._staging()
        tmp = f"{staging}/upload"
        with self._removed_on_failure(staging, staging, size):
            self._send(source, size, tmp, progress)
        # install(1) creates its file 0600 and sets `mode` after the copy; it writes in
        # place, so into a temporary name that is moved over `dest` once whole.
        part = shlex.quote(f"{dest}.lvscare-py-part")
        self.check(
            f"install -D -m {mode:o} -- {shlex.quote(tmp)} {part} && mv -f -- {part} "
            f"{shlex.quote(dest)}; rc=$?; rm -rf -- {shlex.quote(staging)}; "
            f"[ $rc = 0 ] || rm -f -- {part}; exit $rc",
            f"installing {dest}",
        )

    @contextlib.contextmanager
    def _removed_on_failure(self, path: str, directory: str, size: int) -> Iterator[None]:
        """`path` removed if the block fails; a refusal on a full disk said as such
        (sftp-server answers only "Failure")."""
        try:
            yield
        except Exception as e:
            if not self.alive():
                raise ConnectionLost(describe(e)) from None
            full = isinstance(e, OSError) and self._full(directory, size)
            with contextlib.suppress(StepFailed, *TRANSPORT_ERRORS):
                self.run(f"rm -rf -- {shlex.quote(path)}")
            if full:
                raise StepFailed(f"no space left on device writing {path}") from None
            if isinstance(e, OSError):
                raise StepFailed(f"SFTP write to {path}: {describe(e)}") from None
            raise

    def _full(self, directory: str, size: int) -> bool:
        """Whether `directory` has less room than `size` (asked after a failed write)."""
        try:
            return self.free_bytes(directory) < size
        except (StepFailed, *TRANSPORT_ERRORS):
            return False

    def _send(self, source: BinaryIO, size: int, path: str, progress: Progress | None) -> None:
        """Into a new file the server creates 0600 (O_EXCL, the mode in the open request):
        paramiko's open sends no mode, so the server's default (0666 less its umask) would
        let any user there open the file, and keep it open, before a chmod."""
        sftp = self.sftp()
        attrs = paramiko.SFTPAttributes()
        attrs.st_mode = 0o600
        flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
        # paramiko's own open() has no mode argument; this is its request with one.
        kind, msg = sftp._request(CMD_OPEN, path, flags, attrs)  # type: ignore[attr-defined]
        if kind != CMD_HANDLE or msg is None:
            raise StepFailed(f"SFTP open {path}: no handle")
        sent = 0
        with paramiko.SFTPFile(sftp, msg.get_binary(), "wb") as f:
            f.set_pipelined(True)
            while chunk := source.read(CHUNK):
                f.write(chunk)
                sent += len(chunk)
                if progress is not None:
                    progress(sent, size)
        if sftp.stat(path).st_size != sent:
            raise StepFailed(f"{path}: the upload's size does not match ({sent} bytes sent)")

    def write_file(self, dest: str, data: bytes, mode: int) -> None:
        self.put(io.BytesIO(data), len(data), dest, mode)
