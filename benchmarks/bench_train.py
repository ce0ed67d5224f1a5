"""Training speed on the SST vocabulary, classic configuration (dim 10, m 5, K 10, lr 0.3, batch 50):
the loop engine (per-pair reference functions) against the batched numba kernel, seconds per
iteration as medians over repeats, their ratio and the projected wall time of 40,000 iterations;
the batched engine on 2 threads (train.threads = 2, bit-identical results); naive softmax on the
batched engine; then the full classic 40,000-iteration run through
w2v.trainer.train (wall time and final smoothed loss; the original assignment reports 9.81).

    python benchmarks/bench_train.py                 # about 2 minutes
    python benchmarks/bench_train.py --quick         # fewer iterations, no full run
    python benchmarks/bench_train.py --full-naive    # also the full naive-softmax run (minutes)

The corpus is data/processed when the tokenize stage has run, else read from the SST files.
"""
import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from w2v.corpus import load_corpus
from w2v.engines import ENGINES
from w2v.readers import read_sst
from w2v.sampling import NegativeTable, build_sentence_pool, training_streams
from w2v.trainer import TrainConfig, initial_vectors, train

ROOT = Path(__file__).resolve().parent.parent
PROCESSED = ROOT / "data" / "processed"
SST = ROOT.parent / "shared" / "data" / "stanfordSentimentTreebank"
CLASSIC = TrainConfig()  # the defaults are the classic run
FULL_RUN = 40_000


def load():
    if (PROCESSED / "tokens.npy").is_file():
        return load_corpus(PROCESSED), str(PROCESSED)
    return read_sst(SST), str(SST)


def seconds_per_iteration(engine, corpus, pool, table, loss, iterations, repeats, threads=1):
    """Wall and CPU seconds per iteration over `repeats` runs of `iterations` steps (after a
    warm-up): (median wall, min wall, max wall, median CPU). On a shared machine the CPU time of
    this single-threaded process is the better estimate of the uncontended wall time (with
    threads > 1 it is the sum over the threads)."""
    center_vectors, outside_vectors = initial_vectors(corpus.vocab_size, CLASSIC.dim,
                                                      np.random.default_rng(0))
    options = {"threads": threads} if threads > 1 else {}
    stepper = ENGINES[engine].Stepper(pool, table, center_vectors, outside_vectors, loss,
                                      CLASSIC.window, CLASSIC.K, CLASSIC.batch_size, **options)
    rng = training_streams(1)
    stepper.run(rng, CLASSIC.lr, 2)  # compile / load the kernels (and numba's BLAS), warm caches
    threadpool_limits(limits=1, user_api="blas")  # as w2v.trainer.train does
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        stepper.run(rng, CLASSIC.lr, iterations)
        times.append((time.perf_counter() - start) / iterations)
        cpu_times.append((time.process_time() - cpu_start) / iterations)
    return statistics.median(times), min(times), max(times), statistics.median(cpu_times)


def report(name, timing, iterations, repeats):
    median, fastest, slowest, cpu = timing
    print(f"{name:<31} wall {median * 1e3:9.3f} ms/it (min {fastest * 1e3:.3f}, max {slowest * 1e3:.3f};"
          f" {repeats} x {iterations} it), CPU {cpu * 1e3:9.3f} ms/it"
          f" -> 40k: wall {median * FULL_RUN:7.1f} s, CPU {cpu * FULL_RUN:7.1f} s")


def full_run(corpus, loss):
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train(corpus, TrainConfig(loss=loss, iterations=FULL_RUN))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"full {loss} run, {FULL_RUN} iterations: train_seconds {result.train_seconds:.2f} s "
          f"(compile {result.compile_seconds:.2f} s; whole call: wall {wall:.2f} s, CPU {cpu:.2f} s), "
          f"final smoothed loss {result.loss_smoothed:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations, no full run")
    parser.add_argument("--full-naive", action="store_true", help="also run naive softmax 40k")
    args = parser.parse_args()
    quick = args.quick

    corpus, source = load()
    tokens, offsets = corpus.training_sentences()
    pool = build_sentence_pool(tokens, offsets, corpus.keep_prob, CLASSIC.pool_copies,
                               np.random.default_rng(0))
    table = NegativeTable.from_weights(corpus.neg_weight)
    print(f"corpus {source}: V = {corpus.vocab_size}, {len(tokens)} tokens, pool of "
          f"{pool.num_sentences} sentences; dim {CLASSIC.dim}, m {CLASSIC.window}, K {CLASSIC.K}, "
          f"batch {CLASSIC.batch_size}")

    plan = [("loop", "neg_sampling", 1, 20 if quick else 100, 3),
            ("batched", "neg_sampling", 1, 1000 if quick else 5000, 5),
            ("batched", "neg_sampling", 2, 1000 if quick else 5000, 5),
            ("batched", "naive_softmax", 1, 10 if quick else 50, 3)]
    timings = {}
    for engine, loss, threads, iterations, repeats in plan:
        timing = seconds_per_iteration(engine, corpus, pool, table, loss, iterations, repeats, threads)
        if threads == 1:
            timings[engine, loss] = timing
        report(f"{engine} {loss}" + (f" {threads} threads" if threads > 1 else ""), timing,
               iterations, repeats)
    ratio = timings["loop", "neg_sampling"][0] / timings["batched", "neg_sampling"][0]
    cpu_ratio = timings["loop", "neg_sampling"][3] / timings["batched", "neg_sampling"][3]
    print(f"batched speed-up over loop (neg_sampling): {ratio:.0f}x wall, {cpu_ratio:.0f}x CPU")

    if not quick:
        full_run(corpus, "neg_sampling")
    if args.full_naive:
        full_run(corpus, "naive_softmax")


if __name__ == "__main__":
    main()
