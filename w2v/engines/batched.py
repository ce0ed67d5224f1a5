"""The fast engine: numba kernels for the whole minibatch, sparse row updates, fused sampling.

Notation (as the assignment): v_c = center_vectors[c], u_w = outside_vectors[w], U = outside_vectors.
For one window with centre c and outside words o_1..o_n:

- negative sampling, per outside word o with negatives k_1..k_K (repeats count each time):
  J = -log s(u_o.v_c) - sum_k log s(-u_k.v_c); dJ/dv_c = (s(u_o.v_c) - 1) u_o + sum_k s(u_k.v_c) u_k;
  dJ/du_o = (s(u_o.v_c) - 1) v_c; dJ/du_k = s(u_k.v_c) v_c.
- naive softmax: all outside words share y_hat = softmax(U v_c), computed once per window:
  J = sum_o (logsumexp(U v_c) - u_o.v_c); dJ/dv_c = U^T (n y_hat - sum_o y_o);
  dJ/dU = (n y_hat - sum_o y_o) v_c^T.

`_minibatch_gradient` computes, from the parameters before the step (as the reference, which
computes the whole batch's gradient, then steps), the batch loss, each window's dJ/dv_c, and the
gradient of U: for negative sampling as one coefficient g per (window, word) pair, dJ/du_w
= sum of g v_c over the pairs of w, so no (V, d) buffer is touched; for naive softmax as a dense
(V, d) matrix. `_scatter_gradient` then adds that same result either into zeroed dense (V, d)
gradients (`minibatch_loss_and_gradient`, for the gradient checks and the engine-equivalence
test) or, times -lr, into the parameters (training). So the checks verify the code that trains,
and a step changes only the rows of the minibatch (for naive softmax: all outside rows, which
all have a gradient), repeated ids accumulating.
`Stepper.run` fuses sampling (w2v.sampling.fill_minibatch), gradient and step for many
iterations in one call.

Pair (j, k) of window b is its outside word j (k = 0, `contexts[b, j]`) or that word's k-th
negative (`negatives[b, j, k - 1]`). The per-pair loops spell that out and index rows as
`vectors[w, i]`: numba reference-counts a row view (`vectors[w]`), or an array passed to a
helper, with an atomic operation on the array's shared header; per pair, that slows the loops
and has the threads contend for one cache line. The kernels take their arrays grouped in the
named tuples below and read the fields into locals once per call; the per-window work runs in
one call per range of windows (`_neg_sampling_windows`), so no array is passed per window or pair.

Naive softmax computes the whole (B, V) score matrix with BLAS products (scores V_c U^T, then
P U and V_c^T P for the gradients) and a vectorisable exp instead of a numba loop over the
vocabulary per window: its cost is those O(B V d) products, which BLAS and SIMD do best. (The
figures behind these choices: docs/design.md, "Measured choices in the batched kernels".) The
trainer limits BLAS to one thread by default; everything is then single-threaded and
bit-reproducible. With `Stepper(threads=2)` negative sampling spreads every phase over numba
threads and gets the same bits for any thread count: the sampling streams (w2v.sampling
`training_streams`) each draw their share of the windows and compute those windows' gradients
(`_neg_sampling_windows`, independent per window), the losses are summed in window order, and the
update splits the rows between the threads (`_update_parallel`; each stream lists its pairs by
the thread that owns their row while computing them), each row's terms added in pair order.
"""
import math
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from w2v.engines.prefetch import prefetch_row
from w2v.losses import LOSSES
from w2v.sampling import (Minibatch, NegativeTable, SentencePool, as_streams, draw_negative,
                          fill_minibatch, fill_windows, stream_windows)

# fast-math for the per-pair loops (dot products, axpys): reassociation lets the dot product's sum
# use SIMD lanes, contraction fuses multiply-adds. Not nnan/ninf: divergence is detected by the
# NaN/inf the loss becomes. The code (and so the rounding) is fixed per machine, so a seed still
# gives bit-identical vectors; the last bits may differ from the loop engine's (tested to 1e-10).
_PAIR_FLAGS = {"reassoc", "contract", "nsz", "arcp"}
_AHEAD = 8  # the update prefetches the row of the pair this many pairs ahead


