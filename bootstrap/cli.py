"""bootstrap command line (filled in by the bootstrap work)."""


def main() -> None:
    raise SystemExit("bootstrap: not implemented yet")
