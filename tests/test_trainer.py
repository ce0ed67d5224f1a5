"""The trainer: config checks, reproducibility, schedule, smoothed loss, divergence, checkpoints."""
import json
import math

import numpy as np
import pytest

from w2v.checkpoint import clear_checkpoint, load_checkpoint, read_checkpoint_metadata
from w2v.corpus import build_corpus
from w2v.sampling import TRAINING_STREAMS
from w2v.trainer import (DivergenceError, LogRecord, TrainConfig, TrainHooks, config_fingerprint,
                         initial_vectors, learning_rate, train)

SMALL = dict(dim=5, window=3, K=4, lr=0.3, iterations=60, batch_size=8, anneal_every=20,
             checkpoint_every=20, log_every=10, pool_copies=2)


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    zipf = 1.0 / np.arange(1, 51)
    words = [f"w{i}" for i in range(50)]
    return build_corpus([[words[i] for i in rng.choice(50, size=rng.integers(3, 15), p=zipf / zipf.sum())]
                         for _ in range(150)])


class Recorder(TrainHooks):
    def __init__(self):
        self.records: list[LogRecord] = []
        self.checkpoints: list[int] = []

    def on_log(self, record):
        self.records.append(record)

    def before_checkpoint(self, step):
        self.checkpoints.append(step)


@pytest.mark.parametrize("field, value", [
    ("loss", "hinge"), ("engine", "gpu"), ("dim", 0), ("window", -1), ("K", 0), ("lr", 0.0),
    ("lr", float("nan")), ("lr", "0.3"), ("iterations", 0), ("batch_size", 2.5),
    ("anneal_every", 0), ("checkpoint_every", 0), ("log_every", 0), ("seed", -1),
    ("pool_copies", 0), ("threads", 0), ("dim", True), ("lr_schedule", "cosine"),
    ("dtype", "float16"),
])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_config_defaults_are_the_classic_run_and_normalise_types():
    config = TrainConfig(lr=1, seed=np.int64(3))
    assert (TrainConfig().dim, TrainConfig().K, TrainConfig().batch_size) == (10, 10, 50)
    assert type(config.lr) is float and type(config.seed) is int


@pytest.mark.parametrize("loss", ["neg_sampling", "naive_softmax"])
def test_same_seed_bit_identical_other_seed_different(corpus, loss):
    first = train(corpus, TrainConfig(loss=loss, seed=1, **SMALL))
    second = train(corpus, TrainConfig(loss=loss, seed=1, **SMALL))
    other = train(corpus, TrainConfig(loss=loss, seed=2, **SMALL))
    assert np.array_equal(first.center_vectors, second.center_vectors)
    assert np.array_equal(first.outside_vectors, second.outside_vectors)
    assert first.loss_smoothed == second.loss_smoothed
    assert not np.allclose(first.center_vectors, other.center_vectors)
    assert first.resumed_from_step is None
    assert first.train_seconds > 0 and first.compile_seconds > 0


def test_subsample_zero_trains_on_every_occurrence_and_the_default_is_the_assignments(corpus):
    default = train(corpus, TrainConfig(seed=1, **SMALL))
    explicit = train(corpus, TrainConfig(seed=1, subsample=1e-5, **SMALL))
    every_word = train(corpus, TrainConfig(seed=1, subsample=0, **SMALL))
    assert np.array_equal(default.center_vectors, explicit.center_vectors)
    assert not np.allclose(default.center_vectors, every_word.center_vectors)
    assert config_fingerprint(TrainConfig(subsample=0, **SMALL), corpus) != \
        config_fingerprint(TrainConfig(**SMALL), corpus)
    with pytest.raises(ValueError, match="subsample must be a finite number >= 0"):
        TrainConfig(subsample=-1e-5)


