"""The flows of `master0`, `master --join`, `node`, `certs` and `clean` on one host.

Every step either checks what is already there (hosts line, files, IPVS rules) or is
recorded in the state file once done (kubeadm init / join), so running a command again,
after a failure or after success, continues instead of starting over.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

from bootstrap.defaults import APISERVER_NAME, APISERVER_PORT
from bootstrap.errors import StepFailed
from bootstrap.host import hosts, kubeadm, kubeconfig, lvscare_rules, pki, seed
from bootstrap.host.effects import Effects
from bootstrap.host.kubeadm_config import (
    DEFAULT_POD_CIDR,
    DEFAULT_REPO,
    DEFAULT_SVC_CIDR,
    ClusterSpec,
    ConfigFacts,
    facts,
    join_configuration,
    render,
)
from bootstrap.host.state import State, sha256
from bootstrap.inputs import KubeVersion
from bootstrap.join import Join
from lvscare.address import format_hostport

MANIFEST_NAME = "kube-lvscare.yaml"
CONFIG_NAME = "kubeadm.yaml"
JOIN_CONFIG_NAME = "kubeadm-join.yaml"  # holds the token: only while kubeadm join runs
# Files kubeadm writes early in init / join: there without a finished step means a half-way stop.
INIT_LEFTOVERS = ("manifests/kube-apiserver.yaml", "manifests/etcd.yaml")
JOIN_LEFTOVERS = ("kubelet.conf",)


@dataclass(frozen=True)
class Paths:
    hosts_file: Path
    kubernetes_dir: Path
    state_dir: Path
    home: Path

    @property
    def pki_dir(self) -> Path:
        return self.kubernetes_dir / "pki"

    @property
    def manifest(self) -> Path:
        return self.kubernetes_dir / "manifests" / MANIFEST_NAME

    @property
    def kube_config(self) -> Path:
        return self.home / ".kube" / "config"

    @property
    def seed_manifest(self) -> Path:
        return self.kubernetes_dir / "manifests" / seed.SEED_MANIFEST

    @property
    def adopted_dir(self) -> Path:
        return self.state_dir / seed.ADOPTED_DIR


@dataclass
class Host:
    fx: Effects
    paths: Paths
    state: State

    def save(self) -> None:
        self.state.save(self.fx)

    def write(self, path: Path, data: bytes, mode: int, why: str, **kw: bool) -> None:
        """Write a file and remember it as ours (for `clean`)."""
        self.fx.write(path, data, mode, why=why, **kw)
        self.state.record_file(path, data)


# ---------------------------------------------------------------- single steps


def point_apiserver(host: Host, ip: str, why: str) -> None:
    change = hosts.plan_set(host.paths.hosts_file, ip)
    host.fx.hosts(change, why=f"{APISERVER_NAME} -> {ip} ({why})")


def write_config(host: Host, text: str) -> Path:
    path = host.paths.state_dir / CONFIG_NAME
    host.write(path, text.encode(), 0o600, "kubeadm configuration", show=True)
    return path


def write_pki(host: Host, spec: ClusterSpec, config: ConfigFacts, *, init: bool) -> None:
    """CAs (made on `init`, required otherwise), sa key pair, leaf certs, kubeconfigs."""
    planner = pki.Pki(host.paths.pki_dir, spec.years)
    planner.ensure_cas(create=init)
    planner.ensure_sa(create=init)
    planner.ensure_leaves(config)
    specs = kubeconfig.kubeconfig_specs(
        spec.version,
        config.node_name,
        config.advertise_address,
        config.control_plane_endpoint,
        init=init,
    )
    kubeconfig.plan(planner, specs, host.paths.kubernetes_dir)
    if not planner.writes:
        host.fx.say(f"certificates in {host.paths.pki_dir}: all present and valid, kept")
    for w in planner.writes:
        host.write(w.path, w.data, w.mode, w.why, secret=w.secret, backup=w.backup)
    secrets = [host.paths.pki_dir / f"{name}.key" for name in (*pki.CA_NAMES, "sa")]
    secrets += [host.paths.pki_dir / f"{leaf.name}.key" for leaf in pki.leaf_specs(config)]
    secrets += [host.paths.kubernetes_dir / s.filename for s in specs]
    for path in secrets:  # kept files too: a private key is never left readable to others
        host.fx.ensure_mode(path, 0o600)


def kubeadm_join(host: Host, config: str) -> None:
    """kubeadm join with the token in a file, 0600 from its first byte and gone when kubeadm
    is (also when it fails): on kubeadm's command line it would show in `ps`."""
    path = host.paths.state_dir / JOIN_CONFIG_NAME
    host.fx.write(
        path, config.encode(), 0o600, why="kubeadm join's configuration (the token)", secret=True
    )
    try:
        host.fx.run(kubeadm.join_argv(path))
    finally:
        host.fx.remove(path, why="it holds the bootstrap token")


