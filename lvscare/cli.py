"""lvscare command line (placeholder until the care command lands)."""


def main() -> None:
    raise SystemExit("lvscare: not implemented yet")
