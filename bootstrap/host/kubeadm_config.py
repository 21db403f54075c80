"""The kubeadm configuration: the template's variables, rendering, and what we read back.

The rendered YAML is the source of truth for the certificates: node name, advertise
address, certSANs, service subnet and DNS domain are read back from it, so a user's template
that adds `sealyun.com` to certSANs gets an apiserver certificate with that name, and
kubeadm finds every certificate it checks already right.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bootstrap.defaults import APISERVER_NAME, APISERVER_PORT, DEFAULT_VIP
from bootstrap.errors import BadInput
from bootstrap.host import gotemplate
from bootstrap.inputs import KubeVersion, parse_cert_san, parse_ip, parse_node_name
from bootstrap.join import Join

DEFAULT_POD_CIDR = "100.64.0.0/10"
DEFAULT_SVC_CIDR = "10.96.0.0/12"
DEFAULT_REPO = "registry.k8s.io"
DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
DEFAULT_DNS_DOMAIN = "cluster.local"
# extraArgs became a list of name/value in v1beta4, which kubeadm 1.31 introduced.
V1BETA4_FROM_MINOR = 31
HOURS_PER_YEAR = 8760


def kubeadm_api(version: KubeVersion) -> str:
    return (
        "kubeadm.k8s.io/v1beta4"
        if version.at_least(V1BETA4_FROM_MINOR)
        else ("kubeadm.k8s.io/v1beta3")
    )


def default_template(version: KubeVersion) -> str:
    """The template `bootstrap config -t kubeadm` prints for this Kubernetes version."""
    name = "kubeadm-" + kubeadm_api(version).rsplit("/", 1)[1] + ".yaml.tmpl"
    return resources.files("bootstrap.host").joinpath("templates", name).read_text(encoding="utf-8")


def join_configuration(
    version: KubeVersion,
    join: Join,
    endpoint: str,
    node_name: str,
    advertise_address: str | None = None,
) -> str:
    """What `kubeadm join --config` reads: the discovery (token and CA hash), this host's
    name and, for a master (`advertise_address`), its control plane and the certificate
    key if there is one. The file holds the token: it is written 0600 and removed after."""
    doc: dict[str, Any] = {
        "apiVersion": kubeadm_api(version),
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": endpoint,
                "token": join.token,
                "caCertHashes": [join.ca_cert_hash],
            }
        },
        "nodeRegistration": {"name": node_name},
    }
    if advertise_address is not None:
        plane: dict[str, Any] = {
            "localAPIEndpoint": {"advertiseAddress": advertise_address, "bindPort": APISERVER_PORT}
        }
        if join.certificate_key:
            plane["certificateKey"] = join.certificate_key
        doc["controlPlane"] = plane
    return yaml.safe_dump(doc, sort_keys=False)


def signing_duration(years: int) -> str:
    """A Go duration kube-controller-manager and kubeadm accept: 99 years is 867240h."""
    return f"{years * HOURS_PER_YEAR}h"


@dataclass(frozen=True)
class ClusterSpec:
    """Everything the template may use; names follow sealos' template variables."""

    version: KubeVersion
    masters: tuple[str, ...]
    vip: str = DEFAULT_VIP
    pod_cidr: str = DEFAULT_POD_CIDR
    svc_cidr: str = DEFAULT_SVC_CIDR
    repo: str = DEFAULT_REPO
    cert_sans: tuple[str, ...] = ()
    node_name: str = ""
    years: int = 99
    cgroup_driver: str = "systemd"
    cri_socket: str = DEFAULT_CRI_SOCKET

    @property
    def master0(self) -> str:
        return self.masters[0]

    def template_data(self) -> dict[str, Any]:
        api = kubeadm_api(self.version)
        return {
            # sealos v3 names, so its users' templates keep working
            "Version": str(self.version),
            "Master0": self.master0,
            "Masters": list(self.masters),
            "VIP": self.vip,
            "ApiServer": APISERVER_NAME,
            "PodCIDR": self.pod_cidr,
            "SvcCIDR": self.svc_cidr,
            "Repo": self.repo,
            "CertSANS": list(self.cert_sans),
            "CgroupDriver": self.cgroup_driver,
            "CriSocket": self.cri_socket,
            "KubeadmApi": api,
            "KubeadmAPI": api,
            # ours
            "NodeName": self.node_name,
            "VIPBits": str(ipaddress.ip_address(self.vip).max_prefixlen),
            "SigningDuration": signing_duration(self.years),
            "Years": self.years,
        }


