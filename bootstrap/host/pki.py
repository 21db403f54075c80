"""The kubeadm PKI under /etc/kubernetes/pki, valid for --years instead of kubeadm's one.

kubeadm uses certificates it finds on disk when they are signed by the CA and carry the
names it expects; so writing them first, with every name kubeadm would put in, makes
kubeadm issue none. Subjects, organizations, usages and SANs follow the Kubernetes page
"PKI certificates and requirements". Nothing valid is ever replaced: existing CAs are kept
(a bad one stops us rather than being overwritten), and a leaf certificate that must be
re-issued is first copied aside.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.errors import StepFailed
from bootstrap.host.kubeadm_config import ConfigFacts

KEY_BITS = 2048
# Certificates start a little in the past: clocks of the masters are rarely in step.
BACKDATE = dt.timedelta(minutes=5)
DAYS_PER_YEAR = 365
# An existing certificate is kept while it has this share of the requested lifetime left.
KEEP_SHARE = 0.9

CA_NAMES = ("ca", "front-proxy-ca", "etcd/ca")
SHARED_FILES = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
    "sa.key",
    "sa.pub",
)


@dataclass(frozen=True)
class CertSpec:
    """One certificate: file base name under pki/, its CA, subject, usages and names."""

    name: str
    ca: str | None
    cn: str
    orgs: tuple[str, ...] = ()
    server: bool = False
    client: bool = False
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


CA_SPECS = (
    CertSpec("ca", None, "kubernetes-ca"),
    CertSpec("front-proxy-ca", None, "kubernetes-front-proxy-ca"),
    CertSpec("etcd/ca", None, "etcd-ca"),
)


def _split_names(names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    dns: list[str] = []
    ips: list[str] = []
    for name in names:
        try:
            ips.append(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.append(name)
    return dns, ips


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def leaf_specs(facts: ConfigFacts) -> tuple[CertSpec, ...]:
    """The leaf certificates of one master, with the names kubeadm would check for."""
    node, advertise = facts.node_name, facts.advertise_address
    extra_dns, extra_ips = _split_names((*facts.cert_sans, facts.endpoint_host))
    apiserver_dns = _unique(
        [
            node,
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc." + facts.dns_domain.split(".")[0],
            "kubernetes.default.svc." + facts.dns_domain,
            *extra_dns,
        ]
    )
    apiserver_ips = _unique([facts.service_ip, advertise, *extra_ips])
    etcd_dns = _unique([node, "localhost"])
    etcd_ips = _unique([advertise, "127.0.0.1", "::1"])
    return (
        CertSpec(
            "apiserver", "ca", "kube-apiserver", server=True, dns=apiserver_dns, ips=apiserver_ips
        ),
        CertSpec(
            "apiserver-kubelet-client",
            "ca",
            "kube-apiserver-kubelet-client",
            orgs=("system:masters",),
            client=True,
        ),
        CertSpec("front-proxy-client", "front-proxy-ca", "front-proxy-client", client=True),
        CertSpec(
            "etcd/server",
            "etcd/ca",
            "kube-etcd",
            server=True,
            client=True,
            dns=etcd_dns,
            ips=etcd_ips,
        ),
        CertSpec(
            "etcd/peer",
            "etcd/ca",
            "kube-etcd-peer",
            server=True,
            client=True,
            dns=etcd_dns,
            ips=etcd_ips,
        ),
        CertSpec("etcd/healthcheck-client", "etcd/ca", "kube-etcd-healthcheck-client", client=True),
        CertSpec("apiserver-etcd-client", "etcd/ca", "kube-apiserver-etcd-client", client=True),
    )


# ---------------------------------------------------------------- making


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#1 `RSA PRIVATE KEY`, as kubeadm writes RSA keys."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _subject(spec: CertSpec) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in spec.orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, spec.cn))
    return x509.Name(attrs)


def _validity(years: int, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return now - BACKDATE, now + dt.timedelta(days=DAYS_PER_YEAR * years)


def make_ca(
    spec: CertSpec, key: rsa.RSAPrivateKey, years: int, now: dt.datetime
) -> x509.Certificate:
    start, end = _validity(years, now)
    name = _subject(spec)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _ekus(spec: CertSpec) -> list[x509.ObjectIdentifier]:
    ekus = []
    if spec.server:
        ekus.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if spec.client:
        ekus.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    return ekus


def make_leaf(
    spec: CertSpec,
    key: rsa.RSAPrivateKey,
    ca: CertAndKey,
    years: int,
    now: dt.datetime,
) -> x509.Certificate:
    start, end = _validity(years, now)
    end = min(end, ca.cert.not_valid_after_utc)  # never outlive the CA
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(spec))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(_ekus(spec)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in spec.ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


# ---------------------------------------------------------------- reading and checking


@dataclass(frozen=True)
class CertAndKey:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def load_pair(crt: bytes, key: bytes) -> CertAndKey:
    """Parse a certificate and its RSA key; ValueError if they do not belong together."""
    cert = x509.load_pem_x509_certificate(crt)
    private = serialization.load_pem_private_key(key, password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError("the key is not an RSA key")
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise ValueError("the key does not belong to the certificate")
    return CertAndKey(cert, private)


def ca_problem(pair: CertAndKey, now: dt.datetime) -> str | None:
    """Why an existing CA cannot sign for us, or None."""
    try:
        basic = pair.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "it is not a CA certificate"
    if not basic.ca:
        return "it is not a CA certificate"
    if pair.cert.not_valid_after_utc <= now:
        return f"it expired on {pair.cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def ca_shortfall(cert: x509.Certificate, name: str, years: int, now: dt.datetime) -> str | None:
    """A kept CA ending sooner than --years asks, said aloud: it cannot be re-issued without
    a new cluster (every certificate, kubeconfig and join hash trusts it), so it is kept and
    whatever it signs ends with it."""
    if cert.not_valid_after_utc - now >= dt.timedelta(days=DAYS_PER_YEAR * years) * KEEP_SHARE:
        return None
    return (
        f"{name}.crt expires on {cert.not_valid_after_utc:%Y-%m-%d}, sooner than --years {years} "
        "asks: a CA is not re-issued without a new cluster; kept, and the certificates it "
        "signs end with it"
    )


def short_cas(pki_dir: Path, years: int, now: dt.datetime | None = None) -> list[str]:
    """The warnings of `ca_shortfall` for the CAs present in pki_dir (reads only)."""
    now = now or dt.datetime.now(dt.UTC)
    warnings = []
    for name in CA_NAMES:
        data = _read(pki_dir / f"{name}.crt")
        if data is None:
            continue
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            continue  # ensure_cas names it
        warning = ca_shortfall(cert, name, years, now)
        if warning:
            warnings.append(warning)
    return warnings


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    return _signed_by(cert, ca)


def reissue(
    cert: x509.Certificate, ca: CertAndKey, years: int, now: dt.datetime
) -> x509.Certificate:
    """The same certificate (subject, public key, names, usages) signed again by its CA for
    `years` from now, never past the CA's end. As `kubeadm certs renew`, the certificate on
    disk is the authority for its attributes, so nothing of the cluster's settings is needed
    and nothing a client checks changes, only the dates and the serial."""
    start, end = _validity(years, now)
    end = min(end, ca.cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(ca.cert.subject)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )
    for ext in cert.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(ext.value, ext.critical)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
    )
    return builder.sign(ca.key, hashes.SHA256())


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):
        return False
    return True


def cert_names(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    dns = {d.lower() for d in san.get_values_for_type(x509.DNSName)}
    ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    return dns, ips


def leaf_problem(
    pair: CertAndKey, spec: CertSpec, ca: x509.Certificate, years: int, now: dt.datetime
) -> str | None:
    """Why an existing leaf certificate must be re-issued, or None to keep it."""
    cert = pair.cert
    if not _signed_by(cert, ca):
        return "not signed by the current CA"
    if cert.subject != _subject(spec):
        return (
            f"subject {cert.subject.rfc4514_string()} instead of {_subject(spec).rfc4514_string()}"
        )
    try:
        ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        ekus = set()
    if not set(_ekus(spec)) <= ekus:
        return "missing an extended key usage"
    dns, ips = cert_names(cert)
    missing = sorted({d.lower() for d in spec.dns} - dns) + sorted(set(spec.ips) - ips)
    if missing:
        return "missing names " + ", ".join(missing)
    wanted = min(
        dt.timedelta(days=DAYS_PER_YEAR * years) * KEEP_SHARE, ca.not_valid_after_utc - now
    )
    if cert.not_valid_after_utc - now < wanted:
        return f"expires on {cert.not_valid_after_utc:%Y-%m-%d}, sooner than --years {years} asks"
    return None


# ---------------------------------------------------------------- planning


@dataclass(frozen=True)
class FileWrite:
    """A file to write: where, what, with which mode, and why (for --dry-run and logs)."""

    path: Path
    data: bytes
    mode: int
    why: str
    secret: bool = False
    backup: bool = False  # an existing file is replaced: copy it aside first


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class Pki:
    """Plans the PKI files of one host; writes nothing itself (see steps)."""

    def __init__(self, pki_dir: Path, years: int, now: dt.datetime | None = None) -> None:
        self.dir = pki_dir
        self.years = years
        self.now = now or dt.datetime.now(dt.UTC)
        self.writes: list[FileWrite] = []
        self.cas: dict[str, CertAndKey] = {}

    def path(self, name: str, ext: str) -> Path:
        return self.dir / f"{name}.{ext}"

    def ensure_cas(self, *, create: bool) -> None:
        """Load the three CAs; make the missing ones when `create`, else stop naming them."""
        for spec in CA_SPECS:
            crt_path, key_path = self.path(spec.name, "crt"), self.path(spec.name, "key")
            crt, key = _read(crt_path), _read(key_path)
            if crt is not None and key is not None:
                try:
                    pair = load_pair(crt, key)
                except ValueError as e:
                    raise StepFailed(f"{crt_path}: cannot use it ({e}); not replacing it") from None
                problem = ca_problem(pair, self.now)
                if problem:
                    raise StepFailed(f"{crt_path}: {problem}; not replacing it")
                self.cas[spec.name] = pair
                continue
            if crt is not None or key is not None:
                present, absent = (crt_path, key_path) if crt is not None else (key_path, crt_path)
                raise StepFailed(f"{present} exists but {absent} does not; not replacing it")
            if not create:
                raise StepFailed(
                    f"{crt_path} is missing: copy the cluster's CAs (ca, front-proxy-ca, etcd/ca, "
                    "sa) from master0 to this host first"
                )
            private = new_key()
            cert = make_ca(spec, private, self.years, self.now)
            self.cas[spec.name] = CertAndKey(cert, private)
            self.writes.append(FileWrite(crt_path, cert_pem(cert), 0o644, f"new CA {spec.cn}"))
            self.writes.append(FileWrite(key_path, key_pem(private), 0o600, "its key", True))

    def ensure_sa(self, *, create: bool) -> None:
        """The service account signing key pair: kept when present, made when allowed."""
        key_path, pub_path = self.dir / "sa.key", self.dir / "sa.pub"
        key, pub = _read(key_path), _read(pub_path)
        if key is None:
            if pub is not None:
                raise StepFailed(f"{pub_path} exists but {key_path} does not; not replacing it")
            if not create:
                raise StepFailed(f"{key_path} is missing: copy it and sa.pub from master0 first")
            private = new_key()
            self.writes.append(
                FileWrite(key_path, key_pem(private), 0o600, "new service account key", True)
            )
            self.writes.append(FileWrite(pub_path, public_pem(private), 0o644, "its public half"))
            return
        try:
            loaded = serialization.load_pem_private_key(key, password=None)
        except ValueError as e:
            raise StepFailed(f"{key_path}: cannot read it ({e}); not replacing it") from None
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise StepFailed(f"{key_path}: not an RSA key; not replacing it")
        expected = public_pem(loaded)
        if pub is None:
            self.writes.append(FileWrite(pub_path, expected, 0o644, "public half of sa.key"))
        elif (
            serialization.load_pem_public_key(pub).public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            != expected
        ):
            raise StepFailed(f"{pub_path} does not match {key_path}; not replacing either")

    def ensure_leaves(self, facts: ConfigFacts) -> None:
        for spec in leaf_specs(facts):
            assert spec.ca is not None
            ca = self.cas[spec.ca]
            crt_path, key_path = self.path(spec.name, "crt"), self.path(spec.name, "key")
            crt, key = _read(crt_path), _read(key_path)
            why = f"new {spec.cn}"
            if crt is not None and key is not None:
                try:
                    problem = leaf_problem(load_pair(crt, key), spec, ca.cert, self.years, self.now)
                except ValueError as e:
                    problem = str(e)
                if problem is None:
                    continue
                why = f"re-issued {spec.cn}: {problem}"
            private = new_key()
            cert = make_leaf(spec, private, ca, self.years, self.now)
            exists = crt is not None or key is not None
            self.writes.append(FileWrite(crt_path, cert_pem(cert), 0o644, why, backup=exists))
            self.writes.append(
                FileWrite(key_path, key_pem(private), 0o600, "its key", True, exists)
            )
