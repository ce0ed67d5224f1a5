"""Reading SST and plain text (w2v.readers) and the tokenize stage's command line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from w2v.corpus import load_corpus
from w2v.readers import CorpusFileError, read_sst, read_text, repair_double_encoding

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HYDRA_QUIET = ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=stdout", "hydra/hydra_logging=none"]


def assignment_sentences(path: Path) -> list[list[str]]:
    """utils/treebank.py of the assignment: skip the header, drop the index, split, lowercase."""
    sentences = []
    with open(path, encoding="utf-8") as file:
        next(file)
        for line in file:
            sentences.append([word.lower() for word in line.strip().split()[1:]])
    return sentences


def run_tokenize(raw: Path, processed: Path, *overrides: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "pipeline.tokenize", f"paths.raw={raw}", f"paths.processed={processed}",
            f"paths.metrics={processed.parent / 'metrics'}", *overrides, *HYDRA_QUIET]
    return subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def assert_one_error_line(result, *fragments):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- SST ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sst(sst_dir):
    return read_sst(sst_dir)


def test_sst_numbers_of_the_assignment(sst):
    assert len(sst.offsets) - 1 == 11_855
    assert sst.vocab_size == 19_539
    assert sst.counts.sum() == 227_246
    assert len(sst.tokens) == 227_245
    assert sst.words[-1] == "UNK" and sst.counts[-1] == 1
    assert np.bincount(sst.split, minlength=4)[1:].tolist() == [8_544, 2_210, 1_101]  # train, test, dev


def test_sst_matches_the_assignments_reader_token_for_token(sst, sst_dir):
    sentences = assignment_sentences(sst_dir / "datasetSentences.txt")
    words = list(dict.fromkeys(word for sentence in sentences for word in sentence))
    assert sst.words == words + ["UNK"]
    index = {word: i for i, word in enumerate(words)}
    assert sst.tokens.tolist() == [index[word] for sentence in sentences for word in sentence]
    assert np.diff(sst.offsets).tolist() == [len(sentence) for sentence in sentences]


def test_sst_read_in_small_chunks_is_identical(sst, sst_dir):
    chunked = read_sst(sst_dir, chunk_bytes=4096)
    assert chunked.words == sst.words
    assert np.array_equal(chunked.tokens, sst.tokens) and np.array_equal(chunked.offsets, sst.offsets)


def test_sst_split_follows_datasetsplit(sst, sst_dir):
    labels = [int(line.split(",")[1]) for line in (sst_dir / "datasetSplit.txt").read_text().splitlines()[1:]]
    assert sst.split.tolist() == labels


def test_fix_encoding_repairs_double_encoded_utf8(sst_dir):
    assert repair_double_encoding("clichÃ© AmÃ©lie naÃ¯ve plain") == "cliché Amélie naïve plain"
    assert repair_double_encoding("MollÃ\xa0 , Gil") == "Mollà , Gil"
    assert repair_double_encoding("Ã alone Â") == "Ã alone Â"  # not a sequence: left alone
    fixed = read_sst(sst_dir, fix_encoding=True)
    assert "cliché" in fixed.word2ind and "amélie" in fixed.word2ind and "mollà" in fixed.word2ind
    assert not any("Ã" in word or "ã©" in word for word in fixed.words)
    assert fixed.vocab_size < 19_539 and len(fixed.offsets) - 1 == 11_855


def test_train_on_train_counts_the_training_sentences(sst, sst_dir):
    held_out = read_sst(sst_dir, train_on="train")
    assert held_out.words == sst.words  # ids do not depend on train_on
    sentences = assignment_sentences(sst_dir / "datasetSentences.txt")
    counts = dict.fromkeys(sst.words, 0)
    for sentence, label in zip(sentences, sst.split):
        if label == 1:
            for word in sentence:
                counts[word] += 1
    counts["UNK"] = 1
    assert held_out.counts.tolist() == list(counts.values())
    assert (held_out.counts == 0).sum() > 0  # words seen only in dev/test keep an id with count 0
    tokens, offsets = held_out.training_sentences()
    assert len(offsets) - 1 == 8_544 and len(tokens) == held_out.counts.sum() - 1


# --- plain text -----------------------------------------------------------------------------------

def test_text_corpus_with_min_count(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\ufeffThe cat sat\r\n\nthe Dog sat\n  \nA cat\tran THE", encoding="utf-8")
    corpus = read_text(path, min_count=2)
    assert corpus.words == ["the", "cat", "sat", "UNK"]
    assert corpus.tokens.tolist() == [0, 1, 2, 0, 3, 2, 3, 1, 3, 0]
    assert corpus.offsets.tolist() == [0, 3, 6, 10]  # blank lines skipped, BOM and CRLF handled
    assert corpus.counts.tolist() == [3, 2, 2, 3 + 1]
    assert corpus.split.tolist() == [1, 1, 1]


@pytest.mark.parametrize("text", [
    "a\x1cb c\n  d\te\x0bf\x0c \n\x1f\nplain words\n",          # ASCII, with Python's odd separators
    "caf\u00e9\u00a0noir\u2003x\n\u3000\nna\u00efve  end \x85 z\n",  # Unicode whitespace
])
def test_text_splits_exactly_like_python_str_split(tmp_path, text):
    path = tmp_path / "ws.txt"
    path.write_text(text, encoding="utf-8")
    corpus = read_text(path)
    expected = [line.lower().split() for line in text.split("\n") if line.split()]
    got = [[corpus.words[i] for i in corpus.tokens[a:b]] for a, b in zip(corpus.offsets[:-1], corpus.offsets[1:])]
    assert got == expected


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"\n \n", "empty"),
    (b"same same\nsame\n", "fewer than 2 distinct words"),
    (b"good line\nbad \xff byte\n", "line 2: bytes that are not UTF-8"),
])
def test_bad_text_files_are_named_with_the_line(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusFileError, match=match) as caught:
        read_text(path)
    assert str(path) in str(caught.value)


def test_undecodable_bytes_in_a_later_chunk_give_the_right_line(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"one two three\n" * 5000 + b"caf\xe9\n")
    with pytest.raises(CorpusFileError, match="line 5001: bytes that are not UTF-8"):
        read_text(path, chunk_bytes=1000)


def test_bad_sst_files(tmp_path, sst_dir):
    (tmp_path / "datasetSentences.txt").write_text("sentence_index\tsentence\n1\tfine .\nno index here\n")
    (tmp_path / "datasetSplit.txt").write_text("sentence_index,splitset_label\n1,1\n2,1\n")
    with pytest.raises(CorpusFileError, match=r"datasetSentences.txt, line 3: expected '<sentence index>"):
        read_sst(tmp_path)
    (tmp_path / "datasetSentences.txt").write_text("sentence_index\tsentence\n1\tfine .\n2\tgood !\n")
    (tmp_path / "datasetSplit.txt").write_text("sentence_index,splitset_label\n1,1\n")
    with pytest.raises(CorpusFileError, match="sentence 2 has no split label"):
        read_sst(tmp_path)
    (tmp_path / "datasetSplit.txt").write_text("sentence_index,splitset_label\n1,1\n2,7\n")
    with pytest.raises(CorpusFileError, match="line 3: split label 7"):
        read_sst(tmp_path)


# --- the stage ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_stage_on_sst_writes_the_corpus_and_metrics(sst_dir, tmp_path):
    processed = tmp_path / "processed"
    result = run_tokenize(sst_dir, processed)
    assert result.returncode == 0, result.stderr
    assert "11,855 sentences, 19,539 word types" in result.stdout
    stats = json.loads((processed / "stats.json").read_text())
    # by default only the training sentences are counted (plus UNK's 1): dev and test are held out
    assert (stats["sentences"], stats["vocab_size"], stats["counted_tokens"]) == (11_855, 19_539, 163_567)
    assert [stats[s]["sentences"] for s in ("train", "dev", "test")] == [8_544, 1_101, 2_210]
    assert stats["counted_tokens"] == stats["train"]["tokens"] + 1
    headline = json.loads((tmp_path / "metrics" / "corpus.json").read_text())  # what DVC shows
    assert headline == {"vocab_size": 19_539, "counted_tokens": 163_567}
    corpus = load_corpus(processed)
    assert corpus.vocab_size == 19_539 and corpus.train_on == "train"


@pytest.mark.slow
def test_stage_train_on_all_and_fix_encoding(sst_dir, tmp_path):
    processed = tmp_path / "processed"
    result = run_tokenize(sst_dir, processed, "corpus.train_on=all", "corpus.fix_encoding=true")
    assert result.returncode == 0, result.stderr
    corpus = load_corpus(processed)
    assert corpus.train_on == "all" and "cliché" in corpus.word2ind
    stats = json.loads((processed / "stats.json").read_text())
    assert stats["counted_tokens"] == 227_246  # the assignment's setting: every sentence counted
    assert stats["counted_tokens"] == sum(stats[s]["tokens"] for s in ("train", "dev", "test")) + 1


@pytest.mark.slow
def test_stage_on_a_text_corpus(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "corpus.txt").write_text("a b c a\nb a d\ne a\n")
    processed = tmp_path / "processed"
    result = run_tokenize(raw, processed, "corpus=text", "corpus.min_count=2")
    assert result.returncode == 0, result.stderr
    corpus = load_corpus(processed)
    assert corpus.words == ["a", "b", "UNK"] and corpus.counts.tolist() == [4, 2, 3 + 1]


@pytest.mark.slow
def test_stage_bad_input_gives_one_line_and_no_output(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "corpus.txt").write_bytes(b"fine words\nbroken \xc3\x28 here\n")
    processed = tmp_path / "processed"
    result = run_tokenize(raw, processed, "corpus=text")
    assert_one_error_line(result, "corpus.txt, line 2", "not UTF-8")
    assert not processed.exists()

    missing = run_tokenize(tmp_path / "nothing", processed)
    assert_one_error_line(missing, "datasetSentences.txt does not exist", "download")

    bad_setting = run_tokenize(raw, processed, "corpus.min_count=0")
    assert_one_error_line(bad_setting, "corpus.min_count must be an integer >= 1")
