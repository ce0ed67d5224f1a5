"""Skip-gram losses with their hand-derived gradients (CS224n assignment 2).

Notation (as in the assignment and docs/derivations.md):
    v_c   centre word vector, shape (d,)
    U     outside_vectors, shape (V, d); row u_w is the outside vector of word w
    o     the id of the true outside word
    y_hat = softmax(U v_c), shape (V,), the model's distribution over outside words
    y     one-hot vector of o

Every function returns (loss, gradient w.r.t. the centre vector(s), gradient w.r.t. U) and
validates its input: a bad shape, an id out of range, K < 1, no outside words or an unknown loss
name raise ValueError naming the argument.
"""
from collections.abc import Mapping, Sequence
from numbers import Integral

import numpy as np

from w2v.activations import log_sigmoid, sigmoid, softmax

LOSSES = ("naive_softmax", "neg_sampling")


def naive_softmax_loss_and_gradient(center_vec, outside_idx, outside_vectors):
    """Naive-softmax loss J = -log y_hat_o for one (centre, outside) pair.

    center_vec (d,) float, outside_idx int in [0, V), outside_vectors (V, d) float.
    Returns (loss float, grad_center_vec (d,) = U^T (y_hat - y),
    grad_outside_vectors (V, d) = (y_hat - y) v_c^T).
    """
    v_c, U = _check_vectors(center_vec, outside_vectors)
    o = _check_id(outside_idx, U.shape[0], "outside_idx")
    scores = U @ v_c
    # -log softmax(scores)_o = logsumexp(scores) - scores_o; stable where y_hat_o underflows
    shift = scores.max()
    loss = float(shift + np.log(np.exp(scores - shift).sum()) - scores[o])
    delta = softmax(scores)
    delta[o] -= 1.0  # y_hat - y
    return loss, U.T @ delta, np.outer(delta, v_c)


def neg_sampling_loss_and_gradient(center_vec, outside_idx, outside_vectors, negative_indices):
    """Negative-sampling loss J = -log sigma(u_o . v_c) - sum_k log sigma(-u_k . v_c).

    center_vec (d,), outside_idx int, outside_vectors (V, d), negative_indices K >= 1 word ids
    (a sequence or int array (K,)). The sum runs over the K draws as given: a word drawn twice
    counts twice in the loss and in the gradient. Returns (loss, grad_center_vec (d,),
    grad_outside_vectors (V, d)); only rows o and the negatives of the latter are non-zero.
    """
    v_c, U = _check_vectors(center_vec, outside_vectors)
    o = _check_id(outside_idx, U.shape[0], "outside_idx")
    negatives = _check_ids(negative_indices, U.shape[0], "negative_indices")
    score_o = U[o] @ v_c
    scores_k = U[negatives] @ v_c  # (K,)
    loss = float(-log_sigmoid(score_o) - log_sigmoid(-scores_k).sum())
    coef_o = sigmoid(score_o) - 1.0  # dJ/d(u_o . v_c) = -(1 - sigma(u_o . v_c))
    coef_k = sigmoid(scores_k)  # dJ/d(u_k . v_c) = 1 - sigma(-u_k . v_c) = sigma(u_k . v_c)
    grad_center = coef_o * U[o] + coef_k @ U[negatives]
    grad_outside = np.zeros_like(U)
    grad_outside[o] += coef_o * v_c
    # add.at accumulates repeated ids; fancy-index += would keep only one of the repeats
    np.add.at(grad_outside, negatives, np.outer(coef_k, v_c))
    return loss, grad_center, grad_outside


