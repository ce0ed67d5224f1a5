"""Minibatch SGD for skip-gram word vectors with the semantics of CS224n assignment 2 (run.py, sgd.py).

    from w2v.corpus import load_corpus
    from w2v.trainer import TrainConfig, train
    result = train(load_corpus("data/processed"), TrainConfig(iterations=40000), checkpoint_dir=".cache/ckpt")

- Randomness: three independent streams spawned from `numpy.random.SeedSequence(config.seed)`:
  the sentence pool, the initialisation, and the training draws (windows and negatives; itself
  w2v.sampling.TRAINING_STREAMS Generators, each drawing its share of every minibatch). The
  training Generators are passed into the numba sampler, so their `bit_generator.state`s are all a
  checkpoint needs; the same config and corpus give bit-identical vectors (for naive softmax
  with threads = 1; negative sampling whatever the thread count).
- Initialisation: centre vectors uniform in (-0.5, 0.5) / dim, outside vectors zero.
- Iteration t = 1..iterations: a minibatch of `batch_size` windows (w2v.sampling), batch-mean loss
  and gradient, x -= lr * gradient. After iteration t: at t % log_every == 0 the smoothed loss is
  updated (first value = that loss, then 0.95 old + 0.05 new, as the reference, which only looks at
  the loss every 10 iterations) and hooks.on_log is called; at t % checkpoint_every == 0 and at the
  last iteration a checkpoint is written.
- Step size of iteration t (`learning_rate`, a function of t only, so a resumed run takes the same
  steps): lr_schedule "step" (the assignment's) halves lr after every anneal_every iterations;
  "linear" (word2vec's and gensim's) decays it linearly from lr towards 0 over the run.
"""
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from w2v.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from w2v.corpus import SUBSAMPLING_THRESHOLD, keep_probabilities
from w2v.engines import ENGINES
from w2v.losses import LOSSES
from w2v.rules import Choice, Integer, NonNegative, Positive, SettingError
from w2v.sampling import NegativeTable, build_sentence_pool, training_streams

LR_SCHEDULES = ("step", "linear")
DTYPES = ("float64", "float32")  # "auto" picks one of them: see auto_dtype
LINEAR_FLOOR = 1e-4  # the linear schedule never goes below lr * LINEAR_FLOOR (word2vec's floor)


# The allowed values of every TrainConfig field; conf/'s train.* and loss.name use these very rules.
TRAIN_RULES = {
    "loss": Choice(LOSSES), "dim": Integer(1), "window": Integer(1), "K": Integer(1), "lr": Positive(),
    "lr_schedule": Choice(LR_SCHEDULES), "iterations": Integer(1), "batch_size": Integer(1),
    "anneal_every": Integer(1), "checkpoint_every": Integer(1), "log_every": Integer(1),
    "engine": Choice(ENGINES), "seed": Integer(0), "pool_copies": Integer(1), "subsample": NonNegative(),
    "threads": Integer(1), "dtype": Choice(DTYPES + ("auto",)),
}


