"""conf/ composed with Hydra's compose API: the defaults are the classic run, and every invalid
value stops with one line naming its key, before any work (also for a whole sweep)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from pipeline.common import StageError
from pipeline.config import train_config, validate

CONF = Path(__file__).resolve().parent.parent / "conf"


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_defaults_are_the_classic_run():
    cfg = composed()
    assert cfg.loss.name == "neg_sampling"
    assert dict(cfg.train) == {
        "dim": 10, "window": 5, "K": 10, "lr": 0.3, "lr_schedule": "step", "iterations": 40000,
        "batch_size": 50, "anneal_every": 20000, "checkpoint_every": 5000, "log_every": 10, "engine": "batched",
        "seed": 0, "pool_copies": 30, "threads": 1, "dtype": "float64"}
    assert cfg.mlflow.experiment == "w2v"
    validate(cfg)
    config = train_config(cfg)
    assert (config.loss, config.dim, config.window, config.K, config.lr) == ("neg_sampling", 10, 5, 10, 0.3)


def test_sweep_dimensions_compose():
    cfg = composed("loss=naive_softmax", "train.window=3", "train.K=5", "train.lr=0.1", "mlflow.experiment=grid")
    assert (cfg.loss.name, cfg.train.window, cfg.train.K, cfg.train.lr, cfg.mlflow.experiment) == (
        "naive_softmax", 3, 5, 0.1, "grid")
    validate(cfg)


@pytest.mark.parametrize("key, value", [
    ("train.window", 0), ("train.K", 0), ("train.lr", 0), ("train.lr", -0.1), ("train.dim", 0),
    ("train.iterations", 0), ("train.batch_size", 0), ("train.window", 2.5), ("train.lr", "fast"),
    ("train.engine", "gpu"), ("train.lr_schedule", "cosine"), ("loss.name", "hinge"), ("train.log_every", 0), ("train.checkpoint_every", -1),
])
def test_invalid_values_name_their_key(key, value):
    cfg = composed()
    with open_dict(cfg):
        section, name = key.split(".")
        cfg[section][name] = value
    with pytest.raises(StageError, match=rf"^{key.replace('.', '[.]')} must be"):
        validate(cfg)


def run_train(tmp_path, *overrides, multirun=False):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "W2V_"))}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return subprocess.run([sys.executable, "-m", "pipeline.train", *(["-m"] if multirun else []),
                           f"hydra.run.dir={tmp_path / 'run'}",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}", f"paths.processed={tmp_path / 'none'}",
                           *overrides], cwd=tmp_path, env=env, capture_output=True, text=True)


def test_command_line_stops_before_any_work_with_one_line(tmp_path):
    done = run_train(tmp_path, "train.window=0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["error: train.window must be an integer >= 1, got 0"]
    assert not (tmp_path / "mlflow.db").exists()  # no run was opened


def test_unknown_loss_is_refused_by_name(tmp_path):
    done = run_train(tmp_path, "loss=hinge")
    assert done.returncode != 0
    assert "Could not find 'loss/hinge'" in done.stderr and "neg_sampling" in done.stderr


def test_a_sweep_with_one_bad_value_stops_before_its_first_job(tmp_path):
    done = run_train(tmp_path, "train.lr=0.1,-1", multirun=True)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: job train.lr=-1: train.lr must be a number > 0, got -1"]
    assert not (tmp_path / "mlflow.db").exists()
    assert not list((tmp_path / "sweep").glob("[0-9]*"))  # no job started