def skipgram(center_word, outside_words, word2ind, center_vectors, outside_vectors,
             loss="naive_softmax", negatives=None):
    """Skip-gram loss of one window: the sum of the pair losses over `outside_words` as given.

    center_word str; outside_words sequence of n >= 1 str (repeats and the centre word itself are
    kept: cleaning a sampled context is the sampler's job); word2ind maps words to ids in [0, V);
    center_vectors and outside_vectors (V, d); loss "naive_softmax" or "neg_sampling";
    negatives (n, K) int ids, one row per outside word, required for "neg_sampling" and not
    accepted for "naive_softmax". Returns (loss, grad_center_vectors (V, d),
    grad_outside_vectors (V, d)); only row c of grad_center_vectors is non-zero.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    center_vectors = _as_matrix(center_vectors, "center_vectors")
    outside_vectors = _as_matrix(outside_vectors, "outside_vectors")
    if center_vectors.shape != outside_vectors.shape:
        raise ValueError(f"center_vectors: shape {center_vectors.shape} differs from "
                         f"outside_vectors shape {outside_vectors.shape}; both must be (V, d)")
    if not isinstance(word2ind, Mapping):
        raise ValueError("word2ind: expected a mapping from word to id")
    if isinstance(outside_words, str) or not isinstance(outside_words, Sequence):
        raise ValueError("outside_words: expected a sequence of words (a list, not a single string)")
    if len(outside_words) == 0:
        raise ValueError("outside_words: empty; a window needs at least one outside word")
    n_words = center_vectors.shape[0]
    c = _check_id(_lookup(word2ind, center_word, "center_word"), n_words, "center_word")
    outside_ids = [_check_id(_lookup(word2ind, w, "outside_words"), n_words, "outside_words")
                   for w in outside_words]
    if loss == "neg_sampling":
        if negatives is None:
            raise ValueError("negatives: required for loss='neg_sampling' "
                             "(one row of K ids per outside word, e.g. from w2v.sample_negatives)")
        negatives = np.asarray(negatives)
        if negatives.ndim != 2 or negatives.shape[0] != len(outside_ids):
            raise ValueError(f"negatives: shape {negatives.shape}; expected "
                             f"({len(outside_ids)}, K), one row of K ids per outside word")
        _check_ids(negatives.ravel(), n_words, "negatives")
    elif negatives is not None:
        raise ValueError("negatives: only used with loss='neg_sampling'; pass None for naive_softmax")

    total = 0.0
    grad_center_vectors = np.zeros_like(center_vectors)
    grad_outside_vectors = np.zeros_like(outside_vectors)
    for j, o in enumerate(outside_ids):
        if loss == "naive_softmax":
            pair = naive_softmax_loss_and_gradient(center_vectors[c], o, outside_vectors)
        else:
            pair = neg_sampling_loss_and_gradient(center_vectors[c], o, outside_vectors, negatives[j])
        total += pair[0]
        grad_center_vectors[c] += pair[1]
        grad_outside_vectors += pair[2]
    return total, grad_center_vectors, grad_outside_vectors


def _as_matrix(array, name):
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: shape {array.shape}; expected (V, d) with V, d >= 1")
    return array


def _check_vectors(center_vec, outside_vectors):
    U = _as_matrix(outside_vectors, "outside_vectors")
    v_c = np.asarray(center_vec, dtype=np.float64)
    if v_c.shape != (U.shape[1],):
        raise ValueError(f"center_vec: shape {v_c.shape}; expected ({U.shape[1]},) to match "
                         f"outside_vectors of shape {U.shape}")
    return v_c, U


def _check_id(index, n_words, name):
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, Integral):
        raise ValueError(f"{name}: word id {index!r} is not an integer")
    if not 0 <= index < n_words:
        raise ValueError(f"{name}: word id {index} out of range [0, {n_words})")
    return int(index)


def _check_ids(indices, n_words, name):
    ids = np.asarray(indices)
    if ids.ndim != 1:
        raise ValueError(f"{name}: shape {ids.shape}; expected (K,) word ids")
    if ids.size < 1:
        raise ValueError(f"{name}: K = 0; at least one negative sample is needed (K >= 1)")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name}: word ids must be integers, got dtype {ids.dtype}")
    if ids.min() < 0 or ids.max() >= n_words:
        raise ValueError(f"{name}: word ids must lie in [0, {n_words}); "
                         f"got {ids.min()}..{ids.max()}")
    return ids


def _lookup(word2ind, word, name):
    try:
        return word2ind[word]
    except (KeyError, TypeError):
        raise ValueError(f"{name}: word {word!r} is not in word2ind") from None
