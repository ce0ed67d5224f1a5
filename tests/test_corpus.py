"""w2v.corpus: building, counting, subsets, derived weights, and the on-disk format."""
import numpy as np
import pandas as pd
import pytest

from w2v.corpus import Corpus, build_corpus, keep_probabilities, load_corpus, save_corpus, with_min_count

SENTENCES = [["the", "cat", "sat"], ["the", "dog"], ["a", "cat", "ran", "the"]]
SPLIT = [1, 3, 2]  # train, dev, test


def test_ids_by_first_occurrence_with_unk_last_counted_once():
    corpus = build_corpus(SENTENCES)
    assert corpus.words == ["the", "cat", "sat", "dog", "a", "ran", "UNK"]
    assert corpus.word2ind["dog"] == 3 and corpus.vocab_size == 7
    assert corpus.counts.tolist() == [3, 2, 1, 1, 1, 1, 1]
    assert corpus.tokens.tolist() == [0, 1, 2, 0, 3, 4, 1, 5, 0]
    assert corpus.offsets.tolist() == [0, 3, 5, 9]
    assert corpus.split.tolist() == [1, 1, 1]
    assert (corpus.counts.dtype, corpus.tokens.dtype, corpus.offsets.dtype, corpus.split.dtype) == (
        np.int64, np.int32, np.int64, np.int8)


def test_train_on_train_counts_only_training_sentences_and_keeps_held_out_ids():
    corpus = build_corpus(SENTENCES, split=SPLIT, train_on="train")
    assert corpus.words == ["the", "cat", "sat", "dog", "a", "ran", "UNK"]  # same ids as train_on=all
    assert corpus.counts.tolist() == [1, 1, 1, 0, 0, 0, 1]
    assert corpus.keep_prob[3:6].tolist() == [1.0, 1.0, 1.0]   # count 0: never subsampled away
    assert corpus.neg_weight[3:6].tolist() == [0.0, 0.0, 0.0]  # and never drawn as a negative
    tokens, offsets = corpus.training_sentences()
    assert tokens.tolist() == [0, 1, 2] and offsets.tolist() == [0, 3]


def test_sentences_of_each_split():
    corpus = build_corpus(SENTENCES, split=SPLIT)
    dev_tokens, dev_offsets = corpus.sentences_of("dev")
    assert dev_tokens.tolist() == [0, 3] and dev_offsets.tolist() == [0, 2]
    test_tokens, test_offsets = corpus.sentences_of("test")
    assert test_tokens.tolist() == [4, 1, 5, 0] and test_offsets.tolist() == [0, 4]
    all_tokens, _ = corpus.sentences_of("all")
    assert len(all_tokens) == 9
    assert corpus.training_sentences()[0].tolist() == all_tokens.tolist()  # train_on="all"
    with pytest.raises(ValueError, match="which"):
        corpus.sentences_of("validation")


def test_keep_prob_and_neg_weight_formulas():
    # 200,000 "a" and one "b": t = 1e-5 * 200,002 (with UNK) = 2.00002
    corpus = build_corpus([["a"] * 200_000 + ["b"]])
    assert corpus.counts.tolist() == [200_000, 1, 1]
    assert corpus.keep_prob[0] == pytest.approx(np.sqrt(2.00002 / 200_000))
    assert corpus.keep_prob[1:].tolist() == [1.0, 1.0]
    assert corpus.neg_weight.tolist() == pytest.approx([200_000 ** 0.75, 1.0, 1.0])


def test_keep_probabilities_follow_the_threshold_and_zero_keeps_everything():
    counts = np.array([200_000, 1, 0])
    assert keep_probabilities(counts, 1e-3)[0] == pytest.approx(np.sqrt(200.001 / 200_000))
    assert keep_probabilities(counts, 1e-3)[1:].tolist() == [1.0, 1.0]
    assert keep_probabilities(counts, 0).tolist() == [1.0, 1.0, 1.0]


def test_min_count_maps_rare_words_to_unk():
    corpus = build_corpus(SENTENCES, min_count=2)
    assert corpus.words == ["the", "cat", "UNK"]
    assert corpus.tokens.tolist() == [0, 1, 2, 0, 2, 2, 1, 2, 0]
    assert corpus.counts.tolist() == [3, 2, 4 + 1]  # four rare tokens plus the assignment's one


