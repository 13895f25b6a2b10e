"""Binning stage: every (tile, Gaussian) pair, grouped by tile in depth order."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ovseg_core.render.cpu.records import CA, CB, CC, FOOT_WIDE, SMAX, U, V


@njit(inline="always")
def _ellipse_frame(conic_a, conic_b, conic_c, smax):
    """Row-invariant terms of the ellipse sigma <= smax, i.e. q(dx, dy) <= 2 smax with sigma = q / 2:
    (2 smax, conic determinant, y half-extent, y offset of the rightmost point)."""
    det = conic_a * conic_c - conic_b * conic_b
    r2 = 2.0 * smax
    # covariance = conic^-1 = [[c, -b], [-b, a]] / det
    hy = math.sqrt(r2 * conic_a / det)
    ystar = (-conic_b / det) * math.sqrt(r2 * det / conic_c)
    return r2, det, hy, ystar


@njit(inline="always")
def _row_tile_span(u, v, conic_a, conic_b, r2, det, hy, ystar, ya, yb, tile_size):
    """Tile columns [t0, t1] that the ellipse crosses inside the band ya <= y <= yb; t1 < t0 if it misses."""
    lo, hi = max(ya - v, -hy), min(yb - v, hy)
    if lo > hi:
        return 0, -1
    # The row span's right end is concave in dy, its left end convex: extremes at the clamped optimum
    # (the rightmost point sits at dy = ystar, the leftmost at -ystar).
    dyr = min(max(ystar, lo), hi)
    dyl = min(max(-ystar, lo), hi)
    xr = u + (-conic_b * dyr + math.sqrt(max(r2 * conic_a - det * dyr * dyr, 0.0))) / conic_a
    xl = u + (-conic_b * dyl - math.sqrt(max(r2 * conic_a - det * dyl * dyl, 0.0))) / conic_a
    return int(math.floor(xl / tile_size)), int(math.floor(xr / tile_size))


@njit(inline="always")
def _needs_ellipse_test(rects, g):
    """A rect one tile wide or tall is kept whole: the test could drop little there."""
    return rects[g, 2] - rects[g, 0] > 1 and rects[g, 3] - rects[g, 1] > 1


@njit(cache=True)
def _visit_tiles(g, rects, rec, tile_size, tiles_x, hist, c, gids, scatter):
    """Every tile Gaussian ``g`` (scene row) really crosses (exact ellipse-tile test): count it in
    ``hist[c]``, or (``scatter``) put ``g`` at chunk c's cursor of that tile. A tile's band is its pixel
    centres widened by half a pixel, so float rounding never drops a pixel."""
    if not _needs_ellipse_test(rects, g):
        for ty in range(rects[g, 1], rects[g, 3]):
            for tx in range(rects[g, 0], rects[g, 2]):
                _visit(ty * tiles_x + tx, g, hist, c, gids, scatter)
        return
    ca, cb = np.float64(rec[g, CA]), np.float64(rec[g, CB])
    r2, det, hy, ystar = _ellipse_frame(ca, cb, np.float64(rec[g, CC]), np.float64(rec[g, SMAX]))
    for ty in range(rects[g, 1], rects[g, 3]):
        t0, t1 = _row_tile_span(
            rec[g, U], rec[g, V], ca, cb, r2, det, hy, ystar, ty * tile_size, (ty + 1) * tile_size, tile_size
        )
        for tx in range(max(t0, rects[g, 0]), min(t1 + 1, rects[g, 2])):
            _visit(ty * tiles_x + tx, g, hist, c, gids, scatter)


@njit(inline="always")
def _visit(tile, g, hist, c, gids, scatter):
    if scatter:
        e = hist[c, tile]
        hist[c, tile] = e + 1
        gids[e] = g
    else:
        hist[c, tile] += 1


@njit(inline="always")
def _visit_footprint(code, g, tiles_x, hist, c, gids, trash, scatter):
    """``_visit_tiles`` for a footprint code, branch-free: every one of the four tiles is visited with
    weight 0 or 1 (hist has ``tiles_x + 1`` spare columns for the tiles past the edge); a Gaussian's
    weight-0 scatter goes to this chunk's ``trash`` slot."""
    base = code >> 4
    for k in range(4):
        tile = base + (k & 1) + (k >> 1) * tiles_x
        bit = (code >> k) & 1
        if scatter:
            e = hist[c, tile]
            gids[e if bit else trash] = g
            hist[c, tile] = e + bit
        else:
            hist[c, tile] += bit


