"""The README is the user's manual: short, no build history, and true to the CLI and the config.

Flags are read from the command line's own ``--help`` output (what a user sees), so the test holds
however ``autodistill.cli`` builds its parser.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from autodistill import cli
from autodistill.config import load_config
from autodistill.config.run import RunConfig

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MEASUREMENTS = ROOT / "docs" / "MEASUREMENTS.md"
FIRST_COMMANDS = ("bash scripts/demo.sh", "bash scripts/test.sh")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def _help(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        cli.main(argv)
    return out.getvalue()


@cache
def cli_commands() -> tuple[str, ...]:
    """The subcommands, from the top-level usage line (``{teacher,distill,...}``)."""
    found = re.search(r"\{([a-z_,-]+)\}", _help(["--help"]))
    assert found, "autodistill --help lists no subcommands"
    return tuple(found.group(1).split(","))


@cache
def cli_flags() -> frozenset[str]:
    """Every long option of every subcommand, as its --help prints it."""
    flags = set(FLAG.findall(_help(["--help"])))
    for command in cli_commands():
        flags |= set(FLAG.findall(_help([command, "--help"])))
    return frozenset(flags)


def code_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line number of the opening fence) of each fenced block, in order."""
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def code_spans(text: str) -> list[str]:
    """Inline code spans and the bodies of shell blocks: where a reader copies a flag from."""
    shell = [body for lang, body, _ in code_blocks(text) if lang in ("", "bash", "sh", "shell", "console")]
    return re.findall(r"`([^`]+)`", FENCE.sub("", text)) + shell  # a span may wrap onto the next line


def unknown_flags(text: str) -> list[str]:
    known = cli_flags()
    return sorted({flag for span in code_spans(text) for flag in FLAG.findall(span)} - known)


def config_reference(text: str) -> str:
    blocks = [body for lang, body, _ in code_blocks(text) if lang == "yaml"]
    assert len(blocks) == 1, f"the README should hold one YAML block, the config reference; found {len(blocks)}"
    return blocks[0]


def config_keys(node: Any, prefix: str = "") -> set[str]:
    """Dotted keys of a config section, its subsections expanded."""
    out: set[str] = set()
    for f in fields(node):
        value = getattr(node, f.name)
        out |= config_keys(value, f"{prefix}{f.name}.") if is_dataclass(value) else {prefix + f.name}
    return out


def yaml_keys(data: dict[str, Any], node: Any, prefix: str = "") -> set[str]:
    """Dotted keys of a YAML mapping, expanded where ``node`` (the matching section) has a subsection."""
    out: set[str] = set()
    for name, value in data.items():
        sub = getattr(node, name, None)
        nested = is_dataclass(sub) and isinstance(value, dict)
        out |= yaml_keys(value, sub, f"{prefix}{name}.") if nested else {prefix + name}
    return out


def test_readme_is_short() -> None:
    lines = readme().count("\n") + 1
    assert lines < 360, f"README.md has {lines} lines; the manual should stay under 360 (measurements go in docs/)"


def test_readme_and_measurements_have_no_build_history() -> None:
    for doc in (README, MEASUREMENTS):
        hits = [
            line for line in doc.read_text(encoding="utf-8").splitlines() if re.search(r"\bsessions?\b", line, re.I)
        ]
        assert not hits, f"{doc.name} tells how it was built ('session'): {hits[:3]}"


def test_every_flag_in_code_exists_in_the_cli() -> None:
    assert "--set" in cli_flags() and "--max-params" in cli_flags()  # the help was read
    missing = unknown_flags(readme())
    assert not missing, f"README.md names flags that no autodistill command has: {missing}"


def test_a_flag_of_another_tool_is_caught() -> None:
    text = (
        "Try `--no-pruning` when the front matters, or `--set\nseed=1` and `--seeds\n3`.\n\n"
        "```bash\nautodistill export c.yaml --max-parmas 5\n```\n"
    )
    assert unknown_flags(text) == ["--max-parmas", "--no-pruning", "--seeds"]


def test_every_command_named_exists() -> None:
    named = {m for span in code_spans(readme()) for m in re.findall(r"\bautodistill ([a-z]+)\b", span)}
    assert named, "the README names no autodistill command"
    assert named <= set(cli_commands()), f"unknown commands: {sorted(named - set(cli_commands()))}"


def test_the_two_commands_come_first() -> None:
    text = readme()
    blocks = code_blocks(text)
    assert blocks, "README.md has no code block"
    _, first, line = blocks[0]
    for command in FIRST_COMMANDS:
        assert re.search(rf"^{re.escape(command)}\b", first, re.M), f"the first code block lacks {command!r}"
    headings = [row for row in text.splitlines()[: line - 1] if row.startswith("## ")]
    assert not headings, f"the two commands should come before any section; found {headings}"


def test_config_reference_is_every_key_with_its_default(tmp_path: Path) -> None:
    block = config_reference(readme())
    path = tmp_path / "reference.yaml"
    path.write_text(block, encoding="utf-8")
    assert load_config(path, []) == RunConfig(), "the README's config reference differs from the defaults"
    written, real = yaml_keys(yaml.safe_load(block), RunConfig()), config_keys(RunConfig())
    assert written == real, f"missing from the README: {sorted(real - written)}; unknown: {sorted(written - real)}"
