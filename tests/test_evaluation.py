"""w2v.evaluation on tiny vectors files built so that every answer is known by construction."""
import math

import numpy as np
import pytest
from gensim.models import KeyedVectors

from w2v.evaluation import (
    ASSIGNMENT_WORDS,
    evaluate_vectors,
    evaluation_report,
    load_vectors,
    nearest_neighbours,
    word_analogies,
    word_similarity,
)


def write_word2vec(path, words_and_vectors, header=None):
    """Write a word2vec text file by hand (independent of any writer in the project)."""
    dim = len(next(iter(words_and_vectors.values())))
    lines = [header or f"{len(words_and_vectors)} {dim}"]
    lines += [word + " " + " ".join(f"{x:.9f}" for x in vector) for word, vector in words_and_vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pair_vectors(pairs_with_cosines, dim, first_axis=0):
    """Each pair (a, b) gets its own plane: a = e_i, b = cos t e_i + sin t e_{i+1}, so cos(a, b) = cos t
    and every cross-pair cosine is 0."""
    vectors = {}
    for n, ((a, b), cosine) in enumerate(pairs_with_cosines):
        i = first_axis + 2 * n
        va, vb = np.zeros(dim), np.zeros(dim)
        va[i] = 1.0
        vb[i], vb[i + 1] = cosine, math.sqrt(1 - cosine**2)
        vectors[a], vectors[b] = va, vb
    return vectors


# WordSim-353 pairs whose words occur in no other pair of WordSim-353 or SimLex-999, with their
# human scores 0.54 < 2.38 < 6.85 < 8.13 < 8.96 (read from the files by hand).
WS353_PAIRS = [("chord", "smile"), ("sign", "recess"), ("drug", "abuse"), ("war", "troops"), ("gem", "jewel")]
# The model swaps the top two: ranks 1 2 3 5 4, so Spearman = 1 - 6 * 2 / (5 * 24) = 0.9.
WS353_COSINES = [0.1, 0.3, 0.5, 0.9, 0.7]
# SimLex-999 pairs, scores 2.38 < 2.95 < 5.00 < 7.32 < 9.05; the model reverses them: Spearman = -1.
SIMLEX_PAIRS = [("tax", "income"), ("church", "choir"), ("joy", "pride"), ("mud", "dirt"), ("cop", "sheriff")]
SIMLEX_COSINES = [0.9, 0.7, 0.5, 0.3, 0.1]


@pytest.fixture
def similarity_file(tmp_path):
    vectors = pair_vectors(zip(WS353_PAIRS, WS353_COSINES), dim=20)
    vectors.update(pair_vectors(zip(SIMLEX_PAIRS, SIMLEX_COSINES), dim=20, first_axis=10))
    return write_word2vec(tmp_path / "vectors.txt", vectors)


def test_similarity_spearman_and_oov_share_are_known(similarity_file):
    vectors = load_vectors(similarity_file)
    ws353 = word_similarity(vectors, "wordsim353.tsv")
    assert ws353.pairs == 353 and ws353.covered == 5
    assert ws353.spearman == pytest.approx(0.9)
    assert ws353.oov_share == pytest.approx(348 / 353)
    simlex = word_similarity(vectors, "simlex999.txt")
    assert simlex.pairs == 999 and simlex.covered == 5
    assert simlex.spearman == pytest.approx(-1.0)
    assert simlex.oov_share == pytest.approx(994 / 999)


def test_similarity_on_own_pairs_file_is_case_insensitive(tmp_path):
    vectors = load_vectors(write_word2vec(tmp_path / "v.txt", pair_vectors(
        [(("a", "b"), 0.2), (("c", "d"), 0.6), (("e", "f"), 0.4)], dim=6)))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("# comment\nA\tB\t1.0\nc\tD\t9.0\ne\tf\t5.0\na\tzebra\t3.0\n", encoding="utf-8")
    result = word_similarity(vectors, str(pairs))
    assert (result.pairs, result.covered) == (4, 3)
    assert result.spearman == pytest.approx(1.0)
    assert result.oov_share == pytest.approx(0.25)


def test_one_covered_pair_has_no_rank_correlation_but_is_counted(tmp_path):
    vectors = load_vectors(write_word2vec(tmp_path / "v.txt", {"war": [1.0, 0.0], "troops": [0.6, 0.8], "xyzzy": [0.0, 1.0]}))
    result = word_similarity(vectors, "wordsim353.tsv")
    assert (result.pairs, result.covered) == (353, 1)
    assert math.isnan(result.spearman) and result.oov_share == pytest.approx(352 / 353)


def test_invalid_lines_of_a_pairs_file_are_not_counted(tmp_path):
    vectors = load_vectors(write_word2vec(tmp_path / "v.txt", pair_vectors([(("a", "b"), 0.2), (("c", "d"), 0.6)], dim=4)))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("a\tb\t1.0\nc\td\tmany\nc\td\t2.0\na b 3.0\n", encoding="utf-8")
    result = word_similarity(vectors, str(pairs))
    assert (result.pairs, result.covered) == (2, 2)
    assert result.spearman == pytest.approx(1.0)


def test_no_covered_pair_gives_nan_and_full_oov_share_not_an_error(tmp_path):
    vectors = load_vectors(write_word2vec(tmp_path / "v.txt", {"xyzzy": [1.0, 0.0], "plugh": [0.0, 1.0]}))
    result = word_similarity(vectors, "wordsim353.tsv")
    assert math.isnan(result.spearman) and result.covered == 0 and result.oov_share == 1.0
    analogy = word_analogies(vectors)
    assert math.isnan(analogy.accuracy) and analogy.covered == 0 and analogy.oov_share == 1.0


# man, woman, king, queen as a parallelogram (gender axis 0/1, royalty axis 2); distractors on axes 3, 4.
ROYAL = {
    "man": [1, 0, 0, 0, 0],
    "woman": [0, 1, 0, 0, 0],
    "king": [1, 0, 1, 0, 0],
    "queen": [0, 1, 1, 0, 0],
    "banana": [0, 0, 0, 1, 0],
    "table": [0, 0, 0, 0, 1],
}


def test_google_analogies_count_only_covered_questions(tmp_path):
    vectors = load_vectors(write_word2vec(tmp_path / "v.txt", ROYAL))
    result = word_analogies(vectors)
    # questions-words.txt holds exactly two questions made of these words (family section):
    # "king queen man woman" and "man woman king queen"; the parallelogram answers both.
    assert (result.questions, result.covered, result.correct) == (19544, 2, 2)
    assert result.accuracy == 1.0
    assert result.oov_share == pytest.approx(19542 / 19544)


def test_analogy_accuracy_on_own_questions(tmp_path):
    vectors = load_vectors(write_word2vec(tmp_path / "v.txt", ROYAL))
    questions = tmp_path / "q.txt"
    questions.write_text(": royal\nman woman king queen\nman woman king banana\nman woman king zebra\n", encoding="utf-8")
    result = word_analogies(vectors, str(questions))
    # queen is right in the first, wrong in the second (banana expected), zebra is out of vocabulary
    assert (result.questions, result.covered, result.correct) == (3, 2, 1)
    assert result.accuracy == 0.5


# Unit vectors on a circle: the neighbours are ordered by angle, cosine = cos(angle difference).
ANGLES = {"great": 0, "wonderful": 10, "brilliant": 25, "amazing": 45, "cool": 70, "boring": 180, "bad": 190}


@pytest.fixture
def circle_file(tmp_path):
    return write_word2vec(tmp_path / "circle.txt", {
        word: [math.cos(math.radians(a)), math.sin(math.radians(a))] for word, a in ANGLES.items()})


def test_nearest_neighbours_are_ordered_by_angle(circle_file):
    vectors = load_vectors(circle_file)
    neighbours = nearest_neighbours(vectors, ["great", "boring", "hail"], topn=10)
    assert [word for word, _ in neighbours["great"]] == ["wonderful", "brilliant", "amazing", "cool", "bad", "boring"]
    assert [cos for _, cos in neighbours["great"]] == pytest.approx(
        [math.cos(math.radians(a)) for a in (10, 25, 45, 70, 190, 180)], abs=1e-6)
    assert [word for word, _ in neighbours["boring"]][:2] == ["bad", "cool"]
    assert neighbours["hail"] is None
    assert [word for word, _ in nearest_neighbours(vectors, ["cool"], topn=2)["cool"]] == ["amazing", "brilliant"]


def test_evaluate_vectors_counts_absent_probe_words(circle_file):
    evaluation = evaluate_vectors(load_vectors(circle_file))
    assert list(evaluation.neighbours) == list(ASSIGNMENT_WORDS)
    present = {"great", "wonderful", "brilliant", "amazing", "cool", "boring", "bad"}
    assert sorted(evaluation.absent_words) == sorted(set(ASSIGNMENT_WORDS) - present)
    assert len(evaluation.absent_words) == 17
    metrics = evaluation.metrics()
    assert set(metrics) >= {"eval_ws353_spearman", "eval_ws353_oov", "eval_simlex_spearman", "eval_simlex_oov", "eval_analogy_acc"}
    report = evaluation_report(evaluation, source="circle.txt")
    assert "| great | wonderful (0.985), brilliant (0.906), amazing (0.707), cool (0.342), bad (-0.985), boring (-1.000) |" in report
    assert "| hail | *(not in vocabulary)* |" in report
    assert "Not in the vocabulary (17 of 24)" in report


def test_load_vectors_matches_the_file(circle_file):
    vectors = load_vectors(circle_file)
    assert isinstance(vectors, KeyedVectors)
    assert vectors.index_to_key == list(ANGLES)
    assert vectors["cool"] == pytest.approx([math.cos(math.radians(70)), math.sin(math.radians(70))], abs=1e-7)


@pytest.mark.parametrize("content, message", [
    ("3 2\na 1 0\nb 0 1\n", "has 2 vector lines but its header says 3 words: the file is truncated"),
    ("2 3\na 1 0\nb 0 1\n", "line 2 has 2 values but the header says dimension 3"),
    ("2 2\na 1 0\nb 0 1 1\n", "line 3 has 3 values but the header says dimension 2"),
    ("2 2\na 1 0\nb 0 1\nc 1 1\n", "has 3 vector lines but its header says 2 words"),
    ("a 1 0\nb 0 1\n", "has no word2vec header on line 1"),
    ("", "has no word2vec header on line 1"),
    ("2 2\na 1 0\na 0 1\n", "lists the word 'a' twice (lines 2 and 3)"),
    ("2 2\na 1 0\nb 0 x\n", "is not a readable word2vec text file"),
])
def test_bad_vectors_files_raise_one_clear_value_error(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt") as error:
        load_vectors(path)
    assert message in str(error.value)


def test_missing_vectors_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_vectors(tmp_path / "nowhere.txt")


def test_gensim_written_file_round_trips(tmp_path):
    """A file gensim itself writes is accepted by the checks."""
    kv = KeyedVectors(vector_size=3)
    kv.add_vectors(["x", "y", "z"], np.eye(3))
    kv.save_word2vec_format(str(tmp_path / "g.txt"), binary=False)
    assert load_vectors(tmp_path / "g.txt").index_to_key == ["x", "y", "z"]


def _spearman_of(human, model):
    from scipy.stats import spearmanr
    return spearmanr(human, model).statistic


def test_similarity_interval_resamples_the_covered_pairs(tmp_path):
    from scipy.stats import bootstrap
    cosines = [0.1, 0.5, 0.3, 0.7, 0.2, 0.9, 0.8, 0.4]
    human = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    names = [(f"a{i}", f"b{i}") for i in range(len(cosines))]
    vectors = load_vectors(write_word2vec(tmp_path / "v.txt", pair_vectors(zip(names, cosines), dim=16)))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{a}\t{b}\t{h}\n" for (a, b), h in zip(names, human)) + "a0\tzebra\t3.0\n", encoding="utf-8")
    result = word_similarity(vectors, str(pairs))
    # the same rule written out with scipy directly: 1,000 paired resamples of the 8 covered pairs, seed 0
    expected = bootstrap((np.array(human), np.array(cosines)), _spearman_of, paired=True, vectorized=False,
                         n_resamples=1000, method="percentile", rng=np.random.default_rng(0)).confidence_interval
    assert result.interval == pytest.approx((expected.low, expected.high), abs=1e-9)
    assert result.interval[0] < result.spearman < result.interval[1]


def test_perfect_ranking_has_a_zero_width_interval_and_metrics_carry_ci95(tmp_path):
    names = [(f"a{i}", f"b{i}") for i in range(8)]
    vectors = load_vectors(write_word2vec(tmp_path / "v.txt", pair_vectors(zip(names, np.linspace(0.1, 0.8, 8)), dim=16)))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{a}\t{b}\t{i}\n" for i, (a, b) in enumerate(names)), encoding="utf-8")
    assert word_similarity(vectors, str(pairs)).interval == (1.0, 1.0)  # every resample ranks perfectly
    # 7 WordSim-353 pairs whose words make no other covered pair, cosines not in the human order
    ws353 = [("chord", "smile"), ("noon", "string"), ("sign", "recess"), ("drug", "abuse"), ("war", "troops"),
             ("gem", "jewel"), ("king", "cabbage")]
    vectors = load_vectors(write_word2vec(tmp_path / "ws.txt", pair_vectors(
        zip(ws353, [0.1, 0.3, 0.2, 0.5, 0.9, 0.7, 0.4]), dim=14)))
    evaluation = evaluate_vectors(vectors)
    metrics, (low, high) = evaluation.metrics(), evaluation.intervals()["eval_ws353_spearman"]
    assert evaluation.ws353.covered == 7
    assert metrics["eval_ws353_spearman_ci95"] == pytest.approx((high - low) / 2) and high > low
    assert low <= metrics["eval_ws353_spearman"] <= high
    assert math.isnan(metrics["eval_analogy_acc_ci95"])  # no question covered: no interval


def test_analogy_interval_resamples_the_covered_questions(tmp_path):
    vectors = load_vectors(write_word2vec(tmp_path / "v.txt", ROYAL))
    questions = tmp_path / "q.txt"
    right, wrong = "man woman king queen\n", "man woman king banana\n"
    questions.write_text(": royal\n" + right * 6 + wrong * 4 + "man woman king zebra\n", encoding="utf-8")
    result = word_analogies(vectors, str(questions))
    assert (result.covered, result.correct, result.accuracy) == (10, 6, 0.6)
    low, high = result.interval
    # a resample of 10 questions has a whole number of right answers: the ends are tenths around 0.6
    assert low < 0.6 < high and round(low * 10) == pytest.approx(low * 10) and round(high * 10) == pytest.approx(high * 10)
    questions.write_text(": royal\n" + right * 5, encoding="utf-8")
    assert word_analogies(vectors, str(questions)).interval == (1.0, 1.0)


def test_report_shows_the_intervals(similarity_file):
    evaluation = evaluate_vectors(load_vectors(similarity_file))
    report = evaluation_report(evaluation, source="v.txt")
    # 5 pairs: some resamples repeat one pair 5 times, where Spearman is undefined, so no interval
    assert "| WordSim-353 | Spearman | 0.9000 | n/a | 5/353 pairs | 98.6% |" in report
    assert "| Google analogies | accuracy | n/a | n/a | 0/19544 questions | 100.0% |" in report
