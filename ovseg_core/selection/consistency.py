"""Relevancy -> a selection that is whole and clean, using the Gaussians' neighbourhood graph.

1. Label: a Gaussian passes when its own score exceeds the threshold (y_i = 1, else 0).
2. Weigh evidence against neighbours: each Gaussian's *evidence* W_i is how much the views told
   about it (its squared blending weights summed over the training pixels by lifting or
   registration, ``fields.backprojection``; 0 for Gaussians no view showed). The soft label p minimises
       sum_i W_i (p_i - y_i)^2 + lam * sum_(i,j) a_ij (p_i - p_j)^2
   over the colour-weighted links a_ij (``graph``), i.e. solves (diag(W) + lam L) p = W y: a
   random walker whose seeds are the well-seen Gaussians. Well-seen Gaussians keep their own
   label; faint, buried or unseen ones (a mug's rim sunk in the table's fuzz, undersides, insides)
   take their look-alike neighbourhood's. ``lam`` is ``neighbourhood_weight`` times the median seen
   Gaussian's evidence per unit of link weight, so the balance does not depend on the number of
   views or the capture's opacity. A Gaussian is selected where p > 1/2.
3. Keep only connected pieces of the selection with at least ``min_component`` Gaussians and
   ``min_component_fraction`` of the largest piece: isolated strays (floaters, haze, a few
   Gaussians of another object) drop out.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ovseg_core.selection.config import SelectionConfig
from ovseg_core.selection.graph import GaussianGraph

SOLVER_TOLERANCE = 1e-3
"""The solve stops once a Jacobi step would move no soft label by more than this (they are
compared with 1/2)."""
SOLVER_MAX_ITERATIONS = 2000


def label_system(
    graph: GaussianGraph, labels: np.ndarray, evidence: np.ndarray, neighbourhood_weight: float
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The linear system ``(M [N, N], b [N])`` of step 2 for ``labels`` [N] in [0, 1] and
    ``evidence`` [N] >= 0 (float64)."""
    w = np.asarray(evidence, np.float64)
    y = np.asarray(labels, np.float64)
    seen = w > 0
    unit = float(np.median(w[seen])) if seen.any() else 1.0
    degree = graph.weighted_degree()
    linked = degree > 0
    lam = neighbourhood_weight * unit / float(degree[linked].mean()) if linked.any() else 0.0
    # a tiny pull towards 0 keeps the system positive definite where nothing is seen (p = 0 there)
    diag = w + 1e-6 * unit
    m = sp.diags(diag) + lam * graph.laplacian() if lam > 0 else sp.diags(diag)
    return m.tocsr(), w * y


def regularised_labels(
    graph: GaussianGraph,
    labels: np.ndarray,
    evidence: np.ndarray,
    neighbourhood_weight: float = 1.0,
    *,
    exact: bool = False,
) -> np.ndarray:
    """Step 2: soft labels ``[N]`` float32 in [0, 1] (``labels`` weighed by ``evidence`` against the
    neighbourhood). Conjugate gradients with a Jacobi preconditioner, started from the seen
    Gaussians' labels; ``exact`` solves directly instead (its slow twin, for tests)."""
    m, b = label_system(graph, labels, evidence, neighbourhood_weight)
    if exact:
        from scipy.sparse.linalg import spsolve

        p = spsolve(m.tocsc(), b)
    else:
        x0 = np.where(np.asarray(evidence) > 0, np.asarray(labels, np.float64), 0.0)
        p = _jacobi_cg(m, b, x0)
    return np.clip(p, 0.0, 1.0).astype(np.float32)