@dataclass(frozen=True)
class TrainConfig:
    """Training settings, named as conf/'s `train.*` plus `loss` (= conf's loss.name).

    dim: vector size d; window: maximum half-width m (each window draws its size in 1..m);
    K: negatives per outside word (neg_sampling only); lr: initial SGD step; iterations: minibatches;
    batch_size: windows per minibatch; lr_schedule: "step" | "linear" (see `learning_rate`);
    anneal_every: with the step schedule, lr halves after every this many iterations;
    checkpoint_every / log_every: in iterations; engine: "batched" | "loop"; seed: >= 0;
    pool_copies: subsampled copies of the corpus in the sentence pool; subsample: the threshold t
    of subsampling as a share of the training tokens (w2v.corpus.keep_probabilities; 1e-5, the
    assignment's; 0 keeps every occurrence); threads: for negative
    sampling with the batched engine, numba threads that draw, compute and update together
    (bit-identical to 1 thread; pays with large batches, see w2v.engines.batched.Stepper); for
    naive softmax, BLAS threads for its matrix products (1, the default, is bit-reproducible;
    more may change the last bits from run to run and rarely pays on a shared 2-core machine).
    The loop engine ignores it.
    dtype: "float64" | "float32" | "auto", how the vectors are stored while training; float32
    (negative sampling with the batched engine only) halves their memory traffic, as gensim does;
    "auto" becomes float32 there and float64 elsewhere (see auto_dtype).
    Invalid values raise w2v.rules.SettingError (a ValueError) naming the field; TRAIN_RULES
    states what each field allows.
    """
    loss: str = "neg_sampling"
    dim: int = 10
    window: int = 5
    K: int = 10
    lr: float = 0.3
    lr_schedule: str = "step"
    iterations: int = 40000
    batch_size: int = 50
    anneal_every: int = 20000
    checkpoint_every: int = 5000
    log_every: int = 10
    engine: str = "batched"
    seed: int = 0
    pool_copies: int = 30
    subsample: float = SUBSAMPLING_THRESHOLD
    threads: int = 1
    dtype: str = "float64"

    def __post_init__(self):
        for name, rule in TRAIN_RULES.items():
            rule.check(name, getattr(self, name))
        if self.dtype == "auto":
            object.__setattr__(self, "dtype", auto_dtype(self.loss, self.engine))
        if self.dtype == "float32" and (self.loss, self.engine) != ("neg_sampling", "batched"):
            raise SettingError("dtype", f"float32 is for loss neg_sampling with engine batched, got loss "
                                        f"{self.loss} with engine {self.engine}; use dtype float64 or auto")
        for field in fields(self):  # plain Python values: hashable, JSON-able, equal across sources
            value = getattr(self, field.name)
            object.__setattr__(self, field.name, float(value) if field.name in ("lr", "subsample")
                               else value if isinstance(value, str) else int(value))


def auto_dtype(loss: str, engine: str) -> str:
    """dtype "auto": float32 where the kernels store vectors in single precision (negative sampling,
    batched engine; as gensim trains), float64 elsewhere."""
    return "float32" if (loss, engine) == ("neg_sampling", "batched") else "float64"


@dataclass
class LogRecord:
    """One log point: step (iterations done), that iteration's batch-mean loss, the smoothed loss,
    the step size lr used for it, and windows per second since the previous log point."""
    step: int
    loss: float
    loss_smoothed: float
    lr: float
    windows_per_second: float


class TrainHooks:
    """Callbacks of `train`; subclass and override. The defaults do nothing."""

    def on_log(self, record: LogRecord) -> None:
        """Every log_every iterations."""

    def before_checkpoint(self, step: int) -> None:
        """Right before a checkpoint after iteration `step` is written (flush logs here)."""


class DivergenceError(RuntimeError):
    """A minibatch loss became non-finite at iteration `step`; the last checkpoint is kept."""

    def __init__(self, step: int, loss: float, lr: float):
        self.step, self.loss = step, loss
        super().__init__(f"training diverged at iteration {step}: the minibatch loss is {loss} "
                         f"(lr {lr}); lower train.lr")


@dataclass
class TrainResult:
    """center_vectors, outside_vectors: (V, d) in config.dtype. train_seconds: wall time of the iterations
    incl. hooks and checkpoints (not data loading, pool building or JIT compilation, which is
    compile_seconds). resumed_from_step: the checkpoint's iteration, None for a fresh run."""
    center_vectors: np.ndarray
    outside_vectors: np.ndarray
    loss_smoothed: float
    train_seconds: float
    compile_seconds: float
    resumed_from_step: int | None


