"""Spatially consistent selections (``ovseg_core.selection``): the colour-weighted graph, the
evidence-weighted label solve against its direct twin, and what it does to buried, unseen and
stray Gaussians."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ovseg_core.scene import SH_C0, make_scene
from ovseg_core.selection import SelectionConfig, build_graph, consistent_selection, grow_from_seed, regularised_labels
from ovseg_core.selection.graph import MIN_AFFINITY, GaussianGraph
from ovseg_core.synthetic import random_scene


def _chain(n: int) -> GaussianGraph:
    rows = np.arange(n - 1)
    adj = sp.coo_matrix((np.ones(n - 1, np.float32), (rows, rows + 1)), shape=(n, n))
    return GaussianGraph((adj + adj.T).tocsr())


def test_conjugate_gradients_match_the_direct_solve():
    scene = random_scene(400, seed=3, scale_range=(0.05, 0.2))
    graph = build_graph(scene)
    g = np.random.default_rng(0)
    labels = g.random(400) < 0.4
    evidence = g.exponential(1.0, 400) * (g.random(400) < 0.8)  # a fifth unseen
    for weight in (0.0, 0.3, 1.0, 5.0):
        fast = regularised_labels(graph, labels, evidence, weight)
        slow = regularised_labels(graph, labels, evidence, weight, exact=True)
        # the solve stops when a Jacobi step moves no label by 1e-3; slow modes leave a few times that
        np.testing.assert_allclose(fast, slow, atol=1e-2)
        clear = np.abs(slow - 0.5) > 1e-2
        assert ((fast > 0.5) == (slow > 0.5))[clear].all()
    # no neighbourhood: seen Gaussians keep their own label, unseen ones are not selected
    alone = regularised_labels(graph, labels, evidence, 0.0)
    np.testing.assert_allclose(alone[evidence > 0], labels[evidence > 0], atol=1e-4)
    assert (alone[evidence == 0] < 1e-4).all()


def test_faint_gaussians_follow_their_neighbours_and_well_seen_ones_keep_their_label():
    n = 30
    graph = _chain(n)
    scores = np.full(n, 0.9, np.float32)
    evidence = np.ones(n)
    scores[10:15] = 0.1  # what a faint view said of a buried stretch (another object's pixels)...
    evidence[10:15] = 1e-3  # ... from a sliver of those pixels
    scores[22] = 0.1  # a Gaussian clearly seen as something else
    evidence[22] = 20.0
    sel = consistent_selection(graph, scores, 0.5, evidence, SelectionConfig(min_component=1))
    assert sel[10:15].all() and not sel[22]
    alone = consistent_selection(graph, scores, 0.5, evidence, SelectionConfig(min_component=1, neighbourhood_weight=0))
    assert (alone == (scores > 0.5)).all()
    with pytest.raises(ValueError, match="evidence must be finite and >= 0"):
        consistent_selection(graph, scores, 0.5, -evidence)


def test_consistency_fills_hidden_gaussians_and_drops_strays():
    # a chain 0-1-...-29 (one object) and an isolated stray Gaussian 30
    n = 31
    adj = _chain(30).adjacency
    graph = GaussianGraph(sp.block_diag([adj, sp.csr_matrix((1, 1), dtype=np.float32)]).tocsr())
    scores = np.full(n, 0.9, np.float32)
    known = np.ones(n, bool)
    known[10:15] = False  # hidden: no score
    scores[10:15] = 0.0
    sel = consistent_selection(graph, scores, 0.5, known, SelectionConfig(min_component=3))
    assert sel[:30].all() and not sel[30]
    assert (consistent_selection(graph, scores, 0.5, known, SelectionConfig(enabled=False)) == (scores > 0.5)).all()
    grown = grow_from_seed(graph, 3, scores, 0.5, known, SelectionConfig(min_component=3))
    assert set(grown.tolist()) == set(range(30))


def _mug_on_a_table():
    """A red open cylinder (r 3 cm, 10 cm tall, 5 mm spacing) standing in a brown table's fuzz
    (1 cm grid, sigma 8 mm): its lowest 2 cm are inside the table's Gaussians."""
    g = np.random.default_rng(0)
    xs = np.arange(-0.1, 0.1001, 0.01)
    table = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    table = np.c_[table, g.normal(0, 0.002, len(table))]
    th = np.linspace(0, 2 * np.pi, 38, endpoint=False)
    zs = np.arange(0.0, 0.1001, 0.005)
    t, z = np.meshgrid(th, zs)
    mug = np.c_[0.03 * np.cos(t.ravel()), 0.03 * np.sin(t.ravel()), z.ravel()]
    means = np.concatenate([table, mug])
    n_table = len(table)
    colour = np.where(np.arange(len(means))[:, None] < n_table, [0.55, 0.35, 0.2], [0.85, 0.1, 0.1])
    colour = np.clip(colour + g.normal(0, 0.03, colour.shape), 0.01, 0.99)
    sigma = np.where(np.arange(len(means)) < n_table, 0.008, 0.004)
    scene = make_scene(
        means=means,
        quats=np.tile([1.0, 0, 0, 0], (len(means), 1)),
        log_scales=np.log(sigma)[:, None].repeat(3, 1),
        logit_opacities=np.full(len(means), 2.0),
        sh0=((colour - 0.5) / SH_C0)[:, None, :],
    )
    is_mug = np.arange(len(means)) >= n_table
    buried = is_mug & (means[:, 2] <= 0.02)
    return scene, is_mug, buried


def test_colour_links_keep_a_buried_rim_with_its_object():
    scene, is_mug, buried = _mug_on_a_table()
    # what the views said: the rim shows only as a sliver of table pixels; the rest is clear
    scores = np.where(is_mug & ~buried, 0.9, 0.1).astype(np.float32)
    evidence = np.where(buried, 0.002, 1.0)
    coloured = build_graph(scene)
    assert coloured.adjacency.data.min() >= MIN_AFFINITY and coloured.adjacency.data.max() <= 1.0
    sel = consistent_selection(coloured, scores, 0.5, evidence)
    assert sel[is_mug].mean() >= 0.98 and not sel[~is_mug].any(), (sel[is_mug].mean(), sel[~is_mug].sum())
    # every link alike: the table's many well-seen Gaussians pull the rim away from the mug
    plain = consistent_selection(build_graph(scene, colour_affinity=False), scores, 0.5, evidence)
    assert plain[buried].mean() < 0.5 < sel[buried].mean()
    seed = int(np.flatnonzero(is_mug & ~buried)[0])
    grown = grow_from_seed(coloured, seed, scores, 0.5, evidence)
    assert set(grown.tolist()) == set(np.flatnonzero(is_mug).tolist())


def test_graph_links_overlapping_gaussians_only():
    # sigma 0.01 everywhere: a link needs centres at most 1.5 * (0.01 + 0.01) = 0.03 apart
    means = np.array([[0, 0, 0], [0.02, 0, 0], [0.045, 0, 0], [1.0, 0, 0]], np.float32)
    scene = make_scene(
        means, np.tile([1.0, 0, 0, 0], (4, 1)), np.full((4, 3), np.log(0.01)), np.zeros(4), np.zeros((4, 3))
    )
    graph = build_graph(scene, neighbours=3)
    links = {tuple(sorted(p)) for p in zip(*graph.adjacency.nonzero())}
    assert links == {(0, 1), (1, 2)}  # 0.02 and 0.025 apart; 0 and 2 are 0.045 apart, 3 is far from all
    assert graph.degree().tolist() == [1, 2, 1, 0]
    assert np.allclose(graph.adjacency.data, 1.0)  # one colour everywhere: links weigh 1
