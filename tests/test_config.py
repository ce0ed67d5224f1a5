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
        "seed": 0, "pool_copies": 30, "subsample": 1e-5, "threads": "auto", "dtype": "auto"}
    assert cfg.mlflow.experiment == "w2v"
    validate(cfg)
    config = train_config(cfg)
    assert (config.loss, config.dim, config.window, config.K, config.lr) == ("neg_sampling", 10, 5, 10, 0.3)
    assert config.dtype == "float32"  # dtype auto with negative sampling on the batched engine


def test_each_loss_brings_its_own_step_and_subsampling_and_an_override_wins():
    naive = train_config(composed("loss=naive_softmax"))
    assert (naive.lr, naive.lr_schedule, naive.subsample) == (1.5, "linear", 0.0)
    assert train_config(composed()).subsample == 1e-5
    assert train_config(composed("loss=naive_softmax", "train.subsample=1e-4")).subsample == 1e-4
    with pytest.raises(StageError, match="train.subsample must be a finite number >= 0"):
        validate(composed("train.subsample=-1"))


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


@pytest.mark.slow
def test_command_line_stops_before_any_work_with_one_line(tmp_path):
    done = run_train(tmp_path, "train.window=0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["error: train.window must be an integer >= 1, got 0"]
    assert not (tmp_path / "mlflow.db").exists()  # no run was opened


@pytest.mark.slow
def test_unknown_loss_is_refused_by_name(tmp_path):
    done = run_train(tmp_path, "loss=hinge")
    assert done.returncode != 0
    assert "Could not find 'loss/hinge'" in done.stderr and "neg_sampling" in done.stderr


@pytest.mark.slow
def test_a_sweep_with_one_bad_value_stops_before_its_first_job(tmp_path):
    done = run_train(tmp_path, "train.lr=0.1,-1", multirun=True)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: job train.lr=-1: train.lr must be a finite number > 0, got -1"]
    assert not (tmp_path / "mlflow.db").exists()
    assert not list((tmp_path / "sweep").glob("[0-9]*"))  # no job started


# --- the schema: every key of conf/ with a wrong type, a wrong value and an unknown neighbour ---

def _bad_overrides(key: str, rule) -> list[str]:
    """Overrides as a user types them: a value of the wrong type, then a wrong value of the right type."""
    from w2v.rules import Boolean, Choice, Either, Integer, ListOf, NonNegative, Positive, Sha256, Text

    if isinstance(rule, ListOf):  # a grid of numbers
        return [f"{key}=5", f"{key}=[]", f"{key}=[1,-1]"]
    if isinstance(rule, Either):  # train.threads: auto or an integer >= 1
        return [f"{key}=fast", f"{key}=0"]
    if isinstance(rule, Integer):
        return [f"{key}=abc", f"{key}={rule.minimum - 1}", f"{key}=2.5"]
    if isinstance(rule, Positive):
        return [f"{key}=fast", f"{key}=-1", f"{key}=inf", f"{key}=nan"]
    if isinstance(rule, NonNegative):
        return [f"{key}=fast", f"{key}=-1e-5", f"{key}=inf"]
    if isinstance(rule, Choice):
        return [f"{key}=3", f"{key}=nope"]
    if isinstance(rule, Boolean):
        return [f"{key}=maybe", f"{key}=2"]
    if isinstance(rule, Sha256):
        return [f"{key}=5", f"{key}=abc"]
    assert isinstance(rule, Text), key
    return [f"{key}=5", f"{key}=''"]


def _schema_cases():
    from omegaconf import OmegaConf

    from pipeline.config import RULES

    defaults = composed()
    for key, rule in RULES.items():
        absent = "*" in key or OmegaConf.select(defaults, key, default="<absent>") == "<absent>"
        plus = "+" if absent else ""
        key = key.replace("*", "extra")  # a new corpus.files / labels.files entry
        for override in _bad_overrides(key, rule):
            yield pytest.param(key, [plus + override], id=override)
        if not key.endswith(".files.extra"):  # any name is a valid corpus.files / labels.files entry
            neighbour = f"+{key}x=1"
            yield pytest.param(key + "x", [neighbour], id=neighbour)
    yield pytest.param("corpus.files", ["+corpus.files=5"], id="+corpus.files=5")
    yield pytest.param("train.dtype", ["loss=naive_softmax", "train.dtype=float32"], id="naive_softmax+float32")
    yield pytest.param("train.dtype", ["train.engine=loop", "train.dtype=float32"], id="loop+float32")
    yield pytest.param("foo", ["+foo=1"], id="+foo=1")


@pytest.mark.parametrize("key, overrides", list(_schema_cases()))
def test_every_key_refuses_a_wrong_type_a_wrong_value_and_an_unknown_neighbour(key, overrides):
    cfg = composed(*overrides)
    with pytest.raises(StageError) as raised:
        validate(cfg)
    message = str(raised.value)
    assert len(message.splitlines()) == 1
    named = [word.rstrip(":,=") for word in message.split()]
    assert key in named or any(w.startswith(f"{key}=") for w in message.split()), message


def test_every_key_of_conf_has_a_rule_and_every_rule_a_key():
    from pipeline.config import OPTIONAL, RULES, _leaves, plain_config

    for overrides in ([], ["corpus=text", "corpus.url=x.txt"], ["loss=naive_softmax"]):
        cfg = composed(*overrides)
        validate(cfg)
        keys = {key for key, _, rule in _leaves(plain_config(cfg)) if rule is not None}
        assert {key for key, _, rule in _leaves(plain_config(cfg)) if rule is None} == set()
        expected = {key for key in RULES if "*" not in key} - OPTIONAL
        assert expected <= keys | {k for k in expected if k in keys}


def test_lists_of_names_are_defined_once():
    import w2v.engines.batched
    import w2v.engines.loop
    import w2v.losses
    import w2v.trainer
    from pipeline.config import RULES

    assert w2v.engines.batched.LOSSES is w2v.losses.LOSSES is w2v.engines.loop.LOSSES
    assert RULES["loss.name"].names == w2v.losses.LOSSES
    assert RULES["train.engine"].names == tuple(w2v.engines.ENGINES)
    assert RULES["train.lr_schedule"].names == w2v.trainer.LR_SCHEDULES
    assert RULES["train.dtype"] is w2v.trainer.TRAIN_RULES["dtype"]


def test_library_and_pipeline_refuse_the_same_values():
    """TrainConfig and validate apply the same rule objects: each value both accept or both refuse."""
    from w2v.trainer import TRAIN_RULES, TrainConfig

    for name, value in [("dtype", "float16"), ("lr", float("inf")), ("threads", 0), ("window", 2.5),
                        ("lr_schedule", "cosine"), ("seed", -1), ("dtype", "auto"), ("lr", 3)]:
        key = "loss.name" if name == "loss" else f"train.{name}"
        cfg = composed()
        with open_dict(cfg):
            cfg.train[name] = value
        pipeline_ok = library_ok = True
        try:
            validate(cfg)
        except StageError:
            pipeline_ok = False
        try:
            TrainConfig(**{name: value})
        except ValueError:
            library_ok = False
        assert pipeline_ok == library_ok == (TRAIN_RULES[name].problem(value) is None), key


def run_stage(tmp_path, stage_name, *overrides, multirun=False):
    """A stage as a user runs it, on conf/, with every output path in tmp_path (pre-filled)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "W2V_"))}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    paths = [f"paths.{name}={tmp_path / name}" for name in
             ("raw", "processed", "reports", "models", "metrics", "plots", "checkpoints", "download_cache")]
    return subprocess.run([sys.executable, "-m", f"pipeline.{stage_name}", *(["-m"] if multirun else []),
                           f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                           f"compare.output_dir={tmp_path / 'compare'}", *paths, *overrides],
                           cwd=tmp_path, env=env, capture_output=True, text=True)


def _fill_outputs(tmp_path) -> dict:
    files = {}
    for name in ("raw", "processed", "reports", "models", "metrics", "plots", "checkpoints", "compare"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "kept.txt").write_text(name)
        files[tmp_path / name / "kept.txt"] = name
    return files


@pytest.mark.parametrize("stage_name", ["download", "tokenize", "gradcheck", "train", "evaluate", "compare"])
@pytest.mark.slow
def test_every_stage_refuses_a_bad_value_with_one_line_and_touches_nothing(tmp_path, stage_name):
    kept = _fill_outputs(tmp_path)
    done = run_stage(tmp_path, stage_name, "train.dtype=float16")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: train.dtype must be one of float64, float32, auto, got 'float16'"]
    assert not (tmp_path / "mlflow.db").exists()
    assert all(path.read_text() == text for path, text in kept.items())


@pytest.mark.parametrize("overrides, message", [
    (["train.dtype=float16"], "train.dtype must be one of float64, float32, auto, got 'float16'"),
    (["train.lr=inf"], "train.lr must be a finite number > 0, got inf"),
    (["loss=naive_softmax", "train.dtype=float32"],
     "train.dtype float32 is for loss neg_sampling with engine batched, got loss naive_softmax with engine "
     "batched; use dtype float64 or auto"),
    (["+train.lrr=0.1"], "train.lrr is not a setting of this project; did you mean train.lr?"),
    (["train.threads=many"], "train.threads must be one of auto or an integer >= 1, got 'many'"),
])
@pytest.mark.slow
def test_train_refuses_the_values_that_reached_a_traceback(tmp_path, overrides, message):
    kept = _fill_outputs(tmp_path)
    done = run_stage(tmp_path, "train", *overrides)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), done.stderr
    assert not (tmp_path / "mlflow.db").exists()
    assert all(path.read_text() == text for path, text in kept.items())


@pytest.mark.parametrize("sweep, job, message", [
    ("train.dtype=float64,float16", "train.dtype=float16", "train.dtype must be one of float64, float32, auto"),
    ("train.lr=0.1,inf", "train.lr=inf", "train.lr must be a finite number > 0, got inf"),
    ("loss=neg_sampling,naive_softmax", "loss=naive_softmax", "train.dtype float32 is for loss neg_sampling"),
])
@pytest.mark.slow
def test_a_sweep_with_a_bad_job_stops_before_any_job_starts(tmp_path, sweep, job, message):
    done = run_stage(tmp_path, "train", sweep, "train.dtype=float32" if "loss=" in sweep else "train.K=10",
                     multirun=True)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: job {job}: {message}"), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists()
    assert not list((tmp_path / "sweep").glob("[0-9]*"))


def test_checkpoint_hash_leaves_out_threads_for_negative_sampling_only():
    from pipeline.config import training_fingerprint, with_machine_settings

    def fingerprint(*overrides):
        return training_fingerprint(with_machine_settings(composed(*overrides)), "data")

    assert fingerprint("train.threads=1") == fingerprint("train.threads=2") == fingerprint()
    assert fingerprint("loss=naive_softmax", "train.threads=1") != fingerprint("loss=naive_softmax", "train.threads=2")
    assert fingerprint("loss=naive_softmax") == fingerprint("loss=naive_softmax", "train.threads=1")


def test_auto_settings_resolve_to_what_the_run_uses():
    from pipeline.config import with_machine_settings

    cfg = with_machine_settings(composed())
    assert cfg.train.threads == len(os.sched_getaffinity(0)) and cfg.train.dtype == "float32"
    cfg = with_machine_settings(composed("loss=naive_softmax"))
    assert (cfg.train.threads, cfg.train.dtype) == (1, "float64")
    assert with_machine_settings(composed("train.threads=3")).train.threads == 3
