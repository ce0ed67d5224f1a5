"""prefetch_row: compiles for the vectors' dtypes and widths, changes no value, refuses what is not a row."""
import numba
import numpy as np
import pytest
from numba import njit

from w2v.engines.prefetch import prefetch_row


@njit
def gather_rows_with_prefetch(vectors, rows):
    """vectors[rows], prefetching each row before copying it."""
    out = np.empty((len(rows), vectors.shape[1]), vectors.dtype)
    for n in range(len(rows)):
        prefetch_row(vectors, rows[n])
        for i in range(vectors.shape[1]):
            out[n, i] = vectors[rows[n], i]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("dim", [1, 10, 17, 100])
def test_prefetch_leaves_the_values_as_they_are(dtype, dim):
    vectors = (100 * np.random.default_rng(dim).normal(size=(5, dim))).astype(dtype)
    before = vectors.copy()
    rows = np.array([0, 4, 2, 4], np.int64)  # the last row too: its lines end at the array's end
    assert np.array_equal(gather_rows_with_prefetch(vectors, rows), before[rows])
    assert np.array_equal(vectors, before)


@njit
def prefetch_only(vectors, row):
    prefetch_row(vectors, row)


def test_prefetch_refuses_anything_but_a_2d_array_and_an_integer_row():
    prefetch_only(np.zeros((5, 3)), 4)
    prefetch_only(np.zeros((5, 3), np.float32), np.int32(0))
    for vectors, row in ((np.zeros(5), 0), (np.zeros((2, 5, 3)), 0), (np.zeros((5, 3)), 0.5)):
        with pytest.raises(numba.core.errors.TypingError, match="prefetch_row"):
            prefetch_only(vectors, row)
