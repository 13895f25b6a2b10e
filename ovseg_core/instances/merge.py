"""View-mask Gaussian sets -> class-agnostic 3D instances.

IoU here is *visibility-restricted*: two sets are compared only over the Gaussians both sides'
views see (``visible_iou``), since a top view and a side view of one object show different parts.

1. Mask pass: pairs of masks from *different* views whose Gaussian sets overlap with IoU >=
   ``iou_threshold`` (and share at least ``min_mask_gaussians`` Gaussians) are joined greedily,
   highest IoU first (union-find), but never two groups that
   already hold a mask of the same view: one object shows as at most one mask per view, and the
   rule stops chains (part -> whole -> neighbour) that plain connected components would follow.
2. Consensus: a group keeps a Gaussian only if at least ``consensus`` of its masks whose views see
   that Gaussian contain it (one sloppy mask cannot add its neighbours).
3. Instance pass: groups whose consensus sets overlap with IoU >= ``iou_threshold`` merge
   (an object split in two masks in some view ends up as two groups; this rejoins them); the
   consensus sets are recomputed and the pass repeats until nothing merges.
4. Claims: a Gaussian kept by several groups goes to the one with the most masks containing it.
   Groups supported by fewer than ``min_views`` views, then groups left with fewer than
   ``min_gaussians`` Gaussians, are dropped and their Gaussians re-claimed by the others.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ovseg_core.instances.config import InstanceConfig


@dataclasses.dataclass
class MergeResult:
    labels: np.ndarray
    """``[N]`` int64 instance per Gaussian, -1 = none; instances ordered by size, largest first."""
    groups: list[np.ndarray]
    """Per instance, the (int64) rows of the input masks merged into it."""
    support: np.ndarray
    """``[K]`` int64 distinct views among each instance's masks."""
    sizes: np.ndarray
    """``[K]`` int64 Gaussians per instance."""


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:  # path compression
            self.parent[a], a = root, self.parent[a]
        return int(root)

    def components(self) -> np.ndarray:
        """``[n]`` int64 component index per element, numbered 0.. in order of first appearance."""
        roots = np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)
        return np.unique(roots, return_inverse=True)[1].astype(np.int64)


def merge_view_masks(
    members: sp.csr_matrix,
    view_of: np.ndarray,
    visible: sp.csr_matrix,
    config: InstanceConfig = InstanceConfig(),
) -> MergeResult:
    """Merge view masks into instances (rules in the module docstring).

    Args:
        members: ``[M, N]`` binary Gaussian set of every mask of every view.
        view_of: ``[M]`` int view (row of ``visible``) each mask comes from.
        visible: ``[V, N]`` binary, Gaussians visible in each view.
    """
    members = sp.csr_matrix(members, dtype=np.float32)
    M, N = members.shape
    view_of = np.asarray(view_of, dtype=np.int64)
    if view_of.shape != (M,):
        raise ValueError(f"view_of must be [{M}], got {list(view_of.shape)}")
    rows = np.flatnonzero(members.getnnz(axis=1) >= config.min_mask_gaussians)
    empty = MergeResult(np.full(N, -1, np.int64), [], np.zeros(0, np.int64), np.zeros(0, np.int64))
    if len(rows) == 0:
        return empty
    sets, views = members[rows], view_of[rows]
    group = _mask_pass(sets, views, visible, config.iou_threshold, config.min_mask_gaussians)
    mask_view = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (np.arange(len(rows)), views)), shape=(len(rows), visible.shape[0])
    )
    for _ in range(config.max_merge_rounds):
        votes = _consensus_votes(group, sets, mask_view, visible, config.consensus)
        i, j, iou = _group_iou(votes, group, views, visible)
        hit = iou >= config.iou_threshold
        if not hit.any():
            break
        uf = _UnionFind(int(group.max()) + 1)
        for a, b in zip(i[hit], j[hit]):
            ra, rb = uf.find(int(a)), uf.find(int(b))
            if ra != rb:
                uf.parent[rb] = ra
        group = uf.components()[group]
    votes = _consensus_votes(group, sets, mask_view, visible, config.consensus).tocoo()
    support = np.array([len(np.unique(views[group == k])) for k in range(int(group.max()) + 1)], np.int64)

    alive = support >= config.min_views
    labels = _claim(votes, alive, N)
    sizes = np.bincount(labels[labels >= 0], minlength=len(alive))
    alive &= sizes >= config.min_gaussians
    labels = _claim(votes, alive, N)  # Gaussians of dropped groups go to the next best group
    sizes = np.bincount(labels[labels >= 0], minlength=len(alive))
    kept = np.flatnonzero(alive & (sizes > 0))
    kept = kept[np.argsort(-sizes[kept], kind="stable")]
    if len(kept) == 0:
        return empty
    remap = np.full(len(alive), -1, np.int64)
    remap[kept] = np.arange(len(kept))
    labels = np.where(labels >= 0, remap[np.maximum(labels, 0)], -1)
    return MergeResult(
        labels=labels,
        groups=[rows[group == k] for k in kept],
        support=support[kept],
        sizes=sizes[kept].astype(np.int64),
    )