def test_initialisation_as_the_assignment(corpus):
    center, outside = initial_vectors(corpus.vocab_size, 8, np.random.default_rng(0))
    assert center.shape == outside.shape == (corpus.vocab_size, 8)
    assert np.all(np.abs(center) < 0.5 / 8) and center.std() > 0.5 / 8 / 3
    assert np.all(outside == 0)
    # with U = 0 the first step leaves every centre vector at its initial value (dJ/dv_c = U^T ...)
    config = TrainConfig(**{**SMALL, "iterations": 1})
    result = train(corpus, config)
    init_seed = np.random.SeedSequence(config.seed).spawn(3)[1]
    expected, _ = initial_vectors(corpus.vocab_size, config.dim, np.random.default_rng(init_seed))
    assert np.array_equal(result.center_vectors, expected)
    assert np.any(result.outside_vectors != 0)


def test_lr_halves_every_anneal_every_and_loss_is_smoothed_as_the_reference(corpus):
    hooks = Recorder()
    train(corpus, TrainConfig(**SMALL), hooks=hooks)
    assert [r.step for r in hooks.records] == [10, 20, 30, 40, 50, 60]
    assert [r.lr for r in hooks.records] == [0.3, 0.3, 0.15, 0.15, 0.075, 0.075]
    first = hooks.records[0]
    assert first.loss_smoothed == first.loss
    for previous, record in zip(hooks.records, hooks.records[1:]):
        assert record.loss_smoothed == pytest.approx(0.95 * previous.loss_smoothed + 0.05 * record.loss,
                                                     rel=1e-15)
        assert record.windows_per_second > 0
    assert len({r.loss for r in hooks.records}) == len(hooks.records)


def test_learning_rate_schedules_at_given_iterations():
    step = TrainConfig(lr=0.4, anneal_every=20, iterations=100)
    assert [learning_rate(step, t) for t in (1, 20, 21, 40, 41, 100)] == [0.4, 0.4, 0.2, 0.2, 0.1, 0.025]
    linear = TrainConfig(lr=0.4, lr_schedule="linear", iterations=100)
    assert learning_rate(linear, 1) == 0.4
    assert learning_rate(linear, 51) == pytest.approx(0.2, rel=1e-15)
    assert learning_rate(linear, 100) == pytest.approx(0.004, rel=1e-15)
    np.testing.assert_allclose(learning_rate(linear, np.array([1, 26, 76])), [0.4, 0.3, 0.1], rtol=1e-15)
    long = TrainConfig(lr=1.0, lr_schedule="linear", iterations=10**6)
    assert learning_rate(long, 10**6) == 1e-4  # word2vec's floor: lr * 1e-4


def test_linear_schedule_trains_with_the_logged_decaying_lr(corpus):
    hooks = Recorder()
    linear = train(corpus, TrainConfig(**SMALL, lr_schedule="linear"), hooks=hooks)
    assert [r.lr for r in hooks.records] == pytest.approx([0.3 * (1 - (s - 1) / 60)
                                                          for s in (10, 20, 30, 40, 50, 60)], rel=1e-15)
    step = train(corpus, TrainConfig(**SMALL))
    assert not np.allclose(linear.center_vectors, step.center_vectors)
    # the loop engine, which takes one step size per call, follows the same schedule
    reference = train(corpus, TrainConfig(**SMALL, lr_schedule="linear", engine="loop"))
    np.testing.assert_allclose(linear.center_vectors, reference.center_vectors, rtol=0, atol=1e-10)


class StopAt(TrainHooks):
    """Interrupts training right before the checkpoint of iteration `step` is written."""

    def __init__(self, step):
        self.step = step

    def before_checkpoint(self, step):
        if step == self.step:
            raise KeyboardInterrupt


