"""The schema of conf/: every key the project owns, with its allowed values, checked before any work.

`RULES` is the single source of truth: one line per key (`"section.key": rule`). The rules of
`loss.name` and `train.*` are the library's own (w2v.trainer.TRAIN_RULES), so the pipeline and
w2v.trainer.TrainConfig cannot drift apart; the lists of names (losses, engines, schedules, dtypes,
corpus kinds, train_on) are defined once in w2v and only referred to here. Adding a key to conf/
means adding its line to RULES (tests/test_config.py fails for a conf/ key without one).

Every stage (pipeline.common.stage) and every job of a sweep (pipeline.sweep) calls `validate`
first: a wrong type, a wrong value, an unknown key (a typo such as `+train.lrr=0.1`) or a
missing key is one `StageError` line naming the key, before anything is opened, written or deleted.
"""
import copy
import difflib
import hashlib
import json
import os

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.common import StageError
from pipeline.launcher import current_launcher_plan
from w2v.corpus import TRAIN_ON
from w2v.readers import CORPUS_KINDS
from w2v.rules import Boolean, Choice, Either, Integer, ListOf, Positive, SettingError, Sha256, Text
from w2v.trainer import TRAIN_RULES, TrainConfig, threads_change_bits

AUTO = "auto"
MISSING = "???"

RULES = {
    "corpus.kind": Choice(CORPUS_KINDS),
    "corpus.url": Text(),                     # may be ??? until the download stage needs it
    # corpus.size, .sha256, .files and the labels' likewise: optional overrides of the published
    # data sets' pins (w2v.sources), e.g. +corpus.sha256=<hex>; null skips the check
    "corpus.size": Integer(0, nullable=True),
    "corpus.sha256": Sha256(nullable=True),
    "corpus.files.*": Sha256(nullable=True),  # {file name: sha256}
    "corpus.fix_encoding": Boolean(),
    "corpus.train_on": Choice(TRAIN_ON),
    "corpus.min_count": Integer(1),
    "loss.name": TRAIN_RULES["loss"],
    **{f"train.{name}": rule for name, rule in TRAIN_RULES.items() if name != "loss"},
    "train.threads": Either(Choice((AUTO,)), TRAIN_RULES["threads"]),  # auto: see resolve_threads
    "mlflow.experiment": Text(),
    "gradcheck.tol": Positive(),
    "evaluate.vectors": Text(nullable=True),
    "evaluate.heldout.window": Integer(1),
    "evaluate.heldout.K": Integer(1),
    "evaluate.heldout.max_sentences": Integer(1, nullable=True),
    "evaluate.heldout.seed": Integer(0),
    "evaluate.sentiment.enabled": Boolean(),
    "evaluate.sentiment.C": ListOf(Positive()),
    "evaluate.sentiment.resamples": Integer(1),
    "evaluate.sentiment.seed": Integer(0),
    "labels.url": Text(),
    "labels.size": Integer(0, nullable=True),
    "labels.sha256": Sha256(nullable=True),
    "labels.files.*": Sha256(nullable=True),  # {file name: sha256}
    "labels.train_lines": Integer(1, nullable=True),
    "compare.experiment": Text(nullable=True),
    "compare.parent_run": Text(nullable=True),
    "compare.metric": Text(),
    "compare.output_dir": Text(),
    **{f"paths.{name}": Text() for name in ("download_cache", "raw", "labels", "processed", "reports", "models",
                                            "metrics", "plots", "checkpoints")},
}
# keys a configuration may leave out: the options of pipeline.compare and evaluate.vectors live in
# conf/config.yaml, not in params.yaml, so the DVC stages (params.yaml + paths) do not have them; the
# checksum overrides are absent unless given (the download stages then use w2v.sources' pins)
OPTIONAL = {"compare.experiment", "compare.parent_run", "compare.metric", "compare.output_dir", "evaluate.vectors",
            "corpus.size", "corpus.sha256", "labels.size", "labels.sha256", "labels.train_lines"}
