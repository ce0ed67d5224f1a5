"""What per-step MLflow logging costs the classic run (40,000 iterations, log_every 10: 4,000 log
points of 4 metrics), by transport from the training loop to a fresh SQLite store:

- `none`: the values are journaled and dropped (the baseline: training alone);
- `helper`: a separate writer process fed through a pipe, the transport of pipeline.tracking up
  to commit 4ae5c07 (its MetricSink, loaded from git);
- `mlflow`: MLflow's own asynchronous logging (`log_batch(..., synchronous=False)`), the
  transport of pipeline.tracking.MetricSink now.

Each trial is a fresh process doing what `python -m pipeline.train` does around the loop (the
RunLogger journal, checkpoints every 5,000 iterations, the final flush). The trials of one round
run back to back, in an order rotated every round, so a load from other users falls on all of
them alike. Logging share = (training seconds - the same round's `none` training seconds) /
training seconds; medians over the rounds, with min-max; also the seconds spent inside the
sink's `add` (what the run logs as logging_seconds), the finishing flush, and the extra CPU
seconds (this process and its children) over `none`. Every trial checks that each step is in
the store exactly once.

    python benchmarks/bench_logging.py                  # 3 rounds, about 4 minutes on a quiet machine
    python benchmarks/bench_logging.py --rounds 5 --iterations 20000
    python benchmarks/bench_logging.py --sigkill 3      # the kill-and-resume check instead

`--sigkill N`: N times per transport, `python -m pipeline.train` on the classic run is killed with
SIGKILL at a random moment after its first checkpoint and started again at once; the resumed run
must finish with every step in the store exactly once. `helper` runs the project as of
HELPER_REV (from git), `mlflow` this checkout. Printed: steps missing and steps logged twice.
"""
import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELPER_REV = "4ae5c07"  # the last commit whose pipeline/tracking.py has the writer process
TRANSPORTS = ("none", "helper", "mlflow")


class DroppingSink:
    """The `none` transport: MetricSink's interface, no store."""
    seconds = 0.0

    def add(self, step, values, timestamp=None):
        pass

    def close(self, flush=True):
        pass


def helper_sink(helper_file: Path, run_id: str):
    """The MetricSink of HELPER_REV, its writer process started from helper_file."""
    spec = importlib.util.spec_from_file_location("helper_tracking", helper_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class HelperSink(module.MetricSink):
        def _start_helper(self):
            env = dict(os.environ, MLFLOW_TRACKING_URI=module.tracking_uri(), PYTHONPATH=str(ROOT))
            process = subprocess.Popen([sys.executable, str(helper_file), self.run_id], env=env, cwd=ROOT,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            import fcntl

            fcntl.fcntl(process.stdin.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), module.PIPE_BYTES)
            return process

    return HelperSink(run_id)


def trial(transport: str, workdir: Path, helper_file: Path, iterations: int) -> dict:
    """One training run with `transport`; its timings and what reached the store."""
    from pipeline import tracking
    from pipeline.train import JOURNAL_FILE, RunLogger, hooks_for
    from w2v.corpus import load_corpus
    from w2v.trainer import TrainConfig, train

    corpus = load_corpus(ROOT / "data" / "processed")
    config = TrainConfig(iterations=iterations)  # the defaults are the classic run
    client = tracking.client()
    experiment_id = tracking.get_or_create_experiment(client, "bench-logging")
    run_id = client.create_run(experiment_id, run_name=transport).info.run_id
    if transport == "none":
        sink = DroppingSink()
    elif transport == "helper":
        sink = helper_sink(helper_file, run_id)
    else:
        sink = tracking.MetricSink(run_id)
    checkpoints = workdir / "checkpoints"
    checkpoints.mkdir()
    run_logger = RunLogger(sink, checkpoints / JOURNAL_FILE, config.iterations, progress_lines=False)
    result = train(corpus, config, checkpoint_dir=checkpoints, hooks=hooks_for(run_logger))
    in_loop = sink.seconds
    start = time.perf_counter()
    sink.close()
    flush = time.perf_counter() - start
    run_logger.close()
    client.set_terminated(run_id)
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    steps = {key: sorted(m.step for m in client.get_metric_history(run_id, key)) for key in tracking.STEP_METRICS}
    expected = list(range(config.log_every, iterations + 1, config.log_every)) if transport != "none" else []
    return {"transport": transport, "train_seconds": result.train_seconds, "in_loop_seconds": in_loop,
            "flush_seconds": flush, "cpu_seconds": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
            "exactly_once": all(found == expected for found in steps.values())}


def run_trial(transport: str, workdir: Path, store_template: Path, helper_file: Path, iterations: int) -> dict:
    workdir.mkdir()
    shutil.copy(store_template, workdir / "mlflow.db")
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, __file__, "--trial", transport, "--workdir", str(workdir),
                           "--helper-file", str(helper_file), "--iterations", str(iterations)],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: the {transport} trial failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float], scale: float = 1.0, unit: str = "") -> str:
    scaled = [v * scale for v in values]
    return f"{statistics.median(scaled):7.2f}{unit} [{min(scaled):.2f}-{max(scaled):.2f}]"