# The kernels' arguments, grouped by what they are. numba compiles a named tuple to a struct of
# its fields, so reading a field costs nothing; each kernel reads the fields it uses into locals
# at its top, and its loops index plain arrays as before.
class Vectors(NamedTuple):
    """A (V, d) pair in one dtype: the parameters (trained in place), or the dense gradients that
    minibatch_loss_and_gradient fills."""
    center: np.ndarray
    outside: np.ndarray


class Sampler(NamedTuple):
    """What w2v.sampling.fill_minibatch draws from: the sentence pool (tokens int32 (N,),
    offsets int64 (S + 1,)), the maximum half-width m, and the negatives' alias table (prob
    float64 (V,), alias int32 (V,))."""
    tokens: np.ndarray
    offsets: np.ndarray
    window: int
    prob: np.ndarray
    alias: np.ndarray


class Batch(NamedTuple):
    """The arrays of a w2v.sampling.Minibatch (B windows): centers int32 (B,), contexts int32
    (B, 2m), context_lengths int32 (B,), negatives int32 (B, 2m, K) ((B, 2m, 0) for naive
    softmax)."""
    centers: np.ndarray
    contexts: np.ndarray
    context_lengths: np.ndarray
    negatives: np.ndarray


class Buffers(NamedTuple):
    """Gradient buffers reused by every minibatch (see `_buffers`). Negative sampling: pair_coef
    float64 (B, 2m, K + 1), window_losses float64 (B,); naive softmax: grad_outside_t (d, V),
    probs (B, V), powers (V,); both: v_c_batch and grad_v_c_batch (B, d). The ones a loss does
    not use are empty."""
    pair_coef: np.ndarray
    grad_v_c_batch: np.ndarray
    grad_outside_t: np.ndarray
    v_c_batch: np.ndarray
    probs: np.ndarray
    powers: np.ndarray
    window_losses: np.ndarray


class PartWork(NamedTuple):
    """The update on threads (see `_part_work`): each sampling stream's pairs grouped by the part
    that owns their outside row. words, windows int32 and coefficients float64 (streams,
    capacity); part p of stream s is entries starts[s, p]..starts[s, p + 1] - 1, starts int64
    (streams, parts + 1)."""
    words: np.ndarray
    windows: np.ndarray
    coefficients: np.ndarray
    starts: np.ndarray


@njit(cache=True)
def _row_part(row, parts):
    """Which of `parts` parts owns a row: a multiplicative hash of the id scaled into 0..parts-1
    (no division, which would cost more than the row test saves; frequent words, which have small
    ids, are spread over the parts)."""
    return (((np.int64(row) * 2654435769) & 0xFFFFFFFF) * parts) >> 32


@njit(cache=True, fastmath=_PAIR_FLAGS)
def _neg_sampling_windows(params, batch, buffers, first, last):
    """Loss of windows first..last-1 into window_losses[b]; fills pair_coef[b, j, k] =
    dJ/d(u_w.v_c) of pair (j, k) of window b (s(z) - 1 for the outside word, s(z) for a
    negative), v_c_batch[b] = v_c (a copy, for the update) and grad_v_c_batch[b] = its dJ/dv_c.
    Reads only the parameters and writes only rows first..last-1 of the buffers, so windows are
    independent. One call per range of windows, not per window: each call costs numba a
    reference count per array of the named tuples, a measurable share of an iteration if paid
    per window (docs/design.md).

    Each pair costs -log s(x), x = z for the outside word and -z for a negative; with
    e = exp(-|x|) that is max(-x, 0) + log(1 + e), and 1 - s(x) = e/(1 + e) (x >= 0) or
    1/(1 + e) (x < 0): one exp per pair, no overflow, and one log per window for the product
    of the (1 + e) factors (each in [1, 2], so at most 2^(2m(K+1)), far from overflowing).
    Per outside word, three loops over its K + 1 pairs (dot products, coefficients, then the
    dJ/dv_c terms) rather than one: the K + 1 dot products are independent, so the CPU overlaps
    them instead of waiting for each sum in turn, and every sum still runs in pair order.
    """
    center_vectors, outside_vectors = params.center, params.outside
    centers, contexts, negatives = batch.centers, batch.contexts, batch.negatives
    context_lengths = batch.context_lengths
    pair_coef, v_c_batch = buffers.pair_coef, buffers.v_c_batch
    grad_v_c_batch, window_losses = buffers.grad_v_c_batch, buffers.window_losses
    d = center_vectors.shape[1]
    pairs = negatives.shape[2] + 1
    for b in range(first, last):
        next_b = b + 1 if b + 1 < last else -1
        c = centers[b]
        for i in range(d):
            v_c_batch[b, i] = center_vectors[c, i]
            grad_v_c_batch[b, i] = 0.0
        loss = 0.0
        product = 1.0
        for j in range(context_lengths[b]):
            # while this outside word's rows are used, the next one's (or the next window's) load
            next_j = j + 1
            if next_j == context_lengths[b] and next_b >= 0:
                b_ahead, next_j = next_b, 0
                prefetch_row(center_vectors, centers[next_b])
            else:
                b_ahead = b
            if next_j < context_lengths[b_ahead]:
                for k in range(pairs):
                    prefetch_row(outside_vectors, contexts[b_ahead, next_j] if k == 0
                                 else negatives[b_ahead, next_j, k - 1])
            for k in range(pairs):
                w = contexts[b, j] if k == 0 else negatives[b, j, k - 1]
                z = 0.0
                for i in range(d):
                    z += outside_vectors[w, i] * v_c_batch[b, i]
                pair_coef[b, j, k] = z
            for k in range(pairs):
                x = pair_coef[b, j, k] if k == 0 else -pair_coef[b, j, k]
                e = math.exp(-abs(x))
                one_minus_sigmoid = e / (1.0 + e) if x >= 0 else 1.0 / (1.0 + e)
                if x < 0:
                    loss -= x
                product *= 1.0 + e
                # dJ/dz: s(z) - 1 for the outside word; s(z) = 1 - s(-z) for a negative
                pair_coef[b, j, k] = -one_minus_sigmoid if k == 0 else one_minus_sigmoid
            for k in range(pairs):
                w = contexts[b, j] if k == 0 else negatives[b, j, k - 1]
                g = pair_coef[b, j, k]
                for i in range(d):
                    grad_v_c_batch[b, i] += g * outside_vectors[w, i]
        window_losses[b] = loss + math.log(product)


