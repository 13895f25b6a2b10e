"""Instance labels refined over the scene's neighbourhood graph (label spreading).

The views' masks vote on each Gaussian: ``votes[g, k]`` masks of instance ``k`` contain ``g``,
out of the ``seen[g]`` views that show it. Most Gaussians get one clear answer, but some get a
split one: seen from low angles, the table's flat Gaussians in front of an object's base take the
most blending weight at the base's pixels, so every mask there calls the base "table" in some
views and the object in others. Their own votes cannot settle it; their neighbours can. Label
spreading (Zhou et al., "Learning with local and global consistency") scores each Gaussian

    F = a * P @ F + (1 - a) * Y,       Y[g] = (votes[g, :], none[g]) / seen[g]

with ``P`` the random walk of the colour-weighted graph (``ovseg_core.selection.graph``: links
between different colours carry almost nothing) and ``a`` = ``neighbour_weight``; a Gaussian
takes its best-scoring instance. ``none`` is the share of its views that put it in no instance's
mask, so haze and floaters stay unlabelled; Gaussians no view shows (``Y`` = 0) take what their
neighbours hold. The system is linear and its columns independent, so they are solved a few at a
time: memory stays ``[N, chunk]`` whatever the number of instances.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ovseg_core.instances.merge import MergeResult
from ovseg_core.selection.graph import GaussianGraph


def vote_scores(votes: sp.csr_matrix, seen: np.ndarray) -> sp.csr_matrix:
    """``Y`` [N, K + 1] float64 from ``votes`` [N, K] and ``seen`` [N]: each instance's share of the
    views that show the Gaussian (at most 1), and in the last column the share left to none."""
    seen = np.asarray(seen, np.float64)
    inv = np.where(seen > 0, 1.0 / np.maximum(seen, 1.0), 0.0)
    y = (sp.diags(inv) @ sp.csr_matrix(votes, dtype=np.float64)).tocsr()
    y.data = np.minimum(y.data, 1.0)
    share = np.asarray(y.sum(axis=1)).reshape(-1)
    none = np.where(seen > 0, np.clip(1.0 - share, 0.0, None), 0.0)
    return sp.hstack([y, sp.csr_matrix(none[:, None])], format="csr")


def spread_scores(
    graph: GaussianGraph, scores: sp.csr_matrix, neighbour_weight: float, *, tol: float = 1e-5, max_rounds: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``F = a P F + (1 - a) Y`` by fixed-point rounds (the error shrinks by ``a`` each round)
    for ``scores`` ``Y`` [N, C]. -> (best column [N] int64, its score [N] float64)."""
    a = float(neighbour_weight)
    adj = graph.adjacency.astype(np.float64)
    deg = np.asarray(adj.sum(axis=1)).reshape(-1)
    walk = (sp.diags(np.where(deg > 0, 1.0 / np.maximum(deg, 1e-300), 0.0)) @ adj).tocsr()
    N, C = scores.shape
    best = np.zeros(N, np.int64)
    top = np.zeros(N, np.float64)
    chunk = 32
    for c0 in range(0, C, chunk):
        y = (1.0 - a) * scores[:, c0 : c0 + chunk].toarray()
        f = y.copy()
        for _ in range(max_rounds):
            nxt = a * (walk @ f) + y
            done = np.abs(nxt - f).max(initial=0.0) < tol
            f = nxt
            if done:
                break
        col = f.argmax(axis=1)
        val = f[np.arange(N), col]
        better = val > top
        best[better], top[better] = col[better] + c0, val[better]
    return best, top


def spread_labels(graph: GaussianGraph, votes: sp.csr_matrix, seen: np.ndarray, neighbour_weight: float) -> np.ndarray:
    """``[N]`` int64 instance of each Gaussian after label spreading (module docstring), -1 where
    none scores highest or nothing reaches it. ``votes`` [N, K], ``seen`` [N]."""
    K = votes.shape[1]
    best, top = spread_scores(graph, vote_scores(votes, seen), neighbour_weight)
    return np.where((top > 0) & (best < K), best, -1).astype(np.int64)


def with_labels(merged: MergeResult, labels: np.ndarray, min_gaussians: int) -> MergeResult:
    """``merged`` with new ``labels`` [N]: instances left with fewer than ``min_gaussians``
    Gaussians are dropped (theirs become -1), the rest renumbered largest first."""
    sizes = np.bincount(labels[labels >= 0], minlength=len(merged.sizes))
    kept = np.flatnonzero(sizes >= min_gaussians)
    kept = kept[np.argsort(-sizes[kept], kind="stable")]
    remap = np.full(len(sizes), -1, np.int64)
    remap[kept] = np.arange(len(kept))
    return MergeResult(
        labels=np.where(labels >= 0, remap[np.maximum(labels, 0)], -1),
        groups=[merged.groups[k] for k in kept],
        support=merged.support[kept],
        sizes=sizes[kept].astype(np.int64),
    )
