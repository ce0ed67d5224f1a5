"""w2v.sentiment on the real SST copy and its real sentiment trees: tree parsing, the positional
alignment with the corpus, features, the classifier with C chosen on dev, intervals."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from w2v.corpus import build_corpus
from w2v.readers import read_sst
from w2v.sentiment import (C_GRID, LabelsError, OtherCorpusError, evaluate_sentiment, fit_and_score, parse_tree,
                           read_labels, read_trees, same_token, sentence_features)

from conftest import require_shared_data

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TREES_DIR = PROJECT_ROOT.parent / "shared" / "data" / "trainDevTestTrees_PTB" / "trees"
SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def trees_dir() -> Path:
    return require_shared_data(TREES_DIR / "train.txt").parent


@pytest.fixture(scope="module")
def sst(sst_dir):
    """The SST corpus as the tokenize stage makes it with train_on=train and fix_encoding=true."""
    return read_sst(sst_dir, fix_encoding=True, train_on="train")


@pytest.fixture(scope="module")
def labels(sst, trees_dir):
    return read_labels(trees_dir, sst)


def test_parse_tree_gives_the_root_label_and_the_leaves_in_order():
    label, leaves = parse_tree("(3 (2 It) (4 (2 -LRB-) (4 works) (2 -RRB-)) (2 .))\n")
    assert label == 3
    assert leaves == ["It", "-LRB-", "works", "-RRB-", "."]
    assert parse_tree("(0 (0 awful))") == (0, ["awful"])


@pytest.mark.parametrize("line", ["", "It works .", "(3 (2 It) (4 works)", "(7 (2 It))", "(3 (9 It))", "(3 )"])
def test_parse_tree_refuses_what_is_not_a_labelled_tree(line):
    with pytest.raises(ValueError):
        parse_tree(line)


def test_read_trees_names_the_file_and_line_of_a_broken_tree(tmp_path):
    path = tmp_path / "dev.txt"
    path.write_text("(2 (2 fine))\n(3 (2 broken)\n", encoding="utf-8")
    with pytest.raises(LabelsError, match=r"dev\.txt, line 2"):
        read_trees(path)


def test_same_token_reads_brackets_slashes_case_and_the_double_encoded_utf8():
    assert same_token("-LRB-", "-lrb-") and same_token("-LRB-", "(") and same_token("-RRB-", ")")
    assert same_token("9\\/11", "9/11") and same_token("It", "it")
    assert same_token("clichés", "clichés")
    assert same_token("clichés", "clichã©s")  # corpus.fix_encoding=false: the lowercased double encoding
    assert not same_token("film", "movie")


def test_the_real_trees_line_up_with_the_real_sst_corpus(labels):
    # ../shared/data/README.md: 8,541 of 8,544 train, all dev and test sentences match
    assert {split: labels[split].misaligned for split in SPLITS} == {"train": 3, "dev": 0, "test": 0}
    counts = {split: np.bincount(labels[split].labels, minlength=5).tolist() for split in SPLITS}
    assert counts == {"train": [1092, 2218, 1624, 2322, 1288], "dev": [139, 289, 229, 279, 165],
                      "test": [279, 633, 389, 510, 399]}


def test_with_rare_words_as_unk_the_trees_still_line_up(sst, trees_dir, tmp_path):
    # corpus.min_count=5 (the loss preset's) makes three quarters of SST's word types UNK; UNK matches any leaf
    from w2v.corpus import with_min_count

    trimmed = with_min_count(sst, 5)
    assert trimmed.vocab_size < sst.vocab_size / 3
    labels = read_labels(trees_dir, trimmed)
    assert {split: labels[split].misaligned for split in SPLITS} == {"train": 3, "dev": 0, "test": 0}
    # UNK is no free pass: trees of other sentences are still refused
    folder = copy_trees(trees_dir, tmp_path / "trees")
    lines = (folder / "test.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "test.txt").write_text("".join(lines[1:] + lines[:1]), encoding="utf-8")  # same count, rotated
    with pytest.raises(LabelsError, match=r"test\.txt: \d+ of 2210 trees do not have the tokens"):
        read_labels(folder, trimmed)


def test_alignment_also_holds_without_the_encoding_repair(sst_dir, trees_dir):
    corpus = read_sst(sst_dir, fix_encoding=False)
    labels = read_labels(trees_dir, corpus)
    assert labels["dev"].misaligned == 1 and labels["test"].misaligned == 0  # "Mollà": a split mojibake token


def copy_trees(trees_dir: Path, folder: Path) -> Path:
    folder.mkdir()
    for split in SPLITS:
        shutil.copy(trees_dir / f"{split}.txt", folder / f"{split}.txt")
    return folder


def test_trees_shifted_by_one_line_are_a_clear_error(sst, trees_dir, tmp_path):
    folder = copy_trees(trees_dir, tmp_path / "trees")
    lines = (folder / "test.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "test.txt").write_text("".join(lines[1:] + lines[:1]), encoding="utf-8")  # same count, rotated
    with pytest.raises(LabelsError, match=r"test\.txt: \d+ of 2210 trees do not have the tokens.*not aligned"):
        read_labels(folder, sst)


def test_train_with_dev_appended_is_refused_as_another_corpus(sst, trees_dir, tmp_path):
    # the public copy this train.txt was cut from had dev.txt appended
    folder = copy_trees(trees_dir, tmp_path / "trees")
    with open(folder / "train.txt", "a", encoding="utf-8") as file:
        file.write((trees_dir / "dev.txt").read_text(encoding="utf-8"))
    with pytest.raises(OtherCorpusError, match=r"train\.txt has 9645 trees but the corpus has 8544 train sentences"):
        read_labels(folder, sst)


def test_a_missing_tree_file_is_named(sst, trees_dir, tmp_path):
    folder = copy_trees(trees_dir, tmp_path / "trees")
    (folder / "dev.txt").unlink()
    with pytest.raises(LabelsError, match=r"dev\.txt is missing"):
        read_labels(folder, sst)


def test_features_average_the_known_words_and_are_zero_without_one():
    corpus = build_corpus([["a", "b"], ["c", "c", "a"], ["d"], ["d", "b"]], split=[1, 1, 3, 2], train_on="train")
    assert corpus.words == ["a", "b", "c", "d", "UNK"] and corpus.counts[3] == 0  # "d" is only in dev/test
    vectors = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [100.0, 100.0], [0.0, 0.0]])
    features = sentence_features(vectors, corpus.counts, corpus.tokens, corpus.offsets)
    np.testing.assert_allclose(features, [[2.0, 1.0], [1 / 3, 8 / 3], [0.0, 0.0], [3.0, 2.0]])


def informative_vectors(corpus, labels, dim=10, seed=1):
    """Noise plus, in the first column, each word's mean train label (centred): vectors that carry sentiment."""
    tokens, offsets = corpus.sentences_of("train")
    lengths = np.diff(offsets)
    label_of_token = np.repeat(labels["train"].labels, lengths).astype(np.float64)
    n = np.bincount(tokens, minlength=corpus.vocab_size)
    mean_label = np.divide(np.bincount(tokens, weights=label_of_token, minlength=corpus.vocab_size), n,
                           out=np.full(corpus.vocab_size, 2.0), where=n > 0)
    vectors = np.random.default_rng(seed).standard_normal((corpus.vocab_size, dim))
    vectors[:, 0] = 3 * (mean_label - 2.0)
    return vectors