def report(rounds: list[dict[str, dict]]) -> None:
    print(f"\n{len(rounds)} rounds; median [min-max]")
    print(f"{'transport':<9} {'train s':>20} {'logging share':>22} {'in add() s':>20} {'flush s':>20} "
          f"{'extra CPU s':>20}  exactly once")
    shares = {}
    for transport in TRANSPORTS:
        trials = [r[transport] for r in rounds]
        shares[transport] = [(t["train_seconds"] - r["none"]["train_seconds"]) / t["train_seconds"]
                             for t, r in zip(trials, rounds)]
        extra_cpu = [t["cpu_seconds"] - r["none"]["cpu_seconds"] for t, r in zip(trials, rounds)]
        print(f"{transport:<9} {spread([t['train_seconds'] for t in trials]):>20} "
              f"{spread(shares[transport], 100, '%'):>22} {spread([t['in_loop_seconds'] for t in trials]):>20} "
              f"{spread([t['flush_seconds'] for t in trials]):>20} {spread(extra_cpu):>20}  "
              f"{all(t['exactly_once'] for t in trials) if transport != 'none' else '-'}")
    helper, mlflow = (statistics.median([r[t]["train_seconds"] for r in rounds]) for t in ("helper", "mlflow"))
    print(f"\ntraining time mlflow / helper: {mlflow / helper:.3f}; logging share mlflow "
          f"{100 * statistics.median(shares['mlflow']):.2f}% vs helper {100 * statistics.median(shares['helper']):.2f}%")


def kill_and_resume(tree: Path, workdir: Path, store_template: Path, pace) -> dict:
    """The classic run of the project in `tree`, SIGKILLed once mid-training, then resumed."""
    from mlflow.tracking import MlflowClient

    workdir.mkdir()
    shutil.copy(store_template, workdir / "mlflow.db")
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "W2V_"))}
    env.update(MLFLOW_TRACKING_URI=store, PYTHONPATH=str(tree))
    command = [sys.executable, "-m", "pipeline.train", f"paths.processed={ROOT / 'data' / 'processed'}",
               f"paths.checkpoints={workdir / 'checkpoints'}", f"hydra.run.dir={workdir / 'run'}"]
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while process.poll() is None and not list((workdir / "checkpoints").rglob("checkpoint.json")):
        time.sleep(0.01)
    time.sleep(pace.uniform(0, 8))  # 5,000 more iterations take about 2 s alone
    process.kill()
    process.wait()
    client = MlflowClient(store)
    run_id = client.search_runs([client.get_experiment_by_name("w2v").experiment_id])[0].info.run_id
    at_kill = len(client.get_metric_history(run_id, "loss"))
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: the resumed run failed:\n{done.stderr[-3000:]}")
    steps = [m.step for m in client.get_metric_history(run_id, "loss")]
    expected = set(range(10, 40_001, 10))
    return {"killed_with_steps_in_store": at_kill, "status": client.get_run(run_id).info.status,
            "missing": len(expected - set(steps)), "twice": len(steps) - len(set(steps))}


def sigkill_check(times: int, tmp: Path) -> None:
    import random

    helper_tree = tmp / "helper-tree"
    helper_tree.mkdir()
    archive = subprocess.run(["git", "archive", HELPER_REV, "pipeline", "w2v", "conf"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(helper_tree)], input=archive, check=True)
    pace = random.Random(0)
    for number in range(times):
        for transport, tree in (("helper", helper_tree), ("mlflow", ROOT))[::1 if number % 2 == 0 else -1]:
            result = kill_and_resume(tree, tmp / f"kill-{number}-{transport}", tmp / "template.db", pace)
            print(f"{transport:<7} killed with {result['killed_with_steps_in_store']:4d} of 4000 steps in the store; "
                  f"after the resume: {result['status']}, {result['missing']} missing, {result['twice']} twice",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=40_000)
    parser.add_argument("--sigkill", type=int, metavar="N", help="the kill-and-resume check, N times per transport")
    parser.add_argument("--trial", choices=TRANSPORTS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--helper-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trial:
        print(json.dumps(trial(args.trial, args.workdir, args.helper_file, args.iterations)))
        return
    if not (ROOT / "data" / "processed" / "tokens.npy").is_file():
        raise SystemExit("error: no processed corpus in data/processed: run `python -m pipeline.tokenize` first")
    with tempfile.TemporaryDirectory(prefix="bench-logging-") as tmp:
        tmp = Path(tmp)
        helper_file = tmp / "helper_tracking.py"
        helper_file.write_text(subprocess.run(["git", "show", f"{HELPER_REV}:pipeline/tracking.py"], cwd=ROOT,
                                              capture_output=True, text=True, check=True).stdout)
        from mlflow.tracking import MlflowClient

        MlflowClient(f"sqlite:///{tmp / 'template.db'}").search_experiments()  # creates the tables once
        if args.sigkill:
            sigkill_check(args.sigkill, tmp)
            return
        # numba compiles its kernels into its cache on a first run: not in any measured trial
        run_trial("none", tmp / "warm-up", tmp / "template.db", helper_file, 100)
        rounds = []
        for number in range(args.rounds):
            order = TRANSPORTS[number % 3:] + TRANSPORTS[:number % 3]
            trials = {t: run_trial(t, tmp / f"{number}-{t}", tmp / "template.db", helper_file, args.iterations)
                      for t in order}
            rounds.append(trials)
            print(f"round {number + 1}: " + "  ".join(f"{t} {trials[t]['train_seconds']:.2f} s" for t in order),
                  flush=True)
        report(rounds)


if __name__ == "__main__":
    main()