def config_fingerprint(config: TrainConfig, corpus) -> str:
    """sha256 of everything that shapes the training trajectory: the config except
    checkpoint_every, threads where they do not change the bits (negative sampling, and the loop
    engine, which ignores them), and, with the step schedule, iterations (a longer run passes
    through the same states; the linear schedule's steps depend on it), and the training
    sentences and counts of the corpus."""
    settings = asdict(config)
    del settings["checkpoint_every"]
    if not threads_change_bits(config):
        del settings["threads"]
    if config.lr_schedule == "step":
        del settings["iterations"]
    tokens, offsets = corpus.training_sentences()
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for array in (np.asarray(tokens, np.int64), np.asarray(offsets, np.int64),
                  np.asarray(corpus.counts, np.int64)):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def threads_change_bits(config: TrainConfig) -> bool:
    """Whether the thread count can change the trained vectors: only naive softmax's BLAS products
    on the batched engine (negative sampling gives the same bits for any count)."""
    return config.loss == "naive_softmax" and config.engine == "batched"


def learning_rate(config: TrainConfig, iteration):
    """Step size of iteration `iteration` (1-based; an int or an integer array of them).

    "step": lr * 0.5 ** ((t - 1) // anneal_every), the assignment's halving after every
    anneal_every iterations. "linear": lr * max(1 - (t - 1) / iterations, LINEAR_FLOOR), from lr
    at the first iteration to lr / iterations at the last, as word2vec and gensim decay alpha.
    """
    t = np.asarray(iteration, dtype=np.int64)
    if config.lr_schedule == "linear":
        rates = config.lr * np.maximum(1.0 - (t - 1) / config.iterations, LINEAR_FLOOR)
    else:
        rates = config.lr * 0.5 ** ((t - 1) // config.anneal_every)
    return float(rates) if rates.ndim == 0 else rates


def initial_vectors(vocab_size, dim, rng, dtype="float64") -> tuple[np.ndarray, np.ndarray]:
    """Centre vectors uniform in (-0.5, 0.5) / dim, outside vectors zero, both (V, d) in dtype
    (float32: the float64 draws rounded, so both dtypes start from the same vectors)."""
    return (((rng.random((vocab_size, dim)) - 0.5) / dim).astype(dtype),
            np.zeros((vocab_size, dim), dtype))


def _stepper(config: TrainConfig, pool, table, center_vectors, outside_vectors, window, K,
             batch_size):
    """The engine's Stepper; the batched engine also gets config.threads."""
    options = {"threads": config.threads} if config.engine == "batched" else {}
    return ENGINES[config.engine].Stepper(pool, table, center_vectors, outside_vectors, config.loss,
                                          window, K, batch_size, **options)


def _warm_up(config: TrainConfig) -> float:
    """Compile (or load from numba's cache) the kernels the run uses on a tiny problem; seconds."""
    start = time.perf_counter()
    pool = build_sentence_pool(np.array([0, 1, 1, 0], np.int32), np.array([0, 2, 4], np.int64),
                               np.ones(2), 1, np.random.default_rng(0))
    table = NegativeTable.from_weights(np.ones(2))
    center, outside = np.zeros((2, config.dim), config.dtype), np.zeros((2, config.dim), config.dtype)
    stepper = _stepper(config, pool, table, center, outside, window=1, K=1, batch_size=1)
    stepper.run(training_streams(0), 0.1, 1)
    return time.perf_counter() - start


def _progress_bar(config: TrainConfig, step: int, progress: bool):
    if not (progress and sys.stderr.isatty()):
        return None
    from tqdm import tqdm
    return tqdm(total=config.iterations, initial=step, unit="it", desc="train")


def _next_event(step, config: TrainConfig) -> int:
    """The next iteration after `step` at which something besides stepping happens."""
    return min(config.iterations,
               *((step // every + 1) * every
                 for every in (config.log_every, config.anneal_every, config.checkpoint_every)))


@dataclass
class TrainingState:
    """Where a run is. step: iterations done; loss_smoothed: None before the first log point;
    rngs: the w2v.sampling.training_streams Generators; center_vectors, outside_vectors: (V, d) in
    config.dtype, updated in place by the engine; resumed_from_step: the checkpoint's iteration,
    None for a fresh run."""
    step: int
    loss_smoothed: float | None
    rngs: list
    center_vectors: np.ndarray
    outside_vectors: np.ndarray
    resumed_from_step: int | None = None


def initial_state(corpus, config: TrainConfig, init_seed, train_seed) -> TrainingState:
    """Iteration 0: the initial vectors (drawn from init_seed) and fresh training streams."""
    rngs = training_streams(train_seed)
    center_vectors, outside_vectors = initial_vectors(corpus.vocab_size, config.dim,
                                                      np.random.default_rng(init_seed), config.dtype)
    return TrainingState(0, None, rngs, center_vectors, outside_vectors)


def resume_state(state: TrainingState, checkpoint_dir: Path, fingerprint: str,
                 config: TrainConfig) -> TrainingState:
    """`state` carried on from the checkpoint in checkpoint_dir, if there is one (its step, smoothed
    loss, Generator states and vectors); `state` itself when there is none. ValueError for a
    checkpoint of another configuration (w2v.checkpoint.load_checkpoint) or one past config.iterations."""
    saved = load_checkpoint(checkpoint_dir, fingerprint)
    if saved is None:
        return state
    if saved.step > config.iterations:
        raise ValueError(f"checkpoint_dir: its checkpoint is at iteration {saved.step}, past "
                         f"iterations={config.iterations}; use another folder or delete it")
    for rng, rng_state in zip(state.rngs, saved.rng_states):
        rng.bit_generator.state = rng_state
    return TrainingState(saved.step, saved.loss_smoothed, state.rngs,
                         np.ascontiguousarray(saved.center_vectors, dtype=config.dtype),
                         np.ascontiguousarray(saved.outside_vectors, dtype=config.dtype), saved.step)


class RunEvents:
    """What happens between engine calls: a log point every log_every iterations (smoothed loss,
    speed, hooks.on_log, the progress bar) and a checkpoint every checkpoint_every iterations and
    after the last one (when checkpoint_dir is given)."""

    def __init__(self, config: TrainConfig, hooks: TrainHooks, checkpoint_dir: Path | None,
                 fingerprint: str, metadata: dict, bar=None):
        self.config, self.hooks, self.bar = config, hooks, bar
        self.checkpoint_dir, self.fingerprint, self.metadata = checkpoint_dir, fingerprint, metadata
        self.last_log_step, self.last_log_time = 0, time.perf_counter()

    def start(self, step: int, now: float) -> None:
        """The loop starts at iteration `step` at time `now` (time.perf_counter, seconds)."""
        self.last_log_step, self.last_log_time = step, now

    def after(self, state: TrainingState, losses: np.ndarray) -> None:
        """state.step iterations are done; `losses`: the batch-mean losses of the last engine call."""
        if self.bar is not None:
            self.bar.update(len(losses))
        if state.step % self.config.log_every == 0:
            self.log(state, float(losses[-1]))
        if self.checkpoint_dir is not None and (state.step % self.config.checkpoint_every == 0
                                                or state.step == self.config.iterations):
            self.checkpoint(state)

    def log(self, state: TrainingState, loss: float) -> None:
        """Update the smoothed loss (the first value is the loss itself) and report a LogRecord."""
        config, step = self.config, state.step
        state.loss_smoothed = loss if state.loss_smoothed is None else 0.95 * state.loss_smoothed + 0.05 * loss
        now = time.perf_counter()
        speed = (step - self.last_log_step) * config.batch_size / max(now - self.last_log_time, 1e-12)
        self.last_log_step, self.last_log_time = step, now
        self.hooks.on_log(LogRecord(step, loss, state.loss_smoothed, learning_rate(config, step), speed))
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{state.loss_smoothed:.3f}", refresh=False)

    def checkpoint(self, state: TrainingState) -> None:
        self.hooks.before_checkpoint(state.step)
        save_checkpoint(self.checkpoint_dir, Checkpoint(
            state.step, learning_rate(self.config, state.step + 1), state.loss_smoothed,
            [rng.bit_generator.state for rng in state.rngs],
            state.center_vectors, state.outside_vectors, self.fingerprint, self.metadata))


def run_iterations(stepper, state: TrainingState, config: TrainConfig, events: RunEvents) -> float:
    """Step from state.step to config.iterations, calling the engine up to the next event and then
    `events`; returns the wall seconds it took. Raises DivergenceError at the first non-finite
    minibatch loss (state.step stays at the last event before it)."""
    # BLAS (naive softmax's products) on config.threads threads, 1 by default: the (50, V) x (V, 10)
    # products gain little from a second thread on a shared machine, and one keeps bit-identity
    blas_threads = threadpool_limits(limits=config.threads, user_api="blas")
    start = time.perf_counter()
    events.start(state.step, start)
    try:
        while state.step < config.iterations:
            target = _next_event(state.step, config)
            losses = stepper.run(state.rngs, learning_rate(config, np.arange(state.step + 1, target + 1)),
                                 target - state.step)
            if len(losses) < target - state.step or not np.isfinite(losses[-1]):
                failed = state.step + len(losses)
                raise DivergenceError(failed, float(losses[-1]), learning_rate(config, failed))
            state.step = target
            events.after(state, losses)
        return time.perf_counter() - start
    finally:
        blas_threads.restore_original_limits()


def _checked_arguments(config, metadata: dict | None) -> dict:
    """Refuse a config that is not a TrainConfig; metadata as a dict, refused now (not at the first
    checkpoint) when it is not JSON-able."""
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    metadata = dict(metadata or {})
    json.dumps(metadata)
    return metadata


def train(corpus, config: TrainConfig, checkpoint_dir: Path | None = None,
          hooks: TrainHooks | None = None, metadata: dict | None = None,
          progress: bool = False) -> TrainResult:
    """Train skip-gram vectors on corpus.training_sentences() (a w2v.corpus.Corpus).

    checkpoint_dir: resume from its checkpoint when there is one (written by the same config and
    corpus, else ValueError); write checkpoints there every checkpoint_every iterations and after
    the last one (the caller clears it with w2v.checkpoint.clear_checkpoint once its outputs are
    saved). metadata: JSON-able, stored in every checkpoint. progress: a tqdm bar on a terminal.
    Raises DivergenceError at the first non-finite minibatch loss.
    """
    metadata = _checked_arguments(config, metadata)
    compile_seconds = _warm_up(config)  # numba's start-up and kernel loading, timed apart
    pool_seed, init_seed, train_seed = np.random.SeedSequence(config.seed).spawn(3)
    tokens, offsets = corpus.training_sentences()
    pool = build_sentence_pool(tokens, offsets, keep_probabilities(corpus.counts, config.subsample), config.pool_copies,
                               np.random.default_rng(pool_seed))
    table = NegativeTable.from_weights(corpus.neg_weight)
    fingerprint = config_fingerprint(config, corpus)
    state = initial_state(corpus, config, init_seed, train_seed)
    if checkpoint_dir is not None:
        state = resume_state(state, checkpoint_dir, fingerprint, config)

    stepper = _stepper(config, pool, table, state.center_vectors, state.outside_vectors, config.window,
                       config.K, config.batch_size)
    bar = _progress_bar(config, state.step, progress)
    events = RunEvents(config, hooks or TrainHooks(), checkpoint_dir, fingerprint, metadata, bar)
    try:
        train_seconds = run_iterations(stepper, state, config, events)
    finally:
        if bar is not None:
            bar.close()
    return TrainResult(state.center_vectors, state.outside_vectors,
                       float("nan") if state.loss_smoothed is None else state.loss_smoothed,
                       train_seconds, compile_seconds, state.resumed_from_step)
