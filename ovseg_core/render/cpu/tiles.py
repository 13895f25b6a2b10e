"""Tile kernels and the parallel loop over tiles that runs them.

A tile kernel is a plain function per tile: numba compiles it far tighter than the same code inlined in
a prange body. ``tile_kernel`` builds one from ``tile_body`` per variant (RGB only; second pass
channel-major; second pass pixel-major): even untaken, the second pass's code slowed the RGB lane loop
by a third, and the pixel-major blend the 1-channel one by a fifth. The variant's flags are closure
constants, so numba prunes the code a variant does not take.

fastmath is safe here: inputs are finite (culled Gaussians never reach a tile) and no test depends on
NaN/Inf semantics; it lets LLVM vectorise and fuse the per-pixel arithmetic.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ovseg_core.render.cpu.compositing import FEAT_PIXEL_MAJOR, LANES, STATE_SIZE, tile_body


def tile_kernel(second_pass: bool, pixel_major: bool):
    """The numba kernel compositing one tile with ``tile_body``'s ``second_pass`` and ``pixel_major``
    fixed; called as ``kernel(tile, *tile_args)`` (see ``rasterize``)."""

    @njit(cache=True, fastmath=True)
    def kernel(
        tile, offsets, gids, rec, features,
        width, height, tile_size, tiles_x, background,
        out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
        st, extra, acc_feat, ids, ws, row_left,
    ):  # fmt: skip
        tile_body(
            tile, offsets, gids, rec, features,
            width, height, tile_size, tiles_x, background,
            out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
            st, extra, acc_feat, ids, ws, row_left, second_pass, pixel_major,
        )  # fmt: skip

    return kernel


_TILE_RGB = tile_kernel(second_pass=False, pixel_major=False)
"""RGB (up to three channels) with no features and no top-K contributions."""
_TILE_FULL = tile_kernel(second_pass=True, pixel_major=False)
"""Extra channels, fewer than ``FEAT_PIXEL_MAJOR`` feature channels or top-K contributions."""
_TILE_WIDE = tile_kernel(second_pass=True, pixel_major=True)
"""``FEAT_PIXEL_MAJOR`` feature channels or more."""


@njit(parallel=True, cache=True)
def rasterize(
    offsets, gids, todo, rec, features,
    width, height, tile_size, tiles_x, background,
    out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w, n_threads,
):  # fmt: skip
    """Composite the tiles in ``todo`` front to back into the final images (colour over ``background``,
    alpha, expected depth, features, top-K contributions).

    Tile t's pairs are ``gids[offsets[t]:offsets[t + 1]]`` (``bin_tiles``): scene rows, in depth order, of
    ``rec`` (the records ``project`` wrote), ``features`` and the contribution ids.
    ``todo`` comes busiest first and thread k of ``n_threads`` takes tiles k, k + P, k + 2P, ...: the
    contiguous split of numba's static prange schedule would give one thread all the heavy tiles.
    """
    n_parts = max(1, min(n_threads, todo.shape[0]))
    n_col = out_rgb.shape[2]
    n_feat = features.shape[1]
    top_k = out_ids.shape[2]
    npix = tile_size * tile_size
    wide = n_feat >= FEAT_PIXEL_MAJOR
    full = n_col > 3 or n_feat > 0 or top_k > 0
    for part in prange(n_parts):
        st = np.empty(STATE_SIZE, np.float32)
        extra = np.empty((max(n_col - 3, 0), npix), np.float32)
        acc_feat = np.empty((npix, n_feat) if wide else (n_feat, npix), np.float32)
        ids = np.empty((npix, top_k), np.int64)
        ws = np.empty((npix, top_k), np.float32)
        row_left = np.empty(tile_size * (tile_size // LANES), np.int64)
        args = (
            offsets, gids, rec, features,
            width, height, tile_size, tiles_x, background,
            out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
            st, extra, acc_feat, ids, ws, row_left,
        )  # fmt: skip
        for ti in range(part, todo.shape[0], n_parts):
            if wide:
                _TILE_WIDE(todo[ti], *args)
            elif full:
                _TILE_FULL(todo[ti], *args)
            else:
                _TILE_RGB(todo[ti], *args)
