"""The reference engine: the per-pair functions of w2v.losses applied window by window.

Readable and slow (every window allocates full (V, d) gradients, as the assignment's code does):
it is what the batched engine is tested against. A minibatch's loss and gradient are the means
over its windows of `w2v.losses.skipgram`; the step is x -= lr * gradient.
"""
import numpy as np

from w2v.losses import LOSSES, skipgram
from w2v.sampling import Minibatch, NegativeTable, SentencePool, sample_minibatch



class _IdentityVocabulary(dict):
    """word2ind for windows given as ids: every id in 0..V-1 maps to itself."""

    def __init__(self, vocab_size):
        super().__init__((i, i) for i in range(vocab_size))


_vocabularies: dict[int, _IdentityVocabulary] = {}


def _identity_vocabulary(vocab_size):
    if vocab_size not in _vocabularies:
        _vocabularies.clear()
        _vocabularies[vocab_size] = _IdentityVocabulary(vocab_size)
    return _vocabularies[vocab_size]


def minibatch_loss_and_gradient(center_vectors, outside_vectors, batch: Minibatch, loss):
    """Batch-mean loss and dense gradients (V, d) of `batch` (centre and outside vectors (V, d)).

    loss: "naive_softmax" | "neg_sampling" (then batch.negatives is required).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    batch = batch.checked(len(center_vectors), with_negatives=loss == "neg_sampling")
    word2ind = _identity_vocabulary(len(center_vectors))
    batch_size = len(batch.centers)
    total = 0.0
    grad_center = np.zeros(center_vectors.shape)
    grad_outside = np.zeros(outside_vectors.shape)
    for b in range(batch_size):
        n = batch.context_lengths[b]
        outside_words = [int(w) for w in batch.contexts[b, :n]]
        negatives = batch.negatives[b, :n] if loss == "neg_sampling" else None
        window_loss, window_grad_center, window_grad_outside = skipgram(
            int(batch.centers[b]), outside_words, word2ind, center_vectors, outside_vectors,
            loss=loss, negatives=negatives)
        total += window_loss / batch_size
        grad_center += window_grad_center / batch_size
        grad_outside += window_grad_outside / batch_size
    return total, grad_center, grad_outside


class Stepper:
    """Runs SGD iterations in place on (center_vectors, outside_vectors), one window at a time."""

    def __init__(self, pool: SentencePool, table: NegativeTable, center_vectors, outside_vectors,
                 loss, window, K, batch_size):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.pool, self.table, self.loss = pool, table, loss
        self.center_vectors, self.outside_vectors = center_vectors, outside_vectors
        self.window = window
        self.batch = Minibatch.empty(batch_size, window, 0 if loss == "naive_softmax" else K)

    def run(self, rngs, lr, iterations) -> np.ndarray:
        """`iterations` SGD steps with step size lr (a number, or one per iteration: float
        (iterations,)), minibatches drawn from rngs (a Generator or a sequence of them, see
        w2v.sampling.fill_minibatch); returns their batch losses float64 (n,).

        Ends early after the first non-finite loss (the last entry), without applying it.
        """
        rates = np.broadcast_to(np.asarray(lr, np.float64), (iterations,))
        losses = []
        for rate in rates:
            sample_minibatch(rngs, self.pool, self.table, len(self.batch.centers), self.window,
                             0, out=self.batch)
            loss, grad_center, grad_outside = minibatch_loss_and_gradient(
                self.center_vectors, self.outside_vectors, self.batch, self.loss)
            losses.append(loss)
            if not np.isfinite(loss):
                break
            self.center_vectors -= rate * grad_center
            self.outside_vectors -= rate * grad_outside
        return np.array(losses, dtype=np.float64)
