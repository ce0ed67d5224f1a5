"""Sharing pipeline outputs through a DVC remote: push from one checkout, pull into a fresh clone.

A real git + DVC repository in tmp_path holds a copy of the pipeline (conf/, pipeline/, w2v/,
dvc.yaml, .dvc/config) with a tiny text corpus and few iterations; `dvc repro` runs every stage,
`dvc push` sends the outputs to a local-directory remote, and a `git clone` + `dvc pull` must then
be clean: `dvc status` up to date and `dvc repro` running nothing, with byte-identical outputs.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dvc_project import copy_tree

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
UP_TO_DATE = "Data and pipelines are up to date."
# Outputs DVC keeps in its cache (pushed and pulled) and ones it leaves to git (cache: false).
CACHED_OUTPUTS = ["data/raw", "data/processed/vocab.parquet", "data/processed/tokens.npy", "models/vectors.txt",
                  "models/vectors.npy", "models/outside_vectors.npy"]
GIT_OUTPUTS = ["data/processed/stats.json", "reports/gradcheck.json", "metrics/train.json", "plots/loss.csv",
               "metrics/evaluation.json"]


def run(argv: list[str], cwd: Path, env: dict) -> str:
    """Run a command; on failure show its output in the assertion message."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def tiny_text_corpus(sst_dir: Path, path: Path, sentences: int = 300) -> Path:
    """The first SST sentences as a plain-text corpus (one sentence per line)."""
    lines = (sst_dir / "datasetSentences.txt").read_text(encoding="utf-8").splitlines()[1:sentences + 1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line.split("\t", 1)[1] + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path) -> dict:
    home = tmp_path / "home"
    home.mkdir()
    return os.environ | {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",  # the stages' `python` is this venv's
        "HOME": str(home),  # no user-level git or DVC config leaks in
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }


def make_pipeline_repo(repo: Path, corpus_file: Path, env: dict) -> None:
    """A git + DVC repository holding a copy of the pipeline, configured for a tiny quick run."""
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    for folder in ("conf", "pipeline", "w2v"):
        # __pycache__ comes along (it holds numba's compiled kernels, valid for the same source
        # files): it must not count as a change of the w2v dependency, here or in a clone.
        copy_tree(PROJECT_ROOT / folder, repo / folder)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config"):
        shutil.copy(PROJECT_ROOT / name, repo / name)
    # Compose conf/ into params.yaml as `make params` does, with the tiny settings.
    run([sys.executable, "-m", "pipeline.params", "corpus=text", f"corpus.url={corpus_file}", "corpus.min_count=2",
         "train.iterations=300", "train.checkpoint_every=100", "train.anneal_every=200", "train.log_every=10"],
        repo, env)


def test_outputs_pushed_to_a_remote_pull_into_a_fresh_clone_without_rerunning(tmp_path, sst_dir, env):
    corpus_file = tiny_text_corpus(sst_dir, tmp_path / "corpus" / "tiny.txt")
    origin, clone, remote = tmp_path / "origin", tmp_path / "clone", tmp_path / "remote"

    make_pipeline_repo(origin, corpus_file, env)
    ran = run(["dvc", "repro"], origin, env)
    for name in ("download", "tokenize", "gradcheck", "train", "evaluate"):
        assert f"Running stage '{name}'" in ran
    run(["dvc", "remote", "add", "--default", "shared", str(remote)], origin, env)
    run(["git", "add", "-A"], origin, env)
    run(["git", "commit", "-q", "-m", "tiny pipeline run"], origin, env)
    pushed = run(["dvc", "push"], origin, env)
    assert "pushed" in pushed
    assert any(p.is_file() for p in (remote / "files").rglob("*")), "the remote holds no objects"
    assert "in sync" in run(["dvc", "status", "--cloud"], origin, env)

    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    for output in CACHED_OUTPUTS:
        assert not (clone / output).exists(), f"{output} is in git, not in the DVC cache"
    assert not (clone / ".dvc" / "cache").exists()
    run(["dvc", "pull"], clone, env)

    for output in CACHED_OUTPUTS + GIT_OUTPUTS:
        assert_same_content(origin / output, clone / output)
    assert UP_TO_DATE in run(["dvc", "status"], clone, env)
    rerun = run(["dvc", "repro"], clone, env)
    assert "Running stage" not in rerun, rerun
    assert UP_TO_DATE in rerun
    assert run(["git", "status", "--porcelain"], clone, env) == "", "dvc repro changed tracked files"
    for output in CACHED_OUTPUTS:
        assert_same_content(origin / output, clone / output)


def assert_same_content(expected: Path, actual: Path) -> None:
    assert actual.exists(), f"{actual} is missing"
    if expected.is_dir():
        names = sorted(p.relative_to(expected) for p in expected.rglob("*") if p.is_file())
        assert names == sorted(p.relative_to(actual) for p in actual.rglob("*") if p.is_file())
        for name in names:
            assert (expected / name).read_bytes() == (actual / name).read_bytes(), name
    else:
        assert expected.read_bytes() == actual.read_bytes(), actual
