"""Quality figures of word vectors: word similarity, word analogies and nearest neighbours.

Everything works on a gensim `KeyedVectors`, loaded from a word2vec text file by `load_vectors`
(which checks the file first, so a damaged file gives one clear error instead of gensim's
"could not broadcast input array"). The benchmarks ship with gensim (`gensim.test.utils.datapath`):

- WordSim-353 (`wordsim353.tsv`) and SimLex-999 (`simlex999.txt`): Spearman rank correlation between
  the cosine similarity of each word pair and the human score, over the pairs whose two words are
  in the vocabulary; the other pairs are counted as out of vocabulary (OOV), never an error.
- Google analogies (`questions-words.txt`): accuracy of 3CosAdd (a : b :: c : ?) over the questions
  whose four words are in the vocabulary.
- Nearest neighbours (cosine) of a list of probe words, by default the 24 words the assignment plots.

Each figure has a 95% bootstrap interval (w2v.bootstrap): the covered word pairs resampled for
the Spearman correlations, the covered questions for the analogy accuracy.

Matching is case-insensitive, as gensim's evaluators do (SST is lower-cased, the analogy set is not).
"""
import contextlib
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors
from scipy import stats

from w2v.bootstrap import half_width, mean_interval, paired_interval

NO_INTERVAL = (math.nan, math.nan)

# The words of the assignment's 2-D plot (CS224n a2, run.py).
ASSIGNMENT_WORDS = (
    "great", "cool", "brilliant", "wonderful", "well", "amazing", "worth", "sweet", "enjoyable",
    "boring", "bad", "dumb", "annoying", "female", "male", "queen", "king", "man", "woman",
    "rain", "snow", "hail", "coffee", "tea",
)
WORDSIM353 = "wordsim353.tsv"
SIMLEX999 = "simlex999.txt"
GOOGLE_ANALOGIES = "questions-words.txt"


def load_vectors(path: str | Path) -> KeyedVectors:
    """Load a word2vec text file (header "V d", then one "word x_1 ... x_d" line per word).

    The file is checked line by line first; a missing file, a file with fewer or more vector
    lines than its header says, a line whose number of values disagrees with the header's
    dimension, or a repeated word raise ValueError naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"vectors file {path} does not exist: train a model first or pass the path of a word2vec text file")
    _check_word2vec_text(path)
    try:
        with _quiet_gensim():
            return KeyedVectors.load_word2vec_format(str(path), binary=False)
    except (ValueError, EOFError, UnicodeDecodeError) as error:
        raise ValueError(f"vectors file {path} is not a readable word2vec text file: {error}") from error


def _check_word2vec_text(path: Path) -> None:
    """Raise ValueError if `path` disagrees with its own "V d" header (counts fields, not floats)."""
    with open(path, "rb") as lines:
        header = lines.readline().split()
        if len(header) != 2 or not all(value.isdigit() for value in header):
            raise ValueError(
                f"vectors file {path} has no word2vec header on line 1 (expected 'vocab_size dim', "
                f"found {b' '.join(header)[:60]!r}): is it a word2vec text file?"
            )
        vocab_size, dim = int(header[0]), int(header[1])
        seen: dict[bytes, int] = {}
        line_no = 1
        for line_no, line in enumerate(lines, start=2):
            fields = line.split()
            if not fields:
                raise ValueError(f"vectors file {path} has an empty line {line_no}: the file is damaged; write it again")
            if len(fields) != dim + 1:
                raise ValueError(
                    f"vectors file {path} line {line_no} has {len(fields) - 1} values but the header says "
                    f"dimension {dim}: the file is damaged or its header is wrong; write it again"
                )
            if fields[0] in seen:
                raise ValueError(
                    f"vectors file {path} lists the word {fields[0].decode(errors='replace')!r} twice "
                    f"(lines {seen[fields[0]]} and {line_no}): each word needs exactly one vector"
                )
            seen[fields[0]] = line_no
        found = line_no - 1
        if found != vocab_size:
            raise ValueError(
                f"vectors file {path} has {found} vector lines but its header says {vocab_size} words: "
                f"the file is truncated or damaged; write it again"
            )


@contextlib.contextmanager
def _quiet_gensim():
    """gensim logs every skipped OOV pair (and more) at INFO and scipy warns on constant input;
    keep both out of the callers' logs."""
    gensim_logger = logging.getLogger("gensim")
    level = gensim_logger.level
    gensim_logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        gensim_logger.setLevel(level)


@dataclass(frozen=True)
class SimilarityResult:
    """Spearman correlation with human judgements; `spearman` is NaN when fewer than 2 pairs are covered."""
    spearman: float
    pairs: int      # pairs in the benchmark
    covered: int    # pairs with both words in the vocabulary
    interval: tuple[float, float] = NO_INTERVAL  # 95% bootstrap (low, high) over the covered pairs

    @property
    def oov_share(self) -> float:
        """Fraction (0..1) of pairs left out because a word is not in the vocabulary."""
        return (self.pairs - self.covered) / self.pairs if self.pairs else math.nan


