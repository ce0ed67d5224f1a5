"""The SST sentiment part of the evaluation (`pipeline.evaluate` calls `sentiment_figures`).

It needs three things: the processed SST corpus (paths.processed), the centre vectors of the model
(vectors.npy beside vectors.txt, rows in corpus order) and the labels (paths.labels, from the
download_labels stage). When one is missing, or the corpus is not SST (a text corpus has no
dev and test split), the figures are absent and the report says why in one note. Labels that
do not line up with the corpus are an error.
"""
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline.common import StageError, project_path
from pipeline.config import processed_corpus
from w2v.bootstrap import RESAMPLES
from w2v.corpus import DEV, TEST
from w2v.sentiment import (C_GRID, TREE_FILES, LabelsError, OtherCorpusError, SentimentResult, evaluate_sentiment,
                           read_labels)


@dataclass
class SentimentFigures:
    """What the evaluation adds: metrics (MLflow and JSON), intervals (JSON), report (Markdown)."""

    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    report: str = ""
    note: str | None = None   # why the figures are absent


def settings(cfg: DictConfig) -> dict:
    """evaluate.sentiment.*: C (the grid), resamples, seed; defaults where a setting is absent
    (`enabled` is read by sentiment_figures)."""
    section = OmegaConf.select(cfg, "evaluate.sentiment") or {}
    grid = tuple(float(C) for C in section.get("C", C_GRID))
    resamples, seed = section.get("resamples", RESAMPLES), section.get("seed", 0)
    if not grid or any(C <= 0 for C in grid):
        raise StageError(f"evaluate.sentiment.C must be a list of positive numbers, got {list(grid)}")
    if not isinstance(resamples, int) or resamples < 1:
        raise StageError(f"evaluate.sentiment.resamples must be a positive integer, got {resamples!r}")
    return {"grid": grid, "resamples": resamples, "seed": int(seed)}


def absent(note: str) -> SentimentFigures:
    print(f"note: no SST sentiment figures: {note}", file=sys.stderr)
    return SentimentFigures(report=f"\nNo SST sentiment figures: {note}.\n", note=note)


def sentiment_figures(cfg: DictConfig, model_dir: Path, min_count: int | None = None) -> SentimentFigures:
    """SST-5 / SST-2 figures of model_dir/vectors.npy on cfg.paths.processed (at corpus.min_count =
    `min_count`, pipeline.config.processed_corpus) and cfg.paths.labels."""
    if OmegaConf.select(cfg, "evaluate.sentiment.enabled") is False:
        return absent("evaluate.sentiment.enabled=false")
    if OmegaConf.select(cfg, "paths.labels") is None:
        return absent("paths.labels is not set (a configuration from before the labels existed)")
    kind = OmegaConf.select(cfg, "corpus.kind")
    if kind is not None and kind != "sst":
        return absent(f"the sentence labels belong to the SST corpus, not to corpus.kind={kind}")
    labels_dir, processed = project_path(cfg.paths.labels), project_path(cfg.paths.processed)
    if not all((labels_dir / name).is_file() for name in TREE_FILES.values()):
        return absent(f"no sentence labels in {labels_dir} (run `dvc repro download_labels` or "
                      f"`python -m pipeline.download_labels`)")
    if not (model_dir / "vectors.npy").is_file():
        return absent(f"no {model_dir / 'vectors.npy'} (the centre vectors in corpus order) beside the vectors")
    try:
        corpus = processed_corpus(processed, min_count)
    except (OSError, ValueError) as error:
        return absent(f"no processed corpus in {processed} ({error})")
    if not ((corpus.split == DEV).any() and (corpus.split == TEST).any()):
        return absent(f"the corpus in {processed} has no dev and test sentences (not SST)")
    vectors = np.load(model_dir / "vectors.npy")
    vocab = model_dir / "vocab.txt"
    if (vectors.ndim != 2 or vectors.shape[0] != corpus.vocab_size
            or (vocab.is_file() and vocab.read_bytes().decode("utf-8").split("\n")[:-1] != corpus.words)):
        return absent(f"the vectors in {model_dir} (shape {vectors.shape}) are not of the {corpus.vocab_size} words "
                      f"of the corpus in {processed} (trained on another corpus)")
    try:
        labels = read_labels(labels_dir, corpus)
    except OtherCorpusError as error:
        return absent(f"the corpus in {processed} is not the SST corpus of the labels ({error})")
    except LabelsError as error:
        raise StageError(f"{error}; download the official trainDevTestTrees_PTB.zip again "
                         f"(`python -m pipeline.download_labels`) for the SST corpus in {processed}") from None
    options = settings(cfg)
    start = time.perf_counter()
    result = evaluate_sentiment(corpus, vectors, labels, **options)
    seconds = time.perf_counter() - start
    return SentimentFigures(result.metrics(), result.intervals(), sentiment_report(result, seconds, options))


def sentiment_report(result: SentimentResult, seconds: float, options: dict) -> str:
    """The Markdown section: each accuracy with its interval beside the random-vector reference."""
    lines = ["", "## SST sentiment (test sentences)", "",
             f"Logistic regression on the mean of each sentence's word vectors (d = {result.dim}); C chosen on dev "
             f"from {', '.join(f'{C:g}' for C in options['grid'])}. 95% intervals: {options['resamples']} bootstrap "
             f"resamples of the test sentences.", "",
             "| task | vectors | test accuracy | 95% interval | chance (majority class) | C |",
             "|---|---|---:|---:|---:|---:|"]
    for name, task in result.tasks.items():
        kind = "random normal (reference)" if name.endswith("_random") else "trained"
        title = "SST-5 (5 classes)" if "sst5" in name else "SST-2 (neutral dropped)"
        lines.append(f"| {title} | {kind} | {task.test_acc:.3f} | {task.interval[0]:.3f} - {task.interval[1]:.3f} | "
                     f"{task.majority:.3f} | {task.C:g} |")
    lines.append("")
    for task, title in (("sst5", "SST-5"), ("sst2", "SST-2")):
        trained, random = result.tasks[f"eval_{task}_acc"], result.tasks[f"eval_{task}_acc_random"]
        verdict = ("the intervals overlap: this does not show that the vectors carry sentiment"
                   if trained.overlaps(random) else
                   "the intervals do not overlap" + (": the vectors carry some sentiment"
                                                     if trained.test_acc > random.test_acc else ""))
        lines.append(f"- {title}: trained minus random {trained.test_acc - random.test_acc:+.3f}; {verdict}.")
    lines += ["", "Read the trained figures only beside the random ones. At d = 10 (the assignment's size) the "
              "signal is weak: the classic run's vectors reached 0.274-0.277 on SST-5 test over 3 seeds, random "
              "vectors 0.268, the majority class 0.286.",
              f"Trees whose leaves differ from the corpus tokens (kept, labelled by position): "
              f"{', '.join(f'{split} {n}' for split, n in result.misaligned.items())}. Sentences without a word seen "
              f"in training (zero features): {', '.join(f'{split} {n}' for split, n in result.no_known_word.items())}. "
              f"Time: {seconds:.1f} s.", ""]
    return "\n".join(lines)