def copy_admin_conf(host: Host) -> None:
    source = host.paths.kubernetes_dir / "admin.conf"
    data = source.read_bytes() if source.exists() else None
    dest = host.paths.kube_config
    if data is None:
        if host.fx.dry_run:
            host.fx.say(f"[dry-run] would copy {source} to {dest} (mode 0600)")
            return
        raise StepFailed(f"{source} is missing after kubeadm: cannot copy it to {dest}")
    host.write(dest, data, 0o600, f"copy of {source}", secret=True, backup=True)


def _ready_for(host: Host, step: str, leftovers: tuple[str, ...]) -> None:
    """Before changing anything: kubeadm is there, and no half-finished kubeadm run is."""
    if host.state.done(step):
        return
    if not host.fx.dry_run:
        kubeadm.require_kubeadm()
    for name in leftovers:
        path = host.paths.kubernetes_dir / name
        if path.exists():
            raise StepFailed(
                f"an earlier {step.replace('-', ' ')} stopped half-way ({path} exists): "
                "run `bootstrap clean`, then this command again"
            )


def _warn(host: Host, config: ConfigFacts) -> None:
    for warning in config.warnings:
        host.fx.say(f"warning: {warning}")


# ---------------------------------------------------------------- flows


def master0(host: Host, spec: ClusterSpec, template: str, source: str) -> Join | None:
    """The first master: hosts line, configuration, PKI, kubeadm init, ~/.kube/config."""
    _ready_for(host, "kubeadm-init", INIT_LEFTOVERS)
    text = render(template, spec, source)
    config = facts(text, spec, spec.master0)
    _warn(host, config)
    point_apiserver(host, spec.master0, "master0 reaches its own apiserver")
    config_path = write_config(host, text)
    write_pki(host, spec, config, init=True)
    host.save()
    if host.state.done("kubeadm-init"):
        host.fx.say("kubeadm init: done earlier, skipped")
    else:
        output = host.fx.run(kubeadm.init_argv(config_path))
        if host.fx.dry_run:
            copy_admin_conf(host)
            return None
        host.state.mark("kubeadm-init")
        host.save()
        copy_admin_conf(host)
        host.save()
        info = kubeadm.parse_init_output(output)
        host.state.set("join", dataclasses.asdict(info))
        host.save()
    copy_admin_conf(host)
    host.save()
    saved = host.state.get("join")
    return Join(**saved) if isinstance(saved, dict) else None


def master_join(
    host: Host, spec: ClusterSpec, template: str, source: str, own_ip: str, join: Join
) -> None:
    """Another master: CAs from master0 already here, its own long-lived leaf certs, join."""
    _ready_for(host, "kubeadm-join", JOIN_LEFTOVERS)
    joined = host.state.done("kubeadm-join")
    if own_ip not in spec.masters:
        host.fx.say(
            f"warning: {own_ip} is not among --master: nodes' lvscare will not send it traffic"
        )
    text = render(template, spec, source)
    config = dataclasses.replace(
        facts(text, spec, own_ip), advertise_address=own_ip, node_name=spec.node_name
    )
    _warn(host, config)
    if not joined:
        point_apiserver(host, spec.master0, "join through master0")
    write_pki(host, spec, config, init=False)
    host.save()
    if joined:
        host.fx.say("kubeadm join: done earlier, skipped")
    else:
        kubeadm_join(
            host,
            join_configuration(
                spec.version,
                join,
                f"{APISERVER_NAME}:{APISERVER_PORT}",
                spec.node_name,
                advertise_address=own_ip,
            ),
        )
        host.state.mark("kubeadm-join")
        host.save()
    point_apiserver(host, own_ip, "a master reaches its own apiserver")
    copy_admin_conf(host)
    host.save()


