"""The package from host to host, so this machine's uplink carries it about once.

Sent from here once per host, 200 MiB to 10 hosts took 8.5x one host: the uplink is the
limit. Here the hosts that need the package form a chain: this machine streams it into the
first host, and every host writes what arrives (`tee`) while passing it on to the next over
SSH, so all hosts receive at once and every link carries the package once. Each host hashes
the bytes as it writes them (OpenSSL's SHA-256, else `sha256sum`, in the same pipe); a copy
counts only when that digest is the package's and the file has the package's size, and is
then moved to REMOTE_PKG, where `distribute` finds it. A host whose copy is short or wrong
(a hop died, a disk filled) gets it in a second round from the hosts that hold it (one chain
per holder), else from this machine over SFTP as before (`distribute`, after the relay).

Host to host is SSH with a key per link made for the run: ed25519, generated here; the
private half goes 0600 (SFTP, O_EXCL) into RELAY_DIR on the sending host beside a
known_hosts with only the receiver's host key as this machine's own connection saw it
(StrictHostKeyChecking=yes); the public half goes into root's authorized_keys on the
receiver as `restrict,from="SENDER",command="PIPE"` with a marker comment: the key can only
feed that host's pipe, and only from the sender. When the relay ends, failed or not, every
line and file it added is removed; one left by a run that was cut off (a second Ctrl-C, a
lost connection) is swept by the next relay and by `clean`. Nothing of the operator's (its
key, a password, an agent) goes to a host. The hosts need only sh, coreutils and the OpenSSH
client.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bootstrap.cluster import package
from bootstrap.cluster.package import REMOTE_DIR, REMOTE_PKG, Package
from bootstrap.cluster.ssh import TRANSPORT_ERRORS, Connection, Target, describe
from bootstrap.errors import Interrupted, StepFailed

RELAY_DIR = f"{REMOTE_DIR}/relay"
MARK = "lvscare-py-relay:"  # in the comment of every authorized_keys line the relay adds
AUTHORIZED = "~root/.ssh/authorized_keys"
ROUNDS = 2  # a chain, then one round from the hosts that hold it; then SFTP from here
CHUNK = 1 << 18
SSH_OPTIONS = (
    "-F",
    "/dev/null",  # not the host's ssh_config: these options only
    "-T",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "IdentityAgent=none",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "CheckHostIP=no",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "ServerAliveInterval=5",
    "-o",
    "ServerAliveCountMax=3",
    "-o",
    "Compression=no",
    "-o",
    "LogLevel=ERROR",
    # AES-GCM first: with AES instructions it costs a fraction of ChaCha20's CPU.
    "-o",
    "Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-gcm@openssh.com",
)

H = TypeVar("H")


# ------------------------------------------------------------------ planning (pure)


@dataclass(frozen=True)
class Chain(Generic[H]):
    """`source` (None: this machine) feeds hosts[0], which feeds hosts[1], and so on."""

    source: H | None
    hosts: tuple[H, ...]


def plan(holders: Sequence[H], needing: Sequence[H], *, from_here: bool) -> list[Chain[H]]:
    """Who feeds whom in one round: the needing hosts, in order, split into one chain per
    holder (as even as can be), or one chain from this machine when no host holds it and
    `from_here` allows (the first round only: the uplink carries the package once)."""
    if not needing:
        return []
    if not holders:
        return [Chain(None, tuple(needing))] if from_here else []
    count = min(len(holders), len(needing))
    size, extra = divmod(len(needing), count)
    chains, at = [], 0
    for i, source in enumerate(holders[:count]):
        n = size + (1 if i < extra else 0)
        chains.append(Chain(source, tuple(needing[at : at + n])))
        at += n
    return chains


def worth_it(enabled: bool, local_file: bool, holders: int, needing: int) -> bool:
    """Relay when asked and there is someone to relay to: two hosts to fill, or one and a
    host that holds the package already. One host alone goes over SFTP as before; a URL is
    fetched by each host itself."""
    return enabled and local_file and needing >= 1 and (needing >= 2 or holders >= 1)


# ------------------------------------------------------------------ what runs on hosts


def _part(round_: int) -> str:
    return f"{RELAY_DIR}/package-{round_}.lvscare-py-part"


def _digest_file(round_: int) -> str:
    return f"{RELAY_DIR}/package-{round_}.sha256"


def _key(round_: int) -> str:
    return f"{RELAY_DIR}/key-{round_}"


def _known(round_: int) -> str:
    return f"{RELAY_DIR}/known_hosts-{round_}"


def send_command(to: Target, round_: int) -> str:
    """The OpenSSH client on the sending host, with this link's key and known_hosts."""
    argv = ["ssh", *SSH_OPTIONS, "-i", _key(round_), "-o", f"UserKnownHostsFile={_known(round_)}"]
    return shlex.join([*argv, "-p", str(to.port), "-l", "root", "--", to.ip, "relay"])


