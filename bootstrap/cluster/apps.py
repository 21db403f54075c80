"""Apps from offline app packages: `bootstrap install --pkg-url APP.tar.gz` (and `--delete`).

An app package (`bootstrap package app` makes one) holds `manifests/` (Kubernetes YAML,
applied on master0 in order), `images/` (archives for the container runtime, loaded on
every host: pods may land anywhere), optionally `shell/install.sh` (run on master0 after the
manifests, its output shown) and `shell/uninstall.sh`, and `app.json` (name, version, the
manifests' order); the tree may sit under one top directory.

Everything about the package is read and checked before any host is connected to
(`app_format.open_app`), and what will happen is decided here (`plan`, pure). On a host,
the package is sent once (sha256) to APPS_DIR and unpacked; what was done there is recorded
under STATE_DIR/NAME so that a second install of the same package changes nothing: `loaded`
(the package whose images are all in the runtime), `archives` (each imported archive's
sha256), `images` (the image names an import created: only those are removed again), and
on master0 `applied` (the package whose manifests and install.sh ran).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.cluster import package
from bootstrap.cluster.app_format import APPS_DIR, STATE_DIR, AppPackage
from bootstrap.cluster.cluster_file import AppRecord, Cluster
from bootstrap.cluster.orchestrate import HostFailed, HostRun, Orchestrator
from bootstrap.cluster.ssh import Connection, Progress
from bootstrap.errors import StepFailed

ADMIN_CONF = "/etc/kubernetes/admin.conf"
RUNTIME_ENV = "/etc/lvscare-py/runtime.env"
RUNTIMES = ("containerd", "docker")
UNPACKED_MARK = ".lvscare-py-unpacked"


# ------------------------------------------------------------------ the plan (pure)


@dataclass(frozen=True)
class Plan:
    """What `install` (or `--delete`) will do, decided from the cluster file alone."""

    action: str  # "install", "upgrade", "unchanged" (same sha256 installed), "delete"
    app: AppPackage
    previous: AppRecord | None
    master0: str
    hosts: tuple[tuple[str, str], ...]  # (address, role), master0 first
    summary: str

    def lines(self) -> list[str]:
        """The plan host by host, for --dry-run."""
        out = [self.summary]
        for addr, role in self.hosts:
            out.append(f"{addr} ({role}{', master0' if addr == self.master0 else ''}):")
            out.extend(f"  {step}" for step in self.steps(addr))
        return out

    def steps(self, addr: str) -> list[str]:
        app = self.app
        images = ", ".join(app.images) or "no images"
        if self.action == "delete":
            steps = []
            if addr == self.master0:
                steps += [
                    f"kubectl delete --ignore-not-found -f {m}" for m in reversed(app.manifests)
                ]
                if app.uninstall_sh:
                    steps.append("sh shell/uninstall.sh (its output shown)")
            steps += [
                f"remove the images {app.name}'s imports created, unless another app's record "
                "on the host names them",
                f"remove {APPS_DIR}/{app.name} and {STATE_DIR}/{app.name}",
            ]
            return steps
        steps = [
            f"skip the host if {app.state}/loaded says {app.sha256[:12]} (loaded already)",
            f"send {app.path.name} ({app.size} bytes) to {APPS_DIR}/{app.name}.pkg unless "
            "there with the same sha256; unpack it",
            f"import {images} into the runtime of {RUNTIME_ENV} (each archive once, by sha256)",
        ]
        if addr == self.master0:
            steps += [
                f"after every host has the images, unless {app.state}/applied says "
                f"{app.sha256[:12]}:",
                *[f"  kubectl apply -f {m}" for m in app.manifests],
            ]
            if app.install_sh:
                steps.append("  sh shell/install.sh (its output shown)")
        return steps


def plan(cluster: Cluster, app: AppPackage, delete: bool) -> Plan:
    hosts = tuple(
        [(str(m), "master") for m in cluster.masters] + [(str(n), "node") for n in cluster.nodes]
    )
    previous = next((a for a in cluster.apps if a.name == app.name), None)
    what = f"{app.name} {app.version} (sha256 {app.sha256[:12]}, name from {app.named_by})"
    if delete:
        action = "delete"
        summary = f"delete {what}"
        if previous is None:
            summary += ": not in the cluster file, removing what the hosts hold of it anyway"
    elif previous is not None and previous.sha256 == app.sha256:
        action = "unchanged"
        summary = (
            f"{what} is installed already: each host's record is checked, nothing is done again"
        )
    elif previous is not None:
        action = "upgrade"
        summary = f"upgrade {app.name} {previous.version} -> {app.version} ({what})"
    else:
        action = "install"
        summary = f"install {what}"
    return Plan(action, app, previous, hosts[0][0], hosts, summary)


def parse_runtime(env_text: str) -> str | None:
    """RUNTIME from init.sh's runtime.env (KEY=VALUE lines), if it names one we know."""
    value = None
    for raw in env_text.splitlines():
        key, sep, rest = raw.strip().partition("=")
        if sep and key.strip() == "RUNTIME":
            value = rest.strip().strip("'\"")
    return value if value in RUNTIMES else None


