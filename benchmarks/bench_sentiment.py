"""What the SST sentiment evaluation costs, beside the similarity evaluation of the same model.

    python benchmarks/bench_sentiment.py                      # models/, data/processed, data/raw_labels
    python benchmarks/bench_sentiment.py --model models --repeats 5

Interleaved in one process, `--repeats` times each (median reported, wall clock and CPU time):
  - sentiment: pipeline.sentiment.sentiment_figures (read the labels and check their alignment,
    features, 2 tasks x 2 vector sets x the C grid of logistic-regression fits, 4 bootstrap
    intervals), split into its parts by timing read_labels and evaluate_sentiment on their own;
  - similarity: w2v.evaluation.evaluate_vectors on the same vectors.txt (WordSim-353, SimLex-999,
    Google analogies, neighbours), the rest of the evaluation;
and their ratio. Also prints the figures, so a run doubles as the measurement of accuracy.
"""
import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from pipeline.common import project_path
from pipeline.sentiment import sentiment_figures, settings
from w2v.corpus import load_corpus
from w2v.evaluation import evaluate_vectors, load_vectors
from w2v.sentiment import evaluate_sentiment, read_labels


def timed(task):
    wall, cpu = time.perf_counter(), time.process_time()
    task()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models")
    parser.add_argument("--processed", default="data/processed")
    parser.add_argument("--labels", default="data/raw_labels")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = OmegaConf.merge(OmegaConf.load(project_path("params.yaml")),
                          {"paths": {"processed": args.processed, "labels": args.labels}})
    model = project_path(args.model)
    corpus = load_corpus(project_path(args.processed))
    vectors = np.load(model / "vectors.npy")
    labels = read_labels(project_path(args.labels), corpus)
    keyed = load_vectors(model / "vectors.txt")
    tasks = {
        "sentiment (whole)": lambda: sentiment_figures(cfg, model),
        "  read + align labels": lambda: read_labels(project_path(args.labels), corpus),
        "  features + fits + intervals": lambda: evaluate_sentiment(corpus, vectors, labels, **settings(cfg)),
        "similarity (gensim)": lambda: evaluate_vectors(keyed),
    }
    times = {name: [] for name in tasks}
    for _ in range(args.repeats):
        for name, task in tasks.items():
            times[name].append(timed(task))
    print(f"{'part':32s} {'wall s':>8s} {'cpu s':>8s}   (median of {args.repeats})")
    medians = {}
    for name, samples in times.items():
        medians[name] = statistics.median(wall for wall, _ in samples)
        print(f"{name:32s} {medians[name]:8.2f} {statistics.median(cpu for _, cpu in samples):8.2f}")
    print(f"sentiment / similarity (wall): {medians['sentiment (whole)'] / medians['similarity (gensim)']:.2f}")
    figures = sentiment_figures(cfg, model)
    for name, value in figures.metrics.items():
        interval = figures.intervals.get(name)
        extra = f"  [{interval['low']:.4f}, {interval['high']:.4f}]" if interval else ""
        print(f"{name:28s} {value:.4f}{extra}")


if __name__ == "__main__":
    main()
