"""App packages without hosts: `package app` makes one, `open_app` reads and checks it
(bad input is one line, before any host), `plan` decides what `install` does, and the
runtime's listings are read into what an import made and what a delete may remove."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from bootstrap.build import app_package
from bootstrap.cli.apps import status_lines
from bootstrap.cluster import app_format, apps
from bootstrap.cluster.cluster_file import AppRecord, Cluster, HostRecord
from bootstrap.cluster.ssh import parse_target
from bootstrap.errors import BadInput
from tests.support.app_package import NAMESPACE, app_dir
from tests.support.ssh_client import bootstrap


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return app_dir(tmp_path_factory.mktemp("app") / "demo")


def build(demo: Path, out: Path, version: str = "1.0") -> app_format.AppPackage:
    return app_package.build(app_package.check_inputs(str(demo), None, version, str(out)))


def tar_of(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def cluster(apps_installed: list[AppRecord] | None = None) -> Cluster:
    masters = [parse_target("10.0.0.2", "--master"), parse_target("10.0.0.3", "--master")]
    nodes = [parse_target("10.0.0.5", "--node")]
    c = Cluster(masters, nodes, "root", None, "v1.30.4", "10.103.97.2", "kube.tar.gz", None)
    c.hosts = {t: HostRecord("master", t.ip, "ok") for t in masters}
    c.hosts[nodes[0]] = HostRecord("node", "n1", "failed", "bootstrap node")
    c.apps = apps_installed or []
    return c


def test_package_app_writes_what_install_reads(demo: Path, tmp_path: Path) -> None:
    app = build(demo, tmp_path / "demo-1.0.tar.gz")
    assert (app.name, app.version, app.named_by) == ("demo", "1.0", "app.json")
    assert app.manifests == ("manifests/00-namespace.yaml", "manifests/10-web.yaml")
    assert app.images == ("images/web.tar",)
    assert app.install_sh and app.uninstall_sh
    assert app.record() == AppRecord("demo", "1.0", app.sha256, list(app.images), [*app.manifests])


def test_package_app_twice_gives_the_same_bytes(demo: Path, tmp_path: Path) -> None:
    one = build(demo, tmp_path / "a.tar.gz")
    two = build(demo, tmp_path / "b.tar.gz")
    assert one.sha256 == two.sha256


def test_package_app_without_manifests_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty" / "images").mkdir(parents=True)
    out = tmp_path / "out.tar.gz"
    result = bootstrap("package", "app", str(tmp_path / "empty"), "--version", "1", "-o", str(out))
    assert result.exit_code == 2, result.output
    assert "no manifests/" in result.output and result.output.count("\n") == 1
    assert not out.exists()


def test_package_app_refuses_a_file_in_images_that_is_no_image(demo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "manifests").mkdir(parents=True)
    (bad / "manifests" / "ns.yaml").write_text(NAMESPACE)
    (bad / "images").mkdir()
    (bad / "images" / "web.tar").write_bytes(b"not a tar at all" * 64)
    with pytest.raises(BadInput, match=r"images/web\.tar: not an image archive"):
        app_package.check_inputs(str(bad), None, "1", str(tmp_path / "o.tar.gz"))


def test_without_app_json_the_name_and_version_come_from_the_file_name(tmp_path: Path) -> None:
    path = tar_of(tmp_path / "dashboard-v2.7.0.tar.gz", {"manifests/a.yaml": NAMESPACE.encode()})
    app = app_format.open_app(str(path))
    assert (app.name, app.version, app.named_by) == ("dashboard", "v2.7.0", "the file name")
    assert app_format.name_from_file(Path("dashboard.tar")) == ("dashboard", "unknown")


def test_a_top_directory_is_allowed(tmp_path: Path) -> None:
    path = tar_of(tmp_path / "x-1.tar.gz", {"x/manifests/a.yaml": NAMESPACE.encode()})
    app = app_format.open_app(str(path))
    assert app.top == "x/"
    assert app.tree == "/opt/lvscare-py/apps/x/x"


def test_app_json_orders_the_manifests(tmp_path: Path) -> None:
    meta = {"name": "demo", "version": "3", "manifests": ["b.yaml", "a.yaml"]}
    files = {
        "app.json": json.dumps(meta).encode(),
        "manifests/a.yaml": NAMESPACE.encode(),
        "manifests/b.yaml": NAMESPACE.encode(),
    }
    app = app_format.open_app(str(tar_of(tmp_path / "whatever.tar.gz", files)))
    assert app.manifests == ("manifests/b.yaml", "manifests/a.yaml")


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"images/readme.txt": b"x"}, "no manifests/"),
        ({"manifests/a.yaml": b"key: [unclosed"}, "not YAML"),
        ({"manifests/a.yaml": b"just: a map\n"}, "without apiVersion and kind"),
        ({"../manifests/a.yaml": NAMESPACE.encode()}, "lies outside the package"),
        ({"manifests/a.yaml": NAMESPACE.encode(), "images/x.tar": b"junk" * 200}, "not an image"),
        (
            {"manifests/a.yaml": NAMESPACE.encode(), "app.json": b'{"name": "Bad Name"}'},
            "not one",
        ),
        (
            {"manifests/a.yaml": NAMESPACE.encode(), "app.json": b'{"manifests": ["z.yaml"]}'},
            "lists manifests",
        ),
    ],
)
def test_a_bad_app_package_is_one_line_of_bad_input(
    tmp_path: Path, files: dict[str, bytes], says: str
) -> None:
    with pytest.raises(BadInput, match=says) as caught:
        app_format.open_app(str(tar_of(tmp_path / "app-1.tar.gz", files)))
    assert "\n" not in str(caught.value)


def test_a_truncated_package_or_a_url_is_refused(demo: Path, tmp_path: Path) -> None:
    whole = build(demo, tmp_path / "demo-1.0.tar.gz").path.read_bytes()
    cut = tmp_path / "cut-1.tar.gz"
    cut.write_bytes(whole[: len(whole) - 40])
    with pytest.raises(BadInput, match="not a usable app package"):
        app_format.open_app(str(cut))
    with pytest.raises(BadInput, match="local file"):
        app_format.open_app("https://example.internal/demo.tar.gz")
    with pytest.raises(BadInput, match="no such file"):
        app_format.open_app(str(tmp_path / "missing.tar.gz"))


def test_plan_install_then_unchanged_then_upgrade_then_delete(demo: Path, tmp_path: Path) -> None:
    app = build(demo, tmp_path / "demo-1.0.tar.gz")
    fresh = apps.plan(cluster(), app, delete=False)
    assert fresh.action == "install" and fresh.master0 == "10.0.0.2"
    assert [h for h, _ in fresh.hosts] == ["10.0.0.2", "10.0.0.3", "10.0.0.5"]
    assert apps.plan(cluster([app.record()]), app, delete=False).action == "unchanged"
    old = AppRecord("demo", "0.9", "0" * 64)
    upgrade = apps.plan(cluster([old]), app, delete=False)
    assert upgrade.action == "upgrade" and "0.9 -> 1.0" in upgrade.summary
    assert apps.plan(cluster([app.record()]), app, delete=True).action == "delete"


def test_the_dry_run_plan_names_each_host_and_only_master0_applies(
    demo: Path, tmp_path: Path
) -> None:
    app = build(demo, tmp_path / "demo-1.0.tar.gz")
    text = "\n".join(apps.plan(cluster(), app, delete=False).lines())
    master0, rest = text.split("10.0.0.3 (master):")
    assert "10.0.0.2 (master, master0):" in master0
    assert "kubectl apply -f manifests/00-namespace.yaml" in master0
    assert "kubectl apply" not in rest and "import images/web.tar" in rest
    deleting = apps.plan(cluster(), app, delete=True).lines()
    deletes = [line.strip() for line in deleting if "kubectl delete" in line]
    assert deletes == [
        "kubectl delete --ignore-not-found -f manifests/10-web.yaml",
        "kubectl delete --ignore-not-found -f manifests/00-namespace.yaml",
    ]


def test_runtime_env_names_the_runtime() -> None:
    assert apps.parse_runtime("# init.sh\nRUNTIME=containerd\nCGROUP_DRIVER=systemd\n") == (
        "containerd"
    )
    assert apps.parse_runtime("RUNTIME='docker'\n") == "docker"
    assert apps.parse_runtime("RUNTIME=podman\n") is None
    assert apps.parse_runtime("") is None


OCI = "application/vnd.oci.image.manifest.v1+json"
CTR_BEFORE = f"""\
REF                      TYPE  DIGEST      SIZE  PLATFORMS LABELS
docker.io/library/kept:1 {OCI} sha256:aaa  1 KiB linux/amd64 -
sha256:aaa               {OCI} sha256:aaa  1 KiB linux/amd64 -
"""
CTR_AFTER = f"""{CTR_BEFORE}\
example.internal/demo/web:1.0 {OCI} sha256:bbb 1 KiB linux/amd64 -
sha256:bbb                    {OCI} sha256:bbb 1 KiB linux/amd64 -
"""


def test_an_import_made_the_names_that_were_not_there_before() -> None:
    before = apps.parse_listing("containerd", CTR_BEFORE)
    after = apps.parse_listing("containerd", CTR_AFTER)
    assert apps.new_refs(before, after) == ["example.internal/demo/web:1.0"]
    docker = apps.parse_listing("docker", "web:1 sha256:ccc\n<none>:<none> sha256:ddd\n")
    assert docker == {"web:1": "sha256:ccc"}


def test_delete_removes_only_images_no_other_app_lists_and_their_orphan_ids() -> None:
    assert apps.removable(["a:1", "b:1", "a:1"], ["b:1"]) == ["a:1"]
    listing = apps.parse_listing("containerd", CTR_AFTER)
    del listing["example.internal/demo/web:1.0"]
    assert apps.orphans(listing, {"sha256:bbb"}) == ["sha256:bbb"]
    assert apps.orphans(listing, {"sha256:aaa"}) == []  # kept:1 still names it


def test_status_shows_hosts_version_vip_and_apps() -> None:
    record = AppRecord("demo", "1.0", "ab" * 32, ["images/web.tar"], ["manifests/a.yaml"])
    lines = status_lines(cluster([record]), "/x/cluster.json")
    text = "\n".join(lines)
    assert "Kubernetes:   v1.30.4" in text and "VIP:          10.103.97.2" in text
    rows = {line.split()[0]: line.split() for line in lines if line.startswith(("10.", "demo"))}
    assert rows["10.0.0.2"][1] == "master0" and rows["10.0.0.3"][1] == "master"
    assert rows["10.0.0.5"][1:] == ["node", "n1", "failed", "at", "bootstrap", "node"]
    assert rows["demo"][:3] == ["demo", "1.0", "abababababab"]
