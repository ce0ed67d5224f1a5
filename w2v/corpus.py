"""The tokenized corpus: vocabulary, counts, the token-id stream and sentence boundaries.

A `Corpus` is what the trainer consumes. It is built from tokenized sentences (`build_corpus`) or
read from text files (`w2v.readers`), and stored as the tokenize stage's output folder:

    vocab.parquet   id int32, word str, count int64, keep_prob float64, neg_weight float64
    tokens.npy      int32 (N,)   token ids of all sentences, concatenated
    offsets.npy     int64 (S+1,) sentence s is tokens[offsets[s]:offsets[s+1]]
    split.npy       int8 (S,)    SST labels: 1 train, 2 test, 3 dev (all 1 for a plain-text corpus)

Conventions of CS224n assignment 2: ids by first occurrence, the word "UNK" appended last with
count 1 (plus the tokens mapped to it), counts over the sentences `train_on` selects.
"""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from w2v.atomic import atomic_path

UNK = "UNK"
TRAIN, TEST, DEV = 1, 2, 3
SPLIT_LABELS = {"train": TRAIN, "test": TEST, "dev": DEV}
TRAIN_ON = ("all", "train")
SUBSAMPLING_THRESHOLD = 1e-5  # t = 1e-5 * total count, as in Mikolov et al. (2013)
VOCAB_FILE, TOKENS_FILE, OFFSETS_FILE, SPLIT_FILE = "vocab.parquet", "tokens.npy", "offsets.npy", "split.npy"
_TRAIN_ON_METADATA_KEY = b"w2v.train_on"
_SETTINGS_METADATA_KEY = b"w2v.settings"  # how the corpus was read (the caller's JSON-able dict)