# OpenSSL's SHA-256 uses the CPU's SHA instructions, coreutils' does not: 0.25 against 0.95
# CPU-seconds for 200 MiB on the lab machine, on every host of the chain.
HASH = (
    "{ if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r; else sha256sum; fi; }"
)


def pipe_command(round_: int, next_hop: str | None) -> str:
    """What a receiving host runs on the stream: write it, hash it, pass it on. SIGPIPE is
    ignored so a next hop that dies cuts only the hops after it, not this host's copy.
    No double quotes: it sits in an authorized_keys command="..." option."""
    part, digest = _part(round_), _digest_file(round_)
    if next_hop is None:
        return f"umask 077 && tee {part} | {HASH} > {digest}"
    fifo = f"{RELAY_DIR}/hash-{round_}.fifo"
    return (
        f"umask 077 && trap '' PIPE && rm -f {fifo} && mkfifo {fifo} && "
        f"{{ {HASH} < {fifo} > {digest} & tee {part} {fifo} | {next_hop}; wait; }}"
    )


def accept_command(round_: int, pkg: Package) -> str:
    """The copy becomes the package only if its stream's sha256 and its size are right."""
    part, digest = shlex.quote(_part(round_)), shlex.quote(_digest_file(round_))
    return (
        f"set -- $(cat {digest} 2>/dev/null) x; n=$(wc -c 2>/dev/null < {part} || echo 0); "
        f'if [ "$1" = {pkg.sha256} ] && [ "$n" -eq {pkg.size} ]; then '
        f"chmod 600 {part} && mv -f {part} {shlex.quote(REMOTE_PKG)} && echo ok; "
        f'else rm -f {part}; echo "sha256 $1, $n bytes"; fi'
    )


def authorize_command(line: str) -> str:
    """Append `line` to root's authorized_keys, noting in RELAY_DIR what `revoke` must undo:
    a file made here, a newline added after a last line that had none."""
    q, d = shlex.quote(line), RELAY_DIR
    return (
        f"umask 077; f={AUTHORIZED}; [ -d ~root/.ssh ] || mkdir -m 700 ~root/.ssh; "
        f'[ -e "$f" ] || {{ : > "$f" && : > {d}/ak-created; }}; '
        f'if [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then echo >> "$f"; : > {d}/ak-newline; fi; '
        f'printf "%s\\n" {q} >> "$f"'
    )


def revoke_command(mark: str) -> str:
    """Take every authorized_keys line with `mark` out (the file replaced whole, its mode
    kept), undo what `authorize_command` noted, and remove RELAY_DIR with keys and parts."""
    d, m = RELAY_DIR, shlex.quote(mark)
    return (
        f'f={AUTHORIZED}; t="$f.lvscare-py-part"; '
        f'if [ -f "$f" ] && grep -q -F -e {m} "$f"; then '
        f'cp -p "$f" "$t" && {{ grep -v -F -e {m} "$f" > "$t"; [ $? -le 1 ]; }} && '
        f'{{ [ ! -f {d}/ak-newline ] || {{ c=$(cat "$t"); printf %s "$c" > "$t"; }}; }} && '
        f'if [ -f {d}/ak-created ] && [ ! -s "$t" ]; then rm -f "$t" "$f"; '
        f'else mv -f "$t" "$f"; fi || {{ rm -f "$t"; bad=1; }}; fi; rm -rf {d}; exit ${{bad:-0}}'
    )


