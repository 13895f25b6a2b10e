"""Relevancy -> a selection that is whole and clean, using the Gaussians' neighbourhood graph.

1. Smooth: a seen Gaussian's score becomes (1 - a) * own + a * mean over seen neighbours
   (``smoothing`` rounds), which pulls single outliers towards their surroundings.
2. Fill: Gaussians without a score (no view showed them: undersides, insides) take the mean of
   their neighbours, repeated until it settles (``fill_rounds``), so hidden parts follow the
   visible surface around them.
3. Threshold, then keep only connected pieces of the selection with at least
   ``min_component`` Gaussians and ``min_component_fraction`` of the largest piece: isolated
   strays (floaters, haze, a few Gaussians of another object) drop out.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ovseg_core.selection.config import SelectionConfig
from ovseg_core.selection.graph import GaussianGraph


def smooth_scores(graph: GaussianGraph, scores: np.ndarray, known: np.ndarray, config: SelectionConfig) -> np.ndarray:
    """Steps 1-2: ``scores`` [N] (meaningful where ``known`` [N] bool) -> smoothed, filled [N] float32."""
    s = np.where(known, scores, 0.0).astype(np.float32)
    w_known = known.astype(np.float32)
    a = np.float32(config.smoothing_weight)
    for _ in range(config.smoothing):
        mean, total = graph.neighbour_mean(s, w_known)
        s = np.where(known & (total > 0), (1 - a) * s + a * mean, s).astype(np.float32)
    if config.fill_rounds and not known.all():
        filled = known.copy()
        for _ in range(config.fill_rounds):
            mean, total = graph.neighbour_mean(s, filled.astype(np.float32))
            reach = ~known & (total > 0)
            s = np.where(reach, mean, s).astype(np.float32)
            filled |= reach
    return s


def keep_components(graph: GaussianGraph, selected: np.ndarray, config: SelectionConfig) -> np.ndarray:
    """Step 3: drop small connected pieces of ``selected`` [N] bool."""
    ids = np.flatnonzero(selected)
    if len(ids) == 0:
        return selected.copy()
    sub = graph.adjacency[ids][:, ids]
    n, labels = connected_components(sp.csr_matrix(sub), directed=False)
    sizes = np.bincount(labels, minlength=n)
    floor = max(config.min_component, config.min_component_fraction * sizes.max())
    out = np.zeros_like(selected)
    out[ids[sizes[labels] >= floor]] = True
    return out


def consistent_selection(
    graph: GaussianGraph,
    scores: np.ndarray,
    threshold: float,
    known: np.ndarray | None = None,
    config: SelectionConfig = SelectionConfig(),
) -> np.ndarray:
    """``[N]`` bool: Gaussians whose smoothed, filled score exceeds ``threshold``, without strays.
    ``known`` [N] bool marks Gaussians that have a score (default: all)."""
    scores = np.asarray(scores, np.float32)
    if scores.shape != (graph.num_gaussians,):
        raise ValueError(f"scores must be [{graph.num_gaussians}], got {list(scores.shape)}")
    known = np.ones(len(scores), bool) if known is None else np.asarray(known, bool)
    if not config.enabled:
        return scores > threshold
    s = smooth_scores(graph, scores, known, config)
    return keep_components(graph, s > threshold, config)


def grow_from_seed(
    graph: GaussianGraph,
    seed: int,
    scores: np.ndarray,
    threshold: float,
    known: np.ndarray | None = None,
    config: SelectionConfig = SelectionConfig(),
) -> np.ndarray:
    """``[M]`` int64 ids of the connected piece of the consistent selection (scores > threshold,
    e.g. similarity to the clicked Gaussian's feature) that holds ``seed``; the seed alone if its
    own score falls below."""
    scores = np.asarray(scores, np.float32)
    known = np.ones(len(scores), bool) if known is None else np.asarray(known, bool)
    s = smooth_scores(graph, scores, known, config) if config.enabled else scores
    selected = s > threshold
    selected[seed] = True
    ids = np.flatnonzero(selected)
    sub = graph.adjacency[ids][:, ids]
    _, labels = connected_components(sp.csr_matrix(sub), directed=False)
    seed_local = int(np.searchsorted(ids, seed))
    return ids[labels == labels[seed_local]]


def propagate_labels(graph: GaussianGraph, labels: np.ndarray, targets: np.ndarray, rounds: int = 30) -> np.ndarray:
    """Give each of ``targets`` [N] bool the label (>= 0) most of its labelled neighbours hold,
    round after round (so labels spread inwards); -1 stays where no labelled neighbour is reached."""
    out = np.asarray(labels, np.int64).copy()
    targets = np.asarray(targets, bool)
    adj = graph.adjacency.tocsr()
    for _ in range(rounds):
        todo = np.flatnonzero(targets & (out < 0))
        if len(todo) == 0:
            break
        sub = adj[todo].tocoo()
        lab = out[sub.col]
        ok = lab >= 0
        if not ok.any():
            break
        rows, lab = sub.row[ok], lab[ok]
        K = int(lab.max()) + 1
        votes = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, lab)), shape=(len(todo), K))
        has = votes.getnnz(axis=1) > 0
        best = np.asarray(votes.argmax(axis=1)).reshape(-1)
        out[todo[has]] = best[has]
    return out
