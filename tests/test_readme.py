"""The README runs: every ``bash`` and ``python`` block of README.md is either executed here or marked, on the
line before it, with the reason it is not (so a README example that fails fails CI).

Markers (HTML comments, on the line just before the block's opening fence)::

    <!-- test -->                 run the block: python blocks with exec, bash blocks line by line in a
                                  scratch folder (``idinvert ...`` lines in-process, others with bash -e)
    <!-- no test: REASON -->      not run (needs training, the network, a server, placeholders); the reason
                                  is required

The README is read when the tests are collected, so blocks added or changed later are picked up; an unmarked
block is a failure that says how to mark it. The first two tests keep the two set-up commands true.
"""

from __future__ import annotations

import glob
import io
import re
import shlex
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = re.compile(r"^<!--\s*(test|no test)\s*(?::\s*(.*?))?\s*-->\s*$")
RUN_LANGUAGES = ("bash", "python")


@dataclass
class Block:
    """One fenced code block of the README."""

    lang: str
    body: str
    line: int  # of the opening fence, 1-based
    marker: str | None  # "test", "no test" or None
    reason: str = ""

    @property
    def label(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def readme_blocks(text: str | None = None) -> list[Block]:
    """The bash and python blocks of the README with the marker on the line before each (if any)."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        if fence[1] in RUN_LANGUAGES:
            marker = MARKER.match(lines[i - 1].strip()) if i > 0 else None
            blocks.append(Block(fence[1], "\n".join(lines[i + 1 : end]), i + 1, marker[1] if marker else None,
                                (marker[2] or "") if marker else ""))
        i = end + 1
    return blocks


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.S)[:2]


def test_readme_starts_with_the_two_commands():
    main, tests = readme_commands()
    assert main.startswith("pip install torch==2.13.0 && ") and "idinvert " in main
    assert tests.startswith("pip install torch==2.13.0 && ") and "pytest" in tests
    head = README.read_text().split("---")[0]
    assert head.count("```bash") == 2, "the two set-up commands must be the first code blocks"


def test_ci_runs_the_readme_test_command():
    _, tests = readme_commands()
    assert tests in (REPO / ".ci" / "run").read_text().splitlines()


def test_every_readme_block_is_run_or_says_why_not():
    blocks = readme_blocks()
    unmarked = [b.label for b in blocks if b.marker is None]
    assert not unmarked, (f"{', '.join(unmarked)}: put `<!-- test -->` on the line before the block to run it "
                          "in tests/test_readme.py, or `<!-- no test: REASON -->` saying why it cannot run offline")
    unexplained = [b.label for b in blocks if b.marker == "no test" and not b.reason.strip()]
    assert not unexplained, f"{', '.join(unexplained)}: `<!-- no test: REASON -->` needs the reason"
    assert any(b.marker == "test" and b.lang == "python" for b in blocks), "the Python example must run"
    assert any(b.marker == "test" and b.lang == "bash" for b in blocks), "some command block must run"


def test_the_block_parser_on_a_sample():
    sample = ("text\n<!-- test -->\n```bash\nidinvert models\n```\n<!-- no test: trains for hours -->\n"
              "```python\nx = 1\n```\n```toml\n[a]\n```\n```bash\necho hi\n```\n")
    blocks = readme_blocks(sample)
    assert [(b.lang, b.line, b.marker, b.reason, b.body) for b in blocks] == [
        ("bash", 3, "test", "", "idinvert models"), ("python", 7, "no test", "trains for hours", "x = 1"),
        ("bash", 13, None, "", "echo hi")]


def command_lines(body: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    out = []
    for line in joined.splitlines():
        if shlex.split(line, comments=True):
            out.append(line)
    return out


def run_command(line: str, cwd: Path) -> str:
    """Run one README command in ``cwd``: ``idinvert ...`` in-process (shell globs expanded), else with bash."""
    from idinvert_plugins.cli import main

    words = shlex.split(line, comments=True)
    shell_syntax = {"&&", "||", "|", ";", ">", "<", "2>&1"}
    if words[0] == "idinvert" and not shell_syntax & set(words):
        args = []
        for w in words[1:]:
            matches = sorted(glob.glob(w, root_dir=cwd)) if any(c in w for c in "*?[") else []
            args += matches or [w]
        out, err = io.StringIO(), io.StringIO()
        try:
            with redirect_stdout(out), redirect_stderr(err):
                code = main(args)
        except SystemExit as exc:  # argparse errors
            code = exc.code
        assert code == 0, f"`{line}` exited with {code}:\n{out.getvalue()[-2000:]}\n{err.getvalue()[-2000:]}"
        return out.getvalue()
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", line], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    output = f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert done.returncode == 0, f"`{line}` exited with {done.returncode}:\n{output}"
    return done.stdout


@pytest.mark.parametrize("block", [b for b in readme_blocks() if b.marker == "test"], ids=lambda b: b.label)
def test_readme_block_runs(block, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the README's examples work offline
    monkeypatch.chdir(tmp_path)
    current = {b.line: b for b in readme_blocks()}
    assert block.line in current and current[block.line].body == block.body, "README.md changed since collection"
    if block.lang == "python":
        exec(compile(block.body, block.label, "exec"), {"__name__": "__readme__"})
        return
    for line in command_lines(block.body):
        run_command(line, tmp_path)


def test_run_command_reports_the_failing_line(tmp_path):
    with pytest.raises(AssertionError, match=r"`idinvert info no-such-model-x` exited with 2"):
        run_command("idinvert info no-such-model-x", tmp_path)
    with pytest.raises(AssertionError, match=r"`false` exited with 1"):
        run_command("false", tmp_path)
    assert run_command("echo a  # a comment", tmp_path) == "a\n"