@njit(cache=True)
def _ordered_sum(values):
    """values[0] + values[1] + ... in this order (no fast-math: the same bits however the terms
    were computed, so the thread count cannot change the loss)."""
    total = 0.0
    for b in range(values.shape[0]):
        total += values[b]
    return total


@njit(cache=True)
def _neg_sampling_minibatch(params, batch, buffers):
    """Summed loss of the windows, one after the other (see _neg_sampling_windows).
    Buffers used: pair_coef, v_c_batch, grad_v_c_batch, window_losses."""
    _neg_sampling_windows(params, batch, buffers, 0, len(batch.centers))
    return _ordered_sum(buffers.window_losses)


@njit(cache=True, parallel=True)
def _sample_neg_sampling_minibatch_parallel(rngs, sampler, params, batch, buffers, work):
    """fill_minibatch, then _neg_sampling_minibatch, with the sampling streams spread over numba's
    threads: each stream draws its windows and computes their figures, by the same code whichever
    thread runs it; the losses are summed in window order afterwards. So the result is
    bit-identical to the sequential kernels'. Each stream also lists its pairs in `work` by the
    part that owns their outside row (see _part_work), for _update_parallel."""
    for stream in prange(len(rngs)):
        first, last = stream_windows(stream, len(rngs), len(batch.centers))
        fill_windows(rngs[stream], first, last, sampler.tokens, sampler.offsets, sampler.window,
                     sampler.prob, sampler.alias, batch.centers, batch.contexts,
                     batch.context_lengths, batch.negatives)
        _neg_sampling_windows(params, batch, buffers, first, last)
        _list_pairs_by_part(stream, first, last, batch, buffers.pair_coef, work)
    return _ordered_sum(buffers.window_losses)


@njit(cache=True)
def _list_pairs_by_part(stream, first, last, batch, pair_coef, work):
    """List the pairs of windows first..last-1 (stream `stream`) in work, grouped by the part
    that owns their outside row and in pair order within a part (a counting sort)."""
    contexts, context_lengths, negatives = batch.contexts, batch.context_lengths, batch.negatives
    words, windows, coefficients, starts = work.words, work.windows, work.coefficients, work.starts
    parts = starts.shape[1] - 1
    cursor = np.zeros(parts + 1, np.int64)
    for b in range(first, last):
        for j in range(context_lengths[b]):
            for k in range(negatives.shape[2] + 1):
                w = contexts[b, j] if k == 0 else negatives[b, j, k - 1]
                cursor[_row_part(w, parts) + 1] += 1
    for part in range(parts):
        cursor[part + 1] += cursor[part]
    starts[stream, :] = cursor
    for b in range(first, last):
        for j in range(context_lengths[b]):
            for k in range(negatives.shape[2] + 1):
                w = contexts[b, j] if k == 0 else negatives[b, j, k - 1]
                part = _row_part(w, parts)
                n = cursor[part]
                words[stream, n] = w
                windows[stream, n] = b
                coefficients[stream, n] = pair_coef[b, j, k]
                cursor[part] = n + 1


