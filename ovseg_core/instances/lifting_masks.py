"""One view's 2D masks -> Gaussian sets, through the view's blending weights.

Membership rule (per view mask ``m`` and Gaussian ``g``; ``w(g, p)`` = alpha * T of ``g`` at pixel ``p``):

    inside(g, m) = sum_{p in m} w(g, p)        total(g) = sum_p w(g, p)
    g in m  <=>  inside(g, m) >= min_inside_fraction * total(g)  and  inside(g, m) >= min_inside_weight

The fraction makes a Gaussian on an object's silhouette belong to the side it mostly shows on;
the absolute floor keeps Gaussians that are hidden (tiny weight, mostly noise) out of the mask of
whatever occludes them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ovseg_core.fields.view_contributions import ViewContributions
from ovseg_core.instances.config import InstanceConfig


def weight_matrix(contrib: ViewContributions) -> sp.csr_matrix:
    """The view's blending weights as ``[H * W, U]`` CSR (rows = flat pixels, columns index
    ``contrib.gaussian_ids``). Pixels absent from ``contrib.pixels`` have empty rows."""
    n_pix = contrib.height * contrib.width
    compact = sp.csr_matrix(
        (contrib.weights, contrib.cols, contrib.row_ptr), shape=(len(contrib.pixels), len(contrib.gaussian_ids))
    )
    if len(contrib.pixels) == n_pix and (contrib.pixels == np.arange(n_pix)).all():
        return compact
    scatter = sp.csr_matrix(
        (np.ones(len(contrib.pixels), np.float32), (contrib.pixels, np.arange(len(contrib.pixels)))),
        shape=(n_pix, len(contrib.pixels)),
    )
    return (scatter @ compact).tocsr()


def lift_view_masks(
    contrib: ViewContributions,
    segmentations: np.ndarray,
    num_gaussians: int,
    config: InstanceConfig = InstanceConfig(),
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Gaussian sets of one view's masks.

    Args:
        contrib: The view's contributions over all pixels.
        segmentations: ``[M, H, W]`` bool masks of the view.
        num_gaussians: ``N``, Gaussians in the scene.

    Returns:
        ``members`` ``[M, N]`` CSR float32 (1 = the Gaussian belongs to the mask) and ``visible``
        ``[V_g]`` int64 ids of the Gaussians whose total weight in the view reaches the floor.
    """
    segs = np.asarray(segmentations, dtype=bool)
    if segs.ndim != 3 or segs.shape[1:] != (contrib.height, contrib.width):
        raise ValueError(f"masks are {list(segs.shape)}, the view is {contrib.height}x{contrib.width}")
    weights = weight_matrix(contrib)
    total = np.asarray(weights.sum(axis=0)).reshape(-1)  # [U]
    visible = contrib.gaussian_ids[total >= config.min_inside_weight]
    M = len(segs)
    if M == 0 or weights.nnz == 0:
        return sp.csr_matrix((M, num_gaussians), dtype=np.float32), visible
    mask_rows = sp.csr_matrix(segs.reshape(M, -1).astype(np.float32))  # [M, H*W]
    inside = (mask_rows @ weights).tocoo()  # [M, U]: weight each Gaussian puts inside each mask
    w, cols = inside.data, inside.col
    keep = (w >= config.min_inside_fraction * total[cols]) & (w >= config.min_inside_weight)
    members = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (inside.row[keep], contrib.gaussian_ids[cols[keep]])),
        shape=(M, num_gaussians),
    )
    return members, visible