def visible_iou(
    sets: sp.csr_matrix, views: np.ndarray, visible: sp.csr_matrix, min_shared: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of overlapping mask pairs (i < j) counted only over Gaussians both views see:
    ``|S_i & S_j| / |(S_i & vis(view_j)) | (S_j & vis(view_i))|``. A top view and a side view of
    an object show different parts; plain IoU would call them different objects.
    -> (i, j, iou), each ``[E]``."""
    inter = sp.triu(sets @ sets.T, k=1).tocoo()
    i, j, v = inter.row.astype(np.int64), inter.col.astype(np.int64), inter.data.astype(np.float64)
    seen = (sets @ visible.T).tocsr()  # [M, V]: Gaussians of mask i visible in view v
    a = np.asarray(seen[i, views[j]]).reshape(-1)
    b = np.asarray(seen[j, views[i]]).reshape(-1)
    iou = v / np.maximum(a + b - v, 1.0)
    return i, j, np.where(v >= min_shared, iou, 0.0)  # a few shared Gaussians prove nothing


def _mask_pass(
    sets: sp.csr_matrix, views: np.ndarray, visible: sp.csr_matrix, threshold: float, min_shared: int
) -> np.ndarray:
    """Greedy union-find over cross-view pairs, best IoU first, one mask per view per group."""
    i, j, iou = visible_iou(sets, views, visible, min_shared)
    ok = (iou >= threshold) & (views[i] != views[j])
    i, j, iou = i[ok], j[ok], iou[ok]
    uf = _UnionFind(sets.shape[0])
    seen_views = {r: {int(v)} for r, v in enumerate(views)}
    for k in np.argsort(-iou, kind="stable"):
        ra, rb = uf.find(int(i[k])), uf.find(int(j[k]))
        if ra == rb or not seen_views[ra].isdisjoint(seen_views[rb]):
            continue
        if len(seen_views[ra]) < len(seen_views[rb]):
            ra, rb = rb, ra
        uf.parent[rb] = ra
        seen_views[ra] |= seen_views.pop(rb)
    return uf.components()


def _group_iou(
    votes: sp.csr_matrix, group: np.ndarray, views: np.ndarray, visible: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of overlapping groups' consensus sets, each side counted only where the other group's
    views see (as ``visible_iou``, with a group's views pooled). -> (i, j, iou)."""
    sets = votes.astype(bool).astype(np.float32).tocsr()
    inter = sp.triu(sets @ sets.T, k=1).tocoo()
    if inter.nnz == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    visible_c = visible.tocsc()
    group_views = [np.unique(views[group == k]) for k in range(sets.shape[0])]

    def seen_by(a: int, b: int) -> int:
        """Gaussians of group a that some view of group b sees."""
        cols = sets.indices[sets.indptr[a] : sets.indptr[a + 1]]
        return int((visible_c[group_views[b]][:, cols].getnnz(axis=0) > 0).sum())

    iou = np.array(
        [v / max(seen_by(a, b) + seen_by(b, a) - v, 1.0) for a, b, v in zip(inter.row, inter.col, inter.data)]
    )
    return inter.row.astype(np.int64), inter.col.astype(np.int64), iou


def _consensus_votes(
    group: np.ndarray, sets: sp.csr_matrix, mask_view: sp.csr_matrix, visible: sp.csr_matrix, consensus: float
) -> sp.csr_matrix:
    """``[G, N]`` masks of each group containing each Gaussian, kept only where that count is at
    least ``consensus`` times the group's masks whose view sees the Gaussian."""
    G, N = int(group.max()) + 1, sets.shape[1]
    assign = sp.csr_matrix((np.ones(len(group), np.float32), (group, np.arange(len(group)))), shape=(G, len(group)))
    votes = (assign @ sets).tocoo()
    seen = ((assign @ mask_view) @ visible).tocoo()
    # look the seen counts up at the votes' positions (a Gaussian inside a mask is visible in its view,
    # so every vote has a seen entry)
    seen_keys = seen.row.astype(np.int64) * N + seen.col
    order = np.argsort(seen_keys)
    vote_keys = votes.row.astype(np.int64) * N + votes.col
    pos = np.clip(np.searchsorted(seen_keys[order], vote_keys), 0, max(len(order) - 1, 0))
    seen_at = seen.data[order][pos] if len(order) else np.zeros(len(vote_keys), np.float32)
    seen_at = np.where(seen_keys[order][pos] == vote_keys, seen_at, votes.data) if len(order) else votes.data
    keep = votes.data >= consensus * np.maximum(seen_at, votes.data) - 1e-6
    return sp.csr_matrix((votes.data[keep], (votes.row[keep], votes.col[keep])), shape=(G, N))


def _claim(votes: sp.coo_matrix, alive: np.ndarray, num_gaussians: int) -> np.ndarray:
    """``[N]`` per Gaussian the alive group with the most votes for it (ties: lower index), else -1."""
    keep = alive[votes.row]
    g, c, v = votes.row[keep], votes.col[keep], votes.data[keep]
    labels = np.full(num_gaussians, -1, np.int64)
    if len(g) == 0:
        return labels
    order = np.lexsort((g, -v, c))  # by Gaussian, then most votes, then lowest group
    c, g = c[order], g[order]
    first = np.ones(len(c), bool)
    first[1:] = c[1:] != c[:-1]
    labels[c[first]] = g[first]
    return labels