@dataclass(frozen=True, eq=False)
class Corpus:
    """A tokenized corpus. Shapes: V words, N tokens, S sentences.

    words   list[str] (V,)  id -> word; ids by first occurrence, "UNK" last
    counts  int64 (V,)      occurrences in the sentences `train_on` selects (UNK: 1 + its tokens)
    tokens  int32 (N,)      ids of all sentences concatenated
    offsets int64 (S+1,)    sentence s = tokens[offsets[s]:offsets[s+1]]
    split   int8 (S,)       1 train, 2 test, 3 dev
    train_on "all" | "train" which sentences the counts (and training) use
    """

    words: list[str]
    counts: np.ndarray
    tokens: np.ndarray
    offsets: np.ndarray
    split: np.ndarray
    train_on: str = "all"

    def __post_init__(self):
        V, S = len(self.words), len(self.split)
        if self.train_on not in TRAIN_ON:
            raise ValueError(f"train_on must be one of {TRAIN_ON}, got {self.train_on!r}")
        if self.counts.shape != (V,) or self.counts.dtype != np.int64:
            raise ValueError(f"counts must be int64 of shape ({V},), got {self.counts.dtype} {self.counts.shape}")
        if self.tokens.ndim != 1 or self.tokens.dtype != np.int32:
            raise ValueError(f"tokens must be a 1-d int32 array, got {self.tokens.dtype} {self.tokens.shape}")
        if self.offsets.shape != (S + 1,) or self.offsets.dtype != np.int64:
            raise ValueError(f"offsets must be int64 of shape ({S + 1},), got {self.offsets.dtype} {self.offsets.shape}")
        if self.split.dtype != np.int8:
            raise ValueError(f"split must be int8, got {self.split.dtype}")
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.tokens) or (np.diff(self.offsets) < 0).any():
            raise ValueError("offsets must rise from 0 to len(tokens)")
        if len(self.tokens) and (self.tokens.min() < 0 or self.tokens.max() >= V):
            raise ValueError(f"token ids must lie in 0..{V - 1}")

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @functools.cached_property
    def word2ind(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}

    @property
    def keep_prob(self) -> np.ndarray:
        """float64 (V,): probability of keeping a token in the assignment's subsampling
        (keep_probabilities at SUBSAMPLING_THRESHOLD)."""
        return keep_probabilities(self.counts, SUBSAMPLING_THRESHOLD)

    @property
    def neg_weight(self) -> np.ndarray:
        """float64 (V,): unnormalised negative-sampling weights, count ** 0.75."""
        return self.counts.astype(np.float64) ** 0.75

    @property
    def sentence_lengths(self) -> np.ndarray:
        """int64 (S,): tokens per sentence."""
        return np.diff(self.offsets)

    def training_sentences(self) -> tuple[np.ndarray, np.ndarray]:
        """(tokens int32, offsets int64) of the sentences `train_on` selects."""
        return self.sentences_of(self.train_on)

    def sentences_of(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """(tokens int32 (n,), offsets int64 (s+1,)) of the "train", "dev", "test" or "all" sentences."""
        if which == "all":
            return self.tokens, self.offsets
        if which not in SPLIT_LABELS:
            raise ValueError(f"which must be one of 'train', 'dev', 'test', 'all', got {which!r}")
        return _select_sentences(self.tokens, self.offsets, self.split == SPLIT_LABELS[which])


def keep_probabilities(counts: np.ndarray, threshold: float) -> np.ndarray:
    """float64 (V,): the probability of keeping an occurrence of each word when subsampling,
    min(1, sqrt(t / count)) with t = threshold x the total count (Mikolov et al., 2013, as in
    CS224n's utils/treebank.py); threshold 0 keeps every occurrence. counts: int (V,)."""
    counts = np.asarray(counts, dtype=np.float64)
    if threshold == 0:
        return np.ones_like(counts)
    with np.errstate(divide="ignore"):
        keep = np.minimum(1.0, np.sqrt(threshold * counts.sum() / counts))
    keep[counts == 0] = 1.0
    return keep


def _select_sentences(tokens, offsets, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tokens and offsets of the sentences where `selected` (bool (S,)) is true."""
    lengths = np.diff(offsets)
    new_offsets = np.zeros(int(selected.sum()) + 1, dtype=np.int64)
    np.cumsum(lengths[selected], out=new_offsets[1:])
    return tokens[np.repeat(selected, lengths)], new_offsets


def count_ids(tokens: np.ndarray, minlength: int, block: int = 1 << 20) -> np.ndarray:
    """int64 (minlength,) occurrences of each id, in blocks: np.bincount alone would first copy
    all of an int32 `tokens` to int64."""
    counts = np.zeros(minlength, dtype=np.int64)
    for start in range(0, len(tokens), block):
        counts += np.bincount(tokens[start:start + block], minlength=minlength)
    return counts


def assemble_corpus(
    words: Sequence[str],
    tokens: np.ndarray,
    offsets: np.ndarray,
    split: np.ndarray | None = None,
    train_on: str = "all",
    min_count: int = 1,
) -> Corpus:
    """Finish a corpus from ids by first occurrence: apply `min_count`, count, append UNK.

    words    (W,) distinct words in order of first occurrence (without UNK)
    tokens   int32 (N,) ids into `words`, or W for a token that is already UNK; the corpus takes
             the array over (with min_count > 1 it is renumbered in place)
    offsets  int (S+1,) sentence boundaries; split int (S,) labels (None: all train)

    Words whose count over all sentences is below `min_count` map to UNK; the kept words keep their
    order of first occurrence. Counts are then taken over the sentences `train_on` selects, so a word
    seen only in held-out sentences keeps its id with count 0.
    """
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on must be one of {TRAIN_ON}, got {train_on!r}")
    if not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
    offsets = np.asarray(offsets, dtype=np.int64)
    n_sentences = len(offsets) - 1
    split = np.full(n_sentences, TRAIN, np.int8) if split is None else np.asarray(split, dtype=np.int8)
    if split.shape != (n_sentences,):
        raise ValueError(f"split must have one label per sentence ({n_sentences}), got shape {split.shape}")
    if not np.isin(split, (TRAIN, TEST, DEV)).all():
        raise ValueError("split labels must be 1 (train), 2 (test) or 3 (dev)")
    n_words = len(words)
    tokens = np.asarray(tokens, dtype=np.int32)

    if min_count > 1:
        kept = count_ids(tokens, n_words + 1)[:n_words] >= min_count
        n_kept = int(kept.sum())
        new_id = np.full(n_words + 1, n_kept, dtype=np.int32)  # rare words and UNK -> the new UNK id
        new_id[:n_words][kept] = np.arange(n_kept, dtype=np.int32)
        for start in range(0, len(tokens), 1 << 22):
            block = tokens[start:start + (1 << 22)]
            block[...] = new_id[block]
        words = [word for word, keep in zip(words, kept) if keep]
        n_words = n_kept

    if train_on == "all" or (split == TRAIN).all():
        counted = tokens
    else:
        counted = tokens[np.repeat(split == TRAIN, np.diff(offsets))]
    counts = count_ids(counted, n_words + 1)
    counts[n_words] += 1  # UNK counted once, as the assignment does
    return Corpus(list(words) + [UNK], counts, tokens, offsets, split, train_on)


def build_corpus(
    sentences: Iterable[Sequence[str]],
    split: Sequence[int] | None = None,
    train_on: str = "all",
    min_count: int = 1,
) -> Corpus:
    """A corpus from tokenized sentences (already lowercased as wanted); ids by first occurrence.

    `split` gives one label per sentence (1 train, 2 test, 3 dev; None: all train); the word "UNK"
    in a sentence is the UNK token.
    """
    ids: dict[str, int] = {}
    tokens: list[int] = []
    lengths: list[int] = [0]
    for sentence in sentences:
        if isinstance(sentence, str):
            raise ValueError("sentences must be sequences of words, got a string (split it first)")
        for word in sentence:
            if word != UNK:
                tokens.append(ids.setdefault(word, len(ids)))
            else:
                tokens.append(-1)
        lengths.append(len(sentence))
    token_array = np.array(tokens, dtype=np.int32)
    token_array[token_array == -1] = len(ids)
    offsets = np.cumsum(lengths, dtype=np.int64)
    return assemble_corpus(list(ids), token_array, offsets, None if split is None else np.asarray(split),
                           train_on=train_on, min_count=min_count)


def with_min_count(corpus: Corpus, min_count: int) -> Corpus:
    """The corpus as tokenizing it with `min_count` would have given it: words whose count over all
    sentences is below min_count become UNK, the others keep their order of first occurrence and
    the counts are taken again. For a corpus built with a smaller min_count (a larger one cannot be
    undone: those words are UNK already); the corpus itself is left as it is."""
    if corpus.words[-1] != UNK:
        raise ValueError(f"the corpus's last word must be {UNK}, got {corpus.words[-1]!r}")
    return assemble_corpus(corpus.words[:-1], corpus.tokens.copy(), corpus.offsets, corpus.split,
                           train_on=corpus.train_on, min_count=min_count)


def vocabulary_table(corpus: Corpus) -> pd.DataFrame:
    """The vocabulary as a table: id, word, count, keep_prob, neg_weight (one row per word)."""
    return pd.DataFrame({
        "id": np.arange(corpus.vocab_size, dtype=np.int32),
        "word": pd.array(corpus.words, dtype="string[pyarrow]") if corpus.words else [],
        "count": corpus.counts,
        "keep_prob": corpus.keep_prob,
        "neg_weight": corpus.neg_weight,
    })


def corpus_stats(corpus: Corpus) -> dict:
    """Sentence, token and type counts, overall and per split (JSON-able; the DVC metrics)."""
    lengths = corpus.sentence_lengths
    stats = {
        "train_on": corpus.train_on,
        "vocab_size": corpus.vocab_size,
        "sentences": int(len(lengths)),
        "tokens": int(len(corpus.tokens)),
        "counted_tokens": int(corpus.counts.sum()),
        "unk_tokens": int(count_ids(corpus.tokens, corpus.vocab_size)[-1]),
    }
    for name, label in SPLIT_LABELS.items():
        selected = corpus.split == label
        if selected.all():  # a plain-text corpus: no copy of the token array
            tokens = corpus.tokens
        else:
            tokens = corpus.tokens[np.repeat(selected, lengths)]
        types = np.count_nonzero(count_ids(tokens, corpus.vocab_size))
        stats[name] = {"sentences": int(selected.sum()), "tokens": int(len(tokens)), "types": int(types)}
    return stats


def save_corpus(corpus: Corpus, directory: str | os.PathLike, settings: dict | None = None) -> None:
    """Write vocab.parquet, tokens.npy, offsets.npy and split.npy into `directory`, each atomically.

    settings: JSON-able, how the corpus was read (e.g. {"min_count": 5}); stored in vocab.parquet's
    metadata and returned by `corpus_settings`, so a consumer can tell what it is reading.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(vocabulary_table(corpus), preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[_TRAIN_ON_METADATA_KEY] = json.dumps(corpus.train_on).encode()
    if settings is not None:
        metadata[_SETTINGS_METADATA_KEY] = json.dumps(settings, sort_keys=True).encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(directory / VOCAB_FILE) as tmp:
        pq.write_table(table, tmp)
    for name, array in ((TOKENS_FILE, corpus.tokens), (OFFSETS_FILE, corpus.offsets), (SPLIT_FILE, corpus.split)):
        with atomic_path(directory / name, suffix=".npy") as tmp:
            np.save(tmp, array)


def corpus_settings(directory: str | os.PathLike) -> dict | None:
    """The `settings` save_corpus stored in `directory`, plus train_on; None when it stored none."""
    metadata = pq.read_schema(Path(directory) / VOCAB_FILE).metadata or {}
    if _SETTINGS_METADATA_KEY not in metadata:
        return None
    return {**json.loads(metadata[_SETTINGS_METADATA_KEY]),
            "train_on": json.loads(metadata.get(_TRAIN_ON_METADATA_KEY, b'"all"'))}


def load_corpus(directory: str | os.PathLike) -> Corpus:
    """Read a corpus written by `save_corpus` (the tokenize stage's output folder)."""
    directory = Path(directory)
    for name in (VOCAB_FILE, TOKENS_FILE, OFFSETS_FILE, SPLIT_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name} is missing: run the tokenize stage first")
    table = pq.read_table(directory / VOCAB_FILE)
    metadata = table.schema.metadata or {}
    train_on = json.loads(metadata.get(_TRAIN_ON_METADATA_KEY, b'"all"'))
    ids = table.column("id").to_numpy()
    if not np.array_equal(ids, np.arange(len(ids))):
        raise ValueError(f"{directory / VOCAB_FILE}: ids must be 0..V-1 in order")
    return Corpus(
        words=table.column("word").to_pylist(),
        counts=table.column("count").to_numpy().astype(np.int64, copy=False),
        tokens=np.load(directory / TOKENS_FILE),
        offsets=np.load(directory / OFFSETS_FILE),
        split=np.load(directory / SPLIT_FILE),
        train_on=train_on,
    )
