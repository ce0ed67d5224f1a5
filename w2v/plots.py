"""Figures of a training run, drawn off-screen (matplotlib's Agg canvas, no pyplot state).

    plot_loss(path, steps, loss, loss_smoothed)          # loss.png
    plot_word_vectors(path, words, center_vectors)       # word_vectors.png, as CS224n assignment 2
"""
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from w2v.atomic import atomic_path

# The words of the assignment's plot (run.py), in its order.
VISUALIZE_WORDS = [
    "great", "cool", "brilliant", "wonderful", "well", "amazing", "worth", "sweet", "enjoyable",
    "boring", "bad", "dumb", "annoying", "female", "male", "queen", "king", "man", "woman", "rain",
    "snow", "hail", "coffee", "tea",
]


def _save(figure: Figure, path: str | Path) -> None:
    FigureCanvasAgg(figure)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def plot_loss(path: str | Path, steps, loss, loss_smoothed) -> None:
    """The training loss against the iteration: raw minibatch loss (faint) and its smoothed value."""
    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    axes.plot(steps, loss, color="tab:blue", alpha=0.25, linewidth=0.8, label="loss (minibatch)")
    axes.plot(steps, loss_smoothed, color="tab:blue", linewidth=1.8, label="loss (smoothed)")
    axes.set_xlabel("iteration")
    axes.set_ylabel("loss per window")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    _save(figure, path)


def svd_projection(vectors: np.ndarray) -> np.ndarray:
    """2-D coordinates (n, 2) of `vectors` (n, d): centred, projected on the top two eigenvectors
    of their covariance, exactly as the assignment's run.py does."""
    centred = vectors - vectors.mean(axis=0)
    covariance = centred.T @ centred / len(vectors)
    U, _, _ = np.linalg.svd(covariance)
    return centred @ U[:, :2]


def plot_word_vectors(path: str | Path, words: list[str], center_vectors: np.ndarray,
                      visualize_words: list[str] = VISUALIZE_WORDS) -> list[str]:
    """The assignment's word_vectors.png: `visualize_words` at their 2-D SVD coordinates.

    words: (V,) row labels of center_vectors (V, d). Words missing from the vocabulary are left
    out; returns the missing ones. ValueError when fewer than 2 of them are present.
    """
    index = {word: i for i, word in enumerate(words)}
    shown = [word for word in visualize_words if word in index]
    missing = [word for word in visualize_words if word not in index]
    if len(shown) < 2:
        raise ValueError(f"visualize_words: only {len(shown)} of {len(visualize_words)} words are in the vocabulary")
    coords = svd_projection(np.asarray(center_vectors)[[index[word] for word in shown]])
    figure = Figure(figsize=(6, 6))
    axes = figure.add_subplot()
    for (x, y), word in zip(coords, shown):
        axes.text(x, y, word, bbox=dict(facecolor="green", alpha=0.1))
    # text does not extend the axes; pad the data range so labels at the edges stay visible
    (x_min, y_min), (x_max, y_max) = coords.min(axis=0), coords.max(axis=0)
    pad_x, pad_y = 0.1 * (x_max - x_min or 1.0), 0.1 * (y_max - y_min or 1.0)
    axes.set_xlim(x_min - pad_x, x_max + 2 * pad_x)
    axes.set_ylim(y_min - pad_y, y_max + pad_y)
    axes.set_title("word vectors, 2-D SVD projection")
    figure.tight_layout()
    _save(figure, path)
    return missing
