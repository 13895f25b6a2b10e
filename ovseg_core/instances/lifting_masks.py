"""One view's 2D masks -> Gaussian sets, through the view's blending weights.

Membership rule (per view mask ``m`` and Gaussian ``g``; ``w(g, p)`` = alpha * T of ``g`` at pixel ``p``):

    inside(g, m) = sum_{p in m} w(g, p)        total(g) = sum_p w(g, p)
    g in m  <=>  inside(g, m) >= min_inside_fraction * total(g)  and  inside(g, m) >= floor(g)

The fraction makes a Gaussian on an object's silhouette belong to the side it mostly shows on;
the floor keeps Gaussians that are hidden (tiny weight, mostly noise) out of the mask of whatever
occludes them. The floor is per Gaussian and comes from the data: ``relative_weight`` times the
weight the Gaussian has in the view that shows it best (never below ``min_inside_weight``). A
faint Gaussian (opacity 0.02, a few pixels) never reaches a fixed 0.05, but in front it reaches
its own best weight.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp
import torch

from ovseg_core.fields.view_contributions import ViewContributions
from ovseg_core.instances.config import InstanceConfig


def weight_matrix(contrib: ViewContributions) -> sp.csr_matrix:
    """The view's blending weights as ``[H * W, U]`` CSR (rows = flat pixels, columns index
    ``contrib.gaussian_ids``). Pixels absent from ``contrib.pixels`` have empty rows."""
    n_pix = contrib.height * contrib.width
    compact = sp.csr_matrix(
        (contrib.weights.astype(np.float32), contrib.cols, contrib.row_ptr),
        shape=(len(contrib.pixels), len(contrib.gaussian_ids)),
    )
    if len(contrib.pixels) == n_pix and (contrib.pixels == np.arange(n_pix)).all():
        return compact
    scatter = sp.csr_matrix(
        (np.ones(len(contrib.pixels), np.float32), (contrib.pixels, np.arange(len(contrib.pixels)))),
        shape=(n_pix, len(contrib.pixels)),
    )
    return (scatter @ compact).tocsr()


@dataclasses.dataclass
class MaskWeights:
    """What membership needs of one view, without its per-pixel contributions."""

    gaussian_ids: np.ndarray
    """``[U]`` int64 Gaussians with weight in the view."""
    total: np.ndarray
    """``[U]`` float32 each one's total weight in the view."""
    inside: sp.coo_matrix
    """``[M, U]`` weight each Gaussian puts inside each mask."""


def mask_weights(contrib: ViewContributions, segmentations: np.ndarray) -> MaskWeights:
    """Weights inside each of ``segmentations`` [M, H, W] bool and in total, per Gaussian."""
    segs = np.asarray(segmentations, dtype=bool)
    if segs.ndim != 3 or segs.shape[1:] != (contrib.height, contrib.width):
        raise ValueError(f"masks are {list(segs.shape)}, the view is {contrib.height}x{contrib.width}")
    weights = weight_matrix(contrib)
    total = np.asarray(weights.sum(axis=0)).reshape(-1).astype(np.float32)  # [U]
    M = len(segs)
    if M == 0 or weights.nnz == 0:
        inside = sp.coo_matrix((M, len(total)), dtype=np.float32)
    else:
        mask_rows = sp.csr_matrix(segs.reshape(M, -1).astype(np.float32))  # [M, H*W]
        inside = (mask_rows @ weights).tocoo()
    return MaskWeights(contrib.gaussian_ids.astype(np.int64), total, inside)


