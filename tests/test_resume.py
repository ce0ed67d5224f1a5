"""A training process killed with SIGKILL at arbitrary moments, started again with the same
checkpoint folder, ends with exactly the vectors of an uninterrupted run."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from w2v.corpus import build_corpus
from w2v.trainer import TrainConfig, train

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TESTS_DIR = Path(__file__).resolve().parent
CONFIG = dict(dim=6, window=3, K=5, lr=0.3, iterations=3000, batch_size=20, anneal_every=700,
              checkpoint_every=50, log_every=10, pool_copies=3, seed=5)

# The training process: slowed by a sleep in its log hook (hooks do not change the result) so
# that the test can kill it mid-run; it announces every checkpoint before writing it.
CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from test_resume import CONFIG, small_corpus
    from w2v.trainer import TrainConfig, TrainHooks, train

    class Hooks(TrainHooks):
        def on_log(self, record):
            time.sleep(0.002)

        def before_checkpoint(self, step):
            print(step, flush=True)

    result = train(small_corpus(), TrainConfig(**CONFIG), checkpoint_dir=sys.argv[1], hooks=Hooks())
    np.save(sys.argv[2], np.concatenate([result.center_vectors, result.outside_vectors]))
    print("resumed", result.resumed_from_step, flush=True)
""")


def small_corpus():
    rng = np.random.default_rng(0)
    zipf = 1.0 / np.arange(1, 61)
    words = [f"w{i}" for i in range(60)]
    return build_corpus([[words[i] for i in rng.choice(60, size=rng.integers(3, 15), p=zipf / zipf.sum())]
                         for _ in range(200)])


def start(checkpoint_dir, output):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(checkpoint_dir), str(output)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_sigkill_at_any_moment_then_resume_gives_identical_vectors(tmp_path):
    checkpoint_dir, output = tmp_path / "checkpoint", tmp_path / "vectors.npy"
    pace = random.Random(1)
    last_announced = 0
    for kill_after in (400, 1100, 1900):  # checkpoint steps after which to kill, within ~0-20 ms
        child = start(checkpoint_dir, output)
        for line in child.stdout:
            last_announced = int(line)
            if last_announced >= kill_after:
                break
        else:
            raise AssertionError(f"the run ended before step {kill_after}: {child.stderr.read()}")
        time.sleep(pace.uniform(0, 0.02))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        assert not output.exists()

    child = start(checkpoint_dir, output)
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 0, stderr
    resumed_from = stdout.strip().splitlines()[-1]
    resumed_step = int(resumed_from.split()[1])
    # the last announced checkpoint, or the one before when the kill hit its writing
    assert last_announced - CONFIG["checkpoint_every"] <= resumed_step <= last_announced + 200

    # the folder holds one checkpoint and nothing a kill mid-write may have left
    assert sorted(p.name for p in checkpoint_dir.iterdir()) == ["checkpoint.json", "state-3000.npz"]

    uninterrupted = train(small_corpus(), TrainConfig(**CONFIG))
    resumed = np.load(output)
    assert np.array_equal(resumed, np.concatenate([uninterrupted.center_vectors,
                                                   uninterrupted.outside_vectors]))
