"""Numerical verification of every derivation in docs/derivations.md (written part (a)-(i)).

Each check writes the closed form of one derivation in numpy, exactly as the document states it,
and compares it with centred finite differences (`w2v.gradcheck`) of the loss an engine computes.
It also compares the engine's own gradient with the same finite differences and the engine's loss
with the closed-form loss. A check therefore fails when the derivation is wrong or when an engine
does not implement it.

Engines under test: "per_pair" (the reference functions of `w2v.losses`) and "batched" (the
minibatch engine `w2v.engines.batched`, fed one window at a time). Checks (e) and (f) are facts
about scalar activations and run on `w2v.activations` ("activations").

Inputs: `random_inputs` (a small synthetic vocabulary) and `vocabulary_inputs` (a slice of a real
vocabulary: its words go through `skipgram`'s word2ind, its size sets V). Vectors, word choices
and negatives are drawn from a seeded numpy Generator, so every run checks the same numbers.

    from w2v.derivations import default_engines, random_inputs, run_all_checks, vocabulary_inputs
    results = run_all_checks([random_inputs(), vocabulary_inputs(words[:50])], default_engines())
    assert all(r.passed for r in results)

Notation: v_c centre vector (d,), U outside vectors (V, d) with rows u_w, o the outside word,
y one-hot of o, y_hat = softmax(U v_c), k_1..k_K negative samples, sigma the logistic function.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from w2v import losses
from w2v.activations import leaky_relu, leaky_relu_derivative, sigmoid, sigmoid_derivative, softmax
from w2v.gradcheck import gradcheck

DEFAULT_TOL = 1e-5
LEAKY_RELU_ALPHA = 0.01

DESCRIPTIONS = {
    "a_cross_entropy_is_softmax_loss": "(a) -sum_w y_w log y_hat_w = -log y_hat_o",
    "b_softmax_grad_center": "(b) dJ/dv_c = U^T (y_hat - y)",
    "c_softmax_grad_outside_row": "(c) dJ/du_w = (y_hat_w - y_w) v_c, for w = o and w != o",
    "d_softmax_grad_outside_matrix": "(d) dJ/dU = (y_hat - y) v_c^T",
    "e_leaky_relu_derivative": "(e) Leaky ReLU' = 1 for x > 0, alpha for x < 0",
    "f_sigmoid_derivative": "(f) sigma'(x) = sigma(x) (1 - sigma(x))",
    "g_neg_sampling_distinct": "(g) negative sampling, distinct negatives: v_c, u_o, u_k, matrix form",
    "h_neg_sampling_repeated": "(h) negative sampling, repeated negatives count once per draw",
    "i_skipgram_window": "(i) window: sums over outside words; dJ/dv_w = 0 for w != c",
}


# --------------------------------------------------------------------------- inputs and engines

@dataclass(frozen=True)
class CheckInputs:
    """What a check runs on: a vocabulary (its size is V), the dimension d, K negatives, a seed."""
    name: str
    words: tuple[str, ...]
    dim: int
    K: int
    seed: int


def random_inputs(seed: int = 0, vocab_size: int = 12, dim: int = 4, K: int = 5) -> CheckInputs:
    """A synthetic vocabulary "w0".."w{V-1}"."""
    return _inputs("random", tuple(f"w{i}" for i in range(vocab_size)), dim, K, seed)


def vocabulary_inputs(words: Sequence[str], dim: int = 10, K: int = 10, seed: int = 0) -> CheckInputs:
    """A slice of a real vocabulary, e.g. the first 50 words of the processed corpus."""
    return _inputs("vocabulary", tuple(words), dim, K, seed)


def _inputs(name, words, dim, K, seed):
    if len(set(words)) != len(words):
        raise ValueError("words: the vocabulary slice has duplicate words")
    if K < 2:
        raise ValueError(f"K: {K}; the checks need K >= 2 (check h repeats a negative)")
    if len(words) < K + 2:
        raise ValueError(f"words: {len(words)} words; the checks need at least K + 2 = {K + 2} "
                         "(K distinct negatives besides the centre and the outside word)")
    if dim < 1:
        raise ValueError(f"dim: {dim}; expected >= 1")
    return CheckInputs(name, words, dim, K, seed)


@dataclass(frozen=True)
class Engine:
    """An implementation of the losses under test, seen through three functions.

    naive_softmax(v_c, o, U) -> (loss, grad v_c (d,), grad U (V, d))
    neg_sampling(v_c, o, U, negatives (K,)) -> the same
    window(words, center_vectors, U, c, outside_ids, loss, negatives (n, K) | None)
        -> (loss, grad center_vectors (V, d), grad U (V, d)) of one skip-gram window
    """
    name: str
    naive_softmax: Callable
    neg_sampling: Callable
    window: Callable


def per_pair_engine() -> Engine:
    """The reference functions of w2v.losses."""
    def window(words, center_vectors, U, c, outside_ids, loss, negatives):
        word2ind = {w: i for i, w in enumerate(words)}
        return losses.skipgram(words[c], [words[o] for o in outside_ids], word2ind,
                               center_vectors, U, loss=loss, negatives=negatives)

    return Engine("per_pair", losses.naive_softmax_loss_and_gradient,
                  losses.neg_sampling_loss_and_gradient, window)


def batched_engine(minibatch_loss_and_gradient: Callable | None = None) -> Engine:
    """The minibatch engine, given minibatches of one window (contexts padded with -1 as in training).

    minibatch_loss_and_gradient(center_vectors, outside_vectors, batch, loss) defaults to
    w2v.engines.batched's; pass another to check it.
    """
    from w2v.sampling import Minibatch

    if minibatch_loss_and_gradient is None:
        from w2v.engines.batched import minibatch_loss_and_gradient

    def window(words, center_vectors, U, c, outside_ids, loss, negatives):
        n = len(outside_ids)
        width = 2 * (n // 2 + 1)  # an even 2m > n, so every window carries -1 padding
        contexts = np.full((1, width), -1, np.int32)
        contexts[0, :n] = outside_ids
        batch_negatives = None
        if negatives is not None:
            negatives = np.asarray(negatives)
            batch_negatives = np.full((1, width, negatives.shape[1]), -1, np.int32)
            batch_negatives[0, :n] = negatives
        batch = Minibatch(np.array([c], np.int32), contexts, np.array([n], np.int32), batch_negatives)
        loss_value, grad_center, grad_outside = minibatch_loss_and_gradient(
            np.array(center_vectors, dtype=np.float64), np.array(U, dtype=np.float64), batch, loss)
        return float(loss_value), np.asarray(grad_center), np.asarray(grad_outside)

    def pair(loss):
        def loss_and_gradient(v_c, o, U, negatives=None):
            U = np.asarray(U, dtype=np.float64)
            c = (o + 1) % U.shape[0]  # any centre row works; keep it apart from o
            center_vectors = np.zeros_like(U)
            center_vectors[c] = v_c
            negatives = None if negatives is None else np.asarray(negatives)[None, :]
            value, grad_center, grad_outside = window(None, center_vectors, U, c, [o], loss, negatives)
            return value, grad_center[c], grad_outside
        return loss_and_gradient

    return Engine("batched", pair("naive_softmax"), pair("neg_sampling"), window)


def default_engines() -> list[Engine]:
    return [per_pair_engine(), batched_engine()]


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class CheckResult:
    """One check on one engine and one input set.

    max_rel_error: the largest relative error |a - b| / max(1, |a|, |b|) over every comparison the
    check makes; worst: which comparison (and where) gave it.
    """
    check: str
    engine: str
    inputs: str
    max_rel_error: float
    passed: bool
    worst: str


class _Comparisons:
    """Collects the comparisons of one check and keeps the worst."""

    def __init__(self):
        self.error, self.worst = 0.0, "no comparison"

    def _keep(self, error, label):
        error = float(error) if np.isfinite(error) else np.inf
        if error >= self.error:
            self.error, self.worst = error, label

    def grad(self, label, loss, x, gradient):
        """Finite differences of loss(x) around x against `gradient`, the gradient claimed at x."""
        gradient = np.asarray(gradient, dtype=np.float64)
        if gradient.shape != np.shape(x):
            self._keep(np.inf, f"{label}: gradient of shape {gradient.shape} for {np.shape(x)}")
            return
        result = gradcheck(lambda z: (loss(z), gradient), x, tol=np.inf)
        self._keep(result.max_rel_error, f"{label} at {result.worst_index}")

    def value(self, label, actual, expected):
        actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
        if actual.shape != expected.shape:
            self._keep(np.inf, f"{label}: shape {actual.shape} != {expected.shape}")
            return
        error = np.abs(actual - expected) / np.maximum(1.0, np.maximum(np.abs(actual), np.abs(expected)))
        error = np.where(np.isfinite(error), error, np.inf)
        worst = np.unravel_index(int(np.argmax(error)), error.shape) if error.ndim else ()
        self._keep(error.max(), f"{label} at {tuple(int(i) for i in worst)}")

    def result(self, check, engine, inputs, tol):
        return CheckResult(check, engine, inputs, self.error, bool(self.error <= tol), self.worst)


# --------------------------------------------------------------------------- closed forms

def _softmax_closed_form(v_c, o, U):
    """(loss, dJ/dv_c, dJ/dU) of the naive-softmax loss, as derived in (a), (b), (d)."""
    y_hat = softmax(U @ v_c)
    y = np.zeros(U.shape[0])
    y[o] = 1.0
    loss = -np.sum(y * np.log(y_hat))
    return loss, U.T @ (y_hat - y), np.outer(y_hat - y, v_c)


def _neg_sampling_closed_form(v_c, o, U, negatives):
    """(loss, dJ/dv_c, dJ/dU) of negative sampling in the matrix form of (g):
    W = [o, k_1..k_K], P (K+1, V) the one-hot rows of W, a = (-(1 - sigma(u_o.v_c)),
    1 - sigma(-u_k.v_c) ...); dJ/dv_c = U^T P^T a and dJ/dU = P^T a v_c^T. P^T sums repeated rows."""
    ids = np.concatenate([[o], negatives])
    P = np.zeros((len(ids), U.shape[0]))
    P[np.arange(len(ids)), ids] = 1.0
    scores = P @ U @ v_c
    loss = -np.log(sigmoid(scores[0])) - np.sum(np.log(sigmoid(-scores[1:])))
    a = np.concatenate([[-(1.0 - sigmoid(scores[0]))], 1.0 - sigmoid(-scores[1:])])
    return loss, U.T @ P.T @ a, np.outer(P.T @ a, v_c)


def _neg_sampling_rows(v_c, o, U, negatives):
    """The per-vector results of (g)/(h): dJ/dv_c, dJ/du_o and {k: dJ/du_k} with n_k draws of k."""
    s_o = U[o] @ v_c
    grad_center = -(1.0 - sigmoid(s_o)) * U[o]
    grad_rows = {}
    for k, n_k in zip(*np.unique(negatives, return_counts=True)):
        s_k = U[k] @ v_c
        grad_center = grad_center + n_k * (1.0 - sigmoid(-s_k)) * U[k]
        grad_rows[int(k)] = n_k * (1.0 - sigmoid(-s_k)) * v_c
    return grad_center, -(1.0 - sigmoid(s_o)) * v_c, grad_rows


# --------------------------------------------------------------------------- draws

@dataclass(frozen=True)
class _Draw:
    U: np.ndarray                   # (V, d)
    center_vectors: np.ndarray      # (V, d)
    v_c: np.ndarray                 # (d,)
    c: int
    o: int
    other: int                      # a word that is neither o nor a negative (check c, w != o)
    distinct_negatives: np.ndarray  # (K,) distinct, none equal to o
    repeated_negatives: np.ndarray  # (K,) the first drawn word three times (twice for K = 2)
    outside_ids: np.ndarray         # (4,) window of check i; one outside word twice
    window_negatives: np.ndarray    # (4, K), drawn with replacement, never the row's outside word


def _draw(inputs: CheckInputs) -> _Draw:
    rng = np.random.default_rng(inputs.seed)
    V, d, K = len(inputs.words), inputs.dim, inputs.K
    U = rng.normal(size=(V, d))
    center_vectors = rng.normal(size=(V, d))
    c, o = (int(i) for i in rng.choice(V, size=2, replace=False))
    not_o = np.delete(np.arange(V), o)
    chosen = rng.choice(not_o, size=K + 1, replace=False)
    distinct, other = chosen[:K], int(chosen[K])
    repeated = rng.choice(not_o, size=K)
    repeated[1:min(3, K)] = repeated[0]
    rng.shuffle(repeated)
    outside = rng.choice(np.delete(np.arange(V), c), size=3, replace=False)
    outside = np.concatenate([outside, outside[:1]])
    window_negatives = np.stack([rng.choice(np.delete(np.arange(V), w), size=K) for w in outside])
    return _Draw(U, center_vectors, center_vectors[c].copy(), c, o, other, distinct, repeated,
                 outside, window_negatives)


def _memoized(loss):
    """loss(x) remembering its values: a check's second gradcheck of the same loss (engine gradient
    after closed form) then reuses the finite-difference evaluations of the first."""
    values = {}

    def remembered(x):
        key = (x.shape, x.tobytes())
        if key not in values:
            values[key] = loss(x)
        return values[key]

    return remembered


def _with_row(U, w, u_w):
    U = U.copy()
    U[w] = u_w
    return U


# --------------------------------------------------------------------------- the checks

def check_a_cross_entropy_is_softmax_loss(engine: Engine, inputs: CheckInputs, tol=DEFAULT_TOL):
    """(a) The cross-entropy of y_hat against one-hot y equals the naive-softmax loss, for every o."""
    draw, found = _draw(inputs), _Comparisons()
    for o in range(draw.U.shape[0]):
        y_hat = softmax(draw.U @ draw.v_c)
        y = np.zeros_like(y_hat)
        y[o] = 1.0
        cross_entropy = -np.sum(y * np.log(y_hat))
        found.value(f"loss (o = {o})", engine.naive_softmax(draw.v_c, o, draw.U)[0], cross_entropy)
    return found.result("a_cross_entropy_is_softmax_loss", engine.name, inputs.name, tol)


def check_b_softmax_grad_center(engine: Engine, inputs: CheckInputs, tol=DEFAULT_TOL):
    """(b) dJ/dv_c = U^T (y_hat - y)."""
    draw, found = _draw(inputs), _Comparisons()
    loss = _memoized(lambda v: engine.naive_softmax(v, draw.o, draw.U)[0])
    closed = lambda v: _softmax_closed_form(v, draw.o, draw.U)
    found.value("loss vs closed form", loss(draw.v_c), closed(draw.v_c)[0])
    found.grad("closed-form dJ/dv_c", loss, draw.v_c, closed(draw.v_c)[1])
    found.grad("engine dJ/dv_c", loss, draw.v_c, engine.naive_softmax(draw.v_c, draw.o, draw.U)[1])
    return found.result("b_softmax_grad_center", engine.name, inputs.name, tol)


def check_c_softmax_grad_outside_row(engine: Engine, inputs: CheckInputs, tol=DEFAULT_TOL):
    """(c) dJ/du_w = (y_hat_w - y_w) v_c, for the outside word w = o and for a word w != o."""
    draw, found = _draw(inputs), _Comparisons()
    for w, which in ((draw.o, "w = o"), (draw.other, "w != o")):
        def closed(u_w, w=w):
            U = _with_row(draw.U, w, u_w)
            y_hat = softmax(U @ draw.v_c)
            return (y_hat[w] - (w == draw.o)) * draw.v_c

        def engine_row(u_w, w=w):
            value, _, grad_outside = engine.naive_softmax(draw.v_c, draw.o, _with_row(draw.U, w, u_w))
            return value, grad_outside[w]

        loss = _memoized(lambda u, engine_row=engine_row: engine_row(u)[0])
        found.grad(f"closed-form dJ/du_w, {which}", loss, draw.U[w], closed(draw.U[w]))
        found.grad(f"engine dJ/du_w, {which}", loss, draw.U[w], engine_row(draw.U[w])[1])
    return found.result("c_softmax_grad_outside_row", engine.name, inputs.name, tol)


def check_d_softmax_grad_outside_matrix(engine: Engine, inputs: CheckInputs, tol=DEFAULT_TOL):
    """(d) dJ/dU = (y_hat - y) v_c^T, over every entry of U."""
    draw, found = _draw(inputs), _Comparisons()
    loss = _memoized(lambda U: engine.naive_softmax(draw.v_c, draw.o, U)[0])
    found.grad("closed-form dJ/dU", loss, draw.U, _softmax_closed_form(draw.v_c, draw.o, draw.U)[2])
    found.grad("engine dJ/dU", loss, draw.U, engine.naive_softmax(draw.v_c, draw.o, draw.U)[2])
    return found.result("d_softmax_grad_outside_matrix", engine.name, inputs.name, tol)


def check_e_leaky_relu_derivative(seed: int = 0, tol=DEFAULT_TOL, derivative=leaky_relu_derivative):
    """(e) d/dx LeakyReLU(x) = 1 for x > 0 and alpha for x < 0 (away from the kink at 0)."""
    rng, found = np.random.default_rng(seed), _Comparisons()
    x = rng.normal(size=40) * 3.0
    x = np.where(np.abs(x) < 1e-2, 0.5, x)  # finite differences across x = 0 would straddle the kink
    total = lambda x: float(np.sum(leaky_relu(x, LEAKY_RELU_ALPHA)))
    closed = lambda x: np.where(x > 0, 1.0, LEAKY_RELU_ALPHA)
    found.grad("closed-form derivative", total, x, closed(x))
    found.grad("w2v.activations derivative", total, x, derivative(x, LEAKY_RELU_ALPHA))
    return found.result("e_leaky_relu_derivative", "activations", "random", tol)


def check_f_sigmoid_derivative(seed: int = 0, tol=DEFAULT_TOL, derivative=sigmoid_derivative):
    """(f) sigma'(x) = sigma(x) (1 - sigma(x)), including |x| large enough to saturate sigma."""
    rng, found = np.random.default_rng(seed), _Comparisons()
    x = np.concatenate([rng.normal(size=40) * 3.0, [-40.0, -15.0, 15.0, 40.0]])
    total = lambda x: float(np.sum(sigmoid(x)))
    closed = lambda x: sigmoid(x) * (1.0 - sigmoid(x))
    found.grad("closed-form derivative", total, x, closed(x))
    found.grad("w2v.activations derivative", total, x, derivative(x))
    return found.result("f_sigmoid_derivative", "activations", "random", tol)


