"""A small app package's directory for tests: two manifests, a real image archive (our
own writer's, which containerd imports), install.sh and uninstall.sh that say what they do."""

from __future__ import annotations

import gzip
from pathlib import Path

from bootstrap.build import image

NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: IMAGE
"""

INSTALL_SH = """\
#!/bin/sh
echo "install.sh: KUBECONFIG=$KUBECONFIG"
echo "login token: demo-token-0123"
"""

UNINSTALL_SH = """\
#!/bin/sh
echo "uninstall.sh: removed the demo's leftovers"
"""


def app_dir(
    where: Path, reference: str = "example.internal/demo/web:1.0", gz: bool = False
) -> Path:
    """DIR for `bootstrap package app`: manifests/00-namespace.yaml, 10-web.yaml (naming
    `reference`), images/web.tar (a real image archive of that reference; web.tar.gz with
    `gz`), shell/."""
    (where / "manifests").mkdir(parents=True)
    (where / "manifests" / "00-namespace.yaml").write_text(NAMESPACE)
    (where / "manifests" / "10-web.yaml").write_text(DEPLOYMENT.replace("IMAGE", reference))
    root = where.parent / f"{where.name}-root"
    (root / "srv").mkdir(parents=True)
    (root / "srv" / "index.html").write_text(f"hello from {reference}\n")
    (where / "images").mkdir()
    archive = where / "images" / "web.tar"
    image.write_archive(root, archive, reference=reference)
    if gz:
        data = archive.read_bytes()
        archive.unlink()
        with gzip.open(archive.with_name("web.tar.gz"), "wb") as f:
            f.write(data)
    (where / "shell").mkdir()
    (where / "shell" / "install.sh").write_text(INSTALL_SH)
    (where / "shell" / "uninstall.sh").write_text(UNINSTALL_SH)
    return where
