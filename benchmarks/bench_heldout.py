"""Cost of the held-out evaluation (w2v.heldout) at SST size and on a 10M-token corpus.

    python benchmarks/bench_heldout.py                    # SST dev (if data/processed holds SST) + 10M tokens
    python benchmarks/bench_heldout.py --tokens 1e7 --dims 10 100 --repeats 3

SST: the processed corpus in data/processed (tokenized with corpus.train_on=train): its 1,101 dev
sentences, V = 19,539, with random vectors of each dimension (the cost does not depend on the
values). Synthetic: sentences of 5-40 words drawn from a Zipf law (exponent 1.07) over 50,000
words, one sentence in ten labelled dev, the counts taken over the training sentences
(w2v.corpus.assemble_corpus, train_on="train"); the dev split then holds about 1M tokens, of
which the default protocol evaluates a seeded sample of evaluate.heldout.max_sentences = 10,000
sentences. With --all-sentences it also times the whole dev split (max_sentences = null).
Prints the median wall-clock and CPU seconds over repeats (the bootstrap's 3 x 1,000 resamples
included; compiling excluded). On a shared machine the CPU seconds are the steadier figure.
"""
import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from w2v.corpus import assemble_corpus, load_corpus
from w2v.heldout import HeldoutProtocol, heldout_figures


def synthetic_corpus(tokens: int, vocabulary: int = 50_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 41, size=int(tokens / 22.5) + 1)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), tokens) + 1]
    p = 1.0 / np.arange(1, vocabulary + 1) ** 1.07
    ids = rng.choice(vocabulary, size=int(lengths.sum()), p=p / p.sum()).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    split = np.where(rng.random(len(lengths)) < 0.1, 3, 1).astype(np.int8)
    words = [f"w{i}" for i in range(vocabulary)]
    return assemble_corpus(words, ids, offsets, split, train_on="train")


def time_evaluation(corpus, dim: int, protocol: HeldoutProtocol, repeats: int) -> tuple[float, float, object]:
    rng = np.random.default_rng(1)
    center = rng.normal(scale=0.3, size=(corpus.vocab_size, dim))
    outside = rng.normal(scale=0.3, size=(corpus.vocab_size, dim))
    tokens, offsets = corpus.sentences_of("dev")
    heldout_figures(tokens[:100], np.array([0, 100]), center, outside, corpus.counts, protocol)  # compiled
    seconds, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = heldout_figures(tokens, offsets, center, outside, corpus.counts, protocol)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(seconds), statistics.median(cpu), result


def report(name: str, corpus, dims, protocol, repeats) -> None:
    tokens, offsets = corpus.sentences_of("dev")
    for dim in dims:
        seconds, cpu, result = time_evaluation(corpus, dim, protocol, repeats)
        print(f"{name:28s} dev {len(offsets) - 1:>7,} sentences {len(tokens):>10,} tokens  V {corpus.vocab_size:>6,}  "
              f"d {dim:>3}  evaluated {result.sentences:>6,} sentences {result.pairs:>9,} pairs  "
              f"{seconds:6.2f} s wall, {cpu:6.2f} s CPU (medians of {repeats})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=float, default=1e7)
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--all-sentences", action="store_true")
    args = parser.parse_args()
    sst = Path("data/processed")
    if (sst / "vocab.parquet").is_file():
        corpus = load_corpus(sst)
        if corpus.train_on == "train":
            report("SST", corpus, args.dims, HeldoutProtocol(), args.repeats)
    started = time.perf_counter()
    corpus = synthetic_corpus(int(args.tokens))
    print(f"(built a {len(corpus.tokens):,}-token corpus in {time.perf_counter() - started:.1f} s)", flush=True)
    report(f"synthetic {args.tokens:.0e} tokens", corpus, args.dims, HeldoutProtocol(), args.repeats)
    if args.all_sentences:
        report("synthetic, every dev sentence", corpus, args.dims, HeldoutProtocol(max_sentences=None), 1)


if __name__ == "__main__":
    main()