def node(
    host: Host,
    masters: tuple[str, ...],
    vip: str,
    join: Join,
    node_name: str,
    image: str,
    version: KubeVersion,
    daemon: lvscare_rules.Daemon = lvscare_rules.DEFAULT_DAEMON,
) -> None:
    """A worker: hosts line at the VIP, IPVS rules, kubeadm join, then lvscare's static pod.

    A node the seed system made is taken over first (`adopt_seed`): its lvscare pod moved
    out of kubelet's sight, its kubeadm join kept."""
    seed_vs = adopt_seed(host)
    _ready_for(host, "kubeadm-join", JOIN_LEFTOVERS)
    vs = format_hostport(vip, APISERVER_PORT)
    rs = [format_hostport(m, APISERVER_PORT) for m in masters]
    point_apiserver(host, vip, "nodes reach the masters through lvscare's virtual server")
    host.state.set("vs", vs)
    host.save()
    servers = ", ".join(rs)
    host.fx.call(
        f"IPVS virtual server {vs} set with real servers {servers}",
        f"set IPVS virtual server {vs} with real servers {servers}",
        lambda: lvscare_rules.create_rules(vs, rs, daemon),
    )
    if seed_vs is not None and seed_vs != vs:  # the seed guarded another VIP: nobody does now
        host.fx.call(
            f"removed the seed's IPVS virtual server {seed_vs}",
            f"remove the seed's IPVS virtual server {seed_vs}",
            lambda: lvscare_rules.remove_rules(seed_vs),
        )
    if host.state.done("kubeadm-join"):
        host.fx.say("kubeadm join: done earlier, skipped")
    else:
        kubeadm_join(host, join_configuration(version, join, vs, node_name))
        host.state.mark("kubeadm-join")
        host.save()
    manifest = lvscare_rules.static_pod(vs, rs, image, daemon)
    host.write(host.paths.manifest, manifest.encode(), 0o644, "lvscare static pod", show=True)
    host.save()


def adopt_seed(host: Host) -> str | None:
    """A node the seed system made: its lvscare static pod is moved to the state dir (kept,
    out of kubelet's sight: never two daemons guarding one VIP; ours is written after) and,
    where its kubeadm join is there (kubelet.conf), that join is kept as done. The seed's
    virtual server if we moved its pod now, else None."""
    found = host.paths.seed_manifest
    data = found.read_bytes() if found.is_file() else None
    if data is None:
        return None
    kept = host.paths.adopted_dir / seed.SEED_MANIFEST
    host.fx.say(f"{found}: a node the seed system made; taking it over")
    host.fx.write(kept, data, 0o600, why="the seed's lvscare pod, kept out of kubelet's sight")
    host.fx.remove(found, why="the seed's lvscare pod: ours guards the VIP instead")
    vs = seed.seed_vs(data)
    host.state.set("adopted", {"manifest": str(kept), "vs": vs})
    if (host.paths.kubernetes_dir / "kubelet.conf").exists() and not host.state.done(
        "kubeadm-join"
    ):
        host.fx.say("kubeadm join: made by the seed system (kubelet.conf is there), kept")
        host.state.mark("kubeadm-join")
    host.save()
    return vs


def certs(host: Host, spec: ClusterSpec, template: str, source: str, own_ip: str) -> None:
    """Only the PKI and kubeconfigs, for a kubeadm run by hand afterwards. A leaf that ends
    sooner than --years asks is re-issued (`pki.leaf_problem`); a CA cannot be, so a short
    one is named: otherwise "kept" would read as "as long as asked"."""
    text = render(template, spec, source)
    config = dataclasses.replace(facts(text, spec, own_ip), advertise_address=own_ip)
    _warn(host, config)
    for warning in pki.short_cas(host.paths.pki_dir, spec.years):
        host.fx.say(f"warning: {warning}")
    write_pki(host, spec, config, init=True)
    host.save()