def _check_neg_sampling(name, negatives, engine, inputs, draw, tol):
    """(g)/(h): dJ/dv_c, dJ/du_o, dJ/du_k row by row and dJ/dU, dJ/dv_c in matrix form."""
    found = _Comparisons()
    v_c, o, U = draw.v_c, draw.o, draw.U
    run = lambda v, U: engine.neg_sampling(v, o, U, negatives)
    loss_of_v = _memoized(lambda v: run(v, U)[0])
    loss_of_U = _memoized(lambda W: run(v_c, W)[0])
    closed_loss, closed_grad_center, closed_grad_outside = _neg_sampling_closed_form(v_c, o, U, negatives)
    row_grad_center, row_grad_o, row_grad_k = _neg_sampling_rows(v_c, o, U, negatives)
    found.value("loss vs closed form", loss_of_v(v_c), closed_loss)
    # the per-vector results, each against differences in that vector alone
    found.grad("closed-form dJ/dv_c", loss_of_v, v_c, row_grad_center)
    found.grad("closed-form dJ/du_o", lambda u: loss_of_U(_with_row(U, o, u)), U[o], row_grad_o)
    for k, grad_k in row_grad_k.items():
        found.grad(f"closed-form dJ/du_k (k = {k})", lambda u, k=k: loss_of_U(_with_row(U, k, u)), U[k], grad_k)
    # the matrix form, over every entry (rows outside {o, k} must be zero)
    found.grad("matrix-form dJ/dv_c", loss_of_v, v_c, closed_grad_center)
    found.grad("matrix-form dJ/dU", loss_of_U, U, closed_grad_outside)
    # the engine's own gradients
    _, engine_grad_center, engine_grad_outside = run(v_c, U)
    found.grad("engine dJ/dv_c", loss_of_v, v_c, engine_grad_center)
    found.grad("engine dJ/dU", loss_of_U, U, engine_grad_outside)
    return found.result(name, engine.name, inputs.name, tol)