def sweep(conn: Connection) -> str | None:
    """Remove what any relay left on the host (a run cut off); a problem, or None."""
    result = conn.run(revoke_command(MARK))
    return None if result.code == 0 else f"removing relay keys: {result.last_line()}"


# ------------------------------------------------------------------ keys


@dataclass(frozen=True)
class LinkKey:
    private: bytes  # OpenSSH format, for the sender's RELAY_DIR only
    public: str  # "ssh-ed25519 AAAA..."


def new_key() -> LinkKey:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return LinkKey(private, public.decode())


def known_hosts_line(target: Target, conn: Connection) -> str:
    """The receiver's host key as this machine's (checked) connection to it has it."""
    transport = conn.client.get_transport()
    if transport is None:
        raise StepFailed("the SSH connection was lost")
    key = transport.get_remote_server_key()
    return f"{target.known_hosts_name} {key.get_name()} {key.get_base64()}"


# ------------------------------------------------------------------ running it


@dataclass
class Hooks:
    """What the relay tells its caller (the progress lines, the per-host logs)."""

    started: Callable[[Target, Target | None], None] = lambda host, source: None
    sent: Callable[[Sequence[Target], int, int], None] = lambda hosts, done, total: None
    log: Callable[[Target, str], None] = lambda host, line: None


@dataclass
class Outcome:
    """`got`: each host filled by the relay and who fed it (None: this machine);
    `uploaded`: bytes this machine sent; `left`: hosts left to SFTP, and why."""

    got: dict[Target, Target | None] = field(default_factory=dict)
    holders: list[Target] = field(default_factory=list)
    uploaded: int = 0
    left: dict[Target, str] = field(default_factory=dict)