def test_linear_schedule_resumes_to_the_same_vectors(corpus, tmp_path):
    config = TrainConfig(**SMALL, lr_schedule="linear")
    whole = train(corpus, config)
    with pytest.raises(KeyboardInterrupt):
        train(corpus, config, checkpoint_dir=tmp_path, hooks=StopAt(40))
    resumed = train(corpus, config, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_step == 20
    assert np.array_equal(resumed.center_vectors, whole.center_vectors)
    assert np.array_equal(resumed.outside_vectors, whole.outside_vectors)
    assert resumed.loss_smoothed == whole.loss_smoothed


def test_fingerprint_counts_iterations_only_for_the_linear_schedule(corpus):
    def fingerprint(**changes):
        return config_fingerprint(TrainConfig(**{**SMALL, **changes}), corpus)

    assert fingerprint() == fingerprint(iterations=999)
    assert fingerprint(lr_schedule="linear") != fingerprint()
    assert fingerprint(lr_schedule="linear") != fingerprint(lr_schedule="linear", iterations=999)


def test_logged_loss_is_the_minibatch_loss_of_that_iteration(corpus):
    """log_every=1 logs every batch loss; the same run with log_every=3 logs every third one."""
    every, third = Recorder(), Recorder()
    config = {**SMALL, "iterations": 12}
    train(corpus, TrainConfig(**{**config, "log_every": 1}), hooks=every)
    train(corpus, TrainConfig(**{**config, "log_every": 3}), hooks=third)
    assert [r.loss for r in third.records] == [r.loss for r in every.records][2::3]


def test_huge_lr_raises_divergence_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
    hooks = Recorder()
    config = TrainConfig(**{**SMALL, "lr": 1e30, "iterations": 200, "checkpoint_every": 1})
    with pytest.raises(DivergenceError, match="diverged at iteration") as error:
        train(corpus, config, checkpoint_dir=tmp_path, hooks=hooks)
    assert not math.isfinite(error.value.loss)
    assert error.value.step == hooks.checkpoints[-1] + 1
    saved = load_checkpoint(tmp_path, config_fingerprint(config, corpus))
    assert saved.step == hooks.checkpoints[-1]
    assert np.all(np.isfinite(saved.center_vectors)) and np.all(np.isfinite(saved.outside_vectors))


def test_checkpoints_resume_to_the_same_vectors_and_finished_runs_return_at_once(corpus, tmp_path):
    uninterrupted = train(corpus, TrainConfig(**{**SMALL, "iterations": 100}))
    folder = tmp_path / "ckpt"
    hooks = Recorder()
    part = train(corpus, TrainConfig(**{**SMALL, "iterations": 50}), checkpoint_dir=folder,
                 hooks=hooks, metadata={"run_id": "abc"})
    assert hooks.checkpoints == [20, 40, 50]  # every checkpoint_every and at the last iteration
    assert read_checkpoint_metadata(folder) == {"run_id": "abc"}
    assert part.resumed_from_step is None
    rest = train(corpus, TrainConfig(**{**SMALL, "iterations": 100}), checkpoint_dir=folder,
                 metadata={"run_id": "abc"})
    assert rest.resumed_from_step == 50
    assert np.array_equal(rest.center_vectors, uninterrupted.center_vectors)
    assert np.array_equal(rest.outside_vectors, uninterrupted.outside_vectors)
    assert rest.loss_smoothed == uninterrupted.loss_smoothed
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.json", "state-100.npz"]

    again = train(corpus, TrainConfig(**{**SMALL, "iterations": 100}), checkpoint_dir=folder)
    assert again.resumed_from_step == 100
    assert np.array_equal(again.center_vectors, uninterrupted.center_vectors)

    clear_checkpoint(folder)
    assert not folder.exists() and read_checkpoint_metadata(folder) is None
    anew = train(corpus, TrainConfig(**{**SMALL, "iterations": 100}), checkpoint_dir=folder)
    assert anew.resumed_from_step is None
    assert np.array_equal(anew.center_vectors, uninterrupted.center_vectors)


def test_a_checkpoint_of_another_config_is_an_error(corpus, tmp_path):
    train(corpus, TrainConfig(**SMALL), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="checkpoint_dir.*another training configuration"):
        train(corpus, TrainConfig(**{**SMALL, "lr": 0.2}), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="checkpoint_dir.*past iterations"):
        train(corpus, TrainConfig(**{**SMALL, "iterations": 30}), checkpoint_dir=tmp_path)
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    assert record["step"] == 60 and len(record["rng_states"]) == TRAINING_STREAMS
    assert {state["bit_generator"] for state in record["rng_states"]} == {"PCG64"}


def test_a_checkpoint_of_the_single_generator_format_is_an_error(corpus, tmp_path):
    train(corpus, TrainConfig(**SMALL), checkpoint_dir=tmp_path)
    path = tmp_path / "checkpoint.json"
    record = json.loads(path.read_text())
    record["format"] = 1
    record["rng_state"] = record.pop("rng_states")[0]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="has format 1, expected 2; delete .* to train anew"):
        train(corpus, TrainConfig(**SMALL), checkpoint_dir=tmp_path)


