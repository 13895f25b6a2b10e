"""Instance labels refined over the neighbourhood graph (label spreading): Gaussians the views
split on (an object's base, outweighed at low angles by the table in front of it) follow their
neighbours, while the ones the views agree on keep their answer."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ovseg_core.eval.segment_quality import instance_quality
from ovseg_core.instances.build import LiftedMasks, instances_from_views, merge_and_fill
from ovseg_core.instances.config import InstanceConfig
from ovseg_core.instances.refine import spread_scores, vote_scores
from ovseg_core.render import make_renderer
from ovseg_core.scene import SH_C0, make_scene
from ovseg_core.selection.graph import GaussianGraph
from ovseg_core.synthetic.tabletop_capture import noisy_planted_views, tabletop_capture


def test_spreading_rounds_match_the_closed_form():
    g = np.random.default_rng(0)
    N = 60
    a = sp.random(N, N, density=0.1, random_state=1, format="csr")
    a = (a + a.T).tocsr()
    a.setdiag(0)
    a.eliminate_zeros()
    graph = GaussianGraph(a.astype(np.float32))
    votes = sp.csr_matrix(g.integers(0, 3, (N, 3)) * (g.uniform(size=(N, 3)) < 0.4))
    seen = np.where(g.uniform(size=N) < 0.8, 5, 0)
    y = vote_scores(votes, seen).toarray()
    assert np.all(y[seen == 0] == 0) and np.allclose(y[seen > 0].sum(1), np.maximum(1, y[seen > 0, :3].sum(1)))
    alpha = 0.9
    adj = graph.adjacency.astype(np.float64)
    deg = np.asarray(adj.sum(1)).reshape(-1)
    walk = sp.diags(np.where(deg > 0, 1 / np.maximum(deg, 1e-300), 0)) @ adj
    exact = sp.linalg.spsolve((sp.eye(N) - alpha * walk).tocsc(), (1 - alpha) * y)
    best, top = spread_scores(graph, sp.csr_matrix(y), alpha, tol=1e-12)
    np.testing.assert_array_equal(best[top > 1e-9], exact.argmax(1)[top > 1e-9])
    np.testing.assert_allclose(top, exact.max(1), atol=1e-9)


def column_on_table():
    """A red column (6 layers of a 4x4 grid) standing on a grey table (a 16x16 grid), and ten
    views: every mask puts the table in the table, the column's upper layers in the column, and
    its lowest layer in the table in 7 views of 10 (the table in front of it wins those pixels)."""
    t = np.linspace(-0.3, 0.3, 16)
    table = np.stack(np.meshgrid(t, t), -1).reshape(-1, 2)
    table = np.c_[table, np.zeros(len(table))]
    c = np.linspace(-0.03, 0.03, 4)
    ring = np.stack(np.meshgrid(c, c), -1).reshape(-1, 2)
    column = np.concatenate([np.c_[ring, np.full(len(ring), 0.012 + 0.02 * z)] for z in range(6)])
    means = np.concatenate([table, column])
    n_t, N = len(table), len(means)
    colour = np.concatenate([np.full((n_t, 3), 0.5), np.tile([0.85, 0.1, 0.1], (len(column), 1))])
    colour += np.random.default_rng(0).normal(0, 0.03, colour.shape)
    scale = np.full((N, 3), 0.015)
    scene = make_scene(
        means=means,
        quats=np.tile([1.0, 0, 0, 0], (N, 1)),
        log_scales=np.log(scale),
        logit_opacities=np.zeros(N),
        sh0=((colour - 0.5) / SH_C0)[:, None, :],
    )
    is_column = np.arange(N) >= n_t
    base = is_column & (means[:, 2] < 0.02)
    V = 10
    rows, cols, view_of = [], [], []
    for v in range(V):
        for is_table_mask in (True, False):
            in_table_mask = ~is_column | (base & (v < 7))
            ids = np.flatnonzero(in_table_mask if is_table_mask else ~in_table_mask)
            rows.append(np.full(len(ids), len(view_of)))
            cols.append(ids)
            view_of.append(v)
    r, c = np.concatenate(rows), np.concatenate(cols)
    members = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(view_of), N))
    visible = sp.csr_matrix(np.ones((V, N), np.float32))
    lifted = LiftedMasks(members, np.asarray(view_of), np.zeros((len(view_of), 4), np.float32), visible)
    return scene, lifted, is_column, base


def test_a_base_the_views_split_on_follows_its_neighbours():
    scene, lifted, is_column, base = column_on_table()
    refined = merge_and_fill(scene, lifted, InstanceConfig(min_views=1, min_gaussians=1))
    claims = merge_and_fill(scene, lifted, InstanceConfig(min_views=1, min_gaussians=1, neighbour_weight=0.0))
    column_id = np.bincount(refined.labels[is_column & ~base]).argmax()
    table_id = np.bincount(refined.labels[~is_column]).argmax()
    assert column_id != table_id
    assert (refined.labels[is_column] == column_id).all()  # the base too
    assert (refined.labels[~is_column] == table_id).all()  # the table gives nothing away
    # the views' claims alone put the base in the table (or in nothing)
    assert not (claims.labels[base] == np.bincount(claims.labels[is_column & ~base]).argmax()).any()
    assert refined.sizes.tolist() == sorted(refined.sizes.tolist(), reverse=True)


def test_bases_on_a_tabletop_join_their_objects():
    renderer = make_renderer("cpu")
    cap = tabletop_capture(4, 300, cameras_per_ring=6, seed=0)
    views = noisy_planted_views(cap, renderer, seed=0)
    z = cap.scene.means[:, 2].numpy()
    share = {}
    for w in (0.0, InstanceConfig().neighbour_weight):
        _, merged = instances_from_views(cap.scene, views, renderer, InstanceConfig(neighbour_weight=w), level=1)
        quality = instance_quality(cap, merged.labels)
        assert not any(q.split or q.absorbed for q in quality), quality
        share[w] = []
        for k in range(cap.num_objects):
            obj = cap.object_ids == k
            best = np.bincount(merged.labels[obj & (merged.labels >= 0)]).argmax()
            low = obj & (z < 0.01)  # the lowest centimetre, behind the table's Gaussians in most views
            share[w].append(float((merged.labels[low] == best).mean()))
            table_in = (merged.labels == best) & (cap.object_ids < 0)
            assert table_in.sum() <= 0.05 * obj.sum(), (k, int(table_in.sum()))
    old, new = np.array(share[0.0]), np.array(share[InstanceConfig().neighbour_weight])
    assert (new > old).all() and new.mean() > 0.9, (old, new)