class Relay:
    """One relay over open connections; `run` never fails a host, it only fills some."""

    def __init__(
        self,
        conns: Mapping[Target, Connection],
        pkg: Package,
        hooks: Hooks | None = None,
        stop: threading.Event | None = None,
        parallel: int = 20,
    ) -> None:
        assert pkg.path is not None and pkg.sha256 is not None
        self.conns = dict(conns)
        self.pkg = pkg
        self.hooks = hooks or Hooks()
        self.stop = stop or threading.Event()
        self.parallel = max(1, parallel)
        self.run_mark = f"{MARK}{secrets.token_hex(6)}"
        self.touched: set[Target] = set()
        self.fed_by: dict[Target, Target | None] = {}
        self._lock = threading.Lock()
        self.outcome = Outcome()

    def _each(self, items: Sequence[H], fn: Callable[[H], None]) -> None:
        if not items:
            return
        pool = ThreadPoolExecutor(max_workers=min(self.parallel, len(items)))
        try:
            for future in [pool.submit(fn, item) for item in items]:
                future.result()
        except KeyboardInterrupt:  # a second Ctrl-C: streams stop at their next chunk
            self.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()

    def run(self, hosts: Sequence[Target], sources: Sequence[Target] = ()) -> Outcome:
        """Fill those of `hosts` that lack the package, from hosts of either list that hold
        it (checked by sha256) or from here; the rest is left to `distribute`."""
        out = self.outcome
        try:
            holders, needing = self._probe(hosts, sources)
            everyone = [*hosts, *[s for s in sources if s not in hosts]]
            out.holders = list(holders)
            if not worth_it(True, True, len(holders), len(needing)):
                return out
            if needing and not holders and not self._streams_to(needing[0]):
                self._seed(needing[0])
                needing = [h for h in needing if h not in out.got]
            for round_ in range(1, ROUNDS + 1):
                if not needing or self.stop.is_set():
                    break
                have = [h for h in everyone if h in holders or h in out.got]
                have = [h for h in have if self.conns[h].alive()]
                chains = plan(have, needing, from_here=round_ == 1 and not out.uploaded)
                if not chains:
                    break
                self._round(round_, chains)
                needing = [h for h in needing if h not in out.got and self.conns[h].alive()]
            for host in needing:
                out.left.setdefault(host, "not filled by the relay")
        finally:
            self._clean_up()
        return out

    def _probe(
        self, hosts: Sequence[Target], sources: Sequence[Target]
    ) -> tuple[list[Target], list[Target]]:
        """Holders (the checked package there) and the hosts ready to receive it: stale
        relay leftovers swept, an old package taken away (as `distribute` does), RELAY_DIR
        made, room checked. A host that fails here is left to `distribute`."""
        found: dict[Target, bool] = {}  # True: holds it, False: ready for it

        def one(host: Target) -> None:
            conn = self.conns[host]
            try:
                self.touched.add(host)
                problem = sweep(conn)
                if problem:
                    raise StepFailed(problem)
                have = conn.sha256(REMOTE_PKG)
                if have == self.pkg.sha256:
                    with self._lock:
                        found[host] = True
                    return
                if host not in hosts:
                    return
                if have is not None:
                    conn.check(f"rm -f -- {shlex.quote(REMOTE_PKG)}", f"removing {REMOTE_PKG}")
                conn.require_space(REMOTE_DIR, self.pkg.size, "the package")
                conn.check(f"mkdir -p -m 700 -- {shlex.quote(RELAY_DIR)}", "mkdir")
                with self._lock:
                    found[host] = False
            except (StepFailed, *TRANSPORT_ERRORS) as e:
                if host in hosts:
                    self._leave(host, describe(e))

        everyone = [*hosts, *[s for s in sources if s not in hosts]]
        self._each(everyone, one)
        holders = [h for h in everyone if found.get(h) is True]
        return holders, [h for h in hosts if found.get(h) is False]

    def _streams_to(self, host: Target) -> bool:
        """Whether this machine can stream into the host's pipe: not where sudo reads a
        password from the same stdin (a sudo that asks for none would pass it on)."""
        auth = self.conns[host].auth
        return auth.root or auth.password is None

    def _seed(self, host: Target) -> None:
        """The first copy over SFTP (`distribute`), for the chains to start from."""

        def sent(done: int, total: int) -> None:
            if self.stop.is_set():
                raise Interrupted("upload stopped, its partial file removed")
            self.hooks.sent([host], done, total)

        self.hooks.started(host, None)
        try:
            package.distribute(self.conns[host], self.pkg, sent)
        except (StepFailed, Interrupted, *TRANSPORT_ERRORS) as e:
            self._leave(host, describe(e))
            return
        with self._lock:
            self.outcome.uploaded += self.pkg.size
            self.outcome.got[host] = None

    def _leave(self, host: Target, why: str) -> None:
        with self._lock:
            self.outcome.left[host] = why
        self.hooks.log(host, f"relay: {why}; it gets the package over SFTP")

    def _round(self, round_: int, chains: list[Chain[Target]]) -> None:
        links: list[tuple[Target, Target]] = []  # sender, receiver (not from this machine)
        for chain in chains:
            for i, host in enumerate(chain.hosts):
                self.fed_by[host] = chain.hosts[i - 1] if i else chain.source
                sender = self.fed_by[host]
                if sender is not None:
                    links.append((sender, host))
        broken: set[Target] = set()

        def setup(link: tuple[Target, Target]) -> None:
            sender, receiver = link
            try:
                self._link(round_, sender, receiver, chains)
            except (StepFailed, *TRANSPORT_ERRORS) as e:
                self.hooks.log(receiver, f"relay: link from {sender}: {describe(e)}")
                with self._lock:
                    broken.add(receiver)

        self._each(links, setup)
        # A link that could not be made: the chain is cut there, as if the hop had died.
        self._each(chains, lambda chain: self._feed(round_, chain, broken))
        self._each([h for c in chains for h in c.hosts], lambda h: self._accept(round_, h))

    def _next_hop(self, round_: int, host: Target, chains: list[Chain[Target]]) -> str | None:
        for chain in chains:
            if host in chain.hosts:
                i = chain.hosts.index(host)
                if i + 1 < len(chain.hosts):
                    return send_command(chain.hosts[i + 1], round_)
        return None

    def _link(
        self, round_: int, sender: Target, receiver: Target, chains: list[Chain[Target]]
    ) -> None:
        """The sender gets the link's key and the receiver's host key; the receiver lets
        that key, from the sender's addresses only, feed its pipe."""
        send, recv = self.conns[sender], self.conns[receiver]
        self.touched.update((sender, receiver))
        key = new_key()
        known = known_hosts_line(receiver, recv)
        d = shlex.quote(RELAY_DIR)
        out = send.check(
            f"umask 077; mkdir -p -m 700 -- {d} && "
            f"printf '%s\\n' {shlex.quote(known)} > {shlex.quote(_known(round_))} && "
            f"{{ ip -o route get {shlex.quote(receiver.ip)} 2>/dev/null || true; }}",
            "preparing the relay's link",
        )
        words = out.split()
        addresses = [sender.ip]
        if "src" in words and words.index("src") + 1 < len(words):
            addresses.insert(0, words[words.index("src") + 1])
        sources = ",".join(dict.fromkeys(addresses))
        send.write_file(_key(round_), key.private, 0o600)
        pipe = pipe_command(round_, self._next_hop(round_, receiver, chains))
        line = f'restrict,from="{sources}",command="{pipe}" {key.public} {self.run_mark}:{round_}'
        recv.check(authorize_command(line), "authorizing the relay's key")

    def _feed(self, round_: int, chain: Chain[Target], broken: set[Target]) -> None:
        """Start the chain at its source and wait until every hop of it has ended."""
        head = chain.hosts[0]
        for host in chain.hosts:
            self.hooks.started(host, self.fed_by[host])
        if head in broken:
            return
        if chain.source is None:
            self._stream_from_here(round_, chain)
            return
        send = self.conns[chain.source]
        try:
            result = send.run(f"{send_command(head, round_)} < {shlex.quote(REMOTE_PKG)}")
            if result.code != 0:
                self.hooks.log(head, f"relay from {chain.source}: {result.last_line()}")
        except (StepFailed, *TRANSPORT_ERRORS) as e:
            self.hooks.log(head, f"relay from {chain.source}: {describe(e)}")

    def _stream_from_here(self, round_: int, chain: Chain[Target]) -> None:
        """The package into the head's pipe over an exec channel (its stdin), once."""
        assert self.pkg.path is not None
        head = chain.hosts[0]
        conn = self.conns[head]
        nxt = self._next_hop(round_, head, chains=[chain])
        line, prefix = conn.wrap(pipe_command(round_, nxt), keep_stdin=True)
        try:
            chan = conn.open_command(line, prefix)
            try:
                done = 0
                with open(self.pkg.path, "rb") as f:
                    while chunk := f.read(CHUNK):
                        if self.stop.is_set():
                            raise Interrupted("upload stopped")
                        chan.sendall(chunk)
                        done += len(chunk)
                        with self._lock:
                            self.outcome.uploaded += len(chunk)
                        self.hooks.sent(chain.hosts, done, self.pkg.size)
                chan.shutdown_write()
                output = b""
                while data := chan.recv(65536):
                    output += data
                if chan.recv_exit_status() != 0 and output.strip():
                    self.hooks.log(head, f"relay: {output.decode(errors='replace').strip()}")
            finally:
                chan.close()
        except (StepFailed, Interrupted, *TRANSPORT_ERRORS) as e:
            self.hooks.log(head, f"relay from this machine: {describe(e)}")

    def _accept(self, round_: int, host: Target) -> None:
        try:
            out = self.conns[host].check(accept_command(round_, self.pkg), "checking the copy")
        except (StepFailed, *TRANSPORT_ERRORS) as e:
            self.hooks.log(host, f"relay: checking the copy: {describe(e)}")
            return
        if out.strip() == "ok":
            with self._lock:
                self.outcome.got[host] = self.fed_by[host]
                self.outcome.left.pop(host, None)
            self.hooks.log(host, f"relay: package received and checked (round {round_})")
        else:
            self.hooks.log(host, f"relay: copy refused ({out.strip()})")

    def _clean_up(self) -> None:
        """Every line and file of this run off every host it touched, failed or not."""

        def one(host: Target) -> None:
            with contextlib.suppress(StepFailed, *TRANSPORT_ERRORS):
                result = self.conns[host].run(revoke_command(self.run_mark))
                if result.code != 0:
                    self.hooks.log(host, f"relay: removing its keys: {result.last_line()}")

        self._each(sorted(self.touched), one)
