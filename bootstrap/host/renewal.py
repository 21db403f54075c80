"""The certificates of a running master, on the master itself: listed (`bootstrap certs list`)
and renewed (`bootstrap certs --renew`).

Renewal re-signs every leaf and kubeconfig client certificate from the kept CAs, with the
same key and the same names (the certificate on disk is the authority, as for `kubeadm certs
renew`): no private key changes hands, the service account keys and every client's trust
stay as they are, and a master whose settings changed since init keeps what it serves.
The CAs are never written. Everything is copied to a backup directory first; then the
control plane's static pods are restarted the way kubeadm documents (manifests moved out of
the kubelet's directory, a pause, moved back), as they read certificates only at start.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from bootstrap.errors import BadInput, StepFailed
from bootstrap.host import kubeconfig, pki
from bootstrap.host.steps import Host

KUBECONFIGS = (
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "kubelet.conf",
)
CONTROL_PLANE = (
    "kube-apiserver.yaml",
    "kube-controller-manager.yaml",
    "kube-scheduler.yaml",
    "etcd.yaml",
)
# kubelet looks at its manifests directory every 20 s (fileCheckFrequency).
RESTART_WAIT = 20.0
MAX_RESTART_WAIT = 3600.0
# How long the restarted kube-apiserver may take to serve the renewed certificate.
SERVE_TIMEOUT = 300.0
POLL = 1.0
LOCAL_APISERVER = "127.0.0.1"
SECURE_PORT = re.compile(r"--secure-port=(\d+)")
BACKUP_DIR = "backup"
STOPPED_DIR = "manifests-stopped"  # under the state dir, while the pods are stopped


@dataclass(frozen=True)
class Entry:
    """One certificate as `certs list --json` reports it."""

    file: str
    kind: str  # ca, leaf, kubeconfig, kubelet (rotated by the kubelet), unreadable
    subject: str
    not_after: str  # ISO 8601, UTC; "" when unreadable
    note: str = ""


def parse_restart_wait(value: float, flag: str = "--restart-wait") -> float:
    if not 0 <= value <= MAX_RESTART_WAIT:  # nan too
        raise BadInput(f"{flag} {value:g}: must be between 0 and {MAX_RESTART_WAIT:g}")
    return value


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def crt_files(pki_dir: Path) -> list[Path]:
    return sorted(pki_dir.glob("*.crt")) + sorted((pki_dir / "etcd").glob("*.crt"))


def _entry(path: str, data: bytes, kind: str | None = None, note: str = "") -> Entry:
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as e:
        return Entry(path, "unreadable", "", "", f"not a PEM certificate ({e})")
    found = kind or ("ca" if is_ca(cert) else "leaf")
    return Entry(path, found, _cn(cert), _iso(cert.not_valid_after_utc), note)


def _client_file(data: bytes) -> str | None:
    """The client-certificate path of a kubeconfig that names a file (kubelet.conf after the
    kubelet's first rotation), else None."""
    try:
        ref = yaml.safe_load(data)["users"][0]["user"].get("client-certificate")
    except (yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return ref if isinstance(ref, str) else None


def _kubeconfigs(kubernetes_dir: Path) -> Iterator[tuple[Path, bytes]]:
    """The kubeconfigs kubeadm writes that are there, with their bytes."""
    for name in KUBECONFIGS:
        path = kubernetes_dir / name
        try:
            yield path, path.read_bytes()
        except FileNotFoundError:
            continue


def inventory(kubernetes_dir: Path) -> list[Entry]:
    """Every certificate under pki/ and every kubeconfig's client certificate (reads only)."""
    entries = [_entry(str(p), p.read_bytes()) for p in crt_files(kubernetes_dir / "pki")]
    for path, data in _kubeconfigs(kubernetes_dir):
        found = kubeconfig.embedded(data)
        if found is not None:
            entries.append(_entry(str(path), found.cert, "kubeconfig"))
            continue
        ref = _client_file(data)
        if ref is None:
            entries.append(Entry(str(path), "unreadable", "", "", "no client certificate"))
            continue
        try:
            cert_data = Path(ref).read_bytes()
        except OSError as e:
            entries.append(Entry(str(path), "unreadable", "", "", f"{ref}: {e.strerror}"))
            continue
        entries.append(_entry(f"{path} ({ref})", cert_data, "kubelet", "the kubelet rotates it"))
    return entries


def inventory_json(kubernetes_dir: Path) -> str:
    return json.dumps({"certs": [asdict(e) for e in inventory(kubernetes_dir)]})


def parse_inventory(text: str) -> list[Entry]:
    """`certs list --json` output back into entries; ValueError if it is not that."""
    line = next((x for x in reversed(text.splitlines()) if x.startswith("{")), None)
    if line is None:
        raise ValueError("no JSON line in its output")
    try:
        data: Any = json.loads(line)
        return [Entry(**item) for item in data["certs"]]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"not a certificate list ({e})") from None


# ---------------------------------------------------------------- renewal plan


@dataclass
class RenewPlan:
    writes: list[pki.FileWrite] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    old_admin: bytes | None = None


def _ca_of(cert: x509.Certificate, cas: dict[str, pki.CertAndKey]) -> pki.CertAndKey | None:
    return next((ca for ca in cas.values() if pki.signed_by(cert, ca.cert)), None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plan_renew(kubernetes_dir: Path, years: int, now: dt.datetime) -> RenewPlan:
    """What renewal writes: every leaf's .crt (its key kept) and every kubeconfig with an
    embedded client certificate, re-signed from the CA that signed it. A file that cannot be
    renewed (no key, no known CA) stops the plan: half a renewal is worse than none."""
    pki_dir = kubernetes_dir / "pki"
    planner = pki.Pki(pki_dir, years, now)
    planner.ensure_cas(create=False)
    plan = RenewPlan(warnings=pki.short_cas(pki_dir, years, now))
    cas = planner.cas
    for path in crt_files(pki_dir):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError as e:
            raise StepFailed(f"{path}: not a PEM certificate ({e}); nothing renewed") from None
        if is_ca(cert):
            continue
        key_path = path.with_suffix(".key")
        try:
            pki.load_pair(path.read_bytes(), key_path.read_bytes())
        except (OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) else str(e)
            raise StepFailed(f"{path}: its key {key_path}: {why}; nothing renewed") from None
        ca = _ca_of(cert, cas)
        if ca is None:
            raise StepFailed(f"{path}: not signed by a CA in {pki_dir}; nothing renewed")
        new = pki.reissue(cert, ca, years, now)
        why = f"renewed {_cn(cert)} until {new.not_valid_after_utc:%Y-%m-%d}, same key"
        plan.writes.append(pki.FileWrite(path, pki.cert_pem(new), 0o644, why))
    for path, data in _kubeconfigs(kubernetes_dir):
        found = kubeconfig.embedded(data)
        if found is None:
            continue  # a kubelet.conf naming the file the kubelet rotates itself
        try:
            pair = pki.load_pair(found.cert, found.key)
        except ValueError as e:
            raise StepFailed(f"{path}: {e}; nothing renewed") from None
        ca = _ca_of(pair.cert, {"ca": cas["ca"]})
        if ca is None:
            raise StepFailed(f"{path}: not signed by {pki_dir}/ca.crt; nothing renewed")
        new = pki.reissue(pair.cert, ca, years, now)
        doc = yaml.safe_load(data)
        doc["users"][0]["user"]["client-certificate-data"] = _b64(pki.cert_pem(new))
        text = yaml.safe_dump(doc, sort_keys=False).encode()
        until = f"{new.not_valid_after_utc:%Y-%m-%d}"
        why = f"renewed client certificate of {_cn(pair.cert)} until {until}"
        plan.writes.append(pki.FileWrite(path, text, 0o600, why, secret=True))
        if path.name == "admin.conf":
            plan.old_admin = data
    return plan


# ---------------------------------------------------------------- the flow on this host


def _stamp(now: dt.datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def backup(host: Host, now: dt.datetime) -> Path:
    """pki/ and the kubeconfigs copied (modes kept) to a new directory, 0700."""
    kdir = host.paths.kubernetes_dir
    dest = host.paths.state_dir / BACKUP_DIR / f"certs-{_stamp(now)}"
    if host.fx.dry_run:
        host.fx.say(f"[dry-run] would copy {kdir}/pki and the kubeconfigs to {dest}")
        return dest
    if dest.exists():
        raise StepFailed(f"{dest} exists already: run the command again in a second")
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.parent.chmod(0o700)
    shutil.copytree(kdir / "pki", dest / "pki")
    dest.chmod(0o700)
    for name in KUBECONFIGS:
        if (kdir / name).exists():
            shutil.copy2(kdir / name, dest / name)
    host.fx.say(f"backup of {kdir}/pki and the kubeconfigs: {dest}")
    return dest


def _move(host: Host, source: Path, dest: Path, why: str) -> None:
    def move() -> None:
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.move(source, dest)

    host.fx.call(f"moved {source} to {dest}: {why}", f"move {source} to {dest}: {why}", move)


def recover_manifests(host: Host) -> None:
    """Manifests an interrupted renewal left stopped go back first."""
    stopped = host.paths.state_dir / STOPPED_DIR
    manifests = host.paths.kubernetes_dir / "manifests"
    for name in CONTROL_PLANE:
        held = stopped / name
        if held.exists() and not (manifests / name).exists():
            _move(host, held, manifests / name, "left stopped by an interrupted renewal")


def restart_control_plane(host: Host, wait: float) -> list[str]:
    """kubeadm's documented restart of the static pods: their manifests out of the kubelet's
    directory, `wait` seconds for the kubelet to stop them, then back; the ones moved."""
    manifests = host.paths.kubernetes_dir / "manifests"
    stopped = host.paths.state_dir / STOPPED_DIR
    names = [n for n in CONTROL_PLANE if (manifests / n).exists()]
    if not names:
        host.fx.say(f"no control plane manifests in {manifests}: nothing to restart")
        return []
    for name in names:
        _move(host, manifests / name, stopped / name, "the kubelet stops the pod")
    if host.fx.dry_run:
        host.fx.say(f"[dry-run] would wait {wait:g} s for the kubelet to stop them")
    else:
        host.fx.say(f"waiting {wait:g} s for the kubelet to stop them")
        time.sleep(wait)
    for name in names:
        _move(host, stopped / name, manifests / name, "the kubelet starts it with the new files")
    if not host.fx.dry_run and stopped.is_dir() and not any(stopped.iterdir()):
        stopped.rmdir()
    return names


def secure_port(manifest: Path) -> int:
    """kube-apiserver's --secure-port from its static pod manifest, else 6443."""
    try:
        found = SECURE_PORT.search(manifest.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        found = None
    return int(found[1]) if found else 6443


def served_certificate(port: int, ca_file: Path, timeout: float = 2.0) -> x509.Certificate | None:
    """The certificate the local kube-apiserver serves, once /readyz (etcd included) answers
    200 over TLS verified against the cluster CA (as the name `kubernetes`, in every
    apiserver certificate); None until then."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    try:
        with (
            socket.create_connection((LOCAL_APISERVER, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname="kubernetes") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: kubernetes\r\nConnection: close\r\n\r\n")
            status = tls.recv(64)
    except (OSError, ssl.SSLError):
        return None
    if der is None or not status.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        return None
    return x509.load_der_x509_certificate(der)


def wait_served(host: Host, timeout: float) -> None:
    """Until the restarted kube-apiserver serves the renewed apiserver.crt: the next master
    is not touched while this one's control plane is still coming back."""
    port = secure_port(host.paths.kubernetes_dir / "manifests" / "kube-apiserver.yaml")
    where = f"{LOCAL_APISERVER}:{port}"
    if host.fx.dry_run:
        host.fx.say(f"[dry-run] would wait up to {timeout:g} s for {where} to serve it")
        return
    wanted = x509.load_pem_x509_certificate((host.paths.pki_dir / "apiserver.crt").read_bytes())
    deadline = time.monotonic() + timeout
    served = None
    while True:
        served = served_certificate(port, host.paths.pki_dir / "ca.crt")
        if served is not None and served.serial_number == wanted.serial_number:
            host.fx.say(f"kube-apiserver at {where} serves the renewed certificate")
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    now = "nothing" if served is None else f"serial {served.serial_number:x}"
    raise StepFailed(
        f"kube-apiserver at {where} did not serve the renewed certificate within {timeout:g} s "
        f"(it serves {now}): see `crictl ps -a` and the kubelet's log; the old files are in "
        f"{host.paths.state_dir / BACKUP_DIR}"
    )


def renew(
    host: Host,
    years: int,
    wait: float,
    serve_timeout: float = 0.0,
    now: dt.datetime | None = None,
) -> None:
    """Back up, re-sign every leaf and kubeconfig, refresh ~/.kube/config, restart the
    control plane and (serve_timeout > 0) wait until kube-apiserver serves the renewed
    certificate. Safe to run again: it renews again from the same CAs."""
    when = now or dt.datetime.now(dt.UTC)
    recover_manifests(host)
    plan = plan_renew(host.paths.kubernetes_dir, years, when)
    for warning in plan.warnings:
        host.fx.say(f"warning: {warning}")
    if not plan.writes:
        host.fx.say(f"no leaf certificates in {host.paths.pki_dir}: nothing to renew")
        return
    backup(host, when)
    for w in plan.writes:
        host.write(w.path, w.data, w.mode, w.why, secret=w.secret)
    host.save()
    kube_config = host.paths.kube_config
    new_admin = next(
        (
            w.data
            for w in plan.writes
            if w.path.name == "admin.conf" and w.path.parent == host.paths.kubernetes_dir
        ),
        None,
    )
    if (
        new_admin is not None
        and kube_config.exists()
        and kube_config.read_bytes() == plan.old_admin
    ):
        host.write(kube_config, new_admin, 0o600, "copy of the renewed admin.conf", secret=True)
        host.save()
    restarted = restart_control_plane(host, wait)
    if "kube-apiserver.yaml" in restarted and serve_timeout > 0:
        wait_served(host, serve_timeout)