# keys that may stay ??? (MISSING) until the stage that needs them checks them
MAY_BE_UNSET = {"corpus.url"}
# the corpus.* keys the tokenize stage reads the corpus with (recorded in the processed corpus)
CORPUS_READING_KEYS = ("kind", "fix_encoding", "train_on", "min_count")
# train keys that do not change the vectors, so they stay out of the checkpoint hash
_BOOKKEEPING_KEYS = ("checkpoint_every",)


def _leaves(node: dict, prefix: str = ""):
    """(dotted key, value, its rule or None) of every leaf of a plain nested dict; the entries of a
    mapping with a wildcard rule ("corpus.files.*") are leaves, whatever their names hold; such a
    mapping may be null (none)."""
    for key, value in node.items():
        name = f"{prefix}{key}"
        if f"{name}.*" in RULES:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise StageError(f"{name} must be a mapping (name: value), got {value!r}")
            yield from ((f"{name}.{entry}", item, RULES[f"{name}.*"]) for entry, item in value.items())
        elif isinstance(value, dict) and name not in RULES:
            yield from _leaves(value, f"{name}.")
        else:
            yield name, value, RULES.get(name)


def _unknown_key_error(key: str) -> StageError:
    section = key.rsplit(".", 1)[0] if "." in key else ""
    siblings = sorted(k for k in RULES if k.rsplit(".", 1)[0] == section and "*" not in k) if section else []
    close = difflib.get_close_matches(key, [k for k in RULES if "*" not in k], n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    known = f" (the keys of {section}: {', '.join(k.rsplit('.', 1)[1] for k in siblings)})" if siblings else ""
    return StageError(f"{key} is not a setting of this project{hint}{known}")


def plain_config(cfg: DictConfig) -> dict:
    """The resolved configuration as plain Python (??? left as the text ???); StageError on a bad
    interpolation."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as error:
        raise StageError(f"{getattr(error, 'full_key', None) or 'the configuration'}: "
                         f"{str(error).splitlines()[0]}") from None


def validate(cfg: DictConfig) -> None:
    """Raise StageError naming the first unknown, missing or invalid key of the whole configuration."""
    values = plain_config(cfg)
    values.pop("hydra", None)  # Hydra's and its launchers' keys are theirs to check
    leaves = set()
    for key, value, rule in _leaves(values):
        leaves.add(key)
        if rule is None:
            raise _unknown_key_error(key)
        if value == MISSING:
            if key in MAY_BE_UNSET:
                continue
            raise StageError(f"{key} is not set (???): pass {key}=<value>")
        problem = rule.problem(value)
        if problem is not None:
            raise StageError(f"{key} {problem}")
    for key in RULES:
        if "*" not in key and key not in OPTIONAL and key not in leaves \
                and not any(k.startswith(f"{key}.") for k in leaves):
            raise StageError(f"{key} is missing from the configuration; run on conf/ or params.yaml "
                             f"(python -m pipeline.params rewrites params.yaml)")
    train_config(cfg, threads=1)  # the settings that depend on each other (e.g. dtype and loss)


def resolve_threads(cfg: DictConfig) -> int:
    """train.threads, with "auto" made a count (auto_threads)."""
    threads = cfg.train.threads
    if threads != AUTO:
        return int(threads)
    return auto_threads(train_config(cfg, threads=1))


def auto_threads(config: TrainConfig) -> int:
    """What train.threads=auto means for `config`: 1 where threads change the bits (naive softmax
    keeps one BLAS thread unless asked) or are ignored (the loop engine), else the CPUs this
    process may use (its affinity mask, which SLURM and taskset set) divided by the jobs of its
    sweep that run at once on them (a joblib launcher's n_jobs; submitit's cpus_per_task)."""
    if threads_change_bits(config) or config.engine == "loop":
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // current_launcher_plan(cpus).jobs_at_once)


def with_machine_settings(cfg: DictConfig) -> DictConfig:
    """A copy of cfg with train.threads and train.dtype "auto" replaced by what this run uses, so the
    logged params, config.yaml and the checkpoint hash say what was trained."""
    resolved = copy.deepcopy(cfg)
    resolved.train.threads = resolve_threads(cfg)
    resolved.train.dtype = train_config(resolved).dtype
    return resolved


def train_config(cfg: DictConfig, threads: int | None = None) -> TrainConfig:
    """The w2v.trainer.TrainConfig of cfg (train.* plus loss.name); `threads` replaces train.threads
    (else "auto" is resolved, resolve_threads). A value TrainConfig refuses is a StageError naming
    the conf/ key."""
    train = OmegaConf.to_container(cfg.train, resolve=True)
    if threads is not None:
        train["threads"] = threads
    elif train.get("threads") == AUTO:
        train["threads"] = resolve_threads(cfg)
    try:
        return TrainConfig(loss=cfg.loss.name, **train)
    except SettingError as error:
        key = "loss.name" if error.name == "loss" else f"train.{error.name}"
        raise StageError(f"{key} {error.problem}") from None
    except TypeError as error:  # a key TrainConfig does not have (validate names it first)
        raise StageError(f"train: {error}") from None


def check_processed_corpus(cfg: DictConfig, recorded: dict | None, processed) -> None:
    """Refuse corpus.* reading settings that differ from those the processed corpus was built with
    (`recorded`, w2v.corpus.corpus_settings; None for a corpus that records none). A larger
    corpus.min_count is allowed: `processed_corpus` applies it on load."""
    for key in CORPUS_READING_KEYS:
        if recorded is None or key not in recorded or cfg.corpus.get(key) == recorded[key]:
            continue
        if key == "min_count" and isinstance(cfg.corpus.get(key), int) and cfg.corpus.get(key) > recorded[key]:
            continue
        raise StageError(
            f"corpus.{key}={cfg.corpus.get(key)!r}, but the processed corpus in {processed} was built with "
            f"corpus.{key}={recorded[key]!r}: rerun tokenize with it first (python -m pipeline.tokenize "
            f"corpus.{key}={cfg.corpus.get(key)}, or dvc exp run -S corpus.{key}=...), or drop the override")


def processed_corpus(processed, min_count: int | None = None):
    """The corpus in `processed` (the tokenize stage's folder) as corpus.min_count = `min_count` asks.

    A min_count above the one it was tokenized with is applied on load (w2v.corpus.with_min_count
    gives what tokenizing with it would), so a run or a sweep can raise corpus.min_count without
    tokenizing again; None or a smaller value leaves it as it is (check_processed_corpus refuses a
    smaller one where it matters). Raises what w2v.corpus.load_corpus raises."""
    from w2v.corpus import corpus_settings, load_corpus, with_min_count

    corpus = load_corpus(processed)
    built_with = (corpus_settings(processed) or {}).get("min_count", 1)
    return with_min_count(corpus, min_count) if min_count is not None and min_count > built_with else corpus


def training_fingerprint(cfg: DictConfig, corpus_fingerprint: str) -> str:
    """A short hash of everything that determines the trained vectors.

    That is the corpus settings and data, the loss and the train keys except the bookkeeping ones
    (checkpoint_every) and, where they do not change the bits (negative sampling), threads: two
    runs with the same fingerprint train the same vectors, so they may share a checkpoint, also
    when train.threads=auto resolved differently. Paths, URLs and the MLflow experiment are left
    out on purpose. cfg: with train.threads and train.dtype resolved (with_machine_settings).
    """
    corpus = OmegaConf.to_container(cfg.corpus, resolve=True)
    for key in ("url", "size", "sha256", "files"):
        corpus.pop(key, None)
    train = OmegaConf.to_container(cfg.train, resolve=True)
    for key in _BOOKKEEPING_KEYS:
        train.pop(key, None)
    if not threads_change_bits(train_config(cfg, threads=1)):
        train.pop("threads", None)
    train["lr"] = float(train["lr"])
    payload = {"corpus": corpus, "data": corpus_fingerprint, "loss": cfg.loss.name, "train": train}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