@dataclass(frozen=True)
class AnalogyResult:
    """3CosAdd accuracy; `accuracy` is NaN when no question is covered."""
    accuracy: float
    questions: int  # questions in the benchmark
    covered: int    # questions with all four words in the vocabulary
    correct: int
    interval: tuple[float, float] = NO_INTERVAL  # 95% bootstrap (low, high) over the covered questions

    @property
    def oov_share(self) -> float:
        return (self.questions - self.covered) / self.questions if self.questions else math.nan


def benchmark_path(name: str) -> str:
    """The path of a benchmark file: `name` itself if it is a file, else gensim's test data file."""
    if Path(name).is_file():
        return name
    with _quiet_gensim():  # importing gensim.test.utils builds (and logs) a toy dictionary
        from gensim.test.utils import datapath
    return datapath(name)


def _count_questions(path: str) -> int:
    """Number of "a b c d" lines of an analogy file (": section" lines are headers), as gensim reads them."""
    with open(path, encoding="utf-8") as lines:
        return sum(1 for line in lines if not line.startswith(":") and len(line.split()) == 4)


def _similarity_pairs(vectors: KeyedVectors, path: str) -> tuple[int, np.ndarray, np.ndarray]:
    """(pairs in the file, human scores float (n,), cosines float (n,)) of the n covered pairs,
    read as gensim's `evaluate_word_pairs` reads them: tab-separated "word1 word2 score" lines,
    '#' comments, case-insensitive (an upper-cased word maps to its first vocabulary entry)."""
    vocabulary = {word.upper(): index for index, word in reversed(list(enumerate(vectors.index_to_key)))}
    pairs, human, rows = 0, [], []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            fields = line.split("\t")
            if line.startswith("#") or len(fields) != 3:
                continue
            try:
                score = float(fields[2])
            except ValueError:
                continue
            pairs += 1
            a, b = fields[0].upper(), fields[1].upper()
            if a in vocabulary and b in vocabulary:
                human.append(score)
                rows.append((vocabulary[a], vocabulary[b]))
    keys = vectors.index_to_key  # gensim's own cosine, so the ranks (and ties) are gensim's
    cosines = [vectors.similarity(keys[a], keys[b]) for a, b in rows]
    return pairs, np.array(human, dtype=np.float64), np.array(cosines, dtype=np.float64)


