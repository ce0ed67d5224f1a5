"""w2v.trainer.train of this checkout against the trainer.py of another git revision, alternating
in one process on the SST corpus: CPU seconds per call and train_seconds, medians over rounds,
their ratio, and whether both give the same vectors. For a change of trainer.py alone (the
engines and the rest of w2v are this checkout's on both sides).

    python benchmarks/bench_trainer_revision.py --against HEAD~1
    python benchmarks/bench_trainer_revision.py --against main --iterations 20000 --rounds 12 \\
        --set batch_size=1 --set log_every=1      # an event at every iteration: the loop's own cost
"""
import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SST = ROOT.parent / "shared" / "data" / "stanfordSentimentTreebank"


def trainer_of(revision: str, folder: Path):
    """The w2v/trainer.py of `revision`, imported as a module of its own."""
    source = subprocess.run(["git", "show", f"{revision}:w2v/trainer.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    path = folder / "trainer_at_revision.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("trainer_at_revision", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def setting(text: str) -> tuple[str, int]:
    key, _, value = text.partition("=")
    return key, int(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="git revision whose trainer.py is the baseline")
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="KEY=INT",
                        help="a TrainConfig integer field for both sides")
    args = parser.parse_args()

    import w2v.trainer as current
    from w2v.readers import read_sst

    corpus = read_sst(SST)
    with tempfile.TemporaryDirectory() as folder:
        sides = {args.against: trainer_of(args.against, Path(folder)), "this checkout": current}
        extra = dict(args.set)
        for module in sides.values():  # compile / load the kernels before timing
            module.train(corpus, module.TrainConfig(iterations=100, **extra))
        timings = {name: [] for name in sides}
        for r in range(args.rounds):
            for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                module = sides[name]
                cpu = time.process_time()
                result = module.train(corpus, module.TrainConfig(iterations=args.iterations, **extra))
                timings[name].append((time.process_time() - cpu, result.train_seconds,
                                      result.center_vectors.tobytes() + result.outside_vectors.tobytes()))
    for name, rows in timings.items():
        cpu, wall = [row[0] for row in rows], [row[1] for row in rows]
        print(f"{name:<14} CPU s per call {statistics.median(cpu):.3f} [{min(cpu):.3f}-{max(cpu):.3f}]   "
              f"train_seconds {statistics.median(wall):.3f} [{min(wall):.3f}-{max(wall):.3f}]")
    base, new = (timings[name] for name in sides)
    print(f"this checkout / {args.against}, CPU: ratio of medians "
          f"{statistics.median(r[0] for r in new) / statistics.median(r[0] for r in base):.3f}, "
          f"median per-round ratio {statistics.median(n[0] / b[0] for n, b in zip(new, base)):.3f} "
          f"({args.rounds} rounds of {args.iterations} iterations)")
    print("the same vectors on both sides:", len({row[2] for rows in timings.values() for row in rows}) == 1)


if __name__ == "__main__":
    main()