def bin_tiles(order, foot, rects, rec, tile_size, tiles_x, num_tiles, n_chunks):
    """Every (tile, Gaussian) pair, grouped by tile and depth-ordered within it: a stable counting sort
    by tile of the Gaussians in depth order (``order``: scene rows) over the tiles each really crosses
    (``foot``: ``footprint`` codes; wide rects are listed from ``rects`` and ``rec``).

    Parallel over ``n_chunks`` contiguous runs of ``order``: each counts its pairs per tile
    (``_bin_count``), then scatters them from its own cursor per tile (``_bin_scatter``; chunk order
    is kept, so the sort stays stable). The tiles are visited twice rather than stored: writing and
    re-reading a pair list (and gathering rects into depth order to place it) cost more than reading
    the footprint again. Only scene rows move: compositing reads records through them with a
    prefetch ahead. Its arrays are fresh each frame: reused ones made binning 0.8 ms slower at 300k
    (measured, not understood).

    Returns (offsets ``[num_tiles + 1]``, scene rows ``[num_pairs]``).
    """
    codes = np.empty(order.shape[0], np.int32)
    hist = np.empty((n_chunks, num_tiles + tiles_x + 1), np.int64)
    offsets = _bin_count(order, foot, rects, rec, tile_size, tiles_x, num_tiles, codes, hist)
    n_pairs = int(offsets[num_tiles])
    gids = np.empty(n_pairs + n_chunks, np.int32)  # one trash slot per chunk past the pairs
    _bin_scatter(order, codes, rects, rec, tile_size, tiles_x, hist, n_pairs, gids)
    return offsets, gids[:n_pairs]


@njit(parallel=True, cache=True)
def _bin_count(order, foot, rects, rec, tile_size, tiles_x, num_tiles, codes, hist):
    """Footprint codes in depth order into ``codes`` ``[m]``, pairs per (chunk, tile) counted, then
    turned into each chunk's cursor per tile in ``hist``; returns the tiles' offsets ``[num_tiles + 1]``.
    The codes are gathered in a loop of their own: read at random inside the counting loop, their
    latency was not hidden (its read-modify-writes of ``hist`` held the loop up), and it ran 0.6 ms
    longer at 300k."""
    n_chunks = hist.shape[0]
    m = order.shape[0]
    step = (m + n_chunks - 1) // n_chunks
    no_gids = np.empty(0, np.int32)
    for j in prange(m):
        codes[j] = foot[order[j]]
    for c in prange(n_chunks):
        hist[c, :] = 0
        for j in range(min(c * step, m), min((c + 1) * step, m)):
            code = codes[j]
            if code != FOOT_WIDE:
                _visit_footprint(code, 0, tiles_x, hist, c, no_gids, 0, False)
            else:
                _visit_tiles(order[j], rects, rec, tile_size, tiles_x, hist, c, no_gids, False)
    offsets = np.zeros(num_tiles + 1, np.int64)
    for tile in range(num_tiles):
        run = offsets[tile]
        for c in range(n_chunks):
            count = hist[c, tile]
            hist[c, tile] = run  # becomes chunk c's cursor into this tile
            run += count
        offsets[tile + 1] = run
    return offsets


@njit(parallel=True, cache=True)
def _bin_scatter(order, codes, rects, rec, tile_size, tiles_x, hist, n_pairs, gids):
    """Each chunk puts its Gaussians' scene rows at its cursors (``hist`` from ``_bin_count``); gids
    ``[n_pairs + n_chunks]`` ends with one trash slot per chunk for the weight-0 visits."""
    n_chunks = hist.shape[0]
    m = order.shape[0]
    step = (m + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for j in range(min(c * step, m), min((c + 1) * step, m)):
            g = order[j]
            code = codes[j]
            if code != FOOT_WIDE:
                _visit_footprint(code, g, tiles_x, hist, c, gids, n_pairs + c, True)
            else:
                _visit_tiles(g, rects, rec, tile_size, tiles_x, hist, c, gids, True)


# Compositing state of one tile, in one float32 array of segments _SEG apart: LLVM then sees loads and