def _jacobi_cg(m: sp.csr_matrix, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Solve ``m x = b`` (symmetric positive definite) by conjugate gradients preconditioned with
    its diagonal, until the preconditioned residual (what a Jacobi step would add) is below
    ``SOLVER_TOLERANCE`` everywhere: a stop in the units of the labels, where a relative residual
    would let Gaussians with little evidence and few links stay wrong."""
    inv_diag = 1.0 / m.diagonal()
    r = b - m @ x
    z = inv_diag * r
    d = z.copy()
    rz = float(r @ z)
    for _ in range(SOLVER_MAX_ITERATIONS):
        if not len(z) or float(np.abs(z).max()) < SOLVER_TOLERANCE:
            break
        q = m @ d
        alpha = rz / float(d @ q)
        x = x + alpha * d
        r = r - alpha * q
        z = inv_diag * r
        rz_next = float(r @ z)
        d = z + (rz_next / rz) * d
        rz = rz_next
    return x


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


def _evidence(scores: np.ndarray, evidence: np.ndarray | None) -> np.ndarray:
    """``evidence`` as float64 ``[N]`` (bool masks count 1 per seen Gaussian; None: all seen alike)."""
    if evidence is None:
        return np.ones(len(scores), np.float64)
    w = np.asarray(evidence, np.float64)
    if w.shape != scores.shape:
        raise ValueError(f"evidence must be {list(scores.shape)}, got {list(w.shape)}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("evidence must be finite and >= 0")
    return w


def consistent_selection(
    graph: GaussianGraph,
    scores: np.ndarray,
    threshold: float,
    evidence: np.ndarray | None = None,
    config: SelectionConfig = SelectionConfig(),
) -> np.ndarray:
    """``[N]`` bool: Gaussians that, weighed against their neighbourhood, exceed ``threshold``,
    without strays. ``evidence`` [N] (float >= 0, or a bool seen-mask; default: all alike) says
    how much each Gaussian's own score counts."""
    scores = np.asarray(scores, np.float32)
    if scores.shape != (graph.num_gaussians,):
        raise ValueError(f"scores must be [{graph.num_gaussians}], got {list(scores.shape)}")
    if not config.enabled:
        return scores > threshold
    w = _evidence(scores, evidence)
    p = regularised_labels(graph, scores > threshold, w, config.neighbourhood_weight)
    return keep_components(graph, p > 0.5, config)


def grow_from_seed(
    graph: GaussianGraph,
    seed: int,
    scores: np.ndarray,
    threshold: float,
    evidence: np.ndarray | None = None,
    config: SelectionConfig = SelectionConfig(),
) -> np.ndarray:
    """``[M]`` int64 ids of the connected piece of the consistent selection (scores > threshold,
    e.g. similarity to the clicked Gaussian's feature, weighed as in ``consistent_selection``)
    that holds ``seed``; the seed alone if nothing around it passes."""
    scores = np.asarray(scores, np.float32)
    if config.enabled:
        w = _evidence(scores, evidence)
        selected = regularised_labels(graph, scores > threshold, w, config.neighbourhood_weight) > 0.5
    else:
        selected = scores > threshold
    selected[seed] = True
    ids = np.flatnonzero(selected)
    sub = graph.adjacency[ids][:, ids]
    _, labels = connected_components(sp.csr_matrix(sub), directed=False)
    seed_local = int(np.searchsorted(ids, seed))
    return ids[labels == labels[seed_local]]


def propagate_labels(graph: GaussianGraph, labels: np.ndarray, targets: np.ndarray, rounds: int = 30) -> np.ndarray:
    """Give each of ``targets`` [N] bool the label (>= 0) with the most link weight among its
    labelled neighbours, round after round (so labels spread inwards); -1 stays where no labelled
    neighbour is reached."""
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
        rows, lab, weight = sub.row[ok], lab[ok], sub.data[ok]
        K = int(lab.max()) + 1
        votes = sp.csr_matrix((weight.astype(np.float32), (rows, lab)), shape=(len(todo), K))
        has = votes.getnnz(axis=1) > 0
        best = np.asarray(votes.argmax(axis=1)).reshape(-1)
        out[todo[has]] = best[has]
    return out
