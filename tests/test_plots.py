"""The 2-D word plot: labels that stay readable when words sit on top of each other, and a plot of
the most frequent words (with one note) when the assignment's words are not in the vocabulary."""
import itertools
from pathlib import Path

import numpy as np
import pytest

from w2v.plots import VISUALIZE_WORDS, choose_plot_words, plot_word_vectors, word_vectors_figure

PNG = b"\x89PNG\r\n\x1a\n"


def label_boxes(figure):
    """The drawn extent (display pixels) of every label's box in the figure's one axes."""
    renderer = figure.canvas.get_renderer()
    figure.canvas.draw()
    texts = figure.axes[0].texts
    return {text.get_text(): text.get_bbox_patch().get_window_extent(renderer) for text in texts}


# The 2-D projection of the 24 words after the classic run (python -m pipeline.train on SST), rounded;
# unplaced, `wonderful`, `woman` and `rain` drew one blot and `great`/`well`, `queen`/`cool` overlapped.
CLASSIC_COORDS = [
    [-0.031, -0.035], [0.006, -0.067], [-0.003, 0.012], [0.001, 0.03], [0.014, -0.035], [0.058, 0.007],
    [-0.014, 0.05], [-0.043, 0.002], [0.008, 0.069], [-0.033, -0.009], [-0.013, 0.032], [-0.049, 0.08],
    [-0.053, -0.04], [0.056, -0.064], [0.214, -0.029], [-0.007, -0.065], [0.085, -0.01], [0.027, -0.014],
    [0.036, 0.03], [0.057, 0.03], [0.082, 0.062], [-0.247, -0.009], [-0.077, -0.002], [-0.074, -0.025]]


def overlapping_labels(labels, coords):
    boxes = label_boxes(word_vectors_figure(labels, np.asarray(coords, dtype=float), "test"))
    assert sorted(boxes) == sorted(labels)
    return [(a, b) for a, b in itertools.combinations(boxes, 2) if boxes[a].overlaps(boxes[b])]


def test_labels_of_the_classic_run_do_not_overlap():
    assert overlapping_labels(VISUALIZE_WORDS, CLASSIC_COORDS) == []


def test_labels_of_words_at_one_point_do_not_overlap():
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    coords = np.column_stack([np.cos(angles), np.sin(angles)]).tolist() + [[0.0, 0.0]] * 5
    assert overlapping_labels(VISUALIZE_WORDS[:17], coords) == []


def test_every_label_stays_inside_the_axes():
    coords = np.array([[0.0, 0.0], [0.0, 0.001], [1.0, 1.0], [1.0, 0.999], [0.5, 0.5]])
    figure = word_vectors_figure(["a", "bb", "ccc", "dddd", "eeeee"], coords, "test")
    frame = figure.axes[0].get_window_extent(figure.canvas.get_renderer())
    for word, box in label_boxes(figure).items():
        assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1, word
        assert frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1, word


def test_a_vocabulary_without_the_plot_words_plots_its_most_frequent_words(tmp_path):
    words = [f"w{i}" for i in range(40)] + ["great", "UNK"]
    counts = np.array([1] * 40 + [500, 1000], dtype=np.int64)
    counts[[7, 3, 30]] = [90, 80, 70]
    vectors = np.random.default_rng(1).normal(size=(len(words), 10))
    plot = plot_word_vectors(tmp_path / "word_vectors.png", words, vectors, counts=counts)
    assert plot.words[:4] == ["great", "w7", "w3", "w30"]  # by count, never UNK
    assert len(plot.words) == len(VISUALIZE_WORDS) and "UNK" not in plot.words
    assert plot.missing == [w for w in VISUALIZE_WORDS if w != "great"]
    assert plot.note == ("only 1 of the 24 plot words are in the vocabulary; "
                         "plotted its 24 most frequent words instead")
    assert (tmp_path / "word_vectors.png").read_bytes()[:8] == PNG


def test_notes_say_what_was_left_out():
    assert choose_plot_words(VISUALIZE_WORDS, VISUALIZE_WORDS).note is None
    partial = choose_plot_words(VISUALIZE_WORDS[2:], VISUALIZE_WORDS)
    assert partial.words == VISUALIZE_WORDS[2:]
    assert partial.note == "left out 2 of 24 words absent from the vocabulary: great cool"
    with pytest.raises(ValueError, match="at least 2 words"):
        choose_plot_words(["only", "UNK"], VISUALIZE_WORDS, counts=np.array([3, 1]))


@pytest.mark.slow
def test_a_run_on_a_corpus_without_the_plot_words_finishes_with_one_note(tmp_path, empty_store):
    """Issue 13, defect 1: the 2-D plot no longer kills a run after training on such a corpus."""
    import os
    import subprocess
    import sys

    from mlflow import MlflowClient

    from w2v.corpus import build_corpus, save_corpus

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    sentences = [list(rng.choice(words, size=rng.integers(4, 10))) for _ in range(200)]
    save_corpus(build_corpus(sentences, train_on="train"), tmp_path / "processed")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "W2V_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.train", f"paths.processed={tmp_path / 'processed'}",
         f"paths.checkpoints={tmp_path / 'checkpoints'}", f"hydra.run.dir={tmp_path / 'run'}",
         "train.iterations=40", "train.checkpoint_every=20"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=600,
        env=env | {"MLFLOW_TRACKING_URI": empty_store})
    assert done.returncode == 0, done.stderr[-3000:]
    notes = [line for line in (done.stdout + done.stderr).splitlines() if "word_vectors.png:" in line]
    assert len(notes) == 1 and notes[0].endswith(
        "only 0 of the 24 plot words are in the vocabulary; plotted its 24 most frequent words instead"), notes
    assert (tmp_path / "run" / "word_vectors.png").read_bytes()[:8] == PNG
    client = MlflowClient(empty_store)
    (run,) = client.search_runs([client.get_experiment_by_name("w2v").experiment_id])
    assert run.info.status == "FINISHED"
    assert "word_vectors.png" in {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
