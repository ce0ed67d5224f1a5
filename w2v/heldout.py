"""Held-out figures of trained vectors on unseen sentences, with one protocol for every run.

The protocol does not depend on how the vectors were trained (loss, window, K, subsampling):

- every position of every evaluated sentence is a centre c, with the full window of half-width
  `window`; occurrences of c inside its own window are removed; no subsampling;
- a (centre, outside) pair is left out when either word has training count 0 (the share left out
  is `oov_share`);
- the negatives of the NS loss, K per pair drawn from counts^0.75 (redrawn when equal to the
  outside word), and the sample of sentences (at most `max_sentences`) come from one
  numpy.random.default_rng(seed), so every set of vectors sees the same draws.

Figures, each a mean per outside word (sum over pairs / number of pairs):

- nll: -log softmax(U v_c)_o in nats, the softmax taken over the training vocabulary (the words
  with count > 0, the same support as the unigram reference);
- ns_loss: -log s(u_o.v_c) - sum_k log s(-u_k.v_c) with the fixed negatives (s the sigmoid);
- recall10: share of pairs whose outside word is among the 10 highest u_w.v_c over the training
  vocabulary without c itself. Ties count against the outside word (o is a hit only when fewer
  than 10 other words score at least as high), so constant scores get no credit.

References beside them: the unigram distribution of the training counts (nll), all-zero vectors,
i.e. (K + 1) ln 2 (ns_loss), and the 10 most frequent training words other than c (recall10).
Intervals resample the sentences (w2v.bootstrap). Each figure's difference from its reference
(`differences`, figure - reference) gets its own interval from the same resampled sentences
scored both ways (paired): the reference is computed on those very pairs, so the interval of the
difference is much narrower than the two intervals side by side would suggest, and it is the one
that says whether vectors beat the reference.
"""
import math
import time
from dataclasses import dataclass, field

import numpy as np
from numba import njit
from scipy.special import log_expit

from w2v.bootstrap import half_width, ratio_interval
from w2v.engines.batched import _exp_shifted
from w2v.sampling import NegativeTable

TOP = 10             # recall@10
REFERENCE_NAMES = {"nll": "unigram", "ns_loss": "zero", "recall10": "frequent"}  # metric suffixes
CENTRE_BLOCK = 64    # unique centres per matrix product: 64 x V' float64 (8.5 MB at V' = 16,582)
PAIR_BLOCK = 4096    # pairs per NS-loss block: 4096 x K x d float64 (33 MB at K = 10, d = 100)


