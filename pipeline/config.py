"""Check a composed configuration before any work starts, and turn it into library objects.

Every bad value is reported as one line naming its key (`StageError`), so a typo in a sweep stops
the whole sweep before the first job runs, not halfway through it.
"""
import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from pipeline.common import StageError

LOSSES = ("naive_softmax", "neg_sampling")
ENGINES = ("batched", "loop")
LR_SCHEDULES = ("step", "linear")

# key -> smallest allowed value; all of them are integers
_POSITIVE_INTEGERS = {
    "dim": 1, "window": 1, "K": 1, "iterations": 1, "batch_size": 1, "anneal_every": 1,
    "checkpoint_every": 1, "log_every": 1, "pool_copies": 1, "threads": 1, "seed": 0,
}
# train keys that do not change the vectors, so they stay out of the checkpoint hash
_BOOKKEEPING_KEYS = ("checkpoint_every",)


def validate(cfg: DictConfig) -> None:
    """Raise StageError naming the first invalid training key (loss, train.*, mlflow.experiment)."""
    loss = OmegaConf.select(cfg, "loss.name")
    if loss not in LOSSES:
        raise StageError(f"loss.name must be one of {', '.join(LOSSES)}, got {loss!r} "
                         f"(choose it with loss=naive_softmax or loss=neg_sampling)")
    train = cfg.get("train")
    if train is None:
        raise StageError("the configuration has no train section; run on conf/ or params.yaml")
    for key, smallest in _POSITIVE_INTEGERS.items():
        value = train.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
            raise StageError(f"train.{key} must be an integer >= {smallest}, got {value!r}")
    lr = train.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise StageError(f"train.lr must be a number > 0, got {lr!r}")
    schedule = train.get("lr_schedule", "step")
    if schedule not in LR_SCHEDULES:
        raise StageError(f"train.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")
    if train.get("engine") not in ENGINES:
        raise StageError(f"train.engine must be one of {', '.join(ENGINES)}, got {train.get('engine')!r}")
    experiment = OmegaConf.select(cfg, "mlflow.experiment")
    if not isinstance(experiment, str) or not experiment.strip():
        raise StageError(f"mlflow.experiment must be a non-empty name, got {experiment!r}")


def train_config(cfg: DictConfig):
    """The w2v.trainer.TrainConfig of a validated configuration (train.* plus loss.name)."""
    from w2v.trainer import TrainConfig

    train = OmegaConf.to_container(cfg.train, resolve=True)
    train["lr"] = float(train["lr"])
    return TrainConfig(loss=cfg.loss.name, **train)


def training_fingerprint(cfg: DictConfig, corpus_fingerprint: str) -> str:
    """A short hash of everything that determines the trained vectors.

    That is the corpus settings and data, the loss and the train keys except the bookkeeping ones
    (checkpoint_every): two runs with the same fingerprint train the same vectors, so
    they may share a checkpoint. Paths, URLs and the MLflow experiment are left out on purpose.
    """
    corpus = OmegaConf.to_container(cfg.corpus, resolve=True)
    for key in ("url", "size", "sha256", "files"):
        corpus.pop(key, None)
    train = OmegaConf.to_container(cfg.train, resolve=True)
    for key in _BOOKKEEPING_KEYS:
        train.pop(key, None)
    train["lr"] = float(train["lr"])
    payload = {"corpus": corpus, "data": corpus_fingerprint, "loss": cfg.loss.name, "train": train}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
