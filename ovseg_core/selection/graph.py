"""A neighbourhood graph over Gaussian centres: each Gaussian links to those of its k nearest
neighbours it overlaps (centre distance <= ``link_factor`` * (sigma_i + sigma_j), sigma = its
largest axis). Surfaces made of overlapping Gaussians become connected; isolated floaters do not."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ovseg_core.scene import GaussianScene


@dataclasses.dataclass
class GaussianGraph:
    """Symmetric, row-normalised neighbourhood weights of a scene's Gaussians."""

    adjacency: sp.csr_matrix
    """``[N, N]`` float32, 1 where two Gaussians are linked (symmetric, no self loops)."""

    @property
    def num_gaussians(self) -> int:
        return int(self.adjacency.shape[0])

    def degree(self) -> np.ndarray:
        """``[N]`` neighbours per Gaussian."""
        return np.diff(self.adjacency.indptr)

    def neighbour_mean(self, values: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean of ``values`` [N] over each Gaussian's neighbours, counting neighbour j with
        ``weights[j]`` (default 1) -> (mean [N], total weight [N]; mean 0 where that is 0)."""
        w = np.ones(self.num_gaussians, np.float32) if weights is None else weights.astype(np.float32)
        total = self.adjacency @ w
        s = self.adjacency @ (w * values.astype(np.float32))
        return np.where(total > 0, s / np.maximum(total, 1e-12), 0.0).astype(np.float32), total


def build_graph(scene: GaussianScene, *, neighbours: int = 12, link_factor: float = 1.5) -> GaussianGraph:
    """The graph of ``scene`` (``neighbours`` nearest candidates per Gaussian)."""
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
    a = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])), shape=(N, N))
    a = a.maximum(a.T).tocsr()
    a.setdiag(0)
    a.eliminate_zeros()
    return GaussianGraph(a.astype(np.float32))


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