def check_g_neg_sampling_distinct(engine: Engine, inputs: CheckInputs, tol=DEFAULT_TOL):
    """(g) Negative sampling with K distinct negatives: v_c, u_o, u_k and the matrix form."""
    draw = _draw(inputs)
    return _check_neg_sampling("g_neg_sampling_distinct", draw.distinct_negatives, engine, inputs, draw, tol)


def check_h_neg_sampling_repeated(engine: Engine, inputs: CheckInputs, tol=DEFAULT_TOL):
    """(h) Negative sampling with a word drawn several times: dJ/du_k gains a factor n_k."""
    draw = _draw(inputs)
    return _check_neg_sampling("h_neg_sampling_repeated", draw.repeated_negatives, engine, inputs, draw, tol)


def check_i_skipgram_window(engine: Engine, inputs: CheckInputs, tol=DEFAULT_TOL):
    """(i) A window's loss and gradients are sums over its outside words (one given twice);
    dJ/dv_w = 0 for every w != c. Both losses, full (V, d) gradients."""
    draw, found = _draw(inputs), _Comparisons()
    c, outside, words = draw.c, draw.outside_ids, inputs.words
    for loss, negatives in (("naive_softmax", None), ("neg_sampling", draw.window_negatives)):
        def closed(center_vectors, U):
            total, grad_center, grad_outside = 0.0, np.zeros_like(center_vectors), np.zeros_like(U)
            for j, o in enumerate(outside):
                pair = (_softmax_closed_form(center_vectors[c], o, U) if negatives is None
                        else _neg_sampling_closed_form(center_vectors[c], o, U, negatives[j]))
                total += pair[0]
                grad_center[c] += pair[1]
                grad_outside += pair[2]
            return total, grad_center, grad_outside

        run = lambda C, U, loss=loss, negatives=negatives: engine.window(words, C, U, c, outside, loss, negatives)
        C, U = draw.center_vectors, draw.U
        loss_of_C = _memoized(lambda X, run=run: run(X, U)[0])
        loss_of_U = _memoized(lambda X, run=run: run(C, X)[0])
        closed_loss, closed_grad_center, closed_grad_outside = closed(C, U)
        engine_loss, engine_grad_center, engine_grad_outside = run(C, U)
        found.value(f"{loss}: loss vs sum of pair losses", engine_loss, closed_loss)
        found.grad(f"{loss}: closed-form dJ/dV (centre vectors)", loss_of_C, C, closed_grad_center)
        found.grad(f"{loss}: closed-form dJ/dU", loss_of_U, U, closed_grad_outside)
        found.grad(f"{loss}: engine dJ/dV (centre vectors)", loss_of_C, C, engine_grad_center)
        found.grad(f"{loss}: engine dJ/dU", loss_of_U, U, engine_grad_outside)
        found.value(f"{loss}: engine dJ/dv_w for w != c", np.delete(engine_grad_center, c, axis=0),
                    np.zeros((C.shape[0] - 1, C.shape[1])))
    return found.result("i_skipgram_window", engine.name, inputs.name, tol)


