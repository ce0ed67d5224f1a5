"""This project's batched trainer against gensim's Word2Vec on SST, side by side in one run.

    python benchmarks/bench_vs_gensim.py                         # dim 10 and 100, 3 seeds each
    python benchmarks/bench_vs_gensim.py --dims 10 --seeds 1 --windows 200000   # a quick look
    python benchmarks/bench_vs_gensim.py --profile               # also: where this trainer's time goes

Both sides get the same SST tokens (data/processed when the tokenize stage has run, else the SST
files), the same dimension, window (m = 5, each window's size uniform in 1..m), K = 10 negatives
from unigram^0.75 of the corpus counts, the same subsampling (the assignment's keep probability
min(1, sqrt(t / count)), t = 1e-5 x total count) and the same number of centre words:

- this project: w2v.trainer.train, batch 500 windows, on 2 threads (train.threads = 2, as
  gensim's 2 workers; bit-identical to 1 thread), vectors stored in float32 as gensim's
  (train.dtype; --dtypes float32 float64 for both), with two step sizes (--lrs): 3.0, the classic
  0.3 per 50 windows scaled with the batch size (the same step per window as the assignment's run,
  see README "Benchmarks"), and 60, the largest of the step sizes tried on SST that does not
  diverge (120 does); each with two schedules (--schedules): "linear" (decaying to 0 over the run
  as gensim's alpha) and "step" (the assignment's, halved halfway as the classic run does);
- gensim: Word2Vec(sg=1, negative=10, workers=2, its default alpha 0.025 decaying linearly to
  0.0001), trained for one pass over subsampled copies of the sentences (drawn exactly as this
  project's sentence pool) cut to the same number of tokens, with sample=0 (already subsampled)
  and its vocabulary built from the raw corpus counts, so its negatives follow the same table.

The runs are interleaved (for each seed: every variant of ours, then gensim), so a change of the
machine's load hits both sides alike. Printed for each: centre words per second of the training
loop (wall and per CPU-second), wall time of the whole training call, WordSim-353 and SimLex-999
Spearman as mean ± standard deviation over the seeds, then the ratios. Throughput figures are
medians over the seeds.
"""
import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors, Word2Vec

from w2v.corpus import load_corpus
from w2v.evaluation import SIMLEX999, WORDSIM353, word_similarity
from w2v.readers import read_sst
from w2v.sampling import Minibatch, NegativeTable, build_sentence_pool, fill_minibatch, training_streams
from w2v.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
PROCESSED = ROOT / "data" / "processed"
SST = ROOT.parent / "shared" / "data" / "stanfordSentimentTreebank"
CLASSIC_WINDOWS = 40_000 * 50  # the assignment's run: 40,000 iterations of 50 windows
BATCH = 500
LR = 0.3 * BATCH / 50          # lr applies to the batch-mean gradient: scale it with the batch
WINDOW, K = 5, 10


def load():
    if (PROCESSED / "tokens.npy").is_file():
        return load_corpus(PROCESSED), str(PROCESSED)
    return read_sst(SST), str(SST)


def spearman(words, vectors):
    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(list(words), vectors.astype(np.float32))
    return word_similarity(kv, WORDSIM353).spearman, word_similarity(kv, SIMLEX999).spearman


