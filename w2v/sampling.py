"""Training data for skip-gram SGD, drawn as in CS224n assignment 2 (utils/treebank.py).

Three pieces, in the order the trainer uses them:

1. `build_sentence_pool`: `copies` independently subsampled copies of the training sentences
   (a word of count f kept with probability min(1, sqrt(t/f)), t = 1e-5 x total token count, the
   corpus's `keep_prob`), sentences left with fewer than 2 words dropped. Vectorised numpy.
2. `NegativeTable` (Walker's alias method) and `sample_negatives`: K ids from unigram^0.75
   (the corpus's `neg_weight`), each redrawn while it equals the outside word.
3. `fill_minibatch` (numba): `B` windows. Each window draws its size C uniformly in 1..m, then a
   sentence uniformly from the pool and a centre position i uniformly in it; the context is
   sent[max(0, i-C):i] + sent[i+1:i+C+1] with every occurrence of the centre word removed; an empty
   context is drawn again (new sentence and centre, same C, as the reference's recursion). Then,
   for negative sampling, K negatives per outside word.

A training run draws from TRAINING_STREAMS Generators (`training_streams`), each drawing its own
fixed share of every minibatch's windows (`stream_windows`): the windows' draws are independent of
each other's, so threads can sample a minibatch together and get the same windows whatever their
number. Both engines draw their minibatches through `fill_minibatch` with the Generators passed
into numba, so for one seed both consume exactly the same draws, and the streams'
`bit_generator.state`s are all a checkpoint needs to continue the same sequence.
"""
from dataclasses import dataclass

import numpy as np
from numba import njit

TRAINING_STREAMS = 8  # sampling shares of a minibatch; more threads than this cannot share it


# --------------------------------------------------------------------------- sentence pool

@dataclass(frozen=True)
class SentencePool:
    """Subsampled sentences: sentence s is `tokens[offsets[s]:offsets[s+1]]`, every one >= 2 words.

    tokens int32 (N,), offsets int64 (S+1,).
    """
    tokens: np.ndarray
    offsets: np.ndarray

    @property
    def num_sentences(self) -> int:
        return len(self.offsets) - 1


def build_sentence_pool(tokens, offsets, keep_prob, copies, rng) -> SentencePool:
    """`copies` subsampled copies of the sentences (tokens int (N,), offsets int (S+1,)).

    keep_prob: float64 (V,), the probability of keeping each word id (Corpus.keep_prob).
    rng: numpy.random.Generator; one uniform draw per token and copy.
    Raises ValueError when no sentence of the pool has two different words (no window possible).
    """
    tokens = np.asarray(tokens)
    offsets = np.asarray(offsets, dtype=np.int64)
    keep_prob = np.asarray(keep_prob, dtype=np.float64)
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(tokens) \
            or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must start at 0, not decrease, and end at len(tokens)")
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= len(keep_prob)):
        raise ValueError(f"tokens: ids must lie in 0..{len(keep_prob) - 1} (len(keep_prob))")
    num_sentences = len(offsets) - 1
    sentence_of_token = np.repeat(np.arange(num_sentences), np.diff(offsets))
    token_keep_prob = keep_prob[tokens]
    kept_tokens, kept_lengths = [], []
    for _ in range(copies):
        keep = rng.random(len(tokens)) < token_keep_prob
        lengths = np.bincount(sentence_of_token[keep], minlength=num_sentences)
        long_enough = lengths >= 2
        kept_tokens.append(tokens[keep & long_enough[sentence_of_token]])
        kept_lengths.append(lengths[long_enough])
    pool_tokens = np.concatenate(kept_tokens).astype(np.int32)
    pool_offsets = np.concatenate([[0], np.cumsum(np.concatenate(kept_lengths))]).astype(np.int64)
    pool = SentencePool(pool_tokens, pool_offsets)
    if not _has_a_window(pool_tokens, pool_offsets):
        raise ValueError("the sentence pool has no sentence with two different words: "
                         "the corpus is too small or too heavily subsampled to train on")
    return pool


@njit(cache=True)
def _has_a_window(tokens, offsets):
    for s in range(len(offsets) - 1):
        for j in range(offsets[s] + 1, offsets[s + 1]):
            if tokens[j] != tokens[offsets[s]]:
                return True
    return False


# --------------------------------------------------------------------------- negatives

