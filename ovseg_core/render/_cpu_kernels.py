"""numba kernels of the CPU rasteriser: projection, depth sort, tile binning, per-tile compositing.

Speed comes from shortcuts that change no pixel beyond float32 rounding:
- a Gaussian only reaches pixels where opacity * exp(-sigma) >= 1/255, i.e. sigma <= ln(255 o);
  a Gaussian whose 3.33-sigma tile rect (fVDB's rule) is larger than 2 x 2 tiles is binned only into
  the tiles of it that this ellipse (widened by half a pixel) really crosses, and every Gaussian visits
  only the tile rows and columns the ellipse spans;
- one global depth sort (LSD radix on the float bits, parallel over chunks) and a stable counting sort
  of scene rows by tile (also parallel over chunks, over 4-byte footprint codes ``project`` leaves for
  rects up to 2 x 2 tiles) give every tile its Gaussians already in depth order, ties by id as the
  reference's stable sort; records stay where ``project`` wrote them and the stages that read them
  through the order prefetch 8 ahead;
- the compositing loop is branch-free over blocks of 8 columns of a tile row, with an exp that
  vectorises (``exp_neg``: range reduction and a polynomial), and keeps a tile's whole state in one
  array (no runtime alias checks); a Gaussian runs only over the blocks and rows it reaches;
- a row, then a tile, stops once every pixel in it has saturated;
- tiles are dealt to threads busiest first, in turn (see ``rasterize``); RGB-only frames use a build of
  the tile kernel without the second pass (features, extra channels, top-K), and frames with
  ``_FEAT_PIXEL_MAJOR`` or more feature channels one with a pixel-major feature accumulator.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2_0, _C2_1, _C2_2, _C2_3, _C2_4 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
_C3_0, _C3_1, _C3_2, _C3_3 = -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154
_C3_4, _C3_5, _C3_6 = -0.4570457994644658, 1.445305721320277, -0.5900435899266435
_LN255 = math.log(255.0)
_F_C0, _F_C1 = np.float32(_C0), np.float32(_C1)
_F_C2 = tuple(np.float32(c) for c in (_C2_0, _C2_1, _C2_2, _C2_3, _C2_4))
_F_C3 = tuple(np.float32(c) for c in (_C3_0, _C3_1, _C3_2, _C3_3, _C3_4, _C3_5, _C3_6))

# float32 constants: a Python float would promote the per-pixel arithmetic to float64.
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_F2, _F3, _F4 = np.float32(2.0), np.float32(3.0), np.float32(4.0)
_HALF = np.float32(0.5)
_ALPHA_MAX = np.float32(0.99)
_ALPHA_MIN = np.float32(1.0 / 255.0)
_T_MIN = np.float32(1e-4)
# exp(-s) = 2^-k exp(r), k = round(s / ln 2), r = k ln 2 - s in [-ln2/2, ln2/2] (Cody-Waite split of ln 2).
EXP_ARG_MAX = np.float32(16.0)
"""exp_neg clamps its argument here: exp(-16) = 1.1e-7 is far below any alpha that counts (1/255)."""
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # 8 significant bits: k * _LN2_HI is exact
_LN2_LO = np.float32(-2.12194440e-4)
# exp(r) ~ 1 + r + E2 r^2 + ... + E5 r^5 on |r| <= ln2/2: minimax for relative error (Lawson's iteration
# from Chebyshev nodes; 1.05e-7 in exact arithmetic, 1.93e-7 measured in float32). Each lane op costs about 3% of compositing,
# and Taylor needs degree 7 for the same error.
_E2, _E3, _E4, _E5 = (np.float32(c) for c in (0.49999232, 0.16667114, 0.04189011, 0.00831253))


_PREFETCH = 8
"""Pairs ahead whose record compositing asks the CPU to fetch (about one Gaussian's work covers a miss)."""


@intrinsic
def _prefetch_row(typingctx, arr, row):
    """Hint the CPU to fetch ``arr[row, 0]`` into cache (LLVM's prefetch: read, high locality)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(row, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        row_i = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [row_i, zero], wraparound=False)
        i32 = ir.IntType(32)
        ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())  # one declaration serves every dtype
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, row), codegen


# Columns of the per-Gaussian record ``project`` writes and the later stages read (one cache line
# for RGB: colours start at _COL, rows are padded to 16 floats).
_U, _V, _CA, _CB, _CC, _NLOGOP, _EX, _EY, _SMAX, _DEPTH = range(10)  # _NLOGOP: -ln(opacity)
_COL = 10
_EXTENT_SLACK = 1.0 + 1e-4
_EXTENT_PAD = 1e-3


def alpha_extent_sigma(opacities: np.ndarray) -> np.ndarray:
    """ln(255 o) ``[N]`` float64: the sigma beyond which a Gaussian of opacity o gives alpha < 1/255."""
    return _LN255 + np.log(np.maximum(opacities.astype(np.float64), 1e-30))


def record_width(channels: int) -> int:
    """Floats per record for ``channels`` colour channels."""
    return max(16, _COL + channels)


@njit(inline="always", fastmath=True)
def exp_neg(s):
    """exp(-s) for float32 s >= 0, branch-free so loops over it vectorise (numba here has no SVML).

    Relative error <= 2.5e-7 (about two float32 ulps) on [0, 16]; beyond 16 it returns exp(-16).
    ``tests/core/test_render_agreement.py`` holds it to that bound.
    """
    s = min(s, EXP_ARG_MAX)
    k = np.int32(s * _LOG2E + _HALF)  # s >= 0: truncation rounds to nearest
    kf = np.float32(k)
    r = (kf * _LN2_HI - s) + kf * _LN2_LO
    p = _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + _F1
    p = p * r + _F1
    return p * _pow2_neg(k)


@intrinsic
def _pow2_neg(typingctx, k):
    """2^-k as float32 for int32 0 <= k <= 126, from its bits ((127 - k) << 23), in 32-bit lanes: numba's
    own integer arithmetic widens to 64 bits (four 512-bit ops per 8 pixels; compositing took 13-30%
    longer in alternating A/B runs)."""
    if k != types.int32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.shl(builder.sub(ir.Constant(i32, 127), args[0]), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(k), codegen


@njit(cache=True)
def exp_neg_array(s):
    """``exp_neg`` over an array (for tests)."""
    out = np.empty_like(s)
    for i in range(s.shape[0]):
        out[i] = exp_neg(s[i])
    return out


_PROJECT_CHUNK = 1024
"""Gaussians per chunk of ``project``: the chunk's columns (``_project_chunk``) stay in L1/L2."""
# Output columns of a chunk, _PROJECT_CHUNK apart in one float64 array: the record's _U.._DEPTH, then
# the view depth, tile rect and footprint code (exact as float64). Written through one array at
# constant unsigned offsets, LLVM vectorises the loop with runtime alias checks against the 4 inputs
# only; with a signed index numba's negative-index wraparound hid the bounds ("cannot identify array
# bounds") and the loop stayed scalar.
_PJ_DEPTH, _PJ_X0, _PJ_Y0, _PJ_X1, _PJ_Y1, _PJ_FOOT = range(10, 16)
_PJ_COLS = 16


@njit(inline="always")
def _pj(column):
    """Offset of a chunk column in ``cols``, unsigned (a constant once inlined)."""
    return np.uint64(column * _PROJECT_CHUNK)


@njit(parallel=True, cache=True)
def project(
    means, cov3d, opacities_in, smax_in,  # scene: [N, 3], [N, 6] (xx, xy, xz, yy, yz, zz), [N], [N]
    R, t, fx, fy, cx, cy, width, height,  # camera
    near, far, eps2d, tile_size, tiles_x, tiles_y,  # settings
    depths, rec, rects, foot,  # outputs
    n_threads,
):  # fmt: skip
    """Per-Gaussian EWA projection into ``rec`` (columns _U.._DEPTH), tile rects and footprint codes
    (``_footprint``); culled Gaussians get an empty tile rect (and records no stage reads).

    ``_EX``/``_EY`` are the x/y half-widths of the ellipse sigma <= smax in pixels (with a rounding margin),
    ``_SMAX`` = ln(255 o), given per Gaussian in ``smax_in`` (``alpha_extent_sigma``: a log per Gaussian
    was a sixth of this kernel).

    Chunks of ``_PROJECT_CHUNK``: a branch-free loop computes a chunk into columns (LLVM vectorises
    it, 8 float64 lanes with AVX-512), then a short loop packs the columns into the records. The
    scalar loop with a ``continue`` per culling test it replaces took 7.6 ms on one core at 300k (now
    4.6), and 5.9 ms of a 2-thread frame (now 3.8, paired A/B).
    """
    n = means.shape[0]
    n_chunks = (n + _PROJECT_CHUNK - 1) // _PROJECT_CHUNK
    cam = np.array(
        [R[0, 0], R[0, 1], R[0, 2], R[1, 0], R[1, 1], R[1, 2], R[2, 0], R[2, 1], R[2, 2], t[0], t[1], t[2],
         fx, fy, cx, cy, width, height, near, far, eps2d, tile_size, tiles_x, tiles_y],
        np.float64,
    )  # fmt: skip
    n_parts = max(1, min(n_chunks, n_threads))
    means1, cov1 = means.reshape(-1), cov3d.reshape(-1)
    for part in prange(n_parts):
        cols = np.empty(_PJ_COLS * _PROJECT_CHUNK, np.float64)  # one per part: one per chunk cost a mmap
        for c in range(part, n_chunks, n_parts):
            lo = c * _PROJECT_CHUNK
            m = min(n - lo, _PROJECT_CHUNK)
            _project_chunk(means1, cov1, opacities_in, smax_in, cam, np.uint64(lo), np.uint64(m), cols)
            _pack_chunk(cols, np.uint64(lo), np.uint64(m), rec, depths, rects, foot)


@njit(cache=True)
def _pack_chunk(cols, lo, m, rec, depths, rects, foot):
    """A chunk's output columns into the records, depths, rects and footprint codes of rows lo..lo+m."""
    for j in range(np.uint64(0), m):
        i = lo + j
        rec[i, 0] = cols[_pj(0) + j]
        rec[i, 1] = cols[_pj(1) + j]
        rec[i, 2] = cols[_pj(2) + j]
        rec[i, 3] = cols[_pj(3) + j]
        rec[i, 4] = cols[_pj(4) + j]
        rec[i, 5] = cols[_pj(5) + j]
        rec[i, 6] = cols[_pj(6) + j]
        rec[i, 7] = cols[_pj(7) + j]
        rec[i, 8] = cols[_pj(8) + j]
        rec[i, 9] = cols[_pj(9) + j]
        depths[i] = cols[_pj(_PJ_DEPTH) + j]
        rects[i, 0] = np.int32(cols[_pj(_PJ_X0) + j])
        rects[i, 1] = np.int32(cols[_pj(_PJ_Y0) + j])
        rects[i, 2] = np.int32(cols[_pj(_PJ_X1) + j])
        rects[i, 3] = np.int32(cols[_pj(_PJ_Y1) + j])
        foot[i] = np.int32(cols[_pj(_PJ_FOOT) + j])


@njit(cache=True, fastmath=True, error_model="numpy")
def _project_chunk(means, cov3d, opacities_in, smax_in, cam, lo, m, cols):
    """Gaussians lo..lo+m (``means`` ``[3 N]`` and ``cov3d`` ``[6 N]`` flattened) into the chunk's columns
    ``cols`` ``[_PJ_COLS chunk]``.

    Branch-free: every lane computes, a culled one from safe stand-in values (no NaN or infinity
    reaches an integer conversion), and its rect is set empty at the end. float64, as the scalar loop
    it replaced."""
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = cam[0], cam[1], cam[2], cam[3], cam[4], cam[5], cam[6], cam[7], cam[8]
    t0, t1, t2 = cam[9], cam[10], cam[11]
    fx, fy, cx, cy, width, height = cam[12], cam[13], cam[14], cam[15], cam[16], cam[17]
    near, far, eps2d, tile_size, tiles_x, tiles_y = cam[18], cam[19], cam[20], cam[21], cam[22], cam[23]
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    for j in range(np.uint64(0), m):  # unsigned: no negative-index wraparound, which blocks vectorising
        i = lo + j
        i3, i6 = np.uint64(3) * i, np.uint64(6) * i
        mx, my, mz = np.float64(means[i3]), np.float64(means[i3 + np.uint64(1)]), np.float64(means[i3 + np.uint64(2)])
        tz_raw = r20 * mx + r21 * my + r22 * mz + t2
        cols[_pj(_PJ_DEPTH) + j] = tz_raw
        op = np.float64(opacities_in[i])
        # Where alpha can reach 1/255: sigma <= ln(255 op); nothing outside is ever composited (and a
        # Gaussian fainter than 1/255 nowhere: real captures hold many).
        keep = (tz_raw > near) & (tz_raw < far) & (op * 255.0 >= 1.0)
        tz = tz_raw if keep else 1.0
        tx = r00 * mx + r01 * my + r02 * mz + t0
        ty = r10 * mx + r11 * my + r12 * mz + t1
        # C_cam = R C R^T
        c00, c01, c02 = (
            np.float64(cov3d[i6]),
            np.float64(cov3d[i6 + np.uint64(1)]),
            np.float64(cov3d[i6 + np.uint64(2)]),
        )
        c11, c12, c22 = (
            np.float64(cov3d[i6 + np.uint64(3)]),
            np.float64(cov3d[i6 + np.uint64(4)]),
            np.float64(cov3d[i6 + np.uint64(5)]),
        )
        m00 = r00 * c00 + r01 * c01 + r02 * c02
        m01 = r00 * c01 + r01 * c11 + r02 * c12
        m02 = r00 * c02 + r01 * c12 + r02 * c22
        m10 = r10 * c00 + r11 * c01 + r12 * c02
        m11 = r10 * c01 + r11 * c11 + r12 * c12
        m12 = r10 * c02 + r11 * c12 + r12 * c22
        m20 = r20 * c00 + r21 * c01 + r22 * c02
        m21 = r20 * c01 + r21 * c11 + r22 * c12
        m22 = r20 * c02 + r21 * c12 + r22 * c22
        k00 = m00 * r00 + m01 * r01 + m02 * r02
        k01 = m00 * r10 + m01 * r11 + m02 * r12
        k02 = m00 * r20 + m01 * r21 + m02 * r22
        k11 = m10 * r10 + m11 * r11 + m12 * r12
        k12 = m10 * r20 + m11 * r21 + m12 * r22
        k22 = m20 * r20 + m21 * r21 + m22 * r22
        # Jacobian at the frustum-clamped point
        txc = tz * min(max(tx / tz, -lim_x_neg), lim_x_pos)
        tyc = tz * min(max(ty / tz, -lim_y_neg), lim_y_pos)
        j00 = fx / tz
        j02 = -fx * txc / (tz * tz)
        j11 = fy / tz
        j12 = -fy * tyc / (tz * tz)
        # cov2d = J C J^T with J = [[j00, 0, j02], [0, j11, j12]]
        a = j00 * (j00 * k00 + j02 * k02) + j02 * (j00 * k02 + j02 * k22) + eps2d
        b = j00 * (j11 * k01 + j12 * k02) + j02 * (j11 * k12 + j12 * k22)
        c = j11 * (j11 * k11 + j12 * k12) + j12 * (j11 * k12 + j12 * k22) + eps2d
        det = a * c - b * b
        keep = keep & (det > 0.0) & (a > 0.0) & (c > 0.0)
        a = a if keep else 1.0
        c = c if keep else 1.0
        b = b if keep else 0.0
        det = det if keep else 1.0
        u = fx * tx / tz + cx
        v = fy * ty / tz + cy
        rx = math.ceil(3.33 * math.sqrt(a))
        ry = math.ceil(3.33 * math.sqrt(c))
        keep = keep & (u + rx > 0) & (u - rx < width) & (v + ry > 0) & (v - ry < height)
        smax = smax_in[i]
        smax = smax if keep else 1.0
        # min over dx of sigma is dy^2 / (2 c) (and dx^2 / (2 a)): no pixel beyond these half-widths
        # reaches alpha 1/255. The margin covers float32 rounding of the conic, sigma and exp (each
        # ~1e-7 relative) a thousand times over; a whole pixel of margin cost a third more lanes.
        ex = math.sqrt(2.0 * smax * a) * _EXTENT_SLACK + _EXTENT_PAD
        ey = math.sqrt(2.0 * smax * c) * _EXTENT_SLACK + _EXTENT_PAD
        cols[_pj(_U) + j] = u
        cols[_pj(_V) + j] = v
        cols[_pj(_CA) + j] = c / det
        cols[_pj(_CB) + j] = -b / det
        cols[_pj(_CC) + j] = a / det
        cols[_pj(_NLOGOP) + j] = _LN255 - smax
        cols[_pj(_EX) + j] = ex
        cols[_pj(_EY) + j] = ey
        cols[_pj(_SMAX) + j] = smax
        cols[_pj(_DEPTH) + j] = tz
        # gsplat's tile rule (3.33 sigma), tightened by the alpha extent; clamped in float (a Gaussian
        # just past the near plane can project far off screen) before the integer conversion
        x0 = min(max(max(math.floor((u - rx) / tile_size), math.floor((u - ex) / tile_size)), 0.0), tiles_x)
        x1 = min(max(min(math.ceil((u + rx) / tile_size), math.ceil((u + ex) / tile_size)), 0.0), tiles_x)
        y0 = min(max(max(math.floor((v - ry) / tile_size), math.floor((v - ey) / tile_size)), 0.0), tiles_y)
        y1 = min(max(min(math.ceil((v + ry) / tile_size), math.ceil((v + ey) / tile_size)), 0.0), tiles_y)
        x0, y0 = x0 if keep else 0.0, y0 if keep else 0.0
        x1, y1 = x1 if keep else 0.0, y1 if keep else 0.0
        cols[_pj(_PJ_X0) + j] = x0
        cols[_pj(_PJ_Y0) + j] = y0
        cols[_pj(_PJ_X1) + j] = x1
        cols[_pj(_PJ_Y1) + j] = y1
        cols[_pj(_PJ_FOOT) + j] = _footprint(x0, y0, x1, y1, tiles_x) if keep else np.float64(_FOOT_WIDE)


@njit(parallel=True, cache=True)
def depth_order(ids, depths, n_chunks):
    """``ids`` sorted by ``depths[ids]`` (all > 0), stable: LSD radix sort on the float bits, 3 x 11 bits,
    parallel over ``n_chunks`` contiguous runs (each counts its digits, then scatters from its own
    cursors; chunk order is kept, so every pass stays stable)."""
    n = ids.shape[0]
    step = (n + n_chunks - 1) // n_chunks
    src_k, src_i = np.empty(n, np.uint32), np.empty(n, ids.dtype)
    dst_k, dst_i = np.empty(n, np.uint32), np.empty(n, ids.dtype)
    bits = depths.view(np.uint32)
    for j in prange(n):
        src_k[j] = bits[ids[j]]
        src_i[j] = ids[j]
    hist = np.empty((n_chunks, 2048), np.int64)
    for shift in (0, 11, 22):
        for c in prange(n_chunks):
            hist[c, :] = 0
            for j in range(c * step, min((c + 1) * step, n)):
                hist[c, (src_k[j] >> shift) & 2047] += 1
        run = 0
        for d in range(2048):
            for c in range(n_chunks):
                count = hist[c, d]
                hist[c, d] = run
                run += count
        for c in prange(n_chunks):
            for j in range(c * step, min((c + 1) * step, n)):
                d = (src_k[j] >> shift) & 2047
                e = hist[c, d]
                hist[c, d] = e + 1
                dst_k[e] = src_k[j]
                dst_i[e] = src_i[j]
        src_k, dst_k = dst_k, src_k
        src_i, dst_i = dst_i, src_i
    return src_i


@njit(inline="always", fastmath=True)
def _sh_basis(dx, dy, dz):
    """The 15 real SH basis values of bands 1-3 for the unit direction (dx, dy, dz), in float32."""
    xx, yy, zz = dx * dx, dy * dy, dz * dz
    xy, yz, xz = dx * dy, dy * dz, dx * dz
    return (
        -_F_C1 * dy, _F_C1 * dz, -_F_C1 * dx,
        _F_C2[0] * xy, _F_C2[1] * yz, _F_C2[2] * (_F2 * zz - xx - yy), _F_C2[3] * xz, _F_C2[4] * (xx - yy),
        _F_C3[0] * dy * (_F3 * xx - yy), _F_C3[1] * xy * dz, _F_C3[2] * dy * (_F4 * zz - xx - yy),
        _F_C3[3] * dz * (_F2 * zz - _F3 * xx - _F3 * yy), _F_C3[4] * dx * (_F4 * zz - xx - yy),
        _F_C3[5] * dz * (xx - yy), _F_C3[6] * dx * (xx - _F3 * yy),
    )  # fmt: skip


@njit(parallel=True, cache=True, fastmath=True)
def sh_colors(ids, means, sh0, shN, degree, cam_pos, rec):
    """SH colour C0 sh0 + higher bands + 0.5 into ``rec[:, _COL:]``, for the Gaussians ``ids`` only
    (those that survived culling; ascending ids read the coefficients front to back: the same reads
    in depth order cost several times more).

    float32 throughout, as the torch reference: float64 constants made it twice as slow. RGB at degree
    3 (what real captures carry) has its own unrolled loop, a third faster than the general one.
    """
    n_ch = sh0.shape[2]
    px, py, pz = np.float32(cam_pos[0]), np.float32(cam_pos[1]), np.float32(cam_pos[2])
    rgb3 = n_ch == 3 and degree == 3
    for j in prange(ids.shape[0]):
        i = ids[j]
        if degree < 1:
            for ch in range(n_ch):
                rec[i, _COL + ch] = _F_C0 * sh0[i, 0, ch] + _HALF
            continue
        dx, dy, dz = means[i, 0] - px, means[i, 1] - py, means[i, 2] - pz
        dn = math.sqrt(dx * dx + dy * dy + dz * dz)
        inv = _F1 / dn if dn > _F0 else _F1
        b = _sh_basis(dx * inv, dy * inv, dz * inv)
        if rgb3:
            for ch in range(3):
                col = _F_C0 * sh0[i, 0, ch] + _HALF
                col += b[0] * shN[i, 0, ch] + b[1] * shN[i, 1, ch] + b[2] * shN[i, 2, ch]
                col += b[3] * shN[i, 3, ch] + b[4] * shN[i, 4, ch] + b[5] * shN[i, 5, ch]
                col += b[6] * shN[i, 6, ch] + b[7] * shN[i, 7, ch] + b[8] * shN[i, 8, ch]
                col += b[9] * shN[i, 9, ch] + b[10] * shN[i, 10, ch] + b[11] * shN[i, 11, ch]
                col += b[12] * shN[i, 12, ch] + b[13] * shN[i, 13, ch] + b[14] * shN[i, 14, ch]
                rec[i, _COL + ch] = col
            continue
        n_basis = (degree + 1) * (degree + 1) - 1
        for ch in range(n_ch):
            col = _F_C0 * sh0[i, 0, ch] + _HALF
            for q in range(n_basis):
                col += b[q] * shN[i, q, ch]
            rec[i, _COL + ch] = col


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


_FOOT_WIDE = np.int32(-1)
"""Footprint code of a rect wider or taller than two tiles (listed by ``_visit_tiles``)."""


@njit(inline="always")
def _footprint(x0, y0, x1, y1, tiles_x):
    """The tiles of a rect at most 2 x 2 tiles as one code: (first tile << 4) | mask, mask bit k set
    for tile (x0 + k % 2, y0 + k // 2); ``_FOOT_WIDE`` for larger rects. Made in projection, in scene
    order, so binning (in depth order) reads 4 bytes per Gaussian and runs branch-free: listing tiles
    through loops of 1 or 2 iterations mispredicted twice per Gaussian, and stalled its reads. Such
    rects get no ellipse test: in project it cost 0.8 ms a frame at 300k and saved 0.3 ms of binning,
    and compositing skips a tile the ellipse misses at the cost of its row-span check (``_tile_body``).

    In float64 (tile coordinates as projection's vectorised loop holds them; exact far below 2^53)
    and with selects only, so that loop stays vectorised."""
    w, h = x1 - x0, y1 - y0
    live = (w > 0.0) & (h > 0.0)
    mask = (
        (1.0 if live else 0.0)
        + (2.0 if live & (w == 2.0) else 0.0)
        + (4.0 if live & (h == 2.0) else 0.0)
        + (8.0 if live & (w == 2.0) & (h == 2.0) else 0.0)
    )
    code = (y0 * tiles_x + x0) * 16.0 + mask
    return code if (w <= 2.0) & (h <= 2.0) else np.float64(_FOOT_WIDE)


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
    ca, cb = np.float64(rec[g, _CA]), np.float64(rec[g, _CB])
    r2, det, hy, ystar = _ellipse_frame(ca, cb, np.float64(rec[g, _CC]), np.float64(rec[g, _SMAX]))
    for ty in range(rects[g, 1], rects[g, 3]):
        t0, t1 = _row_tile_span(
            rec[g, _U], rec[g, _V], ca, cb, r2, det, hy, ystar, ty * tile_size, (ty + 1) * tile_size, tile_size
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
    (``foot``: ``_footprint`` codes; wide rects are listed from ``rects`` and ``rec``).

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
            if code != _FOOT_WIDE:
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
            if code != _FOOT_WIDE:
                _visit_footprint(code, g, tiles_x, hist, c, gids, n_pairs + c, True)
            else:
                _visit_tiles(g, rects, rec, tile_size, tiles_x, hist, c, gids, True)


# Compositing state of one tile, in one float32 array of segments _SEG apart: LLVM then sees loads and
# stores a constant distance apart and vectorises the lane loop without runtime alias checks (with
# separate arrays it checked every pair of them before each Gaussian's loop).
LANES = 8
"""Columns per block: a tile is stored as T / 8 blocks of 8 columns, each row-major, so a Gaussian that
spans few columns runs only over the blocks it reaches (one AVX2 vector per block row)."""
_SEG = 32 * 32  # the largest tile's pixel count (a compile-time constant)
_ST_T, _ST_0, _ST_1, _ST_2, _ST_D, _ST_W, _ST_X, _ST_Y = (np.uint64(i * _SEG) for i in range(8))
_STATE_SIZE = 8 * _SEG
_FEAT_PIXEL_MAJOR = 32
"""From this many feature channels the accumulator is pixel-major (one pixel's channels form whole
vectors); below it channel-major, so the blend vectorises over the pixels instead."""


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
    npix = tile_size * tile_size
    for part in prange(n_parts):
        st = np.empty(_STATE_SIZE, np.float32)
        extra = np.empty((max(n_col - 3, 0), npix), np.float32)
        n_feat = features.shape[1]
        acc_feat = np.empty((npix, n_feat) if n_feat >= _FEAT_PIXEL_MAJOR else (n_feat, npix), np.float32)
        ids = np.empty((npix, out_ids.shape[2]), np.int64)
        ws = np.empty((npix, out_ids.shape[2]), np.float32)
        row_left = np.empty(tile_size * (tile_size // LANES), np.int64)
        for ti in range(part, todo.shape[0], n_parts):
            if n_feat >= _FEAT_PIXEL_MAJOR:
                _rasterize_tile_wide(
                    todo[ti], offsets, gids, rec, features,
                    width, height, tile_size, tiles_x, background,
                    out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
                    st, extra, acc_feat, ids, ws, row_left,
                )  # fmt: skip
            elif n_col > 3 or n_feat > 0 or out_ids.shape[2] > 0:
                _rasterize_tile_full(
                    todo[ti], offsets, gids, rec, features,
                    width, height, tile_size, tiles_x, background,
                    out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
                    st, extra, acc_feat, ids, ws, row_left,
                )  # fmt: skip
            else:
                _rasterize_tile_rgb(
                    todo[ti], offsets, gids, rec, features,
                    width, height, tile_size, tiles_x, background,
                    out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
                    st, extra, acc_feat, ids, ws, row_left,
                )  # fmt: skip


@njit(inline="always", fastmath=True)
def _composite_lanes(st, p0, p1, u, v, hca, cb, hcc, nlogop, c0, c1, c2, depth, keep_w):
    """Blend one Gaussian into pixels p0..p1 of the tile state; returns how many pixels saturated.

    Branch-free over the pixels: every lane computes, masks decide (fVDB's rules, base.py). A pixel
    that saturates keeps its transmittance negated, so ``t > 0`` is the live mask.
    """
    n_stop = _F0
    for p in range(p0, p1):
        dx = u - st[_ST_X + p]
        dy = v - st[_ST_Y + p]
        # s = sigma - ln(o): exp(-s) is alpha = o exp(-sigma) without a multiply by o
        s = dx * (hca * dx + cb * dy) + (hcc * dy * dy + nlogop)
        alpha = min(_ALPHA_MAX, exp_neg(max(s, _F0)))
        t = st[_ST_T + p]
        alpha = alpha if (s >= nlogop) & (alpha >= _ALPHA_MIN) & (t > _F0) else _F0
        t_next = t * (_F1 - alpha)
        stop = (alpha > _F0) & (t_next <= _T_MIN)
        w = _F0 if stop else alpha * t
        st[_ST_T + p] = -t if stop else t_next
        st[_ST_0 + p] += w * c0
        st[_ST_1 + p] += w * c1
        st[_ST_2 + p] += w * c2
        st[_ST_D + p] += w * depth
        if keep_w:
            st[_ST_W + p] = w
        n_stop += _F1 if stop else _F0
    return n_stop


# Plain functions per tile: numba compiles them far tighter than the same code inlined in a prange body.
# fastmath is safe here: inputs are finite (culled Gaussians never reach a tile) and no test
# depends on NaN/Inf semantics; it lets LLVM vectorise and fuse the per-pixel arithmetic.
# Builds of one body (RGB only; second pass channel-major; pixel-major): even untaken, the second
# pass's code slowed the RGB lane loop by a third, and the pixel-major blend the 1-channel one by a fifth.
@njit(cache=True, fastmath=True)
def _rasterize_tile_rgb(
    tile, offsets, gids, rec, features,
    width, height, tile_size, tiles_x, background,
    out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
    st, extra, acc_feat, ids, ws, row_left,
):  # fmt: skip
    _tile_body(
        tile, offsets, gids, rec, features,
        width, height, tile_size, tiles_x, background,
        out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
        st, extra, acc_feat, ids, ws, row_left, False, False,
    )  # fmt: skip


@njit(cache=True, fastmath=True)
def _rasterize_tile_full(
    tile, offsets, gids, rec, features,
    width, height, tile_size, tiles_x, background,
    out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
    st, extra, acc_feat, ids, ws, row_left,
):  # fmt: skip
    _tile_body(
        tile, offsets, gids, rec, features,
        width, height, tile_size, tiles_x, background,
        out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
        st, extra, acc_feat, ids, ws, row_left, True, False,
    )  # fmt: skip


@njit(cache=True, fastmath=True)
def _rasterize_tile_wide(
    tile, offsets, gids, rec, features,
    width, height, tile_size, tiles_x, background,
    out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
    st, extra, acc_feat, ids, ws, row_left,
):  # fmt: skip
    _tile_body(
        tile, offsets, gids, rec, features,
        width, height, tile_size, tiles_x, background,
        out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
        st, extra, acc_feat, ids, ws, row_left, True, True,
    )  # fmt: skip


@njit(inline="always", fastmath=True)
def _tile_body(
    tile, offsets, gids, rec, features,
    width, height, tile_size, tiles_x, background,
    out_rgb, out_alpha, out_depth, out_feat, out_ids, out_w,
    st, extra, acc_feat, ids, ws, row_left, second_pass, pixel_major,
):  # fmt: skip
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
        st[_ST_T + p] = _F1 if (col < tw) & (r < th) else -_F1  # outside the image: never live
        st[_ST_0 + p] = _F0
        st[_ST_1 + p] = _F0
        st[_ST_2 + p] = _F0
        st[_ST_D + p] = _F0
        st[_ST_X + p] = np.float32(x0 + col) + _HALF
        st[_ST_Y + p] = np.float32(y0 + r) + _HALF
    if second_pass:
        extra[:] = _F0
        acc_feat[:] = _F0
        ids[:] = -1
        ws[:] = _F0
    for b in range(n_blocks):
        for r in range(T):
            row_left[b * T + r] = max(0, min(LANES, tw - b * LANES)) if r < th else 0
    left = tw * th
    last = offsets[tile + 1] - 1
    for e in range(offsets[tile], offsets[tile + 1]):
        ge = gids[e]
        _prefetch_row(rec, gids[min(e + _PREFETCH, last)])  # records are read in random order
        u, v = rec[ge, _U], rec[ge, _V]
        # rows and columns whose pixel centres the ellipse can reach (float64: float32 ceil and floor
        # are calls into libm, float64 ones single instructions)
        u64, v64 = np.float64(u), np.float64(v)
        ex, ey = np.float64(rec[ge, _EX]), np.float64(rec[ge, _EY])
        ry0 = max(y0, int(math.ceil(v64 - ey - 0.5))) - y0
        ry1 = min(y1 - 1, int(math.floor(v64 + ey - 0.5))) - y0
        cx0 = max(x0, int(math.ceil(u64 - ex - 0.5))) - x0
        cx1 = min(x1 - 1, int(math.floor(u64 + ex - 0.5))) - x0
        if ry1 < ry0 or cx1 < cx0:
            continue
        hca, cb, hcc = _HALF * rec[ge, _CA], rec[ge, _CB], _HALF * rec[ge, _CC]
        nlogop, depth = rec[ge, _NLOGOP], rec[ge, _DEPTH]
        c0 = rec[ge, _COL]
        c1 = rec[ge, _COL + 1] if n_col > 1 else _F0
        c2 = rec[ge, _COL + 2] if n_col > 2 else _F0
        n_stop = _F0
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
            if stops > _F0:
                n_stop += stops
                for r in range(r0, r1 + 1):
                    n_live = 0
                    for j in range(LANES):
                        n_live += np.int64(st[_ST_T + np.uint64(b * block + r * LANES + j)] > _F0)
                    row_left[b * T + r] = n_live
        if n_stop > _F0:
            left -= np.int64(n_stop)
            if left == 0:
                break
    for r in range(th):
        for col in range(tw):
            p = (col // LANES) * block + r * LANES + col % LANES
            yy, xx = y0 + r, x0 + col
            t = abs(st[_ST_T + np.uint64(p)])
            alpha = _F1 - t
            out_rgb[yy, xx, 0] = st[_ST_0 + np.uint64(p)] + t * background[0]
            if n_col > 1:
                out_rgb[yy, xx, 1] = st[_ST_1 + np.uint64(p)] + t * background[1]
            if n_col > 2:
                out_rgb[yy, xx, 2] = st[_ST_2 + np.uint64(p)] + t * background[2]
            for ch in range(3, n_col):
                out_rgb[yy, xx, ch] = extra[ch - 3, p] + t * background[ch]
            out_alpha[yy, xx] = alpha
            out_depth[yy, xx] = st[_ST_D + np.uint64(p)] / alpha if alpha > _F0 else _F0
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
        f = rec[ge, _COL + 3 + ch]
        for p in range(p0, p1):
            extra[ch, p] += st[_ST_W + p] * f
    n_feat = features.shape[1]
    if pixel_major:
        for p in range(p0, p1):
            w = st[_ST_W + p]
            if w != _F0:
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
        if w == _F0 or w <= ws[p, top_k - 1]:
            continue
        k = top_k - 1
        while k > 0 and ws[p, k - 1] < w:
            ws[p, k] = ws[p, k - 1]
            ids[p, k] = ids[p, k - 1]
            k -= 1
        ws[p, k] = w
        ids[p, k] = ge