def test_more_blas_threads_for_naive_softmax_give_the_same_vectors_to_rounding(corpus):
    config = {**SMALL, "loss": "naive_softmax"}
    one = train(corpus, TrainConfig(**config))
    two = train(corpus, TrainConfig(**config, threads=2))
    np.testing.assert_allclose(two.center_vectors, one.center_vectors, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dim, dtype", [(5, "float64"), (100, "float64"), (100, "float32")])
def test_two_threads_give_bit_identical_negative_sampling_vectors(corpus, dim, dtype):
    config = {**SMALL, "dim": dim, "batch_size": 40, "dtype": dtype}
    one = train(corpus, TrainConfig(**config))
    two = train(corpus, TrainConfig(**config, threads=2))
    assert one.center_vectors.dtype == np.dtype(dtype)
    assert np.array_equal(two.center_vectors, one.center_vectors)
    assert np.array_equal(two.outside_vectors, one.outside_vectors)
    assert two.loss_smoothed == one.loss_smoothed
    assert not np.array_equal(one.outside_vectors, np.zeros_like(one.outside_vectors))


THREE_THREADS_CHILD = """
import numba
import numpy as np
from w2v.corpus import build_corpus
from w2v.trainer import TrainConfig, train
assert numba.config.NUMBA_NUM_THREADS == 3
rng = np.random.default_rng(0)
words = [f"w{i}" for i in range(300)]
corpus = build_corpus([list(rng.choice(words, size=12)) for _ in range(400)])
config = dict(dim=24, window=3, K=4, lr=0.3, iterations=30, batch_size=101, log_every=10,
              checkpoint_every=30, pool_copies=2, dtype="float32")
one = train(corpus, TrainConfig(**config))
three = train(corpus, TrainConfig(**config, threads=3))
print(np.array_equal(one.center_vectors, three.center_vectors),
      np.array_equal(one.outside_vectors, three.outside_vectors))
"""


@pytest.mark.slow
def test_three_threads_give_the_one_thread_bits_too():
    """An odd number of threads: three parts of the rows, 8 streams spread 3-3-2."""
    import os
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", THREE_THREADS_CHILD], capture_output=True, text=True,
                           env={**os.environ, "NUMBA_NUM_THREADS": "3"}, timeout=600)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["True", "True"]


