"""One SSH connection to one host (paramiko): host keys, auth, quoted commands, SFTP.

Every remote command is built from an argv with `shlex.quote`, run through `sh -c`, and
wrapped in `sudo` when the user is not root. A password (for the login or for sudo) goes to
paramiko or to sudo's stdin, never onto a command line, so it never shows in `ps` or a log.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shlex
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import paramiko

from bootstrap.defaults import PASSPHRASE_ENV, SSH_PORT
from bootstrap.errors import BadInput, StepFailed
from bootstrap.inputs import parse_host
from bootstrap.join import redact
from lvscare.address import format_hostport

Progress = Callable[[int, int], None]


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
            self._sftp.close()
        self.client.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ commands

    def wrap(self, script: str, as_root: bool = True) -> tuple[str, bytes]:
        """The command line for `script` as root, and what goes to its stdin."""
        # The script's own stdin is empty: a password meant for sudo never reaches it.
        script = f"exec </dev/null\n{script}"
        if self.auth.root or not as_root:
            return shell_line(["sh", "-c", script]), b""
        if self.auth.password is not None:
            # -S: the password from stdin, -k: always (no cached credential leaves it unread),
            # -p '': no prompt text mixed into the output.
            line = shell_line(["sudo", "-k", "-S", "-p", "", "--", "sh", "-c", script])
            return line, (self.auth.password + "\n").encode()
        return shell_line(["sudo", "-n", "--", "sh", "-c", script]), b""

    def run(
        self, script: str, *, on_line: Callable[[str], None] | None = None, as_root: bool = True
    ) -> Result:
        """Run a shell script as root (sudo if needed); stdout and stderr together."""
        line, stdin = self.wrap(script, as_root)
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise StepFailed("the SSH connection was lost")
        chan = transport.open_session()
        try:
            chan.set_combine_stderr(True)
            chan.exec_command(line)
            if stdin:
                chan.sendall(stdin)
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
            raise StepFailed(redact(f"{what}: {result.last_line()}"))
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
        """Upload to a temporary name, then move into place as root: never half a file."""
        if self.auth.root:
            tmp = f"{dest}.lvscare-py-part"
            self.check(f"mkdir -p -- {shlex.quote(os.path.dirname(dest))}", "mkdir")
            self.sftp().putfo(source, tmp, file_size=size, callback=progress, confirm=True)
            self.check(
                f"chmod {mode:o} -- {shlex.quote(tmp)} && mv -f -- {shlex.quote(tmp)} "
                f"{shlex.quote(dest)}",
                f"moving {dest} into place",
            )
            return
        staging = self._staging()
        tmp = f"{staging}/upload"
        self.sftp().putfo(source, tmp, file_size=size, callback=progress, confirm=True)
        self.check(
            f"install -D -m {mode:o} -- {shlex.quote(tmp)} {shlex.quote(dest)}; rc=$?; "
            f"rm -rf -- {shlex.quote(staging)}; exit $rc",
            f"installing {dest}",
        )

    def write_file(self, dest: str, data: bytes, mode: int) -> None:
        self.put(io.BytesIO(data), len(data), dest, mode)