# fast-math without reassociation: the round-to-integer trick below must not be simplified away
_EXP_FLAGS = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}
_ROUNDER = 6755399441055744.0  # 1.5 * 2^52: y + _ROUNDER rounds y to an integer in the low bits


@njit(cache=True, fastmath=_EXP_FLAGS)
def _exp_shifted(row, top, powers):
    """row[w] = exp(row[w] - top) in place for row <= top; returns the sum of the new row.

    A vectorisable exp (a loop of math.exp calls is one library call per element; the figures
    are in docs/design.md): x = k ln2 + r with
    k = round(x / ln2) (Cody-Waite split of ln2), a degree-12 Taylor polynomial for exp(r) on
    |r| <= ln2/2 (relative error below 5e-15, checked against numpy's exp in
    tests/test_engines.py), and 2^k built from its bit pattern. powers: scratch float64 (V,).
    Values below exp(-708) come out as tiny positive numbers instead of 0 (harmless in a sum >= 1).
    """
    bits = powers.view(np.int64)
    rounder_bits = 4843621399236968448  # the bit pattern of _ROUNDER
    for w in range(row.shape[0]):
        x = max(row[w] - top, -708.0)
        shifted = x * 1.4426950408889634 + _ROUNDER
        k = shifted - _ROUNDER
        r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
        row[w] = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (
            1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (
                1 / 39916800 + r * (1 / 479001600))))))))))))
        powers[w] = shifted
    for w in range(row.shape[0]):  # k sits in the low bits of `shifted`: 2^k = (k + 1023) << 52
        bits[w] = (bits[w] - rounder_bits + 1023) << 52
    for w in range(row.shape[0]):
        row[w] *= powers[w]
    return _sum(row)


@njit(cache=True, fastmath=True)
def _sum(values):
    total = 0.0
    for w in range(values.shape[0]):
        total += values[w]
    return total


@njit(cache=True)
def _naive_softmax_minibatch(params, batch, scale, buffers):
    """Summed loss of the windows; grad_v_c_batch[b] = dJ/dv_c of window b; grad_outside_t =
    scale * (dJ/dU)^T of the batch, (d, V) (every row of U has a gradient). All outside words of
    a window share y_hat = softmax(U v_c), so per window the coefficient row is
    n y_hat - sum_o y_o, and the batch's three products are BLAS calls: scores V_c U^T (B, V),
    dJ/dV_c = P U (B, d), (dJ/dU)^T = V_c^T P (d, V; chosen over P^T V_c (V, d) by measurement,
    see docs/design.md).
    Buffers used: v_c_batch, grad_v_c_batch (B, d), grad_outside_t (d, V), probs (B, V),
    powers (V,).
    """
    center_vectors, outside_vectors = params.center, params.outside
    centers, contexts, context_lengths = batch.centers, batch.contexts, batch.context_lengths
    v_c_batch, grad_v_c_batch, probs = buffers.v_c_batch, buffers.grad_v_c_batch, buffers.probs
    grad_outside_t, powers = buffers.grad_outside_t, buffers.powers
    for b in range(len(centers)):
        v_c_batch[b, :] = center_vectors[centers[b]]
    np.dot(v_c_batch, outside_vectors.T, probs)
    loss = 0.0
    for b in range(len(centers)):
        row = probs[b]
        n = context_lengths[b]
        top = row.max()
        for j in range(n):
            loss -= row[contexts[b, j]]
        total = _exp_shifted(row, top, powers)
        loss += n * (top + math.log(total))
        factor = n / total
        for w in range(row.shape[0]):
            row[w] *= factor
        for j in range(n):
            row[contexts[b, j]] -= 1.0
    np.dot(probs, outside_vectors, grad_v_c_batch)
    np.dot(v_c_batch.T, probs, grad_outside_t)
    for i in range(grad_outside_t.shape[0]):
        for w in range(grad_outside_t.shape[1]):
            grad_outside_t[i, w] *= scale
    return loss


