"""Corpus readers: the SST files as CS224n assignment 2 reads them, and plain UTF-8 text.

Both read the file in chunks of whole lines and tokenize each chunk with Arrow kernels (Unicode
whitespace split, the same set of separators as Python's `str.split()`, and a hash-based
dictionary encoding), so memory stays near the size of the int32 token array and time grows
linearly with the file (figures: README, `benchmarks/bench_tokenize.py`). Words get ids by
first occurrence across the whole file.

    corpus = read_sst("../shared/data/stanfordSentimentTreebank")   # 11,855 sentences, V = 19,539
    corpus = read_text("wiki.txt", min_count=5)                       # one sentence per line
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from w2v.corpus import DEV, TEST, TRAIN, Corpus, assemble_corpus

SENTENCES_FILE = "datasetSentences.txt"
SPLIT_FILE = "datasetSplit.txt"
CHUNK_BYTES = 1 << 22

# A UTF-8 multi-byte sequence whose bytes were decoded one by one as Latin-1 ("Ã©" for "é").
_DOUBLE_ENCODED = re.compile("[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


class CorpusFileError(ValueError):
    """A corpus file that cannot be read; the message names the file (and line where one applies)."""


def repair_double_encoding(text: str) -> str:
    """Undo UTF-8 that was decoded as Latin-1 and encoded again: "clichÃ©" -> "cliché"."""
    if text.isascii():
        return text

    def repair(match: re.Match) -> str:
        try:
            return match.group().encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            return match.group()

    return _DOUBLE_ENCODED.sub(repair, text)


def _line_chunks(path: Path, skip_header: bool, chunk_bytes: int) -> Iterator[tuple[int, bytes, int]]:
    """Yield (number of the chunk's first line, 1-based; bytes of whole lines; bytes read so far)."""
    first_line = 1
    with open(path, "rb") as file:
        if file.read(3) != b"\xef\xbb\xbf":  # a UTF-8 byte-order mark is not part of the text
            file.seek(0)
        if skip_header:
            file.readline()
            first_line += 1
        while chunk := file.read(chunk_bytes):
            chunk += file.readline()
            yield first_line, chunk, file.tell()
            first_line += chunk.count(b"\n")


def _decode(path: Path, first_line: int, chunk: bytes, fix_encoding: bool) -> str:
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as error:
        line = first_line + chunk.count(b"\n", 0, error.start)
        raise CorpusFileError(
            f"{path}, line {line}: bytes that are not UTF-8 ({error.reason} at {chunk[error.start:error.end]!r}); "
            f"convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8"
        ) from None
    if fix_encoding:
        text = repair_double_encoding(text)
    return text.lower()


class _TokenBuffer:
    """A growing int32 array that never holds two copies of the tokens.

    Its capacity is a guess refined as chunks arrive; ndarray.resize reallocates in place (large
    blocks are remapped, not copied), and untouched capacity costs no physical memory.
    """

    def __init__(self):
        self.array = np.empty(0, dtype=np.int32)
        self.size = 0

    def extend(self, values: np.ndarray, expected_total: int) -> None:
        need = self.size + len(values)
        if need > len(self.array):
            self.array.resize(max(need, expected_total, len(self.array) * 5 // 4), refcheck=False)
        self.array[self.size:need] = values
        self.size = need

    def finish(self) -> np.ndarray:
        self.array.resize(self.size, refcheck=False)
        array, self.array = self.array, np.empty(0, dtype=np.int32)
        return array


class _Tokenizer:
    """Whitespace-splits chunks of lines and maps words to ids by first occurrence across chunks."""

    def __init__(self, total_bytes: int):
        self.ids: dict[str, int] = {}
        self.tokens = _TokenBuffer()
        self.length_chunks: list[np.ndarray] = []
        self.total_bytes = total_bytes

    @staticmethod
    def split(text: str) -> tuple[pa.Array, np.ndarray]:
        """(words: Arrow string array, words per line int64) of a chunk of whole lines."""
        if text.endswith("\n"):
            text = text[:-1]
        lines = pc.split_pattern(pa.array([text], pa.large_string()), pattern="\n").flatten()
        # Arrow yields "" for leading/trailing whitespace and blank lines; Python's split() does not.
        lines = pc.utf8_trim_whitespace(lines)
        lines = pc.if_else(pc.equal(lines, ""), pa.scalar(None, lines.type), lines)
        # The ASCII kernel is faster (it need not decode UTF-8; figures in docs/design.md) but,
        # unlike Python, keeps \x1c-\x1f inside words.
        ascii_only = text.isascii() and not any(c in text for c in "\x1c\x1d\x1e\x1f")
        words = (pc.ascii_split_whitespace if ascii_only else pc.utf8_split_whitespace)(lines)
        lengths = pc.fill_null(pc.list_value_length(words), 0)
        return words.flatten(), lengths.to_numpy(zero_copy_only=False).astype(np.int64)

    def add(self, words: pa.Array, lengths: np.ndarray, bytes_read: int) -> None:
        """Append a chunk's sentences: `words` (n,) strings, `lengths` (s,) words per sentence;
        `bytes_read` of the file so far (to guess the final token count)."""
        encoded = pc.dictionary_encode(words)
        get_id, ids = self.ids.setdefault, self.ids
        chunk_to_global = np.fromiter(
            (get_id(word, len(ids)) for word in encoded.dictionary.to_pylist()),
            dtype=np.int32, count=len(encoded.dictionary),
        )
        expected = int((self.tokens.size + len(words)) * 1.05 * self.total_bytes / max(bytes_read, 1))
        self.tokens.extend(chunk_to_global[encoded.indices.to_numpy(zero_copy_only=False)], expected)
        self.length_chunks.append(lengths)

    def result(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(words by first occurrence, tokens int32 (N,), offsets int64 (S+1,))."""
        lengths = np.concatenate(self.length_chunks) if self.length_chunks else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        words = list(self.ids)
        self.ids.clear()  # the hash table is as large as the words themselves; free it now
        return words, self.tokens.finish(), offsets


def _check_vocabulary(path: Path, words: list[str], tokens: np.ndarray) -> None:
    if len(tokens) == 0:
        raise CorpusFileError(f"{path}: the corpus is empty (no words); point the corpus at a file with text")
    if len(words) < 2:
        raise CorpusFileError(f"{path}: the corpus has fewer than 2 distinct words ({words}); "
                              f"word vectors need a real vocabulary")


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise CorpusFileError(f"{path}: {what} not found")


def read_text(
    path: str | os.PathLike,
    fix_encoding: bool = False,
    min_count: int = 1,
    train_on: str = "all",
    chunk_bytes: int = CHUNK_BYTES,
) -> Corpus:
    """A corpus from a UTF-8 text file, one sentence per line (blank lines skipped).

    Words are split on Unicode whitespace and lowercased; those occurring fewer than `min_count`
    times map to UNK. Every sentence is a training sentence (split label 1), so `train_on` "all"
    and "train" select the same sentences.
    """
    path = Path(path)
    _require_file(path, "text corpus")
    tokenizer = _Tokenizer(path.stat().st_size)
    for first_line, chunk, bytes_read in _line_chunks(path, skip_header=False, chunk_bytes=chunk_bytes):
        words, lengths = tokenizer.split(_decode(path, first_line, chunk, fix_encoding))
        tokenizer.add(words, lengths[lengths > 0], bytes_read)
        del words, chunk  # free the chunk's buffers before the next one is read
    words, tokens, offsets = tokenizer.result()
    _check_vocabulary(path, words, tokens)
    return assemble_corpus(words, tokens, offsets, train_on=train_on, min_count=min_count)


def read_sst_sentences(
    path: str | os.PathLike, fix_encoding: bool = False, chunk_bytes: int = CHUNK_BYTES
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Read datasetSentences.txt as the assignment does: skip the header, drop the sentence index,
    split on whitespace, lowercase.

    Returns (words by first occurrence, tokens int32 (N,), offsets int64 (S+1,), sentence index
    int64 (S,) as written in the file).
    """
    path = Path(path)
    _require_file(path, SENTENCES_FILE)
    tokenizer = _Tokenizer(path.stat().st_size)
    sentence_ids = []
    for first_line, chunk, bytes_read in _line_chunks(path, skip_header=True, chunk_bytes=chunk_bytes):
        words, lengths = tokenizer.split(_decode(path, first_line, chunk, fix_encoding))
        starts = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        first_words = words.take(pa.array(starts[lengths > 0]))
        is_index = pc.match_substring_regex(first_words, r"^[0-9]+$").to_numpy(zero_copy_only=False)
        malformed = lengths == 0
        malformed[~malformed] = ~is_index
        if malformed.any():
            line = first_line + int(np.flatnonzero(malformed)[0])
            raise CorpusFileError(f"{path}, line {line}: expected '<sentence index><TAB><sentence>'; "
                                  f"is this the SST file datasetSentences.txt?")
        sentence_ids.append(pc.cast(first_words, pa.int64()).to_numpy())
        keep = np.ones(len(words), dtype=bool)
        keep[starts] = False
        tokenizer.add(words.filter(pa.array(keep)), lengths - 1, bytes_read)
    words, tokens, offsets = tokenizer.result()
    _check_vocabulary(path, words, tokens)
    return words, tokens, offsets, np.concatenate(sentence_ids)


def read_sst_split(path: str | os.PathLike, sentence_ids: np.ndarray) -> np.ndarray:
    """int8 (S,) labels (1 train, 2 test, 3 dev) of datasetSplit.txt, in the order of `sentence_ids`."""
    path = Path(path)
    _require_file(path, SPLIT_FILE)
    try:
        table = pd.read_csv(path, dtype="int64")
    except (ValueError, pd.errors.ParserError) as error:
        raise CorpusFileError(f"{path}: not a 'sentence_index,splitset_label' CSV ({error})") from None
    if list(table.columns) != ["sentence_index", "splitset_label"]:
        raise CorpusFileError(f"{path}, line 1: expected the header 'sentence_index,splitset_label'")
    labels = table["splitset_label"].to_numpy()
    bad = np.flatnonzero(~np.isin(labels, (TRAIN, TEST, DEV)))
    if len(bad):
        raise CorpusFileError(f"{path}, line {bad[0] + 2}: split label {labels[bad[0]]} is not 1, 2 or 3")
    by_index = pd.Series(labels, index=table["sentence_index"].to_numpy())
    if not by_index.index.is_unique:
        duplicated = by_index.index[by_index.index.duplicated()][0]
        raise CorpusFileError(f"{path}: sentence {duplicated} has more than one split label")
    split = by_index.reindex(sentence_ids).to_numpy()
    missing = np.flatnonzero(np.isnan(split)) if split.dtype.kind == "f" else []
    if len(missing):
        raise CorpusFileError(f"{path}: sentence {sentence_ids[missing[0]]} has no split label; "
                              f"use the datasetSplit.txt that came with datasetSentences.txt")
    return split.astype(np.int8)


def read_sst(
    directory: str | os.PathLike,
    fix_encoding: bool = False,
    train_on: str = "all",
    min_count: int = 1,
    chunk_bytes: int = CHUNK_BYTES,
) -> Corpus:
    """The SST corpus of a folder holding datasetSentences.txt and datasetSplit.txt.

    `fix_encoding` repairs the file's double-encoded UTF-8 before lowercasing (the assignment does
    not); `train_on="train"` counts only the official training sentences.
    """
    directory = Path(directory)
    words, tokens, offsets, sentence_ids = read_sst_sentences(directory / SENTENCES_FILE, fix_encoding, chunk_bytes)
    split = read_sst_split(directory / SPLIT_FILE, sentence_ids)
    return assemble_corpus(words, tokens, offsets, split, train_on=train_on, min_count=min_count)
