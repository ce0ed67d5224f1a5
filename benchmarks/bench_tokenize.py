"""Tokenization speed and memory: synthetic Zipf corpora of 1M, 10M and 50M tokens, and SST.

    python benchmarks/bench_tokenize.py                       # 1M, 10M, 50M tokens, 3 repeats each
    python benchmarks/bench_tokenize.py --sizes 1e6 1e7 --repeats 5

Each corpus is a plain-text file (one sentence per line, 5-40 words, words drawn from a Zipf law
with exponent 1.07 over a million random lowercase words). Every measurement runs in a fresh
process doing what the tokenize stage does (w2v.readers.read_text, save_corpus, corpus_stats) and
reports the median over repeats of:
  - tokens per second (target: >= 2M/s at 50M tokens), by the wall clock and per CPU second
    (the CPU figure is what an unloaded machine shows; the wall clock suffers when other jobs
    share the cores), and CPU seconds per million tokens, whose constancy across sizes shows the
    linear growth;
  - peak memory as the growth of the process' peak RSS (VmHWM) during the work, after a warm-up
    on a tiny corpus so that library code pages do not count, as a ratio to the int32 token
    array (4 bytes x N; target < 3x). The vocabulary (Python strings, the Parquet table) adds a
    cost per word type on top, which dominates while types are many per token.
The other side: the assignment's pure-Python reading (line.split() and a dict of ids, tokens
appended to a list) on the same files up to 10M tokens: its speed, memory, and our speed-up (in
CPU time).
Finally SST end to end: `python -m pipeline.tokenize` on the real files (target < 2 s), and the
in-process read time.
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SST_DIR = PROJECT_ROOT.parent / "shared" / "data" / "stanfordSentimentTreebank"
ZIPF_EXPONENT, MAX_TYPES = 1.07, 1_000_000

# Run in a fresh interpreter: prints {"seconds", "cpu_seconds", "rss_growth", "tokens", "types"} as JSON.
_MEASURE = r"""
import json, resource, sys, tempfile, time
import numpy as np
from w2v.corpus import corpus_stats, save_corpus
from w2v.readers import read_text

def pure_python(path):
    ids, tokens, lengths = {}, [], []
    with open(path, encoding="utf-8") as file:
        for line in file:
            words = line.lower().split()
            tokens.extend(ids.setdefault(word, len(ids)) for word in words)
            lengths.append(len(words))
    return np.array(tokens, dtype=np.int32), len(ids)

def peak_rss():
    # Bytes of this process' peak RSS. VmHWM belongs to the address space made by exec, whereas
    # ru_maxrss also carries the parent's peak across fork and exec.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def ours(path):
    corpus = read_text(path)
    with tempfile.TemporaryDirectory() as out:
        save_corpus(corpus, out)
        corpus_stats(corpus)
    return corpus

# Warm up on a tiny corpus first, so the code pages of Arrow, Parquet and numpy that the work
# touches are already resident and the RSS growth below is data, not code.
with tempfile.NamedTemporaryFile("w", suffix=".txt") as tiny:
    tiny.write("a warm up corpus\nof two lines\n" * 1000)
    tiny.flush()
    ours(tiny.name)

path, side = sys.argv[1], sys.argv[2]
usage = resource.getrusage(resource.RUSAGE_SELF)
before, cpu = peak_rss(), usage.ru_utime + usage.ru_stime
start = time.perf_counter()
if side == "ours":
    corpus = ours(path)
    n, types = len(corpus.tokens), corpus.vocab_size
else:
    tokens, types = pure_python(path)
    n = len(tokens)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu,
                  "rss_growth": peak_rss() - before, "tokens": n, "types": types}))
