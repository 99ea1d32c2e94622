"""The docs cannot drift from the CLI: every ``dbembed ...`` example in README.md and docs/ names a
real command, and every flag it uses (and every ``--flag`` the README mentions) is in that
command's real ``--help``; the per-command claims about ``--json``/``--config``/``--database-url``
hold for every command the app has."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dbembed.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GROUPS = {"chat", "keys"}
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b")


@cache
def help_text(*command: str) -> str:
    out = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert out.exit_code == 0, (command, out.output)
    return out.output


def commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for group in app.registered_groups:
        assert group.name
        sub = group.typer_instance
        found.extend((group.name, c.name or "") for c in sub.registered_commands)
    found.extend((c.name or "",) for c in app.registered_commands)
    return found


def examples() -> list[tuple[str, int, str]]:
    """(file, line, text) of each ``dbembed ...`` invocation in a code block or an inline code span."""
    out: list[tuple[str, int, str]] = []
    for doc in DOCS:
        in_block = False
        for no, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            spans = [re.sub(r"(^|\s)(#|-- ).*", "", line)] if in_block else re.findall(r"`([^`]+)`", line)
            for span in spans:
                for m in re.finditer(r"(?:^|[\s(|;&$])dbembed(\s+[^#|;&`]*)", span):
                    out.append((doc.name, no, "dbembed" + m.group(1).rstrip()))
    return out


def _command_of(words: list[str]) -> tuple[str, ...] | None:
    if not words or words[0].startswith("-"):
        return None
    if words[0] in GROUPS and len(words) > 1:
        return (words[0], words[1])
    return (words[0],)


EXAMPLES = examples()


def test_the_docs_have_examples_to_check() -> None:
    assert len(EXAMPLES) > 30
    assert {c for c in commands()} >= {("run",), ("files",), ("chat", "search"), ("keys", "create")}


@pytest.mark.parametrize(("doc", "line", "text"), EXAMPLES, ids=[f"{d}:{n}" for d, n, _ in EXAMPLES])
def test_each_documented_invocation_exists_with_its_flags(doc: str, line: int, text: str) -> None:
    try:
        words = shlex.split(text)[1:]
    except ValueError:
        words = text.split()[1:]
    while words and words[0] in ("-v", "--verbose"):
        words = words[1:]
    cmd = _command_of(words)
    if cmd is None or not re.fullmatch(r"[a-z-]+", cmd[0]):
        return  # prose such as "dbembed finds them" or "dbembed's"
    known = {c for c in commands()}
    if cmd not in known:
        if (cmd[0],) in known or cmd[0] in GROUPS:
            cmd = cmd[:1]
        elif cmd[0] in {"is", "never", "run's", "finds", "uses", "keeps", "writes", "turns", "does"}:
            return
        else:
            pytest.fail(f"{doc}:{line}: `{text}` names no dbembed command")
    helptext = help_text(*cmd)
    for flag in FLAG.findall(" ".join(w.split("=", 1)[0] for w in words if w.startswith("-"))):
        assert flag in helptext, f"{doc}:{line}: `{text}`: {' '.join(cmd)} has no {flag}"


def test_every_flag_the_readme_mentions_exists_somewhere() -> None:
    every = " ".join(help_text(*c) for c in commands()) + help_text()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for span in re.findall(r"`([^`]+)`", text):
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span):
            for variant in flag.split("/"):
                assert variant in every, f"README mentions {variant} (in `{span}`), which no command has"


def test_the_readme_claims_about_common_flags_hold() -> None:
    for cmd in commands():
        h = help_text(*cmd)
        if cmd not in {("serve",), ("schedule",)}:
            assert "--json" in h, f"{' '.join(cmd)} has no --json, as README says every reporting command does"
        if cmd != ("generate",):
            assert "--config" in h and "--database-url" in h, f"{' '.join(cmd)} lacks --config/--database-url"
    assert "--log-format" in help_text("schedule")
    assert "--verbose" in help_text() and "`dbembed -v COMMAND`" in (ROOT / "README.md").read_text()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "the long-running `schedule` logs" in readme and "all but `generate`" in readme