def parse_listing(runtime: str, out: str) -> dict[str, str]:
    """`ctr images ls` (REF TYPE DIGEST ..., a header first) or our `docker image ls`
    format (REF ID) as {name: digest}; Docker's untagged <none>:<none> is no name."""
    lines = out.splitlines()[1:] if runtime == "containerd" else out.splitlines()
    found: dict[str, str] = {}
    for line in lines:
        words = line.split()
        if runtime == "containerd" and len(words) >= 3:
            found[words[0]] = words[2]
        elif runtime == "docker" and len(words) >= 2 and words[0] != "<none>:<none>":
            found[words[0]] = words[1]
    return found


def new_refs(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The image names an import created (containerd's sha256:... names, which its CRI
    plugin adds, go with them: see `orphans`)."""
    return sorted(r for r in after if r not in before and not r.startswith("sha256:"))


def orphans(listing: dict[str, str], gone: set[str]) -> list[str]:
    """containerd's sha256:... names of the digests `gone` that no other name keeps."""
    kept = {d for r, d in listing.items() if not r.startswith("sha256:")}
    return sorted(
        r for r, d in listing.items() if r.startswith("sha256:") and d in gone and d not in kept
    )


def removable(ours: list[str], others: list[str]) -> list[str]:
    """Our images no other app on the host lists: only those leave the runtime."""
    kept = set(others)
    return [r for r in dict.fromkeys(ours) if r not in kept]


# ------------------------------------------------------------------ on a host


def _mark(conn: Connection, path: str) -> str:
    result = conn.run(f"cat -- {shlex.quote(path)} 2>/dev/null")
    return result.output.strip() if result.code == 0 else ""


def send(conn: Connection, app: AppPackage, progress: Progress | None) -> bool:
    """The package to APPS_DIR/NAME.pkg unless there with its sha256 (the Kubernetes
    package's way); whether it was sent."""
    pkg = package.Package(str(app.path), app.path, app.sha256, app.size)
    return package.distribute(conn, pkg, progress, f"{APPS_DIR}/{app.name}.pkg")[1]


def unpack(conn: Connection, app: AppPackage) -> bool:
    """The tree at APPS_DIR/NAME (replaced whole); False if this package is there already."""
    base = f"{APPS_DIR}/{app.name}"
    if _mark(conn, f"{base}/{UNPACKED_MARK}") == app.sha256:
        return False
    pkg, tree, new = (shlex.quote(p) for p in (f"{base}.pkg", base, f"{base}.new"))
    conn.check(
        f"rm -rf -- {new} && mkdir -p -- {new} && "
        f"{{ tar -xf {pkg} -C {new} --no-same-owner || {{ rm -rf -- {new}; exit 1; }}; }} && "
        f"rm -rf -- {tree} && mv -- {new} {tree} && "
        f"echo {app.sha256} > {shlex.quote(f'{base}/{UNPACKED_MARK}')} && rm -f -- {pkg}",
        f"unpacking {app.path.name} into {base}",
    )
    return True


def runtime_of(conn: Connection) -> str:
    """The runtime init.sh recorded; without its file, containerd's or Docker's client."""
    found = parse_runtime(conn.run(f"cat -- {RUNTIME_ENV} 2>/dev/null").output)
    if found:
        return found
    if conn.run("command -v ctr >/dev/null && [ -S /run/containerd/containerd.sock ]").code == 0:
        return "containerd"
    if conn.run("command -v docker >/dev/null").code == 0:
        return "docker"
    raise StepFailed(
        f"no container runtime: {RUNTIME_ENV} names none and neither ctr nor docker is here "
        "(run the offline package's shell/init.sh first)"
    )


def list_images(conn: Connection, runtime: str) -> dict[str, str]:
    """The runtime's image names and their digests."""
    if runtime == "containerd":
        out = conn.check("ctr -n k8s.io images ls", "ctr images ls")
    else:
        out = conn.check(
            "docker image ls --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}'",
            "docker image ls",
        )
    return parse_listing(runtime, out)


def import_command(runtime: str, archive: str) -> str:
    q = shlex.quote(archive)
    if runtime == "docker":
        return f"docker load -i {q}"
    if archive.endswith(".gz"):
        return f"gzip -t {q} && gzip -dc {q} | ctr -n k8s.io images import -"
    return f"ctr -n k8s.io images import {q}"


def load_images(conn: Connection, app: AppPackage, say: Callable[[str], None]) -> list[str]:
    """Each archive not imported before (by sha256) into the runtime; the images made."""
    runtime = runtime_of(conn)
    state = shlex.quote(app.state)
    conn.check(f"mkdir -p -- {state}", f"mkdir {app.state}")
    done = set(_mark(conn, f"{app.state}/archives").splitlines())
    made: list[str] = []
    for image in app.images:
        path = f"{app.tree}/{image}"
        digest = conn.check(f"sha256sum -- {shlex.quote(path)}", f"sha256sum {image}").split()[0]
        line = f"{digest} {runtime} {image}"
        if line in done:
            say(f"{image}: imported already")
            continue
        before = list_images(conn, runtime)
        conn.check(import_command(runtime, path), f"importing {image} into {runtime}")
        after = list_images(conn, runtime)
        refs = new_refs(before, after)
        records = "".join(f"{runtime} {r} {after[r]}\n" for r in refs)
        conn.check(
            f"printf %s {shlex.quote(records)} >> {state}/images && "
            f"echo {shlex.quote(line)} >> {state}/archives",
            f"recording {image}",
        )
        made += refs
        say(f"{image}: imported into {runtime}" + (f" ({', '.join(refs)})" if refs else ""))
    return made


def kubectl(conn: Connection, verb: list[str], manifest: str) -> None:
    argv = ["kubectl", "--kubeconfig", ADMIN_CONF, *verb, "-f", manifest]
    conn.run_argv(argv, f"kubectl {' '.join(verb)} -f {manifest.rsplit('/', 1)[-1]}")


def run_script(conn: Connection, app: AppPackage, script: str, say: Callable[[str], None]) -> str:
    """shell/SCRIPT in its own directory, KUBECONFIG set; its output, line by line."""
    return conn.check(
        f"cd {shlex.quote(app.tree + '/shell')} && KUBECONFIG={ADMIN_CONF} sh {script}",
        f"shell/{script}",
        on_line=say,
    )


def _refs(lines: list[str], runtime: str) -> list[str]:
    """The names in `images` record lines ("RUNTIME REF DIGEST") of this runtime."""
    return [w[1] for w in (line.split() for line in lines) if len(w) >= 2 and w[0] == runtime]


def _remove_image(conn: Connection, runtime: str, rm: str, ref: str) -> None:
    result = conn.run(f"{rm} {shlex.quote(ref)}")
    # Hosts that share a runtime may remove it at once: only a name still there fails.
    if result.code != 0 and ref in list_images(conn, runtime):
        raise StepFailed(f"{rm} {ref}: {result.last_line()}")


def remove_from_host(conn: Connection, app: AppPackage) -> list[str]:
    """The images this app's imports made (unless another app on the host lists them),
    its tree and its record; the images removed."""
    state = app.state
    ours = _mark(conn, f"{state}/images").splitlines()
    others_out = conn.run(
        f'for f in {STATE_DIR}/*/images; do [ "$f" = {shlex.quote(state + "/images")} ] || '
        'cat -- "$f" 2>/dev/null; done'
    ).output
    removed: list[str] = []
    if ours:
        runtime = runtime_of(conn)
        mine = _refs(ours, runtime)
        theirs = _refs(others_out.splitlines(), runtime)
        present = list_images(conn, runtime)
        rm = "ctr -n k8s.io images rm" if runtime == "containerd" else "docker image rm"
        gone = {present[r] for r in removable(mine, theirs) if r in present}
        for ref in [r for r in removable(mine, theirs) if r in present]:
            _remove_image(conn, runtime, rm, ref)
            removed.append(ref)
        if runtime == "containerd" and gone:
            for ref in orphans(list_images(conn, runtime), gone):
                _remove_image(conn, runtime, rm, ref)
    conn.check(
        "rm -rf -- "
        + " ".join(
            shlex.quote(p) for p in (state, f"{APPS_DIR}/{app.name}", f"{APPS_DIR}/{app.name}.pkg")
        ),
        f"removing {app.name}'s files",
    )
    return removed


# ------------------------------------------------------------------ the flow


class AppOrchestrator(Orchestrator):
    """An Orchestrator whose results stay out of the cluster file's host records: those
    say how Kubernetes got onto a host, which an app's failure does not change."""

    records_hosts = False


def ensure_tree(orch: Orchestrator, run: HostRun, app: AppPackage, images: bool) -> None:
    """The package unpacked on the host: sent (unless there, same sha256) and unpacked,
    unless its tree is there already (with its images/, if `images`: they are removed
    once loaded)."""
    conn = run.connection()
    there = _mark(conn, f"{APPS_DIR}/{app.name}/{UNPACKED_MARK}") == app.sha256
    if there and images and app.images:
        there = conn.run(f"[ -d {shlex.quote(app.tree + '/images')} ]").code == 0
    if there:
        orch.report.step(run.addr, "send", "unpacked there already: not sent")
        return
    orch.step(run, "send")
    if not send(conn, app, orch.progress(run)):
        orch.report.step(run.addr, "send", "there already, same sha256: not sent")
    orch.step(run, "unpack")
    unpack(conn, app)


def _runs(orch: Orchestrator) -> list[HostRun]:
    cluster = orch.cluster
    return [orch.add(m, "master") for m in cluster.masters] + [
        orch.add(n, "node") for n in cluster.nodes
    ]


def install(orch: Orchestrator, app: AppPackage) -> None:
    """Images on every host in parallel; then, all of them there, manifests and install.sh
    on master0; then the cluster file records the app (replacing another version of it)."""
    runs = _runs(orch)
    master0 = runs[0]

    def images(run: HostRun) -> None:
        conn = run.conn or orch.connect(run)
        orch.step(run, "check")
        with orch.on(run):
            if _mark(conn, f"{app.state}/loaded") == app.sha256:
                orch.report.step(run.addr, "images", "loaded already: nothing sent or imported")
            else:
                ensure_tree(orch, run, app, images=True)
                orch.step(run, "images")
                load_images(conn, app, lambda line: orch.report.step(run.addr, "images", line))
                conn.check(
                    f"echo {app.sha256} > {shlex.quote(app.state + '/loaded')} && "
                    f"rm -rf -- {shlex.quote(app.tree + '/images')}",
                    "recording the images",
                )
        if run is not master0:
            orch.succeed(run)

    orch.parallel(runs, images)
    if master0.failed:
        return
    missing = [r.addr for r in runs if r.failed]
    if missing:
        orch.skip(master0, f"manifests not applied: images missing on {', '.join(missing)}")
        return
    conn = master0.connection()
    orch.step(master0, "manifests")
    with orch.on(master0):
        if _mark(conn, f"{app.state}/applied") == app.sha256:
            orch.report.step(master0.addr, "manifests", "applied already: nothing done")
        else:
            for manifest in app.manifests:
                kubectl(conn, ["apply"], f"{app.tree}/{manifest}")
            if app.install_sh:
                orch.step(master0, "install.sh")
                out = run_script(conn, app, "install.sh", orch.logger(master0))
                orch.report.say(_shown("install.sh", master0.addr, out))
            conn.check(f"echo {app.sha256} > {shlex.quote(app.state + '/applied')}", "recording")
    cluster = orch.cluster
    cluster.apps = [a for a in cluster.apps if a.name != app.name] + [app.record()]
    orch.cfile.save(cluster)
    orch.succeed(master0)


def _shown(script: str, addr: str, out: str) -> str:
    body = "\n".join(f"  {line}" for line in out.rstrip("\n").splitlines()) or "  (no output)"
    return f"\nshell/{script} on {addr}:\n{body}\n"


def delete(orch: Orchestrator, app: AppPackage) -> None:
    """On master0 the manifests deleted in reverse order, then uninstall.sh; then on every
    host the images the app's imports made and its files; the cluster file forgets it."""
    runs = _runs(orch)
    master0 = runs[0]
    try:
        _unapply(orch, master0, app)
    except HostFailed:
        orch.skip_after_master0(master0, runs[1:])
        return

    def one(run: HostRun) -> None:
        host = run.conn or orch.connect(run)
        orch.step(run, "remove")
        with orch.on(run):
            removed = remove_from_host(host, app)
            note = f"images removed: {', '.join(removed)}" if removed else "no image to remove"
            orch.report.step(run.addr, "remove", note)
        orch.succeed(run)

    orch.parallel(runs, one)
    if not any(r.failed for r in runs):
        cluster = orch.cluster
        cluster.apps = [a for a in cluster.apps if a.name != app.name]
        orch.cfile.save(cluster)


def _unapply(orch: Orchestrator, master0: HostRun, app: AppPackage) -> None:
    conn = orch.connect(master0)
    with orch.on(master0):
        ensure_tree(orch, master0, app, images=False)
        orch.step(master0, "delete manifests")
        for manifest in reversed(app.manifests):
            kubectl(conn, ["delete", "--ignore-not-found"], f"{app.tree}/{manifest}")
        if app.uninstall_sh:
            orch.step(master0, "uninstall.sh")
            out = run_script(conn, app, "uninstall.sh", orch.logger(master0))
            orch.report.say(_shown("uninstall.sh", master0.addr, out))
        conn.check(f"rm -f -- {shlex.quote(app.state + '/applied')}", "recording")
