"""The offline package: build time and size, the image's size, the one-file executables'
start-up against the venv's console scripts, and whether PyInstaller builds the same bytes
twice.

    .venv/bin/python -m bench.package_build [--runs 10] [--no-cold]

Cold: the executables built from nothing (an empty cache). Warm: a package for the same
checkout again, the executables from the cache (a package for another Kubernetes version).
The stand-in kubeadm, kubelet and kubectl of the tests are the --bin; real ones add their
size (about 200 MB for v1.30) and nothing to the time but hashing and compressing them.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from tests.support import built_package as bp

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_sha(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def build(work: Path, cache: Path) -> tuple[float, Path]:
    work.mkdir(parents=True)
    out = work / "kube.tar.gz"
    start = time.monotonic()
    bp.build_package(work, out, cache)
    return time.monotonic() - start, out


def timed(argv: list[str], runs: int) -> float:
    """Median wall time of `argv`, in ms (one run first, not counted, to warm the caches)."""
    subprocess.run(argv, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run(argv, capture_output=True, check=True)
        times.append((time.monotonic() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-cold", action="store_true", help="skip the two cold builds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lvpy-bench-") as tmp:
        work = Path(tmp)
        caches = [work / "cache-a", work / "cache-b"]
        if args.no_cold:
            caches = [bp.CACHE, bp.CACHE]
        cold = []
        for i, cache in enumerate(caches):
            seconds, out = build(work / f"run{i}", cache)
            cold.append((seconds, out, cache))
        warm_seconds, warm_out = build(work / "warm", caches[0])
        out = warm_out
        print("== build")
        if not args.no_cold:
            print(f"cold (PyInstaller + image + package): {cold[0][0]:.0f} s, {cold[1][0]:.0f} s")
        print(f"warm (executables cached):            {warm_seconds:.1f} s")
        print("== sizes")
        print(f"package: {out.stat().st_size / 1e6:.1f} MB (stand-in kubeadm/kubelet/kubectl)")
        with tarfile.open(out, "r:gz") as tar:
            sizes = {m.name.removeprefix("kube/"): m.size for m in tar if m.isfile()}
        for name in ("bin/bootstrap", "bin/lvscare", "images/lvscare-py-0.1.0.tar"):
            print(f"  {name:<30} {sizes[name] / 1e6:6.1f} MB")
        exe_dirs = [next(c.glob("*/bootstrap")).parent for _s, _o, c in cold]
        lvdir = exe_dirs[0] / "lvscare-dir"
        du = sum(p.stat().st_size for p in lvdir.rglob("*") if p.is_file())
        print(f"  lvscare one-dir (the image's /opt/lvscare): {du / 1e6:.1f} MB")
        print("== reproducible")
        same_package = sha(cold[0][1]) == sha(cold[1][1])
        print(f"package, same inputs twice: {'same' if same_package else 'DIFFERENT'}")
        for name in ("bootstrap", "lvscare"):
            same = sha(exe_dirs[0] / name) == sha(exe_dirs[1] / name)
            print(f"  PyInstaller {name} one-file, built twice: {'same' if same else 'DIFFERENT'}")
        same_dir = tree_sha(exe_dirs[0] / "lvscare-dir") == tree_sha(exe_dirs[1] / "lvscare-dir")
        print(f"  PyInstaller lvscare one-dir, built twice: {'same' if same_dir else 'DIFFERENT'}")
        print(f"== start-up (median of {args.runs}, ms)")
        pairs = [
            (
                "lvscare --version",
                [str(exe_dirs[0] / "lvscare"), "--version"],
                [str(VENV_BIN / "lvscare"), "--version"],
            ),
            (
                "bootstrap --help",
                [str(exe_dirs[0] / "bootstrap"), "--help"],
                [str(VENV_BIN / "bootstrap"), "--help"],
            ),
            (
                "lvscare --version (one-dir)",
                [str(lvdir / "lvscare"), "--version"],
                [str(VENV_BIN / "lvscare"), "--version"],
            ),
        ]
        print(f"{'command':<30} {'one-file':>9} {'venv':>9}")
        for label, frozen, venv in pairs:
            print(f"{label:<30} {timed(frozen, args.runs):9.0f} {timed(venv, args.runs):9.0f}")
        if not args.no_cold:
            for _s, _o, cache in cold:
                shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