@dataclass(frozen=True)
class NegativeTable:
    """Walker's alias table for drawing word ids with probability weights / weights.sum().

    An alias table draws exactly from the given distribution (no table quantisation as in the
    reference's 1e6-entry table) in O(1) per draw: one uniform u in [0, 1), column j = floor(u V),
    kept when the fractional part of u V is below `prob[j]`, else `alias[j]`. The fractional part
    carries 53 - log2(V) bits, so its quantisation (below 2^-38 for V < 2^15) is far below
    anything a run can detect. prob float64 (V,), alias int32 (V,); p float64 (V,) the
    normalised distribution the table draws from.
    """
    prob: np.ndarray
    alias: np.ndarray
    p: np.ndarray

    @classmethod
    def from_weights(cls, weights) -> "NegativeTable":
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or len(weights) == 0:
            raise ValueError(f"weights must be a non-empty 1-D array, got shape {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("weights must be finite, >= 0 and not all zero")
        p = weights / weights.sum()
        prob, alias = _build_alias(p)
        return cls(prob, alias, p)


@njit(cache=True)
def _build_alias(p):
    """Vose's construction of Walker's alias table for probabilities p (V,), summing to 1."""
    n = len(p)
    scaled = p * n
    prob = np.ones(n)
    alias = np.arange(n).astype(np.int32)
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    n_small = 0
    n_large = 0
    for i in range(n):
        if scaled[i] < 1.0:
            small[n_small] = i
            n_small += 1
        else:
            large[n_large] = i
            n_large += 1
    while n_small > 0 and n_large > 0:
        n_small -= 1
        s = small[n_small]
        n_large -= 1
        g = large[n_large]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            small[n_small] = g
            n_small += 1
        else:
            large[n_large] = g
            n_large += 1
    # Whatever is left is 1 up to rounding: keep the column itself. A zero-weight column can only
    # be left here through rounding, so it never gets probability of its own.
    for i in range(n_large):
        prob[large[i]] = 1.0
    for i in range(n_small):
        prob[small[i]] = 1.0 if p[small[i]] > 0 else 0.0
    return prob, alias


@njit(cache=True)
def draw_negative(rng, prob, alias, outside_idx):
    """One id from the alias table (prob, alias), redrawn while it equals outside_idx."""
    n = len(prob)
    while True:
        u = rng.random() * n
        j = int(u)
        if j >= n:  # u * n rounds up to n only for u within 2^-53 of 1
            j = n - 1
        k = j if u - j < prob[j] else alias[j]
        if k != outside_idx:
            return k


@njit(cache=True)
def _fill_negatives(rng, prob, alias, outside_idx, out):
    for k in range(len(out)):
        out[k] = draw_negative(rng, prob, alias, outside_idx)


def sample_negatives(rng, outside_idx, K, weights) -> np.ndarray:
    """K word ids drawn from the unigram^0.75 distribution, never `outside_idx` (redrawn).

    rng: numpy.random.Generator (advanced by the draws); outside_idx: int in 0..V-1;
    K >= 1; weights: float (V,) unnormalised, e.g. Corpus.neg_weight, or a `NegativeTable`
    built from it (cheaper when called often). Returns int32 (K,); ids may repeat.
    """
    table = weights if isinstance(weights, NegativeTable) else NegativeTable.from_weights(weights)
    vocab_size = len(table.prob)
    if int(K) != K or K < 1:
        raise ValueError(f"K must be an integer >= 1, got {K!r}")
    if int(outside_idx) != outside_idx or not 0 <= outside_idx < vocab_size:
        raise ValueError(f"outside_idx must be a word id in 0..{vocab_size - 1}, got {outside_idx!r}")
    if table.p.sum() - table.p[outside_idx] <= 0:
        raise ValueError(f"weights: no word other than outside_idx={outside_idx} has positive weight")
    out = np.empty(int(K), np.int32)
    _fill_negatives(rng, table.prob, table.alias, int(outside_idx), out)
    return out


# --------------------------------------------------------------------------- minibatches

@dataclass
class Minibatch:
    """B skip-gram windows, what both engines consume.

    centers int32 (B,); contexts int32 (B, 2m), outside ids padded with -1;
    context_lengths int32 (B,) >= 1; negatives int32 (B, 2m, K), rows past a window's context
    padded with -1, or None for naive softmax.
    """
    centers: np.ndarray
    contexts: np.ndarray
    context_lengths: np.ndarray
    negatives: np.ndarray | None = None

    @classmethod
    def empty(cls, batch_size, window, K) -> "Minibatch":
        """Buffers for `fill_minibatch`; K = 0 for naive softmax (no negatives)."""
        return cls(np.zeros(batch_size, np.int32), np.full((batch_size, 2 * window), -1, np.int32),
                   np.zeros(batch_size, np.int32),
                   np.full((batch_size, 2 * window, K), -1, np.int32) if K else None)

    def checked(self, vocab_size, with_negatives) -> "Minibatch":
        """This batch as contiguous int32 arrays, after checking shapes and ids (ValueError naming
        the field): the kernels index with these ids unchecked."""
        centers = np.ascontiguousarray(self.centers, np.int32)
        contexts = np.ascontiguousarray(self.contexts, np.int32)
        lengths = np.ascontiguousarray(self.context_lengths, np.int32)
        batch_size = len(centers)
        if centers.ndim != 1 or batch_size == 0:
            raise ValueError(f"batch.centers: expected a non-empty (B,) array, got shape {centers.shape}")
        if contexts.ndim != 2 or len(contexts) != batch_size or lengths.shape != (batch_size,):
            raise ValueError(f"batch.contexts {contexts.shape} / batch.context_lengths {lengths.shape}: "
                             f"expected (B, 2m) and (B,) with B = {batch_size}")
        if lengths.min() < 1 or lengths.max() > contexts.shape[1]:
            raise ValueError(f"batch.context_lengths: must lie in 1..{contexts.shape[1]}")
        used = np.arange(contexts.shape[1]) < lengths[:, None]
        for name, ids in (("centers", centers), ("contexts", contexts[used])):
            if ids.min() < 0 or ids.max() >= vocab_size:
                raise ValueError(f"batch.{name}: word ids must lie in 0..{vocab_size - 1}")
        negatives = None
        if with_negatives:
            if self.negatives is None:
                raise ValueError("batch.negatives: required for loss='neg_sampling'")
            negatives = np.ascontiguousarray(self.negatives, np.int32)
            if negatives.ndim != 3 or negatives.shape[:2] != contexts.shape or negatives.shape[2] < 1:
                raise ValueError(f"batch.negatives: expected shape {contexts.shape + ('K',)} with "
                                 f"K >= 1, got {negatives.shape}")
            if negatives[used].min() < 0 or negatives[used].max() >= vocab_size:
                raise ValueError(f"batch.negatives: word ids must lie in 0..{vocab_size - 1}")
        return Minibatch(centers, contexts, lengths, negatives)

    def negatives_or_empty(self) -> np.ndarray:
        """The negatives, or a (B, 2m, 0) array for naive softmax (numba needs one array type)."""
        if self.negatives is not None:
            return self.negatives
        return np.zeros(self.contexts.shape + (0,), np.int32)


def training_streams(seed) -> tuple[np.random.Generator, ...]:
    """The TRAINING_STREAMS Generators a training run draws its minibatches from, spawned from
    `seed` (an int or a numpy.random.SeedSequence)."""
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return tuple(np.random.default_rng(child) for child in sequence.spawn(TRAINING_STREAMS))


def as_streams(rngs) -> tuple[np.random.Generator, ...]:
    """A Generator as a 1-tuple (all windows from it), a sequence of Generators as a tuple."""
    if isinstance(rngs, np.random.Generator):
        return (rngs,)
    rngs = tuple(rngs)
    if not rngs or not all(isinstance(rng, np.random.Generator) for rng in rngs):
        raise ValueError("rngs: expected a numpy.random.Generator or a non-empty sequence of them")
    return rngs


@njit(cache=True)
def stream_windows(stream, streams, batch_size):
    """The windows first..last-1 of a minibatch that stream `stream` of `streams` draws."""
    return stream * batch_size // streams, (stream + 1) * batch_size // streams


@njit(cache=True)
def fill_windows(rng, first, last, pool_tokens, pool_offsets, window, prob, alias,
                 centers, contexts, context_lengths, negatives):
    """Draw windows first..last-1 of the buffers from rng (see the module docstring).

    window: m; contexts (B, 2m); negatives (B, 2m, K), K = negatives.shape[2] (0: none drawn).
    The pool must hold a sentence with two different words (`build_sentence_pool` checks it).
    """
    num_sentences = len(pool_offsets) - 1
    K = negatives.shape[2]
    for b in range(first, last):
        size = rng.integers(1, window + 1)
        n_outside = 0
        while n_outside == 0:
            s = rng.integers(0, num_sentences)
            start = pool_offsets[s]
            length = pool_offsets[s + 1] - start
            i = rng.integers(0, length)
            center = pool_tokens[start + i]
            for j in range(max(0, i - size), min(length, i + size + 1)):
                word = pool_tokens[start + j]
                if j != i and word != center:
                    contexts[b, n_outside] = word
                    n_outside += 1
        centers[b] = center
        context_lengths[b] = n_outside
        contexts[b, n_outside:] = -1
        for j in range(n_outside):
            for k in range(K):
                negatives[b, j, k] = draw_negative(rng, prob, alias, contexts[b, j])
        negatives[b, n_outside:, :] = -1


@njit(cache=True)
def fill_minibatch(rngs, pool_tokens, pool_offsets, window, prob, alias,
                   centers, contexts, context_lengths, negatives):
    """Draw len(centers) windows into the buffers: rngs is a tuple of Generators, and stream s
    draws the windows `stream_windows(s, len(rngs), B)` (see `fill_windows`)."""
    for stream in range(len(rngs)):
        first, last = stream_windows(stream, len(rngs), len(centers))
        fill_windows(rngs[stream], first, last, pool_tokens, pool_offsets, window, prob, alias,
                     centers, contexts, context_lengths, negatives)


def sample_minibatch(rngs, pool: SentencePool, table: NegativeTable, batch_size, window, K,
                     out: Minibatch | None = None) -> Minibatch:
    """`batch_size` windows of half-width up to `window`; K negatives per outside word (0: none).

    rngs: a numpy.random.Generator, or a sequence of them (e.g. `training_streams`) that share the
    windows as `fill_minibatch` does. Fills `out` when given (no allocation), else a new Minibatch.
    """
    batch = out if out is not None else Minibatch.empty(batch_size, window, K)
    fill_minibatch(as_streams(rngs), pool.tokens, pool.offsets, window, table.prob, table.alias,
                   batch.centers, batch.contexts, batch.context_lengths, batch.negatives_or_empty())
    return batch