def test_float32_vectors_follow_the_float64_run_to_single_precision(corpus):
    exact = train(corpus, TrainConfig(**SMALL))
    single = train(corpus, TrainConfig(**SMALL, dtype="float32"))
    assert single.center_vectors.dtype == single.outside_vectors.dtype == np.float32
    scale = np.abs(exact.outside_vectors).max()
    np.testing.assert_allclose(single.outside_vectors, exact.outside_vectors, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(single.center_vectors, exact.center_vectors, rtol=0, atol=1e-5 * scale)
    assert not np.array_equal(single.center_vectors, exact.center_vectors.astype(np.float32))
    assert single.loss_smoothed == pytest.approx(exact.loss_smoothed, rel=1e-5)


def test_float32_runs_resume_to_the_same_vectors(corpus, tmp_path):
    config = {**SMALL, "dtype": "float32", "iterations": 100}
    uninterrupted = train(corpus, TrainConfig(**config))
    train(corpus, TrainConfig(**{**config, "iterations": 50}), checkpoint_dir=tmp_path)
    with np.load(tmp_path / "state-50.npz") as saved:  # stored in single precision, as trained
        assert saved["center_vectors"].dtype == saved["outside_vectors"].dtype == np.float32
    rest = train(corpus, TrainConfig(**config), checkpoint_dir=tmp_path)
    assert rest.resumed_from_step == 50 and rest.center_vectors.dtype == np.float32
    assert np.array_equal(rest.center_vectors, uninterrupted.center_vectors)
    assert np.array_equal(rest.outside_vectors, uninterrupted.outside_vectors)


@pytest.mark.parametrize("kwargs", [{"loss": "naive_softmax"}, {"engine": "loop"}])
def test_float32_is_refused_where_the_kernels_compute_in_float64(kwargs):
    with pytest.raises(ValueError, match="dtype float32 is for loss neg_sampling with engine batched"):
        TrainConfig(dtype="float32", **kwargs)


PROGRESS_CHILD = """
import numpy as np
from w2v.corpus import build_corpus
from w2v.sampling import TRAINING_STREAMS
from w2v.trainer import TrainConfig, train
corpus = build_corpus([[f"w{i}", f"w{i + 1}", f"w{i + 2}"] for i in range(0, 3000, 3)])
train(corpus, TrainConfig(dim=4, window=2, K=2, iterations=200, batch_size=4, log_every=10),
      progress=True)
train(corpus, TrainConfig(dim=4, window=2, K=2, iterations=20, batch_size=4))
"""


@pytest.mark.slow
@pytest.mark.integration
def test_progress_bar_on_a_terminal_only(tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    def run(stderr_on_terminal):
        primary, secondary = pty.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
        child = subprocess.run([sys.executable, "-c", PROGRESS_CHILD], stdout=subprocess.DEVNULL,
                               stderr=secondary if stderr_on_terminal else subprocess.PIPE,
                               timeout=120)
        os.close(secondary)
        output = b""
        if stderr_on_terminal:
            while True:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
        else:
            output = child.stderr
        os.close(primary)
        assert child.returncode == 0, output.decode(errors="replace")
        return output.decode(errors="replace")

    on_terminal = run(True)
    assert "train" in on_terminal and "200/200" in on_terminal and "loss=" in on_terminal
    assert run(False) == ""   # no bar into a log file


def test_dtype_auto_is_float32_for_batched_negative_sampling_and_float64_elsewhere():
    assert TrainConfig(dtype="auto").dtype == "float32"
    assert TrainConfig(dtype="auto", loss="naive_softmax").dtype == "float64"
    assert TrainConfig(dtype="auto", engine="loop").dtype == "float64"


def test_invalid_fields_raise_a_setting_error_naming_the_field():
    from w2v.rules import SettingError

    with pytest.raises(SettingError) as raised:
        TrainConfig(lr=float("inf"))
    assert (raised.value.name, str(raised.value)) == ("lr", "lr must be a finite number > 0, got inf")


def test_negative_sampling_fingerprint_leaves_out_threads_naive_softmax_keeps_them(corpus):
    def fingerprint(**changes):
        return config_fingerprint(TrainConfig(**{**SMALL, **changes}), corpus)

    assert fingerprint(threads=1) == fingerprint(threads=2)
    assert fingerprint(loss="naive_softmax", threads=1) != fingerprint(loss="naive_softmax", threads=2)


def test_a_negative_sampling_checkpoint_resumes_with_another_thread_count(corpus, tmp_path):
    config = {**SMALL, "iterations": 100, "dtype": "float32", "batch_size": 40}
    uninterrupted = train(corpus, TrainConfig(**config, threads=1))
    train(corpus, TrainConfig(**{**config, "iterations": 50}, threads=2), checkpoint_dir=tmp_path)
    rest = train(corpus, TrainConfig(**config, threads=1), checkpoint_dir=tmp_path)
    assert rest.resumed_from_step == 50
    assert np.array_equal(rest.center_vectors, uninterrupted.center_vectors)


# The steps of `train`, each on its own.

def test_resume_state_carries_the_checkpoint_and_leaves_a_fresh_state_without_one(corpus, tmp_path):
    from w2v.trainer import initial_state, resume_state

    config = TrainConfig(**SMALL)
    fingerprint = config_fingerprint(config, corpus)
    seeds = np.random.SeedSequence(config.seed).spawn(3)
    fresh = initial_state(corpus, config, seeds[1], seeds[2])
    assert fresh.step == 0 and fresh.loss_smoothed is None and fresh.resumed_from_step is None
    assert resume_state(fresh, tmp_path / "none", fingerprint, config) is fresh

    finished = train(corpus, config, checkpoint_dir=tmp_path)
    resumed = resume_state(initial_state(corpus, config, seeds[1], seeds[2]), tmp_path, fingerprint, config)
    assert (resumed.step, resumed.resumed_from_step) == (60, 60)
    assert resumed.loss_smoothed == finished.loss_smoothed
    assert np.array_equal(resumed.center_vectors, finished.center_vectors)
    assert resumed.center_vectors.flags.c_contiguous and resumed.center_vectors.dtype == np.float64
    with pytest.raises(ValueError, match="past iterations=30"):
        resume_state(fresh, tmp_path, fingerprint, TrainConfig(**{**SMALL, "iterations": 30}))


def test_run_events_smooth_the_loss_at_log_points_and_checkpoint_on_schedule(corpus, tmp_path):
    from w2v.checkpoint import checkpoint_step
    from w2v.trainer import RunEvents, initial_state

    config = TrainConfig(**{**SMALL, "iterations": 50, "log_every": 10, "checkpoint_every": 20})
    seeds = np.random.SeedSequence(0).spawn(3)
    state = initial_state(corpus, config, seeds[1], seeds[2])
    hooks = Recorder()
    events = RunEvents(config, hooks, tmp_path, "fingerprint", {"run": 1})
    events.start(0, 0.0)
    for step, loss in [(5, 9.0), (10, 4.0), (20, 2.0), (30, 1.0), (50, 3.0)]:
        state.step = step
        events.after(state, np.array([loss]))
    assert [(r.step, r.loss) for r in hooks.records] == [(10, 4.0), (20, 2.0), (30, 1.0), (50, 3.0)]
    expected = 4.0
    for record, loss in zip(hooks.records[1:], (2.0, 1.0, 3.0)):
        expected = 0.95 * expected + 0.05 * loss
        assert record.loss_smoothed == expected
    assert hooks.records[0].loss_smoothed == 4.0  # the first log point starts the average
    assert hooks.checkpoints == [20, 50]  # every checkpoint_every and at the last iteration
    assert checkpoint_step(tmp_path) == 50 and read_checkpoint_metadata(tmp_path) == {"run": 1}


def test_run_iterations_stops_at_a_non_finite_loss_at_the_last_good_event(corpus):
    from w2v.trainer import RunEvents, _stepper, initial_state, run_iterations

    config = TrainConfig(**{**SMALL, "lr": 1e30, "iterations": 200, "log_every": 1})
    seeds = np.random.SeedSequence(0).spawn(3)
    state = initial_state(corpus, config, seeds[1], seeds[2])
    from w2v.sampling import NegativeTable, build_sentence_pool

    tokens, offsets = corpus.training_sentences()
    pool = build_sentence_pool(tokens, offsets, corpus.keep_prob, 1, np.random.default_rng(seeds[0]))
    stepper = _stepper(config, pool, NegativeTable.from_weights(corpus.neg_weight), state.center_vectors,
                       state.outside_vectors, config.window, config.K, config.batch_size)
    hooks = Recorder()
    with pytest.raises(DivergenceError) as error:
        run_iterations(stepper, state, config, RunEvents(config, hooks, None, "f", {}))
    assert error.value.step == state.step + 1 == hooks.records[-1].step + 1
