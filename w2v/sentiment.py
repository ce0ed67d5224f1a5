"""SST sentence sentiment from word vectors, as in CS224n (2017) assignment 1 part 4.

    labels = read_labels(Path("data/raw_labels"), corpus)    # checks the alignment with the corpus
    result = evaluate_sentiment(corpus, center_vectors, labels)
    result.metrics()  # eval_sst5_acc, eval_sst2_acc (+ _ci95), the same on random vectors

The labels are the roots of the sentiment trees of `trainDevTestTrees_PTB.zip` (train.txt,
dev.txt, test.txt: one PTB tree per line, every node labelled 0-4, very negative .. very
positive). Line i of each file is the i-th sentence of that split of the SST corpus, so the
features use the corpus's own tokens; the trees' leaves only check that alignment.

Features: the mean of the vectors of a sentence's words with training count > 0 (the zero vector
when none has one). Classifier: multinomial logistic regression (scikit-learn, lbfgs), C chosen
by accuracy on dev from a log grid, then scored on test. SST-5 uses the five labels; SST-2 drops
the neutral sentences (label 2) and asks positive (3, 4) against negative (0, 1). The same
classifier on fixed-seed standard-normal vectors of the same shape is the reference: with small
vectors (d = 10) the two are close, and the figures must be read beside it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse
from sklearn.linear_model import LogisticRegression

from w2v.bootstrap import RESAMPLES, half_width, mean_interval
from w2v.corpus import SPLIT_LABELS, UNK, Corpus

SPLITS = ("train", "dev", "test")
TREE_FILES = {split: f"{split}.txt" for split in SPLITS}
C_GRID = tuple(10.0 ** k for k in range(-3, 4))  # 1e-3 .. 1e3
MIN_ALIGNED = 0.99   # share of a split's sentences whose leaves must equal the corpus tokens
NEUTRAL = 2
_LEAF = re.compile(r"\((\d) ([^()\s]+)\)")
_ROOT = re.compile(r"^\((\d) ")
_BRACKETS = {"-lrb-": "(", "-rrb-": ")"}


class LabelsError(ValueError):
    """A labels file that cannot be read or does not line up with the corpus; the message says which."""


class OtherCorpusError(LabelsError):
    """A split with another number of sentences than its tree file: not the corpus of these labels."""


def parse_tree(line: str) -> tuple[int, list[str]]:
    """(root label 0-4, leaves in order) of one PTB sentiment tree such as "(3 (2 It) (4 works))".

    Raises ValueError when the line is not a labelled tree (unbalanced brackets, no leaf, a label
    outside 0-4).
    """
    line = line.strip()
    root = _ROOT.match(line)
    if root is None or line.count("(") != line.count(")") or not line.endswith(")"):
        raise ValueError(f"not a labelled tree: {line[:60]!r}")
    leaves = _LEAF.findall(line)
    labels = [int(root.group(1))] + [int(label) for label, _ in leaves]
    if not leaves or max(labels) > 4:
        raise ValueError(f"a tree needs leaves labelled 0-4: {line[:60]!r}")
    return labels[0], [word for _, word in leaves]


def read_trees(path: Path) -> tuple[np.ndarray, list[list[str]]]:
    """(root labels int64 (S,), leaves of each tree) of a tree file, one tree per line."""
    labels, leaves = [], []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            try:
                label, words = parse_tree(line)
            except ValueError as error:
                raise LabelsError(f"{path}, line {number}: {error}") from None
            labels.append(label)
            leaves.append(words)
    return np.array(labels, dtype=np.int64), leaves


def _normal(word: str) -> str:
    """A token as both sides can spell it: lowercased, -LRB-/-RRB- as brackets, \\/ as /."""
    word = word.lower().replace("\\/", "/")
    return _BRACKETS.get(word, word)


def same_token(leaf: str, token: str) -> bool:
    """Whether a tree leaf is the corpus token; also when the corpus keeps SST's double-encoded
    UTF-8 (corpus.fix_encoding=false: "clichÃ©s" for "clichés")."""
    token = _normal(token)
    if _normal(leaf) == token:
        return True
    return not leaf.isascii() and _normal(leaf.encode("utf-8").decode("latin-1")) == token


def count_misaligned(corpus: Corpus, split: str, leaves: list[list[str]]) -> int:
    """Sentences of `split` whose tree leaves differ from the corpus tokens (same number of lines
    assumed). A corpus UNK matches any leaf: with corpus.min_count > 1 the rare words are UNK."""
    tokens, offsets = corpus.sentences_of(split)
    unk = corpus.word2ind.get(UNK, -1)
    misaligned = 0
    for i, words in enumerate(leaves):
        sentence = tokens[offsets[i]:offsets[i + 1]]
        if len(words) != len(sentence) or not all(
                token == unk or same_token(leaf, corpus.words[token]) for leaf, token in zip(words, sentence)):
            misaligned += 1
    return misaligned


@dataclass(frozen=True)
class SplitLabels:
    """Sentence labels of one split (int64 (S,), 0-4) and how many trees did not match the corpus."""

    labels: np.ndarray
    misaligned: int


def read_labels(folder: Path, corpus: Corpus, min_aligned: float = MIN_ALIGNED) -> dict[str, SplitLabels]:
    """The labels of train, dev and test in `folder` (train.txt, dev.txt, test.txt), checked
    against `corpus`: each file has one tree per sentence of its split (else OtherCorpusError),
    and at least `min_aligned` of them have the corpus's tokens as leaves (else LabelsError)."""
    result = {}
    for split, name in TREE_FILES.items():
        path = folder / name
        if not path.is_file():
            raise LabelsError(f"{path} is missing")
        labels, leaves = read_trees(path)
        expected = int((corpus.split == SPLIT_LABELS[split]).sum())
        if len(labels) != expected:
            raise OtherCorpusError(f"{path} has {len(labels)} trees but the corpus has {expected} {split} "
                                   f"sentences: the labels do not belong to this corpus")
        misaligned = count_misaligned(corpus, split, leaves)
        if misaligned > (1 - min_aligned) * expected:
            raise LabelsError(f"{path}: {misaligned} of {expected} trees do not have the tokens of the corpus's "
                              f"{split} sentence at the same position (at most {1 - min_aligned:.0%} may differ): "
                              f"the files are not aligned with this SST corpus")
        result[split] = SplitLabels(labels, misaligned)
    return result


