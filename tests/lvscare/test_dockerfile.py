"""The Dockerfile installs lvscare exactly as the README tells people to (no engine runs here)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
INSTALL_WORDS = ("apt-get install", "pip install", " venv ", "ln -s")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def commands(shell: str) -> list[str]:
    """`a && b` as ["a", "b"], each with its words normalised."""
    return [" ".join(shlex.split(part)) for part in shell.split("&&") if part.strip()]


def dockerfile_commands() -> list[str]:
    return [c for kind, args in instructions(DOCKERFILE.read_text()) if kind == "RUN"
            for c in commands(args)]  # fmt: skip


def readme_install_block() -> list[str]:
    text = README.read_text()
    section = text[text.index("\n## Install\n") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the README's Install section has no sh block"
    return [c for line in block.group(1).splitlines() if line.strip() for c in commands(line)]


def is_install(command: str) -> bool:
    return any(word in f" {command} " for word in INSTALL_WORDS)


def test_the_dockerfile_installs_exactly_as_the_readme_says() -> None:
    readme = readme_install_block()
    docker = [c for c in dockerfile_commands() if is_install(c)]
    assert readme, "no install commands found in the README"
    assert sorted(readme) == sorted(docker), (readme, docker)
    # and in an order that works: packages, venv, pip into it, link onto PATH
    assert [c for c in readme if c in docker] == readme
    venv = next(c for c in readme if " venv " in f" {c} ")
    pip = next(c for c in readme if "pip install" in c)
    assert readme.index(venv) < readme.index(pip)


def test_the_image_is_slim_with_lvscare_as_entrypoint_and_no_build_tools() -> None:
    steps = instructions(DOCKERFILE.read_text())
    args = {k: v for k, v in steps if k == "ARG"}
    base = args["ARG"].split("=", 1)[1]
    assert "-slim" in base
    froms = [v for k, v in steps if k == "FROM"]
    assert len(froms) == 2 and all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    entrypoint = [v for k, v in steps if k == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoint] == [["lvscare"]]
    runs = " ".join(dockerfile_commands())
    for tool in ("build-essential", "gcc", "python3-dev", "git "):
        assert tool not in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    # the final stage takes only the installed virtualenv from the build stage
    final = steps[[i for i, (k, _) in enumerate(steps) if k == "FROM"][-1] :]
    copies = [v for k, v in final if k == "COPY"]
    assert copies == ["--from=build /opt/lvscare /opt/lvscare"]


def test_the_build_context_is_only_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"  # everything out, then the exceptions
    copied = {
        word
        for k, v in instructions(DOCKERFILE.read_text())
        if k == "COPY" and not v.startswith("--from")
        for word in v.split()[:-1]
    }
    assert {f"!{p}" for p in copied} <= set(ignore)
