"""The committed params.yaml is exactly what DVC's Hydra composition makes of conf/."""
from pathlib import Path

import yaml

from pipeline.params import compose_params

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_committed_params_equal_the_composition_of_conf(tmp_path):
    compose_params(tmp_path / "params.yaml", [])
    committed = (PROJECT_ROOT / "params.yaml").read_text()
    composed = (tmp_path / "params.yaml").read_text()
    assert yaml.safe_load(committed) == yaml.safe_load(composed), (
        "params.yaml is out of date with conf/: run `.venv/bin/python -m pipeline.params` and commit it")
    assert committed == composed


def test_composition_applies_overrides_as_dvc_exp_run_does(tmp_path):
    compose_params(tmp_path / "params.yaml", ["loss=naive_softmax", "train.lr=0.1"])
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["loss"] == {"name": "naive_softmax"} and params["train"]["lr"] == 0.1
    assert "hydra" not in params  # Hydra's own settings stay in conf/
