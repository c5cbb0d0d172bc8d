"""The README's two set-up commands stay true: .ci/run runs the same test command."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(), flags=re.S)[:2]


def test_readme_starts_with_the_two_commands():
    main, tests = readme_commands()
    assert main.startswith("pip install torch==2.13.0 && ") and "idinvert " in main
    assert tests.startswith("pip install torch==2.13.0 && ") and "pytest" in tests
    head = (REPO / "README.md").read_text().split("---")[0]
    assert head.count("```bash") == 2, "the two set-up commands must be the first code blocks"


def test_ci_runs_the_readme_test_command():
    _, tests = readme_commands()
    assert tests in (REPO / ".ci" / "run").read_text().splitlines()