@njit(cache=True)
def _minibatch_gradient(params, batch, naive, buffers):
    """Batch-mean loss of the minibatch, filling the gradient buffers (see the module docstring):
    grad_v_c_batch (B, d) the per-window dJ/dv_c and v_c_batch (B, d); negative sampling:
    pair_coef (B, 2m, K + 1), window_losses (B,); naive softmax: grad_outside_t (d, V) =
    batch-mean (dJ/dU)^T, probs (B, V), powers (V,) scratch."""
    scale = 1.0 / len(batch.centers)
    if naive:
        loss = _naive_softmax_minibatch(params, batch, scale, buffers)
    else:
        loss = _neg_sampling_minibatch(params, batch, buffers)
    return loss * scale


@njit(cache=True, fastmath=_PAIR_FLAGS)
def _update_part(part, centers, buffers, factor, out, work):
    """The update of the rows that part `part` owns (_row_part): its pairs' outside terms, listed
    in `work` stream by stream in pair order, then its centre rows in window order. The terms
    and their order per row are those of _scatter_gradient, so the bits are the same."""
    v_c_batch, grad_v_c_batch = buffers.v_c_batch, buffers.grad_v_c_batch
    center_out, outside_out = out.center, out.outside
    words, windows, coefficients, starts = work.words, work.windows, work.coefficients, work.starts
    scale = 1.0 / len(centers)
    d = v_c_batch.shape[1]
    for stream in range(starts.shape[0]):
        end = starts[stream, part + 1]
        for n in range(starts[stream, part], end):
            if n + _AHEAD < end:
                prefetch_row(outside_out, words[stream, n + _AHEAD])
            w, b = words[stream, n], windows[stream, n]
            step = factor * scale * coefficients[stream, n]
            for i in range(d):
                outside_out[w, i] += step * v_c_batch[b, i]
    parts = starts.shape[1] - 1
    for b in range(len(centers)):
        if b + _AHEAD < len(centers) and _row_part(centers[b + _AHEAD], parts) == part:
            prefetch_row(center_out, centers[b + _AHEAD])
        c = centers[b]
        if _row_part(c, parts) == part:
            for i in range(d):
                center_out[c, i] += factor * scale * grad_v_c_batch[b, i]


@njit(cache=True, parallel=True)
def _update_parallel(centers, buffers, factor, out, work):
    """The negative-sampling step with the rows split into parts (see _part_work) spread over
    numba's threads: every row is written by one thread, its terms in pair order, so the result
    is bit-identical to _scatter_gradient's."""
    for part in prange(work.starts.shape[1] - 1):
        _update_part(part, centers, buffers, factor, out, work)


@njit(cache=True, fastmath=_PAIR_FLAGS)
def _scatter_gradient(batch, naive, buffers, factor, out):
    """out.center[c] += factor * scale * dJ/dv_c and out.outside += factor * dJ/dU (batch means).

    With factor = 1 and zeroed outputs: the dense gradients; with factor = -lr and the parameters
    as outputs: the SGD step. The outside terms use the centre vectors from before the step
    (v_c_batch), so the step is the gradient of the parameters before it. For naive softmax,
    out.outside is out.outside + factor * grad_outside_t^T over all rows.
    """
    centers, contexts, negatives = batch.centers, batch.contexts, batch.negatives
    context_lengths = batch.context_lengths
    pair_coef, v_c_batch = buffers.pair_coef, buffers.v_c_batch
    grad_v_c_batch, grad_outside_t = buffers.grad_v_c_batch, buffers.grad_outside_t
    center_out, outside_out = out.center, out.outside
    scale = 1.0 / len(centers)
    d = v_c_batch.shape[1]
    if naive:
        for w in range(outside_out.shape[0]):
            for i in range(d):
                outside_out[w, i] += factor * grad_outside_t[i, w]
    else:
        pairs = negatives.shape[2] + 1
        for b in range(len(centers)):
            for j in range(context_lengths[b]):
                b_ahead, next_j = (b, j + 1) if j + 1 < context_lengths[b] else (b + 1, 0)
                if b_ahead < len(centers):
                    for k in range(pairs):
                        prefetch_row(outside_out, contexts[b_ahead, next_j] if k == 0
                                     else negatives[b_ahead, next_j, k - 1])
                for k in range(pairs):
                    w = contexts[b, j] if k == 0 else negatives[b, j, k - 1]
                    step = factor * scale * pair_coef[b, j, k]
                    for i in range(d):
                        outside_out[w, i] += step * v_c_batch[b, i]
    for b in range(len(centers)):
        if b + _AHEAD < len(centers):
            prefetch_row(center_out, centers[b + _AHEAD])
        c = centers[b]
        for i in range(d):
            center_out[c, i] += factor * scale * grad_v_c_batch[b, i]