def mask_weights_torch(
    contrib: ViewContributions, segmentations: np.ndarray, device: torch.device | str, mask_chunk: int = 64
) -> MaskWeights:
    """``mask_weights`` computed on ``device`` (the twin of the scipy products): per contribution
    its flat pixel, then ``inside^T [U, M] = W^T [U, H*W] @ masks^T [H*W, M]`` as one sparse-dense
    product per ``mask_chunk`` masks, so the dense ``[H*W, chunk]`` operand stays bounded."""
    segs = np.asarray(segmentations, dtype=bool)
    if segs.ndim != 3 or segs.shape[1:] != (contrib.height, contrib.width):
        raise ValueError(f"masks are {list(segs.shape)}, the view is {contrib.height}x{contrib.width}")
    U, M, n_pix = len(contrib.gaussian_ids), len(segs), contrib.height * contrib.width
    row_ptr = torch.from_numpy(contrib.row_ptr).to(device, torch.int64)
    counts = row_ptr[1:] - row_ptr[:-1]
    pix = torch.from_numpy(contrib.pixels).to(device, torch.int64).repeat_interleave(counts)  # [E]
    cols = torch.from_numpy(contrib.cols).to(device, torch.int64)
    w = torch.from_numpy(contrib.weights).to(device, torch.float32)
    total = torch.zeros(U, device=device).index_add_(0, cols, w)
    rows_m, cols_u, vals = [], [], []
    if M and len(w):
        W_t = torch.sparse_coo_tensor(torch.stack([cols, pix]), w, (U, n_pix), check_invariants=False).coalesce()
        masks = torch.from_numpy(segs.reshape(M, -1)).to(device)
        for m0 in range(0, M, mask_chunk):
            part = torch.sparse.mm(W_t, masks[m0 : m0 + mask_chunk].T.float())  # [U, m]
            u, m = torch.nonzero(part, as_tuple=True)
            rows_m.append(m + m0)
            cols_u.append(u)
            vals.append(part[u, m])
    if rows_m:
        r, c, v = (torch.cat(x).cpu().numpy() for x in (rows_m, cols_u, vals))
    else:
        r, c, v = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    inside = sp.coo_matrix((v, (r, c)), shape=(M, U), dtype=np.float32)
    return MaskWeights(contrib.gaussian_ids.astype(np.int64), total.cpu().numpy(), inside)


def members_from_weights(
    mw: MaskWeights, num_gaussians: int, config: InstanceConfig = InstanceConfig(), floor: np.ndarray | None = None
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Apply the membership rule (module docstring) -> (members [M, N] CSR, visible ids)."""
    floor_u = (
        np.full(len(mw.total), config.min_inside_weight, np.float32)
        if floor is None
        else np.maximum(floor[mw.gaussian_ids], config.min_inside_weight)
    )
    visible = mw.gaussian_ids[mw.total >= floor_u]
    w, cols = mw.inside.data, mw.inside.col
    keep = (w >= config.min_inside_fraction * mw.total[cols]) & (w >= floor_u[cols])
    members = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (mw.inside.row[keep], mw.gaussian_ids[cols[keep]])),
        shape=(mw.inside.shape[0], num_gaussians),
    )
    return members, visible


def lift_view_masks(
    contrib: ViewContributions,
    segmentations: np.ndarray,
    num_gaussians: int,
    config: InstanceConfig = InstanceConfig(),
    floor: np.ndarray | None = None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Gaussian sets of one view's masks.

    Args:
        contrib: The view's contributions over all pixels.
        segmentations: ``[M, H, W]`` bool masks of the view.
        num_gaussians: ``N``, Gaussians in the scene.
        floor: ``[N]`` per-Gaussian weight floor; default ``min_inside_weight`` for all.

    Returns:
        ``members`` ``[M, N]`` CSR float32 (1 = the Gaussian belongs to the mask) and ``visible``
        ``[V_g]`` int64 ids of the Gaussians whose total weight in the view reaches the floor.
    """
    return members_from_weights(mask_weights(contrib, segmentations), num_gaussians, config, floor)


def lift_all_views(
    views: Iterable[tuple[ViewContributions, np.ndarray]],
    num_gaussians: int,
    config: InstanceConfig,
    device: torch.device | str = "cpu",
) -> tuple[list[sp.csr_matrix], list[np.ndarray], np.ndarray]:
    """Lift the masks of many views with the per-Gaussian relative floor. ``views`` yields
    (contributions, masks [M, H, W]) per view and is consumed once, so one view's contributions
    at a time are in memory. The votes are summed on ``device`` (the scene's) by
    ``config.voting_backend``. -> (members per view, visible ids per view, best weight [N])."""
    dev = torch.device(device)
    use_torch = config.voting_backend == "torch" or (config.voting_backend == "auto" and dev.type != "cpu")
    kept: list[MaskWeights] = []
    best = np.zeros(num_gaussians, np.float32)
    for contrib, segs in views:
        mw = mask_weights_torch(contrib, segs, dev) if use_torch else mask_weights(contrib, segs)
        np.maximum.at(best, mw.gaussian_ids, mw.total)
        kept.append(mw)
    floor = config.relative_weight * best
    out = [members_from_weights(mw, num_gaussians, config, floor) for mw in kept]
    return [m for m, _ in out], [v for _, v in out], best
