"""What every command line must end in, whatever it was given: success, or exit 2 with one
last line naming the problem; never a traceback."""

from __future__ import annotations

from click.testing import Result


def one_line_or_success(result: Result, prog: str) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    if result.exit_code == 2:
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith((f"{prog}: ", "Error: ")), result.stderr
