"""The CPU rasteriser's parallel sorts against numpy's stable sorts (their slow twins), and its scratch buffers."""

from __future__ import annotations

import numpy as np
import pytest

from ovseg_core.render.cpu.binning import bin_tiles
from ovseg_core.render.cpu.records import FOOT_WIDE, record_width
from ovseg_core.render.cpu.scratch import cache_aligned_empty
from ovseg_core.render.cpu.sorting import depth_order


@pytest.mark.parametrize("n_chunks", [1, 3, 8])
def test_depth_order_is_numpys_stable_argsort(n_chunks):
    rng = np.random.default_rng(0)
    depths = rng.uniform(0.1, 50.0, 5000).astype(np.float32)
    depths[rng.integers(0, 5000, 1500)] = np.float32(7.25)  # many ties: order by id must survive
    ids = np.sort(rng.choice(5000, 3001, replace=False)).astype(np.int32)
    order = depth_order(ids, depths, n_chunks)
    expected = ids[np.argsort(depths[ids], kind="stable")]
    np.testing.assert_array_equal(order, expected)


def _random_footprints(rng, m, tiles_x, tiles_y):
    """Tile rects ``[m, 4]`` and footprint codes ``[m]`` of every kind ``bin_tiles`` meets: up to 2 x 2
    tiles with any crossing mask, wide rects one tile thick (listed whole), and empty (culled) rects."""
    rects = np.zeros((m, 4), np.int32)
    foot = np.full(m, FOOT_WIDE, np.int32)
    for g in range(m):
        kind = rng.integers(0, 10)
        if kind < 7:
            w, h = rng.integers(1, 3, 2)
            x0, y0 = rng.integers(0, tiles_x - w + 1), rng.integers(0, tiles_y - h + 1)
            mask = 1 | (int(w == 2) << 1) | (int(h == 2) << 2)
            if w == 2 and h == 2:
                mask = int(rng.integers(0, 16))  # bin_tiles takes any subset of the four tiles
            foot[g] = ((y0 * tiles_x + x0) << 4) | mask
        elif kind < 9:
            long = rng.integers(3, 6)
            w, h = (long, 1) if kind == 7 else (1, long)
            x0, y0 = rng.integers(0, tiles_x - w + 1), rng.integers(0, tiles_y - h + 1)
        else:
            x0 = y0 = w = h = 0
        rects[g] = (x0, y0, x0 + w, y0 + h)
    return rects, foot


def _listed_tiles(g, rects, foot, tiles_x):
    """The tiles Gaussian g's footprint names, in the order ``bin_tiles`` visits them."""
    code = int(foot[g])
    if code == FOOT_WIDE:
        x0, y0, x1, y1 = rects[g]
        return [ty * tiles_x + tx for ty in range(y0, y1) for tx in range(x0, x1)]
    base = code >> 4
    return [base + (k & 1) + (k >> 1) * tiles_x for k in range(4) if (code >> k) & 1]


@pytest.mark.parametrize("n_chunks", [1, 4, 7])
def test_bin_tiles_is_a_stable_sort_by_tile(n_chunks):
    rng = np.random.default_rng(1)
    n, m, tiles_x, tiles_y = 3000, 997, 9, 5
    rects, foot = _random_footprints(rng, n, tiles_x, tiles_y)
    rec = np.zeros((n, record_width(3)), np.float32)  # read only by the ellipse test of wide rects
    order = rng.permutation(n)[:m].astype(np.int32)  # depth rank -> scene row
    offsets, gids = bin_tiles(order, foot, rects, rec, 16, tiles_x, tiles_x * tiles_y, n_chunks)
    owner, tiles = [], []
    for g in order:
        listed = _listed_tiles(g, rects, foot, tiles_x)
        owner += [g] * len(listed)
        tiles += listed
    owner, tiles = np.array(owner, np.int32), np.array(tiles, np.int64)
    perm = np.argsort(tiles, kind="stable")
    np.testing.assert_array_equal(gids, owner[perm])
    np.testing.assert_array_equal(
        offsets, np.concatenate([[0], np.cumsum(np.bincount(tiles, minlength=tiles_x * tiles_y))])
    )


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("size", [1, 17, 100_003, 1_000_003])  # the last on huge pages
def test_scratch_buffers_start_on_a_cache_line(dtype, size):
    buf = cache_aligned_empty(size, dtype)
    assert buf.dtype == dtype and buf.shape == (size,)
    assert buf.ctypes.data % 64 == 0
    buf[:] = 1  # the whole view is writable memory of its own
    assert int(buf.sum()) == size
