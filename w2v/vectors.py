"""Word vectors on disk: the word2vec text format (what gensim and most tools read) and numpy.

    write_word2vec_text(path, words, vectors)      # "V d" header, then "word x1 ... xd" per line
    words, vectors = read_word2vec_text(path)
    save_vectors(folder, words, center_vectors, outside_vectors)   # vectors.npy, vocab.txt, outside_vectors.npy
    words, center_vectors, outside_vectors = load_vectors(folder)

The text format stores 9 significant digits, enough for float32 (what gensim loads) to round-trip;
`vectors.npy` keeps the exact values, in the dtype they were trained in (float64, or float32).
Every file is written atomically.
"""
import io
from pathlib import Path

import numpy as np

from w2v.atomic import atomic_path, atomic_write_text

VECTORS_TXT = "vectors.txt"
VECTORS_NPY = "vectors.npy"
VOCAB_TXT = "vocab.txt"
OUTSIDE_NPY = "outside_vectors.npy"


def _check_words(words, vectors: np.ndarray) -> None:
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (V, d) array, got shape {vectors.shape}")
    if len(words) != vectors.shape[0]:
        raise ValueError(f"words has {len(words)} entries but vectors has {vectors.shape[0]} rows")
    for word in words:
        # a word with whitespace would shift the columns of its line; an empty one would vanish
        if not word or len(word.split()) != 1 or word.split()[0] != word:
            raise ValueError(f"words: {word!r} is empty or contains whitespace, which the text format cannot store")


def write_word2vec_text(path: str | Path, words: list[str], vectors: np.ndarray) -> None:
    """Write `vectors` (V, d) with row i labelled `words[i]` in word2vec text format (UTF-8)."""
    vectors = np.asarray(vectors)
    _check_words(words, vectors)
    rows = io.StringIO()
    np.savetxt(rows, vectors, fmt="%.9g", delimiter=" ")
    lines = rows.getvalue().splitlines()
    body = "\n".join(f"{word} {line}" for word, line in zip(words, lines))
    atomic_write_text(path, f"{vectors.shape[0]} {vectors.shape[1]}\n{body}\n")


def read_word2vec_text(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read a word2vec text file: (words, vectors float64 (V, d)); ValueError on a malformed file."""
    path = Path(path)
    with path.open(encoding="utf-8") as file:
        header = file.readline().split()
        if len(header) != 2 or not all(part.isdigit() for part in header):
            raise ValueError(f"{path}: the first line must be '<vocabulary size> <dimension>', got {' '.join(header)!r}")
        size, dim = int(header[0]), int(header[1])
        words, rows = [], []
        for line_number, line in enumerate(file, start=2):
            parts = line.rstrip("\n").split(" ")
            if len(parts) != dim + 1:
                raise ValueError(f"{path}, line {line_number}: expected a word and {dim} numbers, got {len(parts)} fields")
            words.append(parts[0])
            rows.append(parts[1:])
    if len(words) != size:
        raise ValueError(f"{path}: the header announces {size} words but the file has {len(words)} (truncated?)")
    return words, np.array(rows, dtype=np.float64).reshape(size, dim)


def save_vectors(folder: str | Path, words: list[str], center_vectors: np.ndarray,
                 outside_vectors: np.ndarray | None = None) -> None:
    """Write vectors.npy (center vectors, (V, d)), vocab.txt (one word per line, row order) and,
    when given, outside_vectors.npy into `folder`."""
    folder = Path(folder)
    _check_words(words, np.asarray(center_vectors))
    with atomic_path(folder / VECTORS_NPY, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(center_vectors))
    atomic_write_text(folder / VOCAB_TXT, "".join(f"{word}\n" for word in words))
    if outside_vectors is not None:
        with atomic_path(folder / OUTSIDE_NPY, suffix=".npy") as tmp:
            np.save(tmp, np.asarray(outside_vectors))


def load_vectors(folder: str | Path) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Read what save_vectors wrote: (words, center_vectors, outside_vectors or None)."""
    folder = Path(folder)
    words = (folder / VOCAB_TXT).read_text(encoding="utf-8").splitlines()
    center_vectors = np.load(folder / VECTORS_NPY)
    outside = folder / OUTSIDE_NPY
    outside_vectors = np.load(outside) if outside.is_file() else None
    if len(words) != center_vectors.shape[0]:
        raise ValueError(f"{folder}: vocab.txt has {len(words)} words but vectors.npy has {center_vectors.shape[0]} rows")
    return words, center_vectors, outside_vectors