def clean(host: Host, vip: str | None) -> list[str]:
    """Undo what bootstrap and kubeadm did on this host; the problems met, if any."""
    problems: list[str] = []
    if shutil.which(kubeadm.KUBEADM):
        try:
            host.fx.run(kubeadm.reset_argv())
        except StepFailed as e:
            problems.append(str(e))
    else:
        host.fx.say("kubeadm is not on PATH: nothing for kubeadm reset to undo here")
    host.fx.remove(host.paths.manifest, why="lvscare static pod")
    host.fx.hosts(hosts.plan_remove(host.paths.hosts_file), why=f"our {APISERVER_NAME} line")
    recorded = host.state.get("vs")
    vs = (
        format_hostport(vip, APISERVER_PORT)
        if vip
        else (recorded if isinstance(recorded, str) else None)
    )
    if vs:
        try:
            host.fx.call(
                f"removed IPVS virtual server {vs}",
                f"remove IPVS virtual server {vs}",
                lambda: lvscare_rules.remove_rules(vs),
            )
        except StepFailed as e:
            problems.append(str(e))
    for name, digest in sorted(host.state.files().items()):
        path = Path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if sha256(data) == digest:
            host.fx.remove(path, why="written by bootstrap")
        else:
            host.fx.say(f"kept {path}: changed since bootstrap wrote it")
    adopted = host.state.get("adopted")
    if isinstance(adopted, dict) and isinstance(adopted.get("manifest"), str):
        # Not put back: kubeadm reset took the node out of its cluster, and a seed daemon
        # guarding the VIP for a node that is no member helps nobody.
        host.fx.say(
            f"kept {adopted['manifest']}: the seed system's lvscare pod, not put back "
            f"(move it to {host.paths.seed_manifest.parent}/ to run it again)"
        )
    host.fx.remove(
        host.paths.state_dir / JOIN_CONFIG_NAME, why="left by an interrupted kubeadm join"
    )
    host.fx.remove(host.state.path, why="bootstrap's record of this host")
    if not host.fx.dry_run and host.state.dir.is_dir() and not any(host.state.dir.iterdir()):
        host.state.dir.rmdir()
    return problems


def join_commands(spec: ClusterSpec, info: Join, template_path: str | None) -> list[str]:
    """The commands to run on further masters and on nodes, as text lines."""
    common = [f"--master {m}" for m in spec.masters] + [f"--vip {spec.vip}"]
    cluster = [f"--version {spec.version}"]
    if spec.svc_cidr != DEFAULT_SVC_CIDR:
        cluster.append(f"--svc-cidr {spec.svc_cidr}")
    if spec.pod_cidr != DEFAULT_POD_CIDR:
        cluster.append(f"--pod-cidr {spec.pod_cidr}")
    if spec.repo != DEFAULT_REPO:
        cluster.append(f"--repo {spec.repo}")
    cluster += [f"--cert-sans {s}" for s in spec.cert_sans]
    cluster.append(f"--years {spec.years}")
    if template_path:
        cluster.append(f"--kubeadm-config {template_path}")
    secret = [f"--token {info.token}", f"--discovery-token-ca-cert-hash {info.ca_cert_hash}"]
    master = ["bootstrap master --join", *common, *cluster, *secret]
    if info.certificate_key:
        master.append(f"--certificate-key {info.certificate_key}")
    files = " ".join(pki.SHARED_FILES)
    lines = [
        "",
        "To add a master, copy these files from this host's pki directory to the same place on",
        f"it ({files}), then run there:",
        "",
        "  " + " \\\n    ".join(master),
        "",
        "To add a node, run there:",
        "",
        "  " + " \\\n    ".join(["bootstrap node", *common, *secret]),
    ]
    if template_path:
        lines += ["", f"(a master needs {template_path} too)"]
    lines += [
        "",
        "Flags show in `ps` on that host while the command runs; to keep the token and the",
        "certificate key off command lines, put them in a kubeadm JoinConfiguration file",
        "(mode 0600: discovery.bootstrapToken.token and caCertHashes, controlPlane.certificateKey)",
        "and give --join-config FILE instead.",
    ]
    return lines