@pytest.mark.parametrize("train_on", ["all", "train"])
def test_a_larger_min_count_applied_afterwards_gives_the_corpus_tokenizing_with_it_gives(train_on):
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(40)] + ["UNK"]
    sentences = [[words[i] for i in rng.zipf(1.5, rng.integers(1, 12)) % 41] for _ in range(200)]
    split = rng.integers(1, 4, 200)
    for min_count in (2, 3, 5, 50):
        direct = build_corpus(sentences, split, train_on=train_on, min_count=min_count)
        later = with_min_count(build_corpus(sentences, split, train_on=train_on), min_count)
        assert later.words == direct.words and later.train_on == direct.train_on == train_on
        for name in ("counts", "tokens", "offsets", "split"):
            assert np.array_equal(getattr(later, name), getattr(direct, name)), name
        assert len(direct.words) < 42  # some words did become UNK
    original = build_corpus(sentences, split, train_on=train_on)
    tokens_before = original.tokens.copy()
    with_min_count(original, 5)
    assert np.array_equal(original.tokens, tokens_before)  # the corpus it started from is untouched



def test_a_corpus_without_unk_last_is_refused_by_with_min_count():
    corpus = build_corpus(SENTENCES)
    other = Corpus(corpus.words[::-1], corpus.counts[::-1].copy(), corpus.tokens, corpus.offsets, corpus.split)
    with pytest.raises(ValueError, match="the corpus's last word must be UNK, got 'the'"):
        with_min_count(other, 2)

def test_the_word_unk_in_input_is_the_unk_token():
    corpus = build_corpus([["a", "UNK", "b"]])
    assert corpus.words == ["a", "b", "UNK"] and corpus.tokens.tolist() == [0, 2, 1]
    assert corpus.counts.tolist() == [1, 1, 2]


@pytest.mark.parametrize("kwargs, match", [
    ({"train_on": "dev"}, "train_on"),
    ({"min_count": 0}, "min_count"),
    ({"split": [1, 2]}, "split"),
    ({"split": [1, 2, 4]}, "split labels"),
])
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_corpus(SENTENCES, **kwargs)


def test_a_string_is_not_a_sentence():
    with pytest.raises(ValueError, match="split it first"):
        build_corpus(["the cat sat"])


def test_corpus_checks_its_arrays():
    good = build_corpus(SENTENCES)
    with pytest.raises(ValueError, match="tokens must be"):
        Corpus(good.words, good.counts, good.tokens.astype(np.int64), good.offsets, good.split)
    with pytest.raises(ValueError, match="token ids"):
        Corpus(good.words, good.counts, good.tokens + 7, good.offsets, good.split)
    with pytest.raises(ValueError, match="offsets"):
        Corpus(good.words, good.counts, good.tokens, good.offsets[::-1].copy(), good.split)


def test_save_and_load_round_trip_with_the_documented_table(tmp_path):
    corpus = build_corpus(SENTENCES, split=SPLIT, train_on="train")
    save_corpus(corpus, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["offsets.npy", "split.npy", "tokens.npy", "vocab.parquet"]
    table = pd.read_parquet(tmp_path / "vocab.parquet")
    assert list(table.columns) == ["id", "word", "count", "keep_prob", "neg_weight"]
    assert table["id"].dtype == np.int32 and table["count"].dtype == np.int64
    assert table["word"].tolist() == corpus.words
    assert table["neg_weight"].tolist() == pytest.approx(corpus.counts ** 0.75)

    loaded = load_corpus(tmp_path)
    assert loaded.words == corpus.words and loaded.train_on == "train"
    for name in ("counts", "tokens", "offsets", "split"):
        assert np.array_equal(getattr(loaded, name), getattr(corpus, name))
        assert getattr(loaded, name).dtype == getattr(corpus, name).dtype
    assert np.array_equal(loaded.keep_prob, corpus.keep_prob)


def test_load_corpus_names_a_missing_file(tmp_path):
    save_corpus(build_corpus(SENTENCES), tmp_path)
    (tmp_path / "offsets.npy").unlink()
    with pytest.raises(FileNotFoundError, match="offsets.npy.*tokenize"):
        load_corpus(tmp_path)