def sentence_features(vectors: np.ndarray, counts: np.ndarray, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """float64 (S, d): per sentence, the mean of the rows of `vectors` (V, d) of its tokens whose
    `counts` (V,) entry is > 0; the zero vector for a sentence without such a token.
    tokens int (N,) and offsets int (S+1,) as in Corpus."""
    known = (counts[tokens] > 0).astype(np.float64)
    membership = scipy.sparse.csr_matrix((known, tokens, offsets), shape=(len(offsets) - 1, len(vectors)))
    sums = membership @ np.asarray(vectors, dtype=np.float64)
    n_known = np.asarray(membership.sum(axis=1)).ravel()
    return np.divide(sums, n_known[:, None], out=np.zeros_like(sums), where=n_known[:, None] > 0)


@dataclass(frozen=True)
class TaskResult:
    """One task (SST-5 or SST-2) on one set of vectors: test accuracy, its 95 % interval, the C
    chosen on dev (with the dev accuracy of every C tried), and the test share of the most
    frequent test label (what always guessing it would score)."""

    test_acc: float
    interval: tuple[float, float]
    C: float
    dev_acc: dict[float, float]
    n_test: int
    majority: float

    def overlaps(self, other: "TaskResult") -> bool:
        """Whether the two 95 % intervals overlap."""
        return self.interval[0] <= other.interval[1] and other.interval[0] <= self.interval[1]


def fit_and_score(features: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                  grid=C_GRID, resamples: int = RESAMPLES, seed: int = 0) -> TaskResult:
    """Fit logistic regression on train for each C in `grid`, keep the best on dev (the smallest C
    on a tie), score it on test, with a bootstrap interval over the test sentences."""
    dev_acc, models = {}, {}
    for C in grid:
        model = LogisticRegression(C=C, max_iter=2000).fit(features["train"], labels["train"])
        models[C] = model
        dev_acc[C] = float(model.score(features["dev"], labels["dev"]))
    best = max(grid, key=lambda C: (dev_acc[C], -C))
    correct = models[best].predict(features["test"]) == labels["test"]
    majority = np.bincount(labels["test"]).max() / len(labels["test"])
    return TaskResult(float(correct.mean()), mean_interval(correct, resamples=resamples, seed=seed),
                      best, dev_acc, int(len(correct)), float(majority))


def binary_task(features: dict[str, np.ndarray], labels: dict[str, np.ndarray]):
    """SST-2: drop the neutral sentences; 1 for positive (3, 4), 0 for negative (0, 1)."""
    kept = {split: labels[split] != NEUTRAL for split in labels}
    return ({split: features[split][kept[split]] for split in features},
            {split: (labels[split][kept[split]] > NEUTRAL).astype(np.int64) for split in labels})


@dataclass
class SentimentResult:
    """SST-5 and SST-2 on the trained vectors and on random vectors of the same shape."""

    tasks: dict[str, TaskResult] = field(default_factory=dict)   # by metric: eval_sst5_acc, eval_sst5_acc_random, ..
    misaligned: dict[str, int] = field(default_factory=dict)     # trees whose leaves differ from the corpus
    no_known_word: dict[str, int] = field(default_factory=dict)  # sentences scored on the zero vector
    dim: int = 0

    def metrics(self) -> dict[str, float]:
        """Test accuracy per task and its `_ci95` (half the interval's width), e.g. eval_sst5_acc,
        eval_sst5_acc_ci95, eval_sst5_acc_random, eval_sst5_acc_random_ci95."""
        metrics = {}
        for name, task in self.tasks.items():
            metrics[name] = task.test_acc
            metrics[f"{name}_ci95"] = half_width(task.interval)
        return metrics

    def intervals(self) -> dict[str, tuple[float, float]]:
        """{metric name: (low, high)}: the 95 % intervals, for the JSON report."""
        return {name: tuple(task.interval) for name, task in self.tasks.items()}


def evaluate_sentiment(corpus: Corpus, vectors: np.ndarray, labels: dict[str, SplitLabels],
                       grid=C_GRID, resamples: int = RESAMPLES, seed: int = 0) -> SentimentResult:
    """SST-5 and SST-2 test accuracy of `vectors` (V, d) of `corpus`, and of standard-normal
    vectors of the same shape drawn from a generator seeded with `seed`."""
    if vectors.shape[0] != corpus.vocab_size:
        raise ValueError(f"vectors have {vectors.shape[0]} rows but the corpus has {corpus.vocab_size} words")
    random_vectors = np.random.default_rng(seed).standard_normal(vectors.shape)
    y5 = {split: labels[split].labels for split in SPLITS}
    result = SentimentResult(misaligned={split: labels[split].misaligned for split in SPLITS}, dim=vectors.shape[1])
    for split in SPLITS:
        tokens, offsets = corpus.sentences_of(split)
        sentence_of_token = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        known = np.bincount(sentence_of_token, weights=corpus.counts[tokens] > 0, minlength=len(offsets) - 1)
        result.no_known_word[split] = int((known == 0).sum())
    for suffix, table in (("", vectors), ("_random", random_vectors)):
        features = {split: sentence_features(table, corpus.counts, *corpus.sentences_of(split)) for split in SPLITS}
        result.tasks[f"eval_sst5_acc{suffix}"] = fit_and_score(features, y5, grid, resamples, seed)
        result.tasks[f"eval_sst2_acc{suffix}"] = fit_and_score(*binary_task(features, y5), grid, resamples, seed)
    return result