def test_informative_vectors_beat_random_ones_beyond_the_intervals(sst, labels):
    result = evaluate_sentiment(sst, informative_vectors(sst, labels), labels, grid=(0.1, 1.0, 10.0), resamples=200)
    metrics = result.metrics()
    for task in ("sst5", "sst2"):
        trained, random = result.tasks[f"eval_{task}_acc"], result.tasks[f"eval_{task}_acc_random"]
        assert trained.interval[0] > random.interval[1], (task, trained, random)
        assert metrics[f"eval_{task}_acc"] == trained.test_acc
        for name in (f"eval_{task}_acc", f"eval_{task}_acc_random"):
            low, high = result.intervals()[name]
            assert low <= metrics[name] <= high and 0 < high - low < 0.1
            assert metrics[f"{name}_ci95"] == pytest.approx((high - low) / 2)
    assert metrics["eval_sst2_acc"] > 0.6 and metrics["eval_sst5_acc"] > 0.3
    assert result.tasks["eval_sst5_acc"].n_test == 2210 and result.tasks["eval_sst2_acc"].n_test == 2210 - 389


def test_random_reference_and_intervals_repeat_with_the_seed(sst, labels):
    vectors = informative_vectors(sst, labels)
    first = evaluate_sentiment(sst, vectors, labels, grid=(1.0,), resamples=100, seed=3)
    again = evaluate_sentiment(sst, vectors, labels, grid=(1.0,), resamples=100, seed=3)
    other = evaluate_sentiment(sst, vectors, labels, grid=(1.0,), resamples=100, seed=4)
    assert first.metrics() == again.metrics()
    assert first.metrics()["eval_sst5_acc_random"] != other.metrics()["eval_sst5_acc_random"]


def test_c_is_chosen_by_dev_accuracy():
    rng = np.random.default_rng(0)
    features, labels = {}, {}
    for split, n in (("train", 400), ("dev", 300), ("test", 300)):
        y = rng.integers(0, 2, n)
        features[split] = np.column_stack([y + rng.normal(0, 0.8, n), rng.normal(0, 1, (n, 3))])
        labels[split] = y
    result = fit_and_score(features, labels, grid=C_GRID, resamples=100)
    assert set(result.dev_acc) == set(C_GRID)
    assert result.dev_acc[result.C] == max(result.dev_acc.values())
    assert result.dev_acc[1e-3] < result.dev_acc[result.C]  # the strongest regularisation loses on dev here
    assert result.test_acc > 0.65 and result.majority < 0.6


def test_vectors_of_another_vocabulary_are_refused(sst, labels):
    with pytest.raises(ValueError, match="rows"):
        evaluate_sentiment(sst, np.zeros((10, 4)), labels)
