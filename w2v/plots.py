"""Figures of a training run, drawn off-screen (matplotlib's Agg canvas, no pyplot state).

    plot_loss(path, steps, loss, loss_smoothed)          # loss.png
    plot_word_vectors(path, words, center_vectors, counts=counts)   # word_vectors.png, as CS224n assignment 2
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from adjustText import adjust_text
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from w2v.atomic import atomic_path
from w2v.corpus import UNK

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


@dataclass(frozen=True)
class WordPlot:
    """What plot_word_vectors drew: the plotted `words`, the asked-for words `missing` from the
    vocabulary, and `note`, one sentence saying what was left out or replaced (None: nothing)."""

    words: list[str]
    missing: list[str]
    note: str | None


def choose_plot_words(words: list[str], visualize_words: list[str], counts=None) -> WordPlot:
    """The words to plot: `visualize_words` that are in `words`; when fewer than 2 of them are,
    the len(visualize_words) most frequent words by `counts` (V,) instead (in vocabulary order
    without counts), never UNK."""
    index = set(words)
    shown = [word for word in visualize_words if word in index]
    missing = [word for word in visualize_words if word not in index]
    if len(shown) >= 2:
        note = (f"left out {len(missing)} of {len(visualize_words)} words absent from the vocabulary: "
                f"{' '.join(missing)}") if missing else None
        return WordPlot(shown, missing, note)
    order = np.arange(len(words)) if counts is None else np.argsort(-np.asarray(counts), kind="stable")
    frequent = [words[i] for i in order if words[i] != UNK][:len(visualize_words)]
    if len(frequent) < 2:
        raise ValueError(f"a 2-D plot needs at least 2 words; the vocabulary has {len(frequent)} besides {UNK}")
    what = "most frequent" if counts is not None else "first"
    note = (f"only {len(shown)} of the {len(visualize_words)} plot words are in the vocabulary; "
            f"plotted its {len(frequent)} {what} words instead")
    return WordPlot(frequent, missing, note)


def plot_word_vectors(path: str | Path, words: list[str], center_vectors: np.ndarray,
                      visualize_words: list[str] = VISUALIZE_WORDS, counts=None) -> WordPlot:
    """The assignment's word_vectors.png: `visualize_words` at their 2-D SVD coordinates.

    words: (V,) row labels of center_vectors (V, d); counts: (V,) their frequencies, or None.
    Words missing from the vocabulary are left out; with fewer than 2 left, the most frequent
    words are plotted instead (choose_plot_words). Each word is a dot at its coordinates; its label
    is moved off the other labels (word_vectors_figure).
    """
    plot = choose_plot_words(words, visualize_words, counts)
    index = {word: i for i, word in enumerate(words)}
    coords = svd_projection(np.asarray(center_vectors)[[index[word] for word in plot.words]])
    title = "word vectors, 2-D SVD projection"
    if plot.words != [word for word in visualize_words if word in index]:
        title += f"\n({plot.note})"
    _save(word_vectors_figure(plot.words, coords, title), path)
    return plot


def word_vectors_figure(labels: list[str], coords: np.ndarray, title: str) -> Figure:
    """A dot per label at coords (n, 2), its label placed off the other labels by adjustText (with
    a line back to its dot when moved), on an Agg canvas."""
    figure = Figure(figsize=(7, 7))
    FigureCanvasAgg(figure)  # adjustText measures the labels with this canvas' renderer
    axes = figure.add_subplot()
    axes.scatter(coords[:, 0], coords[:, 1], s=12, color="tab:green", zorder=3)
    # pad the data range so labels near the edges have room before they are placed
    (x_min, y_min), (x_max, y_max) = coords.min(axis=0), coords.max(axis=0)
    pad_x, pad_y = 0.15 * (x_max - x_min or 1.0), 0.15 * (y_max - y_min or 1.0)
    axes.set_xlim(x_min - pad_x, x_max + pad_x)
    axes.set_ylim(y_min - pad_y, y_max + pad_y)
    texts = [axes.text(x, y, label, fontsize=10, bbox=dict(facecolor="green", alpha=0.1, linewidth=0, pad=1.5))
             for (x, y), label in zip(coords, labels)]
    axes.set_title(title, fontsize=10)
    figure.tight_layout()  # before placing: a later change of the axes' size would move the labels
    # expand: keep the boxes drawn around the labels (1.5 pt pad) apart, not only the letters
    adjust_text(texts, x=coords[:, 0], y=coords[:, 1], ax=axes, expand=(1.3, 1.6),
                arrowprops=dict(arrowstyle="-", color="grey", linewidth=0.6))
    return figure
