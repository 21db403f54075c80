"""A kernel table as full as a big cluster's: kube-proxy in IPVS mode puts one virtual server
per Service beside lvscare's. Loaded and read with ipvsadm's save/restore (one C process), as
dumping 10,000 services through Python under the lab's emulation would take minutes."""

from __future__ import annotations

import subprocess

from tests.support.lab_lvscare import VS


def foreign_rules(services: int, dests: int = 3) -> str:
    """`ipvsadm -R` input: `services` virtual servers on 10.96.0.0/16:80 (kube-proxy's
    ClusterIP range), each with `dests` real servers in 198.19.0.0/16 (never contacted)."""
    lines = []
    for i in range(services):
        vs = f"10.96.{i // 250}.{i % 250 + 1}:80"
        lines.append(f"-A -t {vs} -s rr")
        for j in range(dests):
            n = i * dests + j
            lines.append(f"-a -t {vs} -r 198.19.{n // 250 % 256}.{n % 250 + 1}:8080 -m -w 1")
    return "\n".join(lines) + "\n"


def load(rules: str) -> None:
    subprocess.run(["ipvsadm", "-R"], input=rules, text=True, check=True, timeout=600)


def saved_rules(without: str = VS) -> list[str]:
    """The whole table as `ipvsadm -Sn` prints it, less the lines of the virtual server
    `without` (lvscare's): what lvscare must never change."""
    out = subprocess.run(
        ["ipvsadm", "-Sn"], capture_output=True, text=True, check=True, timeout=600
    ).stdout
    return sorted(line for line in out.splitlines() if f" {without} " not in f"{line} ")


def own_dests(vs: str = VS) -> dict[str, int]:
    """{real server ip: weight} of one virtual server through `ipvsadm -Ln -t`: the cost of
    one service, whatever else the table holds; {} if it is missing."""
    run = subprocess.run(
        ["ipvsadm", "-Ln", "-t", vs], capture_output=True, text=True, check=False, timeout=60
    )
    if run.returncode != 0:
        return {}
    out: dict[str, int] = {}
    for line in run.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "->" and fields[1] != "RemoteAddress:Port":
            out[fields[1].rsplit(":", 1)[0]] = int(fields[3])
    return out
