"""The CPU rasteriser's parallel sorts against numpy's stable sorts (their slow twins), and its scratch buffers."""

from __future__ import annotations

import numpy as np
import pytest

from ovseg_core.render import _cpu_kernels as kernels
from ovseg_core.render.cpu import _cache_aligned_empty


@pytest.mark.parametrize("n_chunks", [1, 3, 8])
def test_depth_order_is_numpys_stable_argsort(n_chunks):
    rng = np.random.default_rng(0)
    depths = rng.uniform(0.1, 50.0, 5000).astype(np.float32)
    depths[rng.integers(0, 5000, 1500)] = np.float32(7.25)  # many ties: order by id must survive
    ids = np.sort(rng.choice(5000, 3001, replace=False)).astype(np.int32)
    order = kernels.depth_order(ids, depths, n_chunks)
    expected = ids[np.argsort(depths[ids], kind="stable")]
    np.testing.assert_array_equal(order, expected)


@pytest.mark.parametrize("n_chunks", [1, 4, 7])
def test_bin_pairs_is_a_stable_sort_by_tile(n_chunks):
    rng = np.random.default_rng(1)
    m, num_tiles = 997, 37
    counts = rng.integers(0, 6, m)
    # each Gaussian's slot has room to spare, as list_tiles leaves it
    starts = np.concatenate([[0], np.cumsum(counts + 2)]).astype(np.int64)
    pair_tiles = rng.integers(0, num_tiles, int(starts[-1])).astype(np.int32)
    order = rng.permutation(5 * m)[:m].astype(np.int32)  # depth rank -> scene row
    offsets, gids = kernels.bin_pairs(starts, counts, pair_tiles, num_tiles, n_chunks, order)
    owner = np.repeat(np.arange(m), counts)
    tiles = np.concatenate([pair_tiles[starts[g] : starts[g] + counts[g]] for g in range(m)])
    perm = np.argsort(tiles, kind="stable")
    np.testing.assert_array_equal(gids, order[owner[perm]])
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(np.bincount(tiles, minlength=num_tiles))]))


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("size", [1, 17, 100_003])
def test_scratch_buffers_start_on_a_cache_line(dtype, size):
    buf = _cache_aligned_empty(size, dtype)
    assert buf.dtype == dtype and buf.shape == (size,)
    assert buf.ctypes.data % 64 == 0
    buf[:] = 1  # the whole view is writable memory of its own
    assert int(buf.sum()) == size
