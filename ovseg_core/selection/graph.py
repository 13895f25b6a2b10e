"""A neighbourhood graph over Gaussian centres: each Gaussian links to those of its k nearest
neighbours it overlaps (centre distance <= ``link_factor`` * (sigma_i + sigma_j), sigma = its
largest axis). Surfaces made of overlapping Gaussians become connected; isolated floaters do not.

A link's weight is the two Gaussians' colour affinity, exp(-|c_i - c_j|^2 / (2 s^2)) with s^2 the
mean squared colour difference over all links (the random walker's normalisation, so it adapts to
each capture's colour statistics): where a red mug stands in a brown table's fuzz, its buried
Gaussians hang together with the mug and only loosely with the table. Views cannot tell such
Gaussians apart (no pixel shows them), but their own fitted colour still says what they are.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ovseg_core.scene import GaussianScene
from ovseg_core.selection.config import SelectionConfig

MIN_AFFINITY = 1e-4
"""Links between very different colours keep this weight: they stay links (connected pieces do not
split at a colour edge), they just carry almost nothing."""


@dataclasses.dataclass
class GaussianGraph:
    """Symmetric weighted neighbourhood links of a scene's Gaussians."""

    adjacency: sp.csr_matrix
    """``[N, N]`` float32 link weights in (0, 1] (symmetric, no self loops)."""

    @property
    def num_gaussians(self) -> int:
        return int(self.adjacency.shape[0])

    def degree(self) -> np.ndarray:
        """``[N]`` neighbours per Gaussian (links, whatever their weight)."""
        return np.diff(self.adjacency.indptr)

    def weighted_degree(self) -> np.ndarray:
        """``[N]`` float64 sum of each Gaussian's link weights."""
        return np.asarray(self.adjacency.sum(axis=1), np.float64).reshape(-1)

    def laplacian(self) -> sp.csr_matrix:
        """``[N, N]`` float64 graph Laplacian D - A of the link weights."""
        a = self.adjacency.astype(np.float64)
        return (sp.diags(self.weighted_degree()) - a).tocsr()


def build_graph(
    scene: GaussianScene, *, neighbours: int = 12, link_factor: float = 1.5, colour_affinity: bool = True
) -> GaussianGraph:
    """The graph of ``scene`` (``neighbours`` nearest candidates per Gaussian); links weigh the
    colour affinity of their ends with ``colour_affinity``, else 1."""
    from scipy.spatial import cKDTree

    if neighbours < 1:
        raise ValueError(f"neighbours must be >= 1, got {neighbours}")
    if link_factor <= 0:
        raise ValueError(f"link_factor must be > 0, got {link_factor}")
    points = scene.means.detach().cpu().numpy().astype(np.float64)
    sigma = scene.scales.detach().cpu().numpy().max(axis=1).astype(np.float64)
    N = len(points)
    k = min(neighbours + 1, N)
    if N < 2:
        return GaussianGraph(sp.csr_matrix((N, N), dtype=np.float32))
    dist, idx = cKDTree(points).query(points, k=k)
    rows = np.repeat(np.arange(N), k - 1)
    cols = idx[:, 1:].reshape(-1)
    d = dist[:, 1:].reshape(-1)
    keep = np.isfinite(d) & (cols < N) & (d <= link_factor * (sigma[rows] + sigma[np.minimum(cols, N - 1)]))
    rows, cols = rows[keep], cols[keep]
    a = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(N, N))
    a = a.maximum(a.T).tocsr()
    a.setdiag(0)
    a.eliminate_zeros()
    a = a.astype(np.float32)
    if colour_affinity and a.nnz:
        a.data = _colour_affinity(scene, a)
    return GaussianGraph(a)


def graph_for(scene: GaussianScene, config: SelectionConfig) -> GaussianGraph:
    """``build_graph`` with ``config``'s neighbourhood settings."""
    return build_graph(
        scene, neighbours=config.neighbours, link_factor=config.link_factor, colour_affinity=config.colour_affinity
    )


def _colour_affinity(scene: GaussianScene, a: sp.csr_matrix) -> np.ndarray:
    """Weights ``[nnz]`` float32 of ``a``'s links (CSR order) from the ends' base colours."""
    colour = scene.base_colors.detach().cpu().float().numpy()[:, :3].clip(0.0, 1.0)
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    d2 = ((colour[rows] - colour[a.indices]) ** 2).sum(axis=1)
    scale = float(d2.mean())
    if scale <= 1e-12:  # one colour everywhere: nothing to tell apart
        return np.ones(len(d2), np.float32)
    return np.maximum(np.exp(-d2 / (2.0 * scale)), MIN_AFFINITY).astype(np.float32)


def connected_within(points: np.ndarray, seed: int, radius: float, candidates: np.ndarray | None = None) -> np.ndarray:
    """``[M]`` int64 ids of the ``candidates`` ([N] bool, default all) reachable from ``seed`` in
    hops no longer than ``radius`` between ``points`` [N, 3]."""
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    cand = np.flatnonzero(candidates) if candidates is not None else np.arange(len(points))
    if seed not in set(cand.tolist()):
        cand = np.union1d(cand, [seed])
    pairs = cKDTree(points[cand]).query_pairs(radius, output_type="ndarray")
    graph = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(cand), len(cand)))
    _, labels = connected_components(graph, directed=False)
    seed_local = int(np.searchsorted(cand, seed))
    return cand[labels == labels[seed_local]]