def run_ours(corpus, dim, seed, windows, threads, schedule, dtype="float32", lr=LR):
    iterations = windows // BATCH
    config = TrainConfig(dim=dim, window=WINDOW, K=K, lr=lr, lr_schedule=schedule, batch_size=BATCH,
                         iterations=iterations, anneal_every=max(iterations // 2, 1),
                         log_every=max(iterations // 20, 1), checkpoint_every=iterations, seed=seed,
                         threads=threads, dtype=dtype)
    start, cpu = time.perf_counter(), time.process_time()
    result = train(corpus, config)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    centre_words = iterations * BATCH
    ws, simlex = spearman(corpus.words, result.center_vectors)
    return {"words": centre_words, "loop_seconds": result.train_seconds, "wall": wall, "cpu": cpu,
            "ws353": ws, "simlex": simlex}


def gensim_sentences(corpus, seed, windows):
    """Subsampled copies of the training sentences (as this project's pool draws them), as lists
    of words, cut to exactly `windows` tokens."""
    tokens, offsets = corpus.training_sentences()
    per_copy = build_sentence_pool(tokens, offsets, corpus.keep_prob, 1, np.random.default_rng(seed)).tokens.size
    pool = build_sentence_pool(tokens, offsets, corpus.keep_prob, windows // per_copy + 2,
                               np.random.default_rng(seed))
    end = int(np.searchsorted(pool.offsets, windows, side="left"))
    words = np.array(corpus.words, dtype=object)[pool.tokens[:windows]]
    cuts = np.minimum(pool.offsets[1:end + 1], windows)
    sentences = [s.tolist() for s in np.split(words, cuts[:-1])]
    assert sum(map(len, sentences)) == windows
    return sentences


def run_gensim(corpus, dim, seed, windows):
    sentences = gensim_sentences(corpus, seed, windows)
    start, cpu = time.perf_counter(), time.process_time()
    model = Word2Vec(vector_size=dim, window=WINDOW, negative=K, hs=0, sg=1, sample=0, min_count=1,
                     workers=2, seed=seed)
    model.build_vocab_from_freq({w: int(c) for w, c in zip(corpus.words, corpus.counts) if c > 0})
    loop_start = time.perf_counter()
    trained, _ = model.train(sentences, total_examples=len(sentences), epochs=1)
    loop_seconds = time.perf_counter() - loop_start
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    ws, simlex = spearman(model.wv.index_to_key, model.wv.vectors)
    return {"words": trained, "loop_seconds": loop_seconds, "wall": wall, "cpu": cpu, "ws353": ws, "simlex": simlex}


def mean_spread(values):
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def summarise(name, runs):
    speed = statistics.median(r["words"] / r["loop_seconds"] for r in runs)
    cpu_speed = statistics.median(r["words"] / r["cpu"] for r in runs)
    wall = statistics.median(r["wall"] for r in runs)
    print(f"  {name:24s} {speed:12,.0f} {cpu_speed:14,.0f} {wall:9.1f}   {mean_spread([r['ws353'] for r in runs]):15s} "
          f"{mean_spread([r['simlex'] for r in runs]):15s} {runs[0]['words']:>10,}")
    return {"speed": speed, "cpu_speed": cpu_speed, "wall": wall,
            "ws353": statistics.mean(r["ws353"] for r in runs)}


def profile(corpus, dim, dtype, iterations=300):
    """Wall time per minibatch of BATCH windows (median over `iterations`), phase by phase, as the
    trainer runs them: on one thread drawing the windows and negatives, gradient, update; on two
    threads drawing and gradient fused (each sampling stream computes its windows), then the
    update with the rows split between the threads. Also the cost per (word, context-or-negative)
    pair on one thread."""
    import numba
    from w2v.engines import batched

    tokens, offsets = corpus.training_sentences()
    pool = build_sentence_pool(tokens, offsets, corpus.keep_prob, 30, np.random.default_rng(0))
    table = NegativeTable.from_weights(corpus.neg_weight)
    batch = Minibatch.empty(BATCH, WINDOW, K)
    buffers = batched._buffers(corpus.vocab_size, dim, BATCH, 2 * WINDOW, K, False, dtype)
    center_vectors = np.random.default_rng(1).uniform(-0.5, 0.5, (corpus.vocab_size, dim)).astype(dtype) / dim
    outside_vectors = np.random.default_rng(2).normal(0, 0.1, (corpus.vocab_size, dim)).astype(dtype)
    params = batched.Vectors(center_vectors, outside_vectors)
    rngs = training_streams(0)
    sample_args = (pool.tokens, pool.offsets, WINDOW, table.prob, table.alias)
    sampler = batched.Sampler(*sample_args)
    batch_args = (batch.centers, batch.contexts, batch.context_lengths, batch.negatives)
    arrays = batched.Batch(*batch_args)
    previous_threads = numba.get_num_threads()
    for threads in (1, 2):
        numba.set_num_threads(threads)
        work = batched._part_work(len(rngs), threads, BATCH, 2 * WINDOW, K)
        phases, pairs = {"draw": [], "gradient": [], "update": []}, []
        for iteration in range(iterations + 10):  # the first 10 warm up (and compile)
            start = time.perf_counter()
            if threads == 1:
                fill_minibatch(rngs, *sample_args, *batch_args)
                drawn = time.perf_counter()
                batched._minibatch_gradient(params, arrays, False, buffers)
            else:
                drawn = start
                batched._sample_neg_sampling_minibatch_parallel(rngs, sampler, params, arrays,
                                                                buffers, work)
            gradient = time.perf_counter()
            if threads == 1:
                batched._scatter_gradient(arrays, False, buffers, -1e-3, params)
            else:
                batched._update_parallel(batch.centers, buffers, -1e-3, params, work)
            end = time.perf_counter()
            if iteration >= 10:
                for name, seconds in zip(phases, (drawn - start, gradient - drawn, end - gradient)):
                    phases[name].append(seconds)
                pairs.append(int(batch.context_lengths.sum()) * (K + 1))
        median = {name: 1e3 * statistics.median(times) for name, times in phases.items()}
        total = sum(median.values())
        if threads == 1:
            per_pair = 1e6 * (median["gradient"] + median["update"]) / statistics.median(pairs)
            print(f"  dim {dim} {dtype}, 1 thread: {total:.2f} ms per {BATCH} windows = draw {median['draw']:.2f} "
                  f"+ gradient {median['gradient']:.2f} + update {median['update']:.2f}; "
                  f"{statistics.median(pairs) / BATCH:.1f} pairs per window, gradient and update "
                  f"{per_pair:.0f} ns per pair")
        else:
            print(f"  dim {dim} {dtype}, 2 threads: {total:.2f} ms per {BATCH} windows = draw and gradient "
                  f"{median['gradient']:.2f} + update {median['update']:.2f}")
    numba.set_num_threads(previous_threads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=CLASSIC_WINDOWS,
                        help="centre words per run (default: the classic 40,000 x 50)")
    parser.add_argument("--threads", type=int, default=2,
                        help="this trainer's train.threads (default 2, as gensim's workers)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[LR, 60.0], help="this trainer's train.lr(s)")
    parser.add_argument("--schedules", nargs="+", default=["linear", "step"],
                        choices=["linear", "step"], help="this trainer's train.lr_schedule(s)")
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=["float32", "float64"],
                        help="this trainer's train.dtype(s)")
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    windows = options.windows // BATCH * BATCH
    corpus, source = load()
    print(f"corpus {source}: {corpus.vocab_size:,} words, {len(corpus.training_sentences()[0]):,} training tokens; "
          f"{windows:,} centre words per run; window {WINDOW}, K {K}; ours: batch {BATCH}, "
          f"threads {options.threads}; gensim: workers 2, alpha 0.025 -> 0.0001; {options.seeds} seeds")
    start = time.perf_counter()
    for dtype in options.dtypes:
        train(corpus, TrainConfig(iterations=1, batch_size=BATCH, log_every=1, checkpoint_every=1,
                                  threads=options.threads, dtype=dtype))
    print(f"this trainer's start-up (numba loading its compiled kernels, once per process): "
          f"{time.perf_counter() - start:.1f} s, left out of the figures below")
    variants = [(lr, schedule, dtype) for lr in options.lrs for schedule in options.schedules
                for dtype in options.dtypes]
    for dim in options.dims:
        runs = {variant: [] for variant in variants}
        runs["gensim"] = []
        for seed in range(options.seeds):
            for variant in variants:
                runs[variant].append(run_ours(corpus, dim, seed, windows, options.threads, variant[1],
                                              variant[2], variant[0]))
            runs["gensim"].append(run_gensim(corpus, dim, seed, windows))
        print(f"\ndim {dim}:  {'':24s} {'words/s':>12s} {'words/CPU-s':>14s} {'wall s':>9s}   "
              f"{'WS353':15s} {'SimLex':15s} {'words':>10s}")
        figures = {variant: summarise("gensim" if variant == "gensim" else
                                      f"ours lr {variant[0]:g} {variant[1]} {variant[2]}", variant_runs)
                   for variant, variant_runs in runs.items()}
        theirs = figures.pop("gensim")
        print(f"  gensim: {1e9 / theirs['cpu_speed']:.0f} CPU-ns per centre word (all its threads)")
        for (lr, schedule, dtype), ours in figures.items():
            print(f"  ratio ours (lr {lr:g} {schedule} {dtype})/gensim: throughput "
                  f"{ours['speed'] / theirs['speed']:.2f} (per CPU-second {ours['cpu_speed'] / theirs['cpu_speed']:.2f}), "
                  f"wall {ours['wall'] / theirs['wall']:.2f}, WS353 {ours['ws353'] - theirs['ws353']:+.3f} "
                  f"(difference of means)")
    if options.profile:
        print(f"\nwhere this trainer's time goes (wall time, medians over 300 minibatches of {BATCH}):")
        for dim in options.dims:
            for dtype in options.dtypes:
                profile(corpus, dim, dtype)


if __name__ == "__main__":
    main()