@njit(cache=True)
def _train_steps(rngs, sampler, params, batch, buffers, work, rates, losses, naive, parallel):
    """len(losses) SGD iterations on params: sample a minibatch into batch from the Generators
    rngs (a tuple) and sampler, gradient, step of size rates[t]; losses[t] = batch loss.
    parallel (negative sampling): sampling, gradient and step spread over numba's threads, one
    part of `work` (_part_work) per thread, the same bits.

    Stops after the first non-finite loss (without stepping) and returns the number of
    iterations run.
    """
    for t in range(len(losses)):
        if parallel:
            loss = _sample_neg_sampling_minibatch_parallel(
                rngs, sampler, params, batch, buffers, work) * (1.0 / len(batch.centers))
        else:
            fill_minibatch(rngs, sampler.tokens, sampler.offsets, sampler.window, sampler.prob,
                           sampler.alias, batch.centers, batch.contexts, batch.context_lengths,
                           batch.negatives)
            loss = _minibatch_gradient(params, batch, naive, buffers)
        losses[t] = loss
        if not math.isfinite(loss):
            return t + 1
        # SGD: the parameters are the outputs of the scatter, with factor -lr
        if parallel:
            _update_parallel(batch.centers, buffers, -rates[t], params, work)
        else:
            _scatter_gradient(batch, naive, buffers, -rates[t], params)
    return len(losses)


def _buffers(vocab_size, dim, batch_size, contexts_per_window, K, naive,
             dtype=np.float64) -> Buffers:
    """Buffers for minibatches of batch_size windows: the ones holding vectors in the parameters'
    dtype (numba types every branch, and BLAS products need one dtype), the per-pair and
    per-window figures in float64; those the loss does not use are empty."""
    columns = vocab_size if naive else 0
    return Buffers(pair_coef=np.zeros((batch_size, contexts_per_window, 0 if naive else K + 1)),
                   grad_v_c_batch=np.zeros((batch_size, dim), dtype),
                   grad_outside_t=np.zeros((dim, columns), dtype),
                   v_c_batch=np.zeros((batch_size, dim), dtype),
                   probs=np.zeros((batch_size if naive else 0, columns), dtype),
                   powers=np.zeros(columns, dtype),
                   window_losses=np.zeros(batch_size))