ENGINE_CHECKS = {
    "a_cross_entropy_is_softmax_loss": check_a_cross_entropy_is_softmax_loss,
    "b_softmax_grad_center": check_b_softmax_grad_center,
    "c_softmax_grad_outside_row": check_c_softmax_grad_outside_row,
    "d_softmax_grad_outside_matrix": check_d_softmax_grad_outside_matrix,
    "g_neg_sampling_distinct": check_g_neg_sampling_distinct,
    "h_neg_sampling_repeated": check_h_neg_sampling_repeated,
    "i_skipgram_window": check_i_skipgram_window,
}
ACTIVATION_CHECKS = {
    "e_leaky_relu_derivative": check_e_leaky_relu_derivative,
    "f_sigmoid_derivative": check_f_sigmoid_derivative,
}
CHECK_NAMES = sorted([*ENGINE_CHECKS, *ACTIVATION_CHECKS])


def run_all_checks(input_sets: Sequence[CheckInputs], engines: Sequence[Engine],
                   tol: float = DEFAULT_TOL) -> list[CheckResult]:
    """Every check (a)-(i): engine checks on every engine and input set, (e) and (f) once
    (seeded by the first input set). Results in check order. A check whose engine raises is a
    failed result naming the error."""
    if not input_sets:
        raise ValueError("input_sets: empty; give at least one CheckInputs")
    if not tol > 0:
        raise ValueError(f"tol: tolerance {tol!r} must be positive")
    results = []
    for name in CHECK_NAMES:
        if name in ACTIVATION_CHECKS:
            results.append(_guarded(name, "activations", "random",
                                    lambda: ACTIVATION_CHECKS[name](input_sets[0].seed, tol)))
            continue
        for engine in engines:
            for inputs in input_sets:
                results.append(_guarded(name, engine.name, inputs.name,
                                        lambda: ENGINE_CHECKS[name](engine, inputs, tol)))
    return results


def _guarded(check, engine, inputs, run):
    """An engine that raises fails its check (with the error as the reason) instead of ending the run."""
    try:
        return run()
    except Exception as error:  # noqa: BLE001 - reported in the result, nothing is hidden
        return CheckResult(check, engine, inputs, np.inf, False, f"raised {type(error).__name__}: {error}")


__all__ = ["ACTIVATION_CHECKS", "CHECK_NAMES", "CheckInputs", "CheckResult", "DESCRIPTIONS",
           "ENGINE_CHECKS", "Engine", "batched_engine", "default_engines", "per_pair_engine",
           "random_inputs", "run_all_checks", "vocabulary_inputs"]