"""


def write_zipf_corpus(path: Path, n_tokens: int, seed: int = 0) -> None:
    """A text file of `n_tokens` Zipf-distributed words, one sentence (5-40 words) per line."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 13, MAX_TYPES)
    letters = rng.integers(ord("a"), ord("z") + 1, lengths.sum(), dtype=np.uint8).tobytes().decode()
    ends = np.cumsum(lengths)
    vocabulary = [letters[e - n:e] for e, n in zip(ends, lengths)]
    cdf = np.cumsum(1.0 / np.arange(1, MAX_TYPES + 1) ** ZIPF_EXPONENT)
    cdf /= cdf[-1]
    with open(path, "w", encoding="utf-8") as out:
        done = 0
        while done < n_tokens:
            block = min(1_000_000, n_tokens - done)
            ids = np.minimum(np.searchsorted(cdf, rng.random(block)), MAX_TYPES - 1)
            words = [vocabulary[i] for i in ids]
            sentence_ends = np.cumsum(rng.integers(5, 41, block // 5 + 1))
            separators = np.full(block, " ", dtype=object)
            separators[sentence_ends[sentence_ends <= block] - 1] = "\n"
            separators[-1] = "\n"
            out.write("".join(w + s for w, s in zip(words, separators)))
            done += block


def measure(path: Path, side: str) -> dict:
    result = subprocess.run([sys.executable, "-c", _MEASURE, str(path), side], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def bench_sizes(sizes: list[int], repeats: int, baseline_up_to: int) -> None:
    print(f"{'tokens':>11} {'types':>9} {'tok/s':>8} {'tok/cpu-s':>10} {'cpu-s/Mtok':>10} {'peak RSS':>9} "
          f"{'x int32':>8} {'python tok/s':>13} {'tok/cpu-s':>10} {'x int32':>8} {'speed-up':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"zipf_{n}.txt"
            write_zipf_corpus(path, n)
            ours = [measure(path, "ours") for _ in range(repeats)]
            seconds, cpu, growth = (median_of(ours, key) for key in ("seconds", "cpu_seconds", "rss_growth"))
            line = (f"{n:>11,} {ours[0]['types']:>9,} {n / seconds / 1e6:>7.2f}M {n / cpu / 1e6:>9.2f}M "
                    f"{cpu / n * 1e6:>10.3f} {growth / 2**20:>7.0f}MB {growth / (4 * n):>7.2f}x")
            if n <= baseline_up_to:
                python = [measure(path, "python") for _ in range(repeats)]
                python_cpu = median_of(python, "cpu_seconds")
                line += (f" {n / median_of(python, 'seconds') / 1e6:>12.2f}M {n / python_cpu / 1e6:>9.2f}M "
                         f"{median_of(python, 'rss_growth') / (4 * n):>7.2f}x {python_cpu / cpu:>8.1f}x")
            print(line, flush=True)
            path.unlink()


def bench_sst(repeats: int) -> None:
    if not (SST_DIR / "datasetSentences.txt").is_file():
        print(f"SST: skipped, the files are not at {SST_DIR}")
        return
    from w2v.readers import read_sst

    reads = []
    for _ in range(repeats):
        start = time.perf_counter()
        read_sst(SST_DIR)
        reads.append(time.perf_counter() - start)
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(repeats):
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pipeline.tokenize", f"paths.raw={SST_DIR}",
                            f"paths.processed={out}", "hydra.run.dir=.", "hydra.output_subdir=null",
                            "hydra/job_logging=stdout", "hydra/hydra_logging=none"],
                           cwd=PROJECT_ROOT, check=True, capture_output=True)
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime)
    print(f"SST (227,245 tokens): read_sst {statistics.median(reads):.3f} s in process; "
          f"python -m pipeline.tokenize end to end {statistics.median(walls):.2f} s wall, "
          f"{statistics.median(cpus):.2f} s CPU (target < 2 s; interpreter start and imports included), "
          f"medians of {repeats}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7, 5e7])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-up-to", type=float, default=1e7,
                        help="run the pure-Python reading only up to this many tokens")
    args = parser.parse_args()
    bench_sizes([int(n) for n in args.sizes], args.repeats, int(args.baseline_up_to))
    bench_sst(args.repeats)