def _spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman correlation along `axis` (ranks with ties averaged, then Pearson), vectorised
    over the resamples of the bootstrap."""
    rx, ry = stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=axis) / np.sqrt((rx * rx).sum(axis=axis) * (ry * ry).sum(axis=axis))


def word_similarity(vectors: KeyedVectors, pairs_file: str = WORDSIM353) -> SimilarityResult:
    """Spearman correlation on a word-pair benchmark (a file name in gensim's test data, or a path),
    with its bootstrap interval over the covered pairs.

    Uses gensim's `evaluate_word_pairs`; a rank correlation needs at least 2 covered pairs.
    """
    path = benchmark_path(pairs_file)
    pairs, human, cosines = _similarity_pairs(vectors, path)
    if len(human) < 2:
        return SimilarityResult(spearman=math.nan, pairs=pairs, covered=len(human))
    with _quiet_gensim():
        _, spearman, _ = vectors.evaluate_word_pairs(path)
        interval = paired_interval(_spearman, human, cosines, vectorized=True)
    return SimilarityResult(spearman=float(spearman[0]), pairs=pairs, covered=len(human), interval=interval)


def word_analogies(vectors: KeyedVectors, questions_file: str = GOOGLE_ANALOGIES) -> AnalogyResult:
    """Accuracy on an analogy benchmark (": section" headers, then "a b c d" lines) via gensim."""
    path = benchmark_path(questions_file)
    questions = _count_questions(path)
    with _quiet_gensim():
        _, sections = vectors.evaluate_word_analogies(path)
    total = sections[-1]  # gensim appends the "Total accuracy" section last
    correct, covered = len(total["correct"]), len(total["correct"]) + len(total["incorrect"])
    accuracy = correct / covered if covered else math.nan
    interval = mean_interval(np.repeat([1.0, 0.0], [correct, covered - correct]))  # one 0/1 per covered question
    return AnalogyResult(accuracy=accuracy, questions=questions, covered=covered, correct=correct, interval=interval)


def nearest_neighbours(vectors: KeyedVectors, words=ASSIGNMENT_WORDS, topn: int = 10) -> dict[str, list[tuple[str, float]] | None]:
    """The `topn` nearest words by cosine similarity of each probe word (itself excluded).

    A word that is not in the vocabulary maps to None. Fewer than `topn` neighbours come back when
    the vocabulary is smaller than `topn` + 1.
    """
    if topn < 1:
        raise ValueError(f"topn must be at least 1, got {topn}")
    neighbours = {}
    for word in words:
        if word in vectors.key_to_index:
            with _quiet_gensim():
                similar = vectors.most_similar(word, topn=topn)
            neighbours[word] = [(other, float(cosine)) for other, cosine in similar]
        else:
            neighbours[word] = None
    return neighbours


@dataclass
class Evaluation:
    """All quality figures of one set of vectors."""
    vocab_size: int
    dim: int
    ws353: SimilarityResult
    simlex: SimilarityResult
    analogy: AnalogyResult
    neighbours: dict[str, list[tuple[str, float]] | None] = field(default_factory=dict)
    topn: int = 10

    @property
    def absent_words(self) -> list[str]:
        """Probe words that are not in the vocabulary."""
        return [word for word, similar in self.neighbours.items() if similar is None]

    def metrics(self) -> dict[str, float]:
        """The figures under the names MLflow and DVC show (OOV shares are fractions, 0..1; `_ci95`
        is half the width of the 95% interval)."""
        return {
            "eval_ws353_spearman": self.ws353.spearman,
            "eval_ws353_spearman_ci95": half_width(self.ws353.interval),
            "eval_ws353_oov": self.ws353.oov_share,
            "eval_simlex_spearman": self.simlex.spearman,
            "eval_simlex_spearman_ci95": half_width(self.simlex.interval),
            "eval_simlex_oov": self.simlex.oov_share,
            "eval_analogy_acc": self.analogy.accuracy,
            "eval_analogy_acc_ci95": half_width(self.analogy.interval),
            "eval_analogy_oov": self.analogy.oov_share,
        }

    def intervals(self) -> dict[str, tuple[float, float]]:
        """The 95% bootstrap intervals of the figures, by metric name."""
        return {"eval_ws353_spearman": self.ws353.interval, "eval_simlex_spearman": self.simlex.interval,
                "eval_analogy_acc": self.analogy.interval}


def evaluate_vectors(vectors: KeyedVectors, words=ASSIGNMENT_WORDS, topn: int = 10) -> Evaluation:
    """WordSim-353, SimLex-999, Google analogies and the neighbours of `words`."""
    return Evaluation(
        vocab_size=len(vectors),
        dim=vectors.vector_size,
        ws353=word_similarity(vectors, WORDSIM353),
        simlex=word_similarity(vectors, SIMLEX999),
        analogy=word_analogies(vectors, GOOGLE_ANALOGIES),
        neighbours=nearest_neighbours(vectors, words, topn),
        topn=topn,
    )


def _figure(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_interval(interval: tuple[float, float], digits: int = 4) -> str:
    """"[low, high]", or "n/a" when the interval cannot be computed."""
    low, high = interval
    return "n/a" if math.isnan(low) else f"[{low:.{digits}f}, {high:.{digits}f}]"


def evaluation_report(evaluation: Evaluation, source: str, extra_metrics: dict[str, float] | None = None) -> str:
    """A Markdown report: the figures with their coverage, then the neighbours table."""
    e = evaluation
    lines = [
        "# Evaluation",
        "",
        f"Vectors: `{source}` ({e.vocab_size} words, dimension {e.dim}).",
        "",
        "| benchmark | figure | value | 95% interval | covered | out of vocabulary |",
        "|---|---|---|---|---|---|",
        f"| WordSim-353 | Spearman | {_figure(e.ws353.spearman)} | {format_interval(e.ws353.interval)} | {e.ws353.covered}/{e.ws353.pairs} pairs | {_figure(100 * e.ws353.oov_share, 1)}% |",
        f"| SimLex-999 | Spearman | {_figure(e.simlex.spearman)} | {format_interval(e.simlex.interval)} | {e.simlex.covered}/{e.simlex.pairs} pairs | {_figure(100 * e.simlex.oov_share, 1)}% |",
        f"| Google analogies | accuracy | {_figure(e.analogy.accuracy)} | {format_interval(e.analogy.interval)} | {e.analogy.covered}/{e.analogy.questions} questions | {_figure(100 * e.analogy.oov_share, 1)}% |",
    ]
    for name, value in (extra_metrics or {}).items():
        lines.append(f"| {name} | | {_figure(value)} | | | |")
    lines += ["", f"## Nearest neighbours (cosine, top {e.topn})", ""]
    if e.absent_words:
        lines += [f"Not in the vocabulary ({len(e.absent_words)} of {len(e.neighbours)}): "
                  + ", ".join(f"`{word}`" for word in e.absent_words), ""]
    lines += ["| word | neighbours |", "|---|---|"]
    for word, similar in e.neighbours.items():
        cell = "*(not in vocabulary)*" if similar is None else ", ".join(f"{other} ({cosine:.3f})" for other, cosine in similar)
        lines.append(f"| {word} | {cell.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"

