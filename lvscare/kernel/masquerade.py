"""The masquerade rule link mode needs, in an nftables table of our own.

Why nft: the rule lives in its own table (`inet lvscare`), loaded in one atomic
transaction and removed by deleting that table, so it can never disturb kube-proxy's or
the CNI's iptables rules, and cleaning up cannot miss a rule. pyroute2's nftables support
does not cover NAT expressions, so the `nft` program (Debian's nftables) loads it.

The rule matches connections whose *original* destination is the VIP (IPVS keeps the
netfilter conntrack entry when `net.ipv4.vs.conntrack=1`), i.e. exactly the traffic IPVS
forwards for us, and rewrites the source to the outgoing interface's address.
"""

from __future__ import annotations

import shutil
import subprocess

from lvscare.address import IPAddress

TABLE = "lvscare"


class MasqueradeError(Exception):
    pass


def rule(vip: IPAddress) -> str:
    """Every connection whose original destination is the VIP: the VIP is ours alone."""
    family = "ip" if vip.version == 4 else "ip6"
    return f"ct original {family} daddr {vip} masquerade"


def ruleset(vip: IPAddress, port: int) -> str:
    return (
        f"table inet {TABLE} {{}}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        f"  chain postrouting {{\n"
        f"    type nat hook postrouting priority srcnat; policy accept;\n"
        f"    {rule(vip)}\n"
        f"  }}\n"
        f"}}\n"
    )


def _nft(script: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    nft = shutil.which("nft")
    if nft is None:
        raise MasqueradeError("nft not found: install nftables for --mode link")
    return subprocess.run(
        [nft, *args], input=script, capture_output=True, text=True, timeout=30, check=False
    )


def ensure_masquerade(vip: IPAddress, port: int) -> bool:
    """Load the table unless it already holds exactly our rule; True if it was (re)loaded."""
    listed = _nft(None, "list", "table", "inet", TABLE)
    if listed.returncode == 0 and rule(vip) in listed.stdout:
        return False
    proc = _nft(ruleset(vip, port), "-f", "-")
    if proc.returncode != 0:
        raise MasqueradeError(f"nft could not load table inet {TABLE}: {proc.stderr.strip()}")
    return True


def remove_masquerade() -> bool:
    """Delete our table; True if it existed."""
    if shutil.which("nft") is None:
        return False
    return _nft(None, "delete", "table", "inet", TABLE).returncode == 0
