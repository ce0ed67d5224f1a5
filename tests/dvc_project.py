"""A copy of the project in a fresh git + DVC repository, as a clean clone would be, with the SST
files as corpus.url and a short training: for the tests of what a user sees in `dvc exp show`,
`dvc plots` and the README's snippets (test_dvc_views.py, test_readme.py)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def tracked_files() -> list[str]:
    """The files of the project's last commit (what a clone holds)."""
    listed = subprocess.run(["git", "ls-tree", "-r", "-z", "--name-only", "HEAD"], cwd=PROJECT_ROOT,
                            capture_output=True, check=True)
    return [name for name in listed.stdout.decode().split("\0") if name]


def copy_tree(source: Path, target: Path, *ignore: str) -> None:
    """shutil.copytree with mtimes, numba's compiled kernels included, but not a kernel file that
    another test process (pytest -n) is writing: numba writes `<file>.tmp.<id>` and renames it,
    so such a file can be gone before it is copied."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.tmp.*", *ignore), dirs_exist_ok=True)


def project_env(repo: Path) -> dict[str, str]:
    """The environment of a command in `repo`: its own code and MLflow store, `python` from this venv."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DVC_", "MLFLOW_", "W2V_", "GIT_"))}  # the default store, by design
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` in dvc.yaml
    env["PYTHONPATH"] = str(repo)
    return env


def sh(repo: Path, *command: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(command), cwd=repo, env=project_env(repo), capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def make_project(folder: Path, sst_dir: Path, iterations: int = 200) -> Path:
    """The tracked files copied into folder/project, made a git + DVC repository with one commit;
    training shortened to `iterations`, the corpus read from `sst_dir`."""
    repo = folder / "project"
    for name in tracked_files():
        if name.startswith(".ci/"):
            continue
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, target)
    for package in ("w2v", "pipeline"):  # numba's compiled kernels, with their mtimes
        for cache in (PROJECT_ROOT / package).rglob("__pycache__"):
            copy_tree(cache, repo / cache.relative_to(PROJECT_ROOT))
    settings = repo / "conf" / "experiment.yaml"
    text = re.sub(r"(?m)^  iterations: \d+", f"  iterations: {iterations}", settings.read_text())
    settings.write_text(re.sub(r"(?m)^  checkpoint_every: \d+", f"  checkpoint_every: {iterations // 2}", text))
    sst = repo / "conf" / "corpus" / "sst.yaml"
    sst.write_text(re.sub(r"(?m)^url: .*$", f"url: {sst_dir}", sst.read_text()))
    trees = sst_dir.parent / "trainDevTestTrees_PTB"  # the sentence labels, beside the SST copy
    settings.write_text(re.sub(r"(?m)^  url: http://nlp.stanford.edu/sentiment/.*$", f"  url: {trees}",
                               settings.read_text()))
    sh(repo, sys.executable, "-m", "pipeline.params")
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "config", "user.email", "test@example.com")
    sh(repo, "git", "config", "user.name", "test")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "project")
    return repo


@pytest.fixture(scope="session")
def reproduced_project(tmp_path_factory, sst_dir) -> Path:
    """make_project after `dvc repro` (what `make repro` runs), its results committed. Shared by
    the test modules that import it; a test that changes the workspace says so."""
    repo = make_project(tmp_path_factory.mktemp("reproduced"), sst_dir)
    sh(repo, "dvc", "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "results")
    return repo
