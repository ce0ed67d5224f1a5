"""The committed params.yaml is exactly what DVC's Hydra composition makes of conf/ without the
local layer (conf/local/local.yaml, git-ignored), which every composition otherwise includes."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.params import LOCAL_LAYER, compose_params

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def committed_params() -> list[str]:
    """params.yaml as in git's HEAD and as in the working copy (`make repro OVERRIDES=...` and
    `dvc exp run -S ...` rewrite the latter with their overrides and the local layer)."""
    texts = [(PROJECT_ROOT / "params.yaml").read_text()]
    head = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        texts.append(head.stdout)
    return texts


def test_committed_params_equal_the_composition_of_conf(tmp_path):
    compose_params(tmp_path / "params.yaml", [], local_layer=False)
    composed = (tmp_path / "params.yaml").read_text()
    assert composed in committed_params(), (
        "params.yaml is out of date with conf/: run `.venv/bin/python -m pipeline.params --without-local` and commit it")


def test_composition_applies_overrides_as_dvc_exp_run_does(tmp_path):
    compose_params(tmp_path / "params.yaml", ["loss=naive_softmax", "train.lr=0.1"])
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["loss"] == {"name": "naive_softmax"} and params["train"]["lr"] == 0.1
    assert "hydra" not in params  # Hydra's own settings stay in conf/


@pytest.fixture
def project_copy(tmp_path):
    """conf/ and pipeline/params.py in a folder of their own, to write a local layer into."""
    copy = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "conf", copy / "conf", ignore=shutil.ignore_patterns("local"))
    shutil.copytree(PROJECT_ROOT / "pipeline", copy / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def run_params(copy: Path, *arguments: str) -> dict:
    done = subprocess.run(["python", "-m", "pipeline.params", *arguments], cwd=copy, capture_output=True,
                          text=True, env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(copy)})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load((copy / "params.yaml").read_text())


@pytest.mark.slow
def test_the_local_layer_is_composed_unless_left_out(project_copy):
    without = run_params(project_copy)
    assert without["corpus"]["url"].startswith("http")
    (project_copy / "conf" / "local").mkdir()
    (project_copy / "conf" / "local" / "local.yaml").write_text(
        "corpus:\n  url: ../shared/data/stanfordSentimentTreebank\n  sha256: null\ntrain:\n  iterations: 100\n")
    layered = run_params(project_copy)
    assert layered["corpus"]["url"] == "../shared/data/stanfordSentimentTreebank"
    assert layered["train"]["iterations"] == 100 and layered["corpus"]["min_count"] == without["corpus"]["min_count"]
    assert "sha256" not in without["corpus"] and layered["corpus"]["sha256"] is None  # an optional override
    assert run_params(project_copy, "train.iterations=7")["train"]["iterations"] == 7  # overrides win
    assert run_params(project_copy, "--without-local") == without


def test_the_local_layer_is_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", str(LOCAL_LAYER)], cwd=PROJECT_ROOT)
    assert ignored.returncode == 0