@dataclass(frozen=True)
class HeldoutProtocol:
    """The fixed evaluation protocol (conf: evaluate.heldout)."""
    window: int = 5
    K: int = 10
    max_sentences: int | None = 10_000  # None: every sentence of the split
    seed: int = 0

    def __post_init__(self):
        for name in ("window", "K", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
                raise ValueError(f"evaluate.heldout.{name} must be an integer >= {0 if name == 'seed' else 1}, got {value!r}")
        m = self.max_sentences
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValueError(f"evaluate.heldout.max_sentences must be an integer >= 1 or null, got {m!r}")


def difference_metric(name: str) -> str:
    """The metric of figure `name` minus its reference, e.g. eval_heldout_nll_vs_unigram."""
    return f"eval_heldout_{name}_vs_{REFERENCE_NAMES[name]}"


@dataclass(frozen=True)
class SentenceSums:
    """Per evaluated sentence (float (S,) each): in-vocabulary pairs and the sums over them."""
    pairs: np.ndarray
    nll: np.ndarray
    ns_loss: np.ndarray
    hits: np.ndarray
    nll_unigram: np.ndarray
    hits_frequent: np.ndarray


@dataclass(frozen=True)
class HeldoutResult:
    """The held-out figures (means per outside word), their intervals and references."""
    protocol: HeldoutProtocol
    sentences: int          # sentences evaluated (after the max_sentences sample)
    pairs: int              # in-vocabulary pairs
    oov_share: float        # share (0..1) of all pairs left out for a count-0 word
    figures: dict[str, float]
    intervals: dict[str, tuple[float, float]]  # 95% bootstrap (low, high)
    references: dict[str, float]
    differences: dict[str, float]  # figure - reference
    difference_intervals: dict[str, tuple[float, float]]  # 95% bootstrap, paired over sentences
    seconds: float = 0.0
    sums: SentenceSums | None = field(default=None, repr=False)

    def metrics(self) -> dict[str, float]:
        """eval_heldout_* figures, their `_ci95` half widths and the share left out."""
        metrics = {f"eval_heldout_{name}": value for name, value in self.figures.items()}
        metrics |= {f"eval_heldout_{name}_ci95": half_width(self.intervals[name]) for name in self.figures}
        metrics["eval_heldout_oov"] = self.oov_share
        for name, value in self.differences.items():
            metrics[difference_metric(name)] = value
            metrics[difference_metric(name) + "_ci95"] = half_width(self.difference_intervals[name])
        return metrics


def window_pairs(tokens: np.ndarray, offsets: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (centre, outside) pairs of the full windows, centre occurrences removed.

    tokens int (N,), offsets int (S+1,). Returns centres int64 (P,), outsides int64 (P,) and the
    sentence of each pair int64 (P,), ordered by centre position, then outside position."""
    tokens = np.asarray(tokens, dtype=np.int64)
    sentence = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    positions = np.arange(len(tokens))
    centre_pos, outside_pos = [], []
    for delta in range(1, window + 1):
        left = positions[:-delta] if delta < len(tokens) else positions[:0]
        same = sentence[left] == sentence[left + delta]
        centre_pos += [left[same], left[same] + delta]
        outside_pos += [left[same] + delta, left[same]]
    centre_pos = np.concatenate(centre_pos) if centre_pos else positions[:0]
    outside_pos = np.concatenate(outside_pos) if outside_pos else positions[:0]
    order = np.lexsort((outside_pos, centre_pos))
    centre_pos, outside_pos = centre_pos[order], outside_pos[order]
    keep = tokens[centre_pos] != tokens[outside_pos]
    return tokens[centre_pos[keep]], tokens[outside_pos[keep]], sentence[centre_pos[keep]]


def draw_negatives(rng: np.random.Generator, outsides: np.ndarray, K: int, table: NegativeTable) -> np.ndarray:
    """int64 (P, K) ids from the alias table, each redrawn while it equals its pair's outside word."""
    negatives = np.empty((len(outsides), K), dtype=np.int64)
    todo = np.ones(negatives.shape, dtype=bool)
    while todo.any():
        u = rng.random(int(todo.sum())) * len(table.prob)
        column = np.minimum(u.astype(np.int64), len(table.prob) - 1)
        negatives[todo] = np.where(u - column < table.prob[column], column, table.alias[column])
        todo = negatives == outsides[:, None]
    return negatives


def ns_loss_per_pair(center_vectors, outside_vectors, centres, outsides, negatives) -> np.ndarray:
    """float64 (P,): -log s(u_o.v_c) - sum_k log s(-u_k.v_c), in blocks of PAIR_BLOCK pairs."""
    losses = np.empty(len(centres))
    for start in range(0, len(centres), PAIR_BLOCK):
        block = slice(start, start + PAIR_BLOCK)
        v_c = center_vectors[centres[block]]                                      # (B, d)
        positive = np.einsum("bd,bd->b", outside_vectors[outsides[block]], v_c)   # (B,)
        negative = np.einsum("bkd,bd->bk", outside_vectors[negatives[block]], v_c)  # (B, K)
        losses[block] = -log_expit(positive) - log_expit(-negative).sum(axis=1)
    return losses


def softmax_and_recall_per_pair(center_vectors, outside_vectors, centres, outsides, vocabulary):
    """(nll float64 (P,), hit bool (P,)) over `vocabulary` (the ids with count > 0, (V',)): one
    row of scores U' v_c per unique centre, shared by all pairs of that centre."""
    position = np.full(len(outside_vectors), -1, dtype=np.int64)
    position[vocabulary] = np.arange(len(vocabulary))
    unique, inverse = np.unique(centres, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
    nll_sorted, hit_sorted = np.empty(len(centres)), np.empty(len(centres), dtype=np.bool_)
    _score_rows(np.ascontiguousarray(center_vectors[unique]), np.ascontiguousarray(outside_vectors[vocabulary].T),
                position[unique], position[outsides[order]], bounds, nll_sorted, hit_sorted)
    nll, hit = np.empty_like(nll_sorted), np.empty_like(hit_sorted)
    nll[order], hit[order] = nll_sorted, hit_sorted
    return nll, hit


@njit(cache=True)
def _score_rows(centre_rows, vocabulary_outside_t, centre_position, outside_position, bounds, nll, hit):
    """For unique centre i (row centre_rows[i], (d,)) and its pairs bounds[i]:bounds[i+1] (outside
    words at outside_position, columns of vocabulary_outside_t (d, V')): nll = log sum_w exp(s_w)
    - s_o and hit = s_o > the 11th highest s_w over w != centre (ties count against o; -inf when
    fewer than 11 other words), s = centre_rows[i] @ vocabulary_outside_t. Written into nll, hit
    (P,). The scores come CENTRE_BLOCK rows per matrix product, so U is read once per block."""
    V = vocabulary_outside_t.shape[1]
    powers = np.empty(V)
    top = np.empty(TOP + 1)  # the 11 highest scores so far, descending
    for first in range(0, len(centre_rows), CENTRE_BLOCK):
        block = np.dot(centre_rows[first:first + CENTRE_BLOCK], vocabulary_outside_t)  # (B, V')
        for b in range(block.shape[0]):
            i = first + b
            scores = block[b]
            top[:] = -np.inf
            highest = -np.inf
            for w in range(V):
                x = scores[w]
                highest = max(highest, x)
                if w == centre_position[i] or x <= top[TOP]:
                    continue
                k = TOP
                while k > 0 and top[k - 1] < x:
                    top[k] = top[k - 1]
                    k -= 1
                top[k] = x
            for p in range(bounds[i], bounds[i + 1]):
                hit[p] = scores[outside_position[p]] > top[TOP]
                nll[p] = -scores[outside_position[p]]
            log_normaliser = highest + math.log(_exp_shifted(scores, highest, powers))  # scores overwritten
            for p in range(bounds[i], bounds[i + 1]):
                nll[p] += log_normaliser


def frequent_hits(counts: np.ndarray, centres: np.ndarray, outsides: np.ndarray) -> np.ndarray:
    """bool (P,): o is among the 10 most frequent training words other than c (ties by id)."""
    rank = np.full(len(counts), TOP + 1, dtype=np.int64)
    top = np.argsort(-counts, kind="stable")[:TOP + 1]
    rank[top] = np.arange(len(top))
    return (rank[outsides] < TOP) | ((rank[outsides] == TOP) & (rank[centres] < TOP))


def sample_sentences(rng: np.random.Generator, tokens, offsets, max_sentences: int | None):
    """(tokens, offsets) of at most max_sentences sentences, drawn without replacement, in order."""
    S = len(offsets) - 1
    if max_sentences is None or S <= max_sentences:
        return tokens, offsets
    chosen = np.sort(rng.choice(S, size=max_sentences, replace=False))
    lengths = np.diff(offsets)[chosen]
    starts = np.asarray(offsets)[chosen]
    new_offsets = np.zeros(len(chosen) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    index = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return np.asarray(tokens)[index], new_offsets


def sentence_sums(tokens, offsets, center_vectors, outside_vectors, counts, protocol: HeldoutProtocol):
    """(SentenceSums, pairs left out for a count-0 word, all pairs) under `protocol`."""
    rng = np.random.default_rng(protocol.seed)
    tokens, offsets = sample_sentences(rng, tokens, offsets, protocol.max_sentences)
    centres, outsides, sentence = window_pairs(tokens, offsets, protocol.window)
    known = (counts[centres] > 0) & (counts[outsides] > 0)
    all_pairs = len(centres)
    centres, outsides, sentence = centres[known], outsides[known], sentence[known]
    table = NegativeTable.from_weights(counts.astype(np.float64) ** 0.75)
    negatives = draw_negatives(rng, outsides, protocol.K, table)
    ns = ns_loss_per_pair(center_vectors, outside_vectors, centres, outsides, negatives)
    nll, hit = softmax_and_recall_per_pair(center_vectors, outside_vectors, centres, outsides, np.flatnonzero(counts > 0))
    unigram_nll = -np.log(counts[outsides] / counts.sum())
    S = len(offsets) - 1

    def per_sentence(values):
        return np.bincount(sentence, weights=np.asarray(values, dtype=np.float64), minlength=S)

    sums = SentenceSums(pairs=per_sentence(np.ones(len(centres))), nll=per_sentence(nll), ns_loss=per_sentence(ns),
                        hits=per_sentence(hit), nll_unigram=per_sentence(unigram_nll),
                        hits_frequent=per_sentence(frequent_hits(counts, centres, outsides)))
    return sums, all_pairs - len(centres), all_pairs


def heldout_figures(tokens, offsets, center_vectors, outside_vectors, counts,
                    protocol: HeldoutProtocol = HeldoutProtocol()) -> HeldoutResult | None:
    """The held-out figures of (center_vectors, outside_vectors), float (V, d) each, on the
    sentences (tokens int (N,), offsets int (S+1,)) given the training counts int (V,).
    None when no pair of two training words is left to evaluate."""
    started = time.perf_counter()
    center_vectors = np.asarray(center_vectors, dtype=np.float64)
    outside_vectors = np.asarray(outside_vectors, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    if center_vectors.ndim != 2 or center_vectors.shape != outside_vectors.shape or len(counts) != len(center_vectors):
        raise ValueError(f"center_vectors {center_vectors.shape} and outside_vectors {outside_vectors.shape} "
                         f"must both be (V, d) with V = {len(counts)} counts")
    sums, left_out, all_pairs = sentence_sums(tokens, offsets, center_vectors, outside_vectors, counts, protocol)
    pairs = sums.pairs.sum()
    if pairs == 0:
        return None
    used = sums.pairs > 0  # the resampled units: sentences with at least one pair
    figures = {"nll": sums.nll.sum() / pairs, "ns_loss": sums.ns_loss.sum() / pairs, "recall10": sums.hits.sum() / pairs}
    intervals = {name: ratio_interval(getattr(sums, "hits" if name == "recall10" else name)[used], sums.pairs[used])
                 for name in figures}
    references = {"nll": sums.nll_unigram.sum() / pairs, "ns_loss": (protocol.K + 1) * math.log(2),
                  "recall10": sums.hits_frequent.sum() / pairs}
    differences = {name: figures[name] - references[name] for name in figures}
    zero = references["ns_loss"]  # a constant: the difference's interval is the figure's, shifted
    difference_intervals = {
        "nll": ratio_interval((sums.nll - sums.nll_unigram)[used], sums.pairs[used]),
        "ns_loss": (intervals["ns_loss"][0] - zero, intervals["ns_loss"][1] - zero),
        "recall10": ratio_interval((sums.hits - sums.hits_frequent)[used], sums.pairs[used])}
    return HeldoutResult(protocol=protocol, sentences=len(offsets) - 1 if protocol.max_sentences is None
                         else min(len(offsets) - 1, protocol.max_sentences), pairs=int(pairs),
                         oov_share=left_out / all_pairs, figures={k: float(v) for k, v in figures.items()},
                         intervals=intervals, references=references,
                         differences={k: float(v) for k, v in differences.items()},
                         difference_intervals=difference_intervals,
                         seconds=time.perf_counter() - started, sums=sums)


FIGURE_NAMES = {"nll": ("NLL, -log softmax(U v_c)_o (nats)", "unigram of the training counts", "lower"),
                "ns_loss": ("NS loss, fixed negatives", "all-zero vectors, (K+1) ln 2", "lower"),
                "recall10": ("recall@10", "10 most frequent training words", "higher")}


def heldout_report(result: HeldoutResult | None, split: str = "dev", note: str | None = None) -> str:
    """A Markdown section: the figures with intervals and references, or the note saying why not."""
    lines = ["", f"## Held-out figures ({split} sentences)", ""]
    if result is None:
        return "\n".join(lines + [f"No held-out figures: {note}", ""])
    p = result.protocol
    lines += [
        f"Protocol: window {p.window} (every position a centre, full window, centre occurrences removed, "
        f"no subsampling), K = {p.K} negatives drawn with seed {p.seed}; {result.sentences} sentences"
        + (f" (at most {p.max_sentences}, a seeded sample)" if p.max_sentences is not None else "")
        + f", {result.pairs} pairs; {100 * result.oov_share:.1f}% of the pairs left out (a word with training "
        f"count 0). Means per outside word; 95% bootstrap intervals over sentences. Computed in {result.seconds:.1f} s.",
        "",
        "| figure | value | 95% interval | reference | reference value | value - reference | 95% interval, paired | better |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (title, reference, better) in FIGURE_NAMES.items():
        low, high = result.intervals[name]
        difference_low, difference_high = result.difference_intervals[name]
        lines.append(f"| {title} | {result.figures[name]:.4f} | [{low:.4f}, {high:.4f}] | "
                     f"{reference} | {result.references[name]:.4f} | {result.differences[name]:+.4f} | "
                     f"[{difference_low:+.4f}, {difference_high:+.4f}] | {better} |")
    verdicts = [beats_reference(result, name) for name in FIGURE_NAMES]
    lines += ["", "The paired interval scores the same resampled sentences with the vectors and with the "
              "reference, so it is narrower than the two intervals side by side. " + " ".join(verdicts)]
    return "\n".join(lines) + "\n"


def beats_reference(result: HeldoutResult, name: str) -> str:
    """One sentence: whether the paired interval of figure `name` lies wholly on the better side."""
    title, reference, better = FIGURE_NAMES[name]
    low, high = result.difference_intervals[name]
    if better == "lower" and high < 0 or better == "higher" and low > 0:
        return f"{title.split(',')[0]}: better than the {reference}."
    if better == "lower" and low > 0 or better == "higher" and high < 0:
        return f"{title.split(',')[0]}: worse than the {reference}."
    return f"{title.split(',')[0]}: not distinguishable from the {reference}."
