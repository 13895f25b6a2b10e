"""numba kernels of the CPU rasteriser: projection, tile binning, per-tile compositing.

Speed comes from three exact shortcuts, none of which changes a pixel:
- a Gaussian only reaches pixels where opacity * exp(-sigma) >= 1/255, i.e. sigma <= ln(255 o);
  that ellipse's bounding box (plus a pixel of slack) bounds both the tiles it is binned into
  (intersected with fVDB's 3.33-sigma radius rule) and the pixels visited inside a tile;
- a tile stops once every pixel in it has saturated;
- tiles run in parallel (prange), in a shuffled order so both cores get equal work.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

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


@njit(parallel=True, cache=True, fastmath=False)
def project(
    means, quats, log_scales, logit_opacities, sh0, shN, degree,  # scene
    R, t, cam_pos, fx, fy, cx, cy, width, height,  # camera
    near, far, eps2d, tile_size, tiles_x, tiles_y,  # settings
    means2d, conics, depths, opacities, radii, extents, rects, colors,  # outputs
):  # fmt: skip
    """Per-Gaussian projection; culled Gaussians get radii 0 and an empty tile rect."""
    n = means.shape[0]
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    for i in prange(n):
        radii[i, 0] = 0
        radii[i, 1] = 0
        rects[i, 0] = 0
        rects[i, 1] = 0
        rects[i, 2] = 0
        rects[i, 3] = 0
        mx, my, mz = means[i, 0], means[i, 1], means[i, 2]
        tx = R[0, 0] * mx + R[0, 1] * my + R[0, 2] * mz + t[0]
        ty = R[1, 0] * mx + R[1, 1] * my + R[1, 2] * mz + t[1]
        tz = R[2, 0] * mx + R[2, 1] * my + R[2, 2] * mz + t[2]
        depths[i] = tz
        if not (tz > near and tz < far):
            continue
        # rotation from quaternion (normalised)
        qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        qn = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        if qn == 0.0:
            qn = 1.0
            qw = 1.0
        qw, qx, qy, qz = qw / qn, qx / qn, qy / qn, qz / qn
        r00 = 1 - 2 * (qy * qy + qz * qz)
        r01 = 2 * (qx * qy - qw * qz)
        r02 = 2 * (qx * qz + qw * qy)
        r10 = 2 * (qx * qy + qw * qz)
        r11 = 1 - 2 * (qx * qx + qz * qz)
        r12 = 2 * (qy * qz - qw * qx)
        r20 = 2 * (qx * qz - qw * qy)
        r21 = 2 * (qy * qz + qw * qx)
        r22 = 1 - 2 * (qx * qx + qy * qy)
        s0 = math.exp(log_scales[i, 0])
        s1 = math.exp(log_scales[i, 1])
        s2 = math.exp(log_scales[i, 2])
        # M = R_cam @ R_gauss @ S ; cov_cam = M M^T
        g00, g01, g02 = r00 * s0, r01 * s1, r02 * s2
        g10, g11, g12 = r10 * s0, r11 * s1, r12 * s2
        g20, g21, g22 = r20 * s0, r21 * s1, r22 * s2
        m00 = R[0, 0] * g00 + R[0, 1] * g10 + R[0, 2] * g20
        m01 = R[0, 0] * g01 + R[0, 1] * g11 + R[0, 2] * g21
        m02 = R[0, 0] * g02 + R[0, 1] * g12 + R[0, 2] * g22
        m10 = R[1, 0] * g00 + R[1, 1] * g10 + R[1, 2] * g20
        m11 = R[1, 0] * g01 + R[1, 1] * g11 + R[1, 2] * g21
        m12 = R[1, 0] * g02 + R[1, 1] * g12 + R[1, 2] * g22
        m20 = R[2, 0] * g00 + R[2, 1] * g10 + R[2, 2] * g20
        m21 = R[2, 0] * g01 + R[2, 1] * g11 + R[2, 2] * g21
        m22 = R[2, 0] * g02 + R[2, 1] * g12 + R[2, 2] * g22
        c00 = m00 * m00 + m01 * m01 + m02 * m02
        c01 = m00 * m10 + m01 * m11 + m02 * m12
        c02 = m00 * m20 + m01 * m21 + m02 * m22
        c11 = m10 * m10 + m11 * m11 + m12 * m12
        c12 = m10 * m20 + m11 * m21 + m12 * m22
        c22 = m20 * m20 + m21 * m21 + m22 * m22
        # Jacobian at the frustum-clamped point
        txc = tz * min(max(tx / tz, -lim_x_neg), lim_x_pos)
        tyc = tz * min(max(ty / tz, -lim_y_neg), lim_y_pos)
        j00 = fx / tz
        j02 = -fx * txc / (tz * tz)
        j11 = fy / tz
        j12 = -fy * tyc / (tz * tz)
        # cov2d = J C J^T with J = [[j00, 0, j02], [0, j11, j12]]
        a = j00 * (j00 * c00 + j02 * c02) + j02 * (j00 * c02 + j02 * c22) + eps2d
        b = j00 * (j11 * c01 + j12 * c02) + j02 * (j11 * c12 + j12 * c22)
        c = j11 * (j11 * c11 + j12 * c12) + j12 * (j11 * c12 + j12 * c22) + eps2d
        det = a * c - b * b
        if det <= 0.0:
            continue
        u = fx * tx / tz + cx
        v = fy * ty / tz + cy
        rx = math.ceil(3.33 * math.sqrt(a))
        ry = math.ceil(3.33 * math.sqrt(c))
        if u + rx <= 0 or u - rx >= width or v + ry <= 0 or v - ry >= height:
            continue
        op = 1.0 / (1.0 + math.exp(-logit_opacities[i]))
        means2d[i, 0] = u
        means2d[i, 1] = v
        conics[i, 0] = c / det
        conics[i, 1] = -b / det
        conics[i, 2] = a / det
        opacities[i] = op
        radii[i, 0] = int(rx)
        radii[i, 1] = int(ry)
        # Where alpha can reach 1/255: sigma <= ln(255 op); nothing outside is ever composited.
        smax = _LN255 + math.log(op) if op > 0 else -1.0
        if smax < 0.0:
            continue
        ex = math.sqrt(2.0 * smax * a) + 1.0
        ey = math.sqrt(2.0 * smax * c) + 1.0
        extents[i, 0] = ex
        extents[i, 1] = ey
        extents[i, 2] = smax
        # gsplat's tile rule (3.33 sigma), tightened by the exact alpha extent
        x0 = max(math.floor((u - rx) / tile_size), math.floor((u - ex) / tile_size))
        x1 = min(math.ceil((u + rx) / tile_size), math.ceil((u + ex) / tile_size))
        y0 = max(math.floor((v - ry) / tile_size), math.floor((v - ey) / tile_size))
        y1 = min(math.ceil((v + ry) / tile_size), math.ceil((v + ey) / tile_size))
        rects[i, 0] = min(max(x0, 0), tiles_x)
        rects[i, 1] = min(max(y0, 0), tiles_y)
        rects[i, 2] = min(max(x1, 0), tiles_x)
        rects[i, 3] = min(max(y1, 0), tiles_y)
        # colour from SH, view direction = mean - camera centre
        for ch in range(colors.shape[1]):
            colors[i, ch] = _C0 * sh0[i, 0, ch] + 0.5
        if degree >= 1:
            dx, dy, dz = mx - cam_pos[0], my - cam_pos[1], mz - cam_pos[2]
            dn = math.sqrt(dx * dx + dy * dy + dz * dz)
            if dn > 0:
                dx, dy, dz = dx / dn, dy / dn, dz / dn
            for ch in range(colors.shape[1]):
                col = _C1 * (-dy * shN[i, 0, ch] + dz * shN[i, 1, ch] - dx * shN[i, 2, ch])
                if degree >= 2:
                    xx, yy, zz = dx * dx, dy * dy, dz * dz
                    xy, yz, xz = dx * dy, dy * dz, dx * dz
                    col += (
                        _C2_0 * xy * shN[i, 3, ch]
                        + _C2_1 * yz * shN[i, 4, ch]
                        + _C2_2 * (2 * zz - xx - yy) * shN[i, 5, ch]
                        + _C2_3 * xz * shN[i, 6, ch]
                        + _C2_4 * (xx - yy) * shN[i, 7, ch]
                    )
                    if degree >= 3:
                        col += (
                            _C3_0 * dy * (3 * xx - yy) * shN[i, 8, ch]
                            + _C3_1 * xy * dz * shN[i, 9, ch]
                            + _C3_2 * dy * (4 * zz - xx - yy) * shN[i, 10, ch]
                            + _C3_3 * dz * (2 * zz - 3 * xx - 3 * yy) * shN[i, 11, ch]
                            + _C3_4 * dx * (4 * zz - xx - yy) * shN[i, 12, ch]
                            + _C3_5 * dz * (xx - yy) * shN[i, 13, ch]
                            + _C3_6 * dx * (xx - 3 * yy) * shN[i, 14, ch]
                        )
                colors[i, ch] += col


@njit(cache=True)
def bin_tiles(order, rects, num_tiles, tiles_x):
    """Counting sort of (tile, Gaussian) pairs, keeping ``order`` within each tile.

    Returns (offsets ``[T+1]``, gaussian ids ``[num_intersections]``).
    """
    counts = np.zeros(num_tiles + 1, dtype=np.int64)
    for g in order:
        for ty in range(rects[g, 1], rects[g, 3]):
            for tx in range(rects[g, 0], rects[g, 2]):
                counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    cursor = offsets[:-1].copy()
    gids = np.empty(offsets[-1], dtype=np.int32)
    for g in order:
        for ty in range(rects[g, 1], rects[g, 3]):
            for tx in range(rects[g, 0], rects[g, 2]):
                tid = ty * tiles_x + tx
                gids[cursor[tid]] = g
                cursor[tid] += 1
    return offsets, gids


@njit(parallel=True, cache=True)
def rasterize(
    offsets, gids, todo, means2d, conics, opacities, extents, colors, depths, features,
    width, height, tile_size, tiles_x,
    out_rgb, out_depth, out_trans, out_feat, out_ids, out_w,
):  # fmt: skip
    """Composite the tiles in ``todo`` front to back; outputs are written per pixel."""
    for ti in prange(todo.shape[0]):
        _rasterize_tile(
            todo[ti], offsets, gids, means2d, conics, opacities, extents, colors, depths, features,
            width, height, tile_size, tiles_x, out_rgb, out_depth, out_trans, out_feat, out_ids, out_w,
        )  # fmt: skip


# A plain function per tile: numba compiles it far tighter than the same code inlined in a prange body.
# fastmath is safe here: inputs are finite (culled Gaussians never reach a tile) and no test
# depends on NaN/Inf semantics; it lets LLVM fuse and reorder the per-pixel arithmetic.
@njit(cache=True, fastmath=True)
def _rasterize_tile(
    tile, offsets, gids, means2d, conics, opacities, extents, colors, depths, features,
    width, height, tile_size, tiles_x,
    out_rgb, out_depth, out_trans, out_feat, out_ids, out_w,
):  # fmt: skip
    n_feat = features.shape[1]
    n_col = colors.shape[1]
    top_k = out_ids.shape[2]
    alpha_min = np.float32(1.0 / 255.0)
    tx, ty = tile % tiles_x, tile // tiles_x
    x0, y0 = tx * tile_size, ty * tile_size
    x1, y1 = min(x0 + tile_size, width), min(y0 + tile_size, height)
    tw, th = x1 - x0, y1 - y0
    npix = tw * th
    trans = np.ones(npix, dtype=np.float32)
    done = np.zeros(npix, dtype=np.bool_)
    row_left = np.full(th, tw, dtype=np.int64)  # unsaturated pixels per row
    acc_col = np.zeros((npix, n_col), dtype=np.float32)
    acc_depth = np.zeros(npix, dtype=np.float32)
    acc_feat = np.zeros((npix, n_feat), dtype=np.float32)
    ids = np.full((npix, top_k), -1, dtype=np.int64)
    ws = np.zeros((npix, top_k), dtype=np.float32)
    ndone = 0
    start, end = offsets[tile], offsets[tile + 1]
    # Depth order within the tile; the list arrives in id order, so the stable sort
    # breaks depth ties by id, like a global stable sort would.
    tile_ids = gids[start:end]
    tile_ids = tile_ids[np.argsort(depths[tile_ids], kind="mergesort")]
    for g in tile_ids:
        u, v = means2d[g, 0], means2d[g, 1]
        ca, cb, cc = conics[g, 0], conics[g, 1], conics[g, 2]
        op = opacities[g]
        ex, ey, smax = extents[g, 0], extents[g, 1], extents[g, 2]
        px0 = max(x0, int(math.ceil(u - ex - 0.5)))
        px1 = min(x1 - 1, int(math.floor(u + ex - 0.5)))
        py0 = max(y0, int(math.ceil(v - ey - 0.5)))
        py1 = min(y1 - 1, int(math.floor(v + ey - 0.5)))
        for py in range(py0, py1 + 1):
            if row_left[py - y0] == 0:
                continue
            dy = v - (np.float32(py) + np.float32(0.5))
            # This row's span of the ellipse sigma <= smax (ca dx^2 + 2 cb dx dy + cc dy^2 <= 2 smax),
            # widened by a pixel so rounding never drops a pixel the full test would keep.
            bq = cb * dy
            disc = bq * bq - ca * (cc * dy * dy - 2.0 * smax)
            if disc < 0:
                continue
            sq = math.sqrt(disc)
            qx0 = max(px0, int(math.ceil(u - (-bq + sq) / ca - 1.5)))
            qx1 = min(px1, int(math.floor(u - (-bq - sq) / ca + 0.5)))
            row = (py - y0) * tw
            for px in range(qx0, qx1 + 1):
                p = row + px - x0
                if done[p]:
                    continue
                dx = u - (np.float32(px) + np.float32(0.5))
                sigma = np.float32(0.5) * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                if sigma < 0:
                    continue
                alpha = min(np.float32(0.99), op * np.exp(-sigma))
                if alpha < alpha_min:
                    continue
                t_next = trans[p] * (np.float32(1.0) - alpha)
                if t_next <= np.float32(1e-4):
                    done[p] = True
                    ndone += 1
                    row_left[py - y0] -= 1
                    continue
                w = alpha * trans[p]
                for ch in range(n_col):
                    acc_col[p, ch] += w * colors[g, ch]
                acc_depth[p] += w * depths[g]
                for ch in range(n_feat):
                    acc_feat[p, ch] += w * features[g, ch]
                trans[p] = t_next
                if top_k > 0 and w > ws[p, top_k - 1]:
                    k = top_k - 1
                    while k > 0 and ws[p, k - 1] < w:
                        ws[p, k] = ws[p, k - 1]
                        ids[p, k] = ids[p, k - 1]
                        k -= 1
                    ws[p, k] = w
                    ids[p, k] = g
        if ndone == npix:
            break
    for p in range(npix):
        yy = y0 + p // tw
        xx = x0 + p % tw
        for ch in range(n_col):
            out_rgb[yy, xx, ch] = acc_col[p, ch]
        out_depth[yy, xx] = acc_depth[p]
        out_trans[yy, xx] = trans[p]
        for ch in range(n_feat):
            out_feat[yy, xx, ch] = acc_feat[p, ch]
        for k in range(top_k):
            out_ids[yy, xx, k] = ids[p, k]
            out_w[yy, xx, k] = ws[p, k]