def read_template(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise BadInput(f"--kubeadm-config {str(path)!r}: cannot read it ({reason})") from None


def render(template: str, spec: ClusterSpec, source: str = "the default template") -> str:
    """The kubeadm configuration text; a template error names the file and the line."""
    try:
        text = gotemplate.render(template, spec.template_data())
    except gotemplate.TemplateError as e:
        raise BadInput(f"{source} {e}") from None
    try:
        list(yaml.safe_load_all(text))
    except RecursionError:
        raise BadInput(f"{source} renders to YAML nested too deeply to read") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise BadInput(f"{source} renders to YAML that does not parse:{where}: {problem}") from None
    return text


@dataclass(frozen=True)
class ConfigFacts:
    """What the certificates must agree with, read back from the rendered configuration."""

    node_name: str
    advertise_address: str
    cert_sans: tuple[str, ...]
    service_subnet: str
    dns_domain: str
    control_plane_endpoint: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def service_ip(self) -> str:
        """The `kubernetes` Service's address: the first of the (first) service subnet."""
        net = ipaddress.ip_network(self.service_subnet.split(",")[0].strip(), strict=False)
        return str(net.network_address + 1)

    @property
    def endpoint_host(self) -> str:
        host = self.control_plane_endpoint
        if host.startswith("["):
            return host[1:].partition("]")[0]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def facts(text: str, spec: ClusterSpec, advertise_default: str) -> ConfigFacts:
    """Read back from a rendered configuration; fall back to what kubeadm would default."""
    docs = _documents(text)
    by_kind: dict[str, dict[str, Any]] = {}
    for doc in docs:
        by_kind.setdefault(str(doc.get("kind", "")), doc)
    init = by_kind.get("InitConfiguration", {})
    cluster = by_kind.get("ClusterConfiguration", {})
    warnings: list[str] = []
    for doc in docs:
        api = str(doc.get("apiVersion", ""))
        if api.startswith("kubeadm.k8s.io/") and api != kubeadm_api(spec.version):
            warnings.append(
                f"the configuration says {api}; kubeadm {spec.version} reads "
                f"{kubeadm_api(spec.version)} (convert it with `kubeadm config migrate`)"
            )
            break
    if "experimental-cluster-signing-duration" in text and spec.version.at_least(25):
        warnings.append(
            "experimental-cluster-signing-duration was removed in Kubernetes 1.25: "
            "write cluster-signing-duration"
        )
    node = _get(init, "nodeRegistration", "name") or spec.node_name
    advertise = _get(init, "localAPIEndpoint", "advertiseAddress") or advertise_default
    sans = _get(cluster, "apiServer", "certSANs") or []
    subnet = _get(cluster, "networking", "serviceSubnet") or DEFAULT_SVC_CIDR
    domain = _get(cluster, "networking", "dnsDomain") or DEFAULT_DNS_DOMAIN
    endpoint = cluster.get("controlPlaneEndpoint") or f"{APISERVER_NAME}:{APISERVER_PORT}"
    if not isinstance(sans, list):
        raise BadInput(f"the configuration's apiServer.certSANs {sans!r}: not a list")
    read = ConfigFacts(
        node_name=parse_node_name(str(node), "the configuration's nodeRegistration.name"),
        advertise_address=parse_ip(
            str(advertise), "the configuration's localAPIEndpoint.advertiseAddress"
        ),
        cert_sans=tuple(parse_cert_san(str(s), "the configuration's certSANs") for s in sans),
        service_subnet=str(subnet),
        dns_domain=str(domain),
        control_plane_endpoint=str(endpoint),
        warnings=tuple(warnings),
    )
    # The names the certificates get from these: each must be one a certificate can hold.
    try:
        read.service_ip  # noqa: B018
    except ValueError:
        raise BadInput(
            f"the configuration's serviceSubnet {subnet!r}: not a network in CIDR form"
        ) from None
    parse_cert_san(read.dns_domain, "the configuration's dnsDomain")
    parse_cert_san(read.endpoint_host, "the configuration's controlPlaneEndpoint")
    return read


def _get(doc: dict[str, Any], *keys: str) -> Any:
    value: Any = doc
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