def _part_work(streams, parts, batch_size, contexts_per_window, K) -> PartWork:
    """PartWork for the update on threads: room for each sampling stream's (word,
    context-or-negative) pairs, grouped by the part (_row_part of the word) that updates the
    word's outside row, in pair order within a part. A thread updating a part walks only that
    part's pairs."""
    capacity = -(-batch_size // streams) * contexts_per_window * (K + 1)
    return PartWork(words=np.zeros((streams, capacity), np.int32),
                    windows=np.zeros((streams, capacity), np.int32),
                    coefficients=np.zeros((streams, capacity)),
                    starts=np.zeros((streams, parts + 1), np.int64))


def _check_loss(loss):
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def _checked_vectors(center_vectors, outside_vectors):
    center_vectors = np.ascontiguousarray(center_vectors, dtype=np.float64)
    outside_vectors = np.ascontiguousarray(outside_vectors, dtype=np.float64)
    if center_vectors.ndim != 2 or center_vectors.shape != outside_vectors.shape:
        raise ValueError(f"center_vectors {center_vectors.shape} and outside_vectors "
                         f"{outside_vectors.shape} must both be (V, d)")
    return center_vectors, outside_vectors


def minibatch_loss_and_gradient(center_vectors, outside_vectors, batch: Minibatch, loss):
    """Batch-mean loss and dense gradients (V, d) of `batch` (centre and outside vectors (V, d)).

    loss: "naive_softmax" | "neg_sampling" (then batch.negatives is required).
    Returns (loss, grad_center_vectors, grad_outside_vectors); rows outside the batch are 0.
    """
    _check_loss(loss)
    center_vectors, outside_vectors = _checked_vectors(center_vectors, outside_vectors)
    vocab_size, dim = center_vectors.shape
    naive = loss == "naive_softmax"
    batch = batch.checked(vocab_size, with_negatives=not naive)
    arrays = Batch(batch.centers, batch.contexts, batch.context_lengths, batch.negatives_or_empty())
    buffers = _buffers(vocab_size, dim, len(batch.centers), batch.contexts.shape[1],
                       arrays.negatives.shape[2], naive)
    value = _minibatch_gradient(Vectors(center_vectors, outside_vectors), arrays, naive, buffers)
    gradients = Vectors(np.zeros_like(center_vectors), np.zeros_like(outside_vectors))
    _scatter_gradient(arrays, naive, buffers, 1.0, gradients)
    return value, gradients.center, gradients.outside


class Stepper:
    """Runs SGD iterations in place on (center_vectors, outside_vectors) with the fused kernel.

    The vectors are float64 (V, d), or for negative sampling float32 (V, d) too: half the memory
    traffic, while the dot products are summed, and each pair's coefficient and loss computed, in
    float64.

    threads > 1: negative sampling samples, computes the gradients and updates on that many
    numba threads (capped at numba's NUMBA_NUM_THREADS, by default the number of cores), with a
    result bit-identical to threads = 1; sampling is shared only when `run` gets several
    Generators (`w2v.sampling.training_streams`), at most one thread per Generator. Naive
    softmax's parallelism is BLAS's, set by the caller. The threads meet twice per iteration, so
    large batches (hundreds of windows) pay best; on cores busy with other work the threads wait
    for each other at those barriers.
    """

    def __init__(self, pool: SentencePool, table: NegativeTable, center_vectors, outside_vectors,
                 loss, window, K, batch_size, threads=1):
        _check_loss(loss)
        if isinstance(threads, bool) or int(threads) != threads or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.threads = min(int(threads), numba.config.NUMBA_NUM_THREADS)
        dtypes = (np.float64,) if loss == "naive_softmax" else (np.float64, np.float32)
        for name, vectors in (("center_vectors", center_vectors), ("outside_vectors", outside_vectors)):
            if vectors.dtype not in dtypes or not vectors.flags.c_contiguous or vectors.ndim != 2:
                raise ValueError(f"{name}: trained in place, so it must be a C-contiguous "
                                 f"{' or '.join(np.dtype(t).name for t in dtypes)} (V, d) array")
        if center_vectors.dtype != outside_vectors.dtype:
            raise ValueError("center_vectors and outside_vectors must have the same dtype")
        self.params = Vectors(center_vectors, outside_vectors)
        self.sampler = Sampler(pool.tokens, pool.offsets, window, table.prob, table.alias)
        self.naive = loss == "naive_softmax"
        minibatch = Minibatch.empty(batch_size, window, 0 if self.naive else K)
        self.batch = Batch(minibatch.centers, minibatch.contexts, minibatch.context_lengths,
                           minibatch.negatives_or_empty())
        self.buffers = _buffers(center_vectors.shape[0], center_vectors.shape[1], batch_size,
                                2 * window, K, self.naive, center_vectors.dtype)
        self.work = None  # _part_work, sized at the first run (it depends on the streams)

    def run(self, rngs, lr, iterations) -> np.ndarray:
        """`iterations` SGD steps with step size lr (a number, or one per iteration: float
        (iterations,)), minibatches drawn from rngs (a Generator or a sequence of them, see
        w2v.sampling.fill_minibatch); returns their batch losses float64 (n,).

        Ends early after the first non-finite loss (the last entry), without applying it.
        """
        losses = np.empty(iterations)
        rates = np.ascontiguousarray(np.broadcast_to(np.asarray(lr, np.float64), (iterations,)))
        rngs = as_streams(rngs)
        parallel = self.threads > 1 and not self.naive
        parts = self.threads if parallel else 1  # one part of the rows per thread
        if self.work is None or self.work.starts.shape != (len(rngs), parts + 1):
            self.work = _part_work(len(rngs), parts, len(self.batch.centers) if parallel else 0,
                                   self.batch.contexts.shape[1], self.batch.negatives.shape[2])
        previous_threads = numba.get_num_threads()
        if parallel:
            numba.set_num_threads(self.threads)
        try:
            done = _train_steps(rngs, self.sampler, self.params, self.batch, self.buffers,
                                self.work, rates, losses, self.naive, parallel)
        finally:
            numba.set_num_threads(previous_threads)
        return losses[:done]
