"""Compositing of one tile: the branch-free lane loop, the second pass (extra channels, features,
top-K contributions) and the tile body every tile kernel is built from."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ovseg_core.render.cpu.numerics import ALPHA_MAX, ALPHA_MIN, F0, F1, HALF, PREFETCH, T_MIN, exp_neg, prefetch_row
from ovseg_core.render.cpu.records import CA, CB, CC, COL, DEPTH, EX, EY, NLOGOP, U, V

# Compositing state of one tile, in one float32 array of segments _SEG apart: LLVM then sees loads and
# stores a constant distance apart and vectorises the lane loop without runtime alias checks (with
# separate arrays it checked every pair of them before each Gaussian's loop).
LANES = 8
"""Columns per block: a tile is stored as T / 8 blocks of 8 columns, each row-major, so a Gaussian that
spans few columns runs only over the blocks it reaches (one AVX2 vector per block row)."""
_SEG = 32 * 32  # the largest tile's pixel count (a compile-time constant)
_ST_T, _ST_0, _ST_1, _ST_2, _ST_D, _ST_W, _ST_X, _ST_Y = (np.uint64(i * _SEG) for i in range(8))
STATE_SIZE = 8 * _SEG
FEAT_PIXEL_MAJOR = 32
"""From this many feature channels the accumulator is pixel-major (one pixel's channels form whole
vectors); below it channel-major, so the blend vectorises over the pixels instead."""


@njit(inline="always", fastmath=True)
def _composite_lanes(st, p0, p1, u, v, hca, cb, hcc, nlogop, c0, c1, c2, depth, keep_w):
    """Blend one Gaussian into pixels p0..p1 of the tile state; returns how many pixels saturated.

    Branch-free over the pixels: every lane computes, masks decide (fVDB's rules, base.py). A pixel
    that saturates keeps its transmittance negated, so ``t > 0`` is the live mask.
    """
    n_stop = F0
    for p in range(p0, p1):
        dx = u - st[_ST_X + p]
        dy = v - st[_ST_Y + p]
        # s = sigma - ln(o): exp(-s) is alpha = o exp(-sigma) without a multiply by o
        s = dx * (hca * dx + cb * dy) + (hcc * dy * dy + nlogop)
        alpha = min(ALPHA_MAX, exp_neg(max(s, F0)))
        t = st[_ST_T + p]
        alpha = alpha if (s >= nlogop) & (alpha >= ALPHA_MIN) & (t > F0) else F0
        t_next = t * (F1 - alpha)
        stop = (alpha > F0) & (t_next <= T_MIN)
        w = F0 if stop else alpha * t
        st[_ST_T + p] = -t if stop else t_next
        st[_ST_0 + p] += w * c0
        st[_ST_1 + p] += w * c1
        st[_ST_2 + p] += w * c2
        st[_ST_D + p] += w * depth
        if keep_w:
            st[_ST_W + p] = w
        n_stop += F1 if stop else F0
    return n_stop


@njit(inline="always", fastmath=True)
def tile_body(
    tile, offsets, gids, rec, features,
    width, height, tile_size, tiles_x, background,
    out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
    st, extra, acc_feat, ids, ws, row_left, second_pass, pixel_major,
):  # fmt: skip
    """Composite tile ``tile`` front to back into the output images (see ``tiles.rasterize`` for the
    arguments; ``st`` .. ``row_left`` are the calling thread's scratch). ``second_pass`` adds colour
    channels past the third, features and top-K contributions; ``pixel_major`` lays the feature
    accumulator out pixel by pixel. Both are constants of each kernel ``tiles.tile_kernel`` builds."""
    T = tile_size
    n_feat = features.shape[1]
    n_col = out_rgb.shape[2]
    top_k = out_ids.shape[2]
    tx, ty = tile % tiles_x, tile // tiles_x
    x0, y0 = tx * T, ty * T
    x1, y1 = min(x0 + T, width), min(y0 + T, height)
    tw, th = x1 - x0, y1 - y0
    n_blocks = T // LANES
    block = T * LANES  # pixels per block
    # pixel p = b * block + r * LANES + c holds column b * LANES + c of row r
    for p in range(T * T):
        b, r, c = p // block, (p % block) // LANES, p % LANES
        col = b * LANES + c
        st[_ST_T + p] = F1 if (col < tw) & (r < th) else -F1  # outside the image: never live
        st[_ST_0 + p] = F0
        st[_ST_1 + p] = F0
        st[_ST_2 + p] = F0
        st[_ST_D + p] = F0
        st[_ST_X + p] = np.float32(x0 + col) + HALF
        st[_ST_Y + p] = np.float32(y0 + r) + HALF
    if second_pass:
        extra[:] = F0
        acc_feat[:] = F0
        ids[:] = -1
        ws[:] = F0
    for b in range(n_blocks):
        for r in range(T):
            row_left[b * T + r] = max(0, min(LANES, tw - b * LANES)) if r < th else 0
    left = tw * th
    last = offsets[tile + 1] - 1
    for e in range(offsets[tile], offsets[tile + 1]):
        ge = gids[e]
        prefetch_row(rec, gids[min(e + PREFETCH, last)])  # records are read in random order
        u, v = rec[ge, U], rec[ge, V]
        # rows and columns whose pixel centres the ellipse can reach (float64: float32 ceil and floor
        # are calls into libm, float64 ones single instructions)
        u64, v64 = np.float64(u), np.float64(v)
        ex, ey = np.float64(rec[ge, EX]), np.float64(rec[ge, EY])
        ry0 = max(y0, int(math.ceil(v64 - ey - 0.5))) - y0
        ry1 = min(y1 - 1, int(math.floor(v64 + ey - 0.5))) - y0
        cx0 = max(x0, int(math.ceil(u64 - ex - 0.5))) - x0
        cx1 = min(x1 - 1, int(math.floor(u64 + ex - 0.5))) - x0
        if ry1 < ry0 or cx1 < cx0:
            continue
        hca, cb, hcc = HALF * rec[ge, CA], rec[ge, CB], HALF * rec[ge, CC]
        nlogop, depth = rec[ge, NLOGOP], rec[ge, DEPTH]
        c0 = rec[ge, COL]
        c1 = rec[ge, COL + 1] if n_col > 1 else F0
        c2 = rec[ge, COL + 2] if n_col > 2 else F0
        n_stop = F0
        for b in range(cx0 // LANES, cx1 // LANES + 1):
            r0, r1 = ry0, ry1
            while r0 <= r1 and row_left[b * T + r0] == 0:
                r0 += 1
            while r1 >= r0 and row_left[b * T + r1] == 0:
                r1 -= 1
            if r1 < r0:
                continue
            # An even row count from 3 rows on: LLVM vectorises the lane loop 16 wide and leaves an
            # odd row to a scalar, branchy remainder loop (8 slow iterations). The added row is one
            # the ellipse cannot reach (alpha < 1/255 there, so masked) or outside the image (dead).
            if r1 > r0 and (r1 - r0) % 2 == 0:
                if r1 + 1 < T:
                    r1 += 1
                else:
                    r0 -= 1
            # unsigned: numba then skips negative-index wraparound, which would block vectorisation
            p0 = np.uint64(b * block + r0 * LANES)
            p1 = np.uint64(b * block + (r1 + 1) * LANES)
            if second_pass:
                stops = _composite_lanes(st, p0, p1, u, v, hca, cb, hcc, nlogop, c0, c1, c2, depth, True)
                _blend_extra(st, p0, p1, ge, rec, features, extra, acc_feat, ids, ws, pixel_major)
            else:
                stops = _composite_lanes(st, p0, p1, u, v, hca, cb, hcc, nlogop, c0, c1, c2, depth, False)
            if stops > F0:
                n_stop += stops
                for r in range(r0, r1 + 1):
                    n_live = 0
                    for j in range(LANES):
                        n_live += np.int64(st[_ST_T + np.uint64(b * block + r * LANES + j)] > F0)
                    row_left[b * T + r] = n_live
        if n_stop > F0:
            left -= np.int64(n_stop)
            if left == 0:
                break
    for r in range(th):
        for col in range(tw):
            p = (col // LANES) * block + r * LANES + col % LANES
            yy, xx = y0 + r, x0 + col
            t = abs(st[_ST_T + np.uint64(p)])
            alpha = F1 - t
            out_rgb[yy, xx, 0] = st[_ST_0 + np.uint64(p)] + t * background[0]
            if n_col > 1:
                out_rgb[yy, xx, 1] = st[_ST_1 + np.uint64(p)] + t * background[1]
            if n_col > 2:
                out_rgb[yy, xx, 2] = st[_ST_2 + np.uint64(p)] + t * background[2]
            for ch in range(3, n_col):
                out_rgb[yy, xx, ch] = extra[ch - 3, p] + t * background[ch]
            out_alpha[yy, xx] = alpha
            out_depth[yy, xx] = st[_ST_D + np.uint64(p)] / alpha if alpha > F0 else F0
            if pixel_major:
                for ch in range(n_feat):
                    out_feat[yy, xx, ch] = acc_feat[p, ch]
            else:
                for ch in range(n_feat):
                    out_feat[yy, xx, ch] = acc_feat[ch, p]
            for k in range(top_k):
                out_ids[yy, xx, k] = ids[p, k]
                out_w[yy, xx, k] = ws[p, k]


@njit(inline="always", fastmath=True)
def _blend_extra(st, p0, p1, ge, rec, features, extra, acc_feat, ids, ws, pixel_major):
    """What the lane loop leaves out: colour channels past the third and few features branch-free over
    the pixels, channel-major (they vectorise as the lane loop does; a zero weight adds zero); many
    features pixel-major, vectorised over channels, for the pixels given weight; then the top-K
    contributions for those pixels (kept sorted by weight, first come first on ties)."""
    for ch in range(extra.shape[0]):
        f = rec[ge, COL + 3 + ch]
        for p in range(p0, p1):
            extra[ch, p] += st[_ST_W + p] * f
    n_feat = features.shape[1]
    if pixel_major:
        for p in range(p0, p1):
            w = st[_ST_W + p]
            if w != F0:
                for ch in range(n_feat):
                    acc_feat[p, ch] += w * features[ge, ch]
    else:
        for ch in range(n_feat):
            f = features[ge, ch]
            for p in range(p0, p1):
                acc_feat[ch, p] += st[_ST_W + p] * f
    top_k = ids.shape[1]
    if top_k == 0:
        return
    for p in range(p0, p1):
        w = st[_ST_W + p]
        if w == F0 or w <= ws[p, top_k - 1]:
            continue
        k = top_k - 1
        while k > 0 and ws[p, k - 1] < w:
            ws[p, k] = ws[p, k - 1]
            ids[p, k] = ids[p, k - 1]
            k -= 1
        ws[p, k] = w
        ids[p, k] = ge
