"""Every ```python block of README.md runs as written, in a project where `make repro` has run
(a copy of the project as a clone holds it, reproduced with `dvc repro`, trained 200 iterations).
Shell blocks are not run: they hold placeholders (/data/wiki.txt, <run id>) and long commands."""
import re
import subprocess
import sys

import pytest

from dvc_project import PROJECT_ROOT, project_env, reproduced_project  # noqa: F401 (a fixture)

BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_blocks() -> list[tuple[int, str]]:
    """(line number, code) of every ```python block of README.md."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in BLOCK.finditer(text)]


def test_the_readme_has_python_blocks():
    assert len(python_blocks()) >= 3


@pytest.mark.parametrize("line, code", python_blocks(), ids=[f"README.md:{n}" for n, _ in python_blocks()])
@pytest.mark.slow
@pytest.mark.integration
def test_python_block_runs_as_written(reproduced_project, line, code):
    done = subprocess.run([sys.executable, "-c", code], cwd=reproduced_project, capture_output=True, text=True,
                          timeout=600, env=project_env(reproduced_project))
    assert done.returncode == 0, f"README.md line {line}:\n{code}\n{done.stderr[-3000:]}"
