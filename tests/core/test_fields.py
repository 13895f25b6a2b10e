"""LangSplatV2 field math: sparse codes, the contribution-based fast path against the dense
re-rasterising reference, checkpoints, and relevancy kernels against plain formulas."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovseg_core.camera import orbit_cameras
from ovseg_core.errors import Cancelled, FieldMismatchError
from ovseg_core.eval.segment_quality import iou
from ovseg_core.fields import (
    CodebookField,
    FieldConfig,
    FieldQuery,
    LanguageFieldTrainer,
    LanguageTrainConfig,
    QuerySettings,
    TrainingView,
    load_fields,
)
from ovseg_core.fields import _relevancy_kernels as relevancy_kernels
from ovseg_core.fields.view_contributions import blend_sparse_codes, compute_contributions
from ovseg_core.models.palette_models import VocabularyTextEncoder
from ovseg_core.render import make_renderer
from ovseg_core.selection import build_graph, consistent_selection
from ovseg_core.synthetic import floating_objects_scene, random_scene
from ovseg_core.synthetic.faint_capture import faint_capture, planted_views


class RandomTextEncoder:
    """A real (if untrained) text encoder: a fixed random embedding per phrase."""

    name = "random-text"

    def __init__(self, dim: int) -> None:
        self.embed_dim = dim

    def encode_texts(self, texts):
        out = []
        for t in texts:
            g = torch.Generator().manual_seed(sum(map(ord, t)) * 7919 % (2**31))
            out.append(F.normalize(torch.randn(self.embed_dim, generator=g), dim=0))
        return torch.stack(out)


@pytest.fixture(scope="module")
def small_setup():
    scene = floating_objects_scene(points_per_object=150)
    cams = orbit_cameras((0, 0, 0.05), 2.0, 4, elevation_deg=30, width=48, height=36)
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(5, 16, generator=g), dim=1)
    r = make_renderer("cpu")
    ids = torch.from_numpy(scene.extras["object_id"]).long()
    views = []
    for i, c in enumerate(cams):
        w, obj = r.render(scene, c, features=F.one_hot(ids, 5).float()).features[0].max(dim=-1)
        seg = torch.where(w > 0.5, obj, torch.full_like(obj, -1))
        views.append(TrainingView(f"v{i}", c, feats, torch.stack([seg] * 4)))
    return scene, views


def test_sparse_codes_are_topk_and_sum_to_one():
    field = CodebookField(10, FieldConfig(num_layers=2, codebook_size=8, top_k=3, embed_dim=4, logit_init_std=1.0))
    idx, val = field.sparse_codes()
    assert idx.shape == (10, 2, 3) and torch.allclose(val.sum(-1), torch.ones(10, 2))
    dense = field.dense_codes().view(10, 2, 8)
    assert ((dense > 0).sum(-1) == 3).all()
    # the kept entries are the largest logits
    top = torch.topk(field.logits.view(10, 2, 8), 3, dim=-1).indices
    assert torch.equal(torch.sort(top, -1).values, torch.sort(idx, -1).values)


def test_residual_schedule_detaches_earlier_layers():
    field = CodebookField(6, FieldConfig(num_layers=2, codebook_size=8, top_k=2, embed_dim=4, logit_init_std=0.5))
    with torch.no_grad():
        field.codebooks.normal_()
    feats = field.dense_codes(active_layer=1) @ field.stacked_codebooks(active_layer=1)
    feats.sum().backward()
    assert field.codebooks.grad[0].abs().sum() == 0 and field.codebooks.grad[1].abs().sum() > 0
    assert field.logits.grad[:, :8].abs().sum() == 0 and field.logits.grad[:, 8:].abs().sum() > 0
    field.zero_grad()
    (field.dense_codes(active_layer=0) @ field.stacked_codebooks(active_layer=0)).sum().backward()
    assert field.logits.grad[:, 8:].abs().sum() == 0  # later layers do not take part yet


def test_kmeans_init_fits_residuals_layer_by_layer():
    from sklearn.cluster import MiniBatchKMeans

    g = np.random.default_rng(0)
    x = g.normal(size=(400, 8)).astype(np.float32)
    field = CodebookField(3, FieldConfig(num_layers=2, codebook_size=5, top_k=2, embed_dim=8))
    field.init_codebooks(x, seed=42)
    km = MiniBatchKMeans(n_clusters=5, random_state=42).fit(x)
    np.testing.assert_allclose(field.codebooks[0].detach().numpy(), km.cluster_centers_, atol=1e-5)
    resid = x - km.cluster_centers_[km.predict(x)]
    km2 = MiniBatchKMeans(n_clusters=5, random_state=42).fit(resid)
    np.testing.assert_allclose(field.codebooks[1].detach().numpy(), km2.cluster_centers_, atol=1e-4)
    with pytest.raises(ValueError, match=r"\[M, 8\]"):
        field.init_codebooks(x[:, :4])


def test_sparse_blend_matches_renderer_and_dense_gradient():
    scene = random_scene(300, sh_degree=0, seed=1)
    cam = orbit_cameras((0, 0, 0), 3.0, 1, width=40, height=30)[0]
    r = make_renderer("cpu")
    field = CodebookField(scene.num_gaussians, FieldConfig(codebook_size=16, top_k=4, embed_dim=8, logit_init_std=1.0))
    contrib = compute_contributions(r, scene, cam, None, top_k=64, min_weight=0.0)
    gids = torch.from_numpy(contrib.gaussian_ids).long()
    idx, val = field.flat_sparse_codes(gids)
    fast = blend_sparse_codes(contrib, idx, val, 16)
    ref = r.render(scene, cam, features=field.dense_codes().detach()).features[0].reshape(-1, 16)
    # float16 weights: each rounds by at most 2^-11 relative, and all terms are positive
    np.testing.assert_allclose(fast.detach().numpy(), ref.numpy(), rtol=6e-4, atol=2e-5)
    # backward against a dense torch formulation of the same blend
    g = torch.randn_like(fast)
    (fast * g).sum().backward()
    grad_fast = field.logits.grad.clone()
    field.zero_grad()
    rows = torch.repeat_interleave(torch.arange(len(contrib.pixels)), torch.from_numpy(np.diff(contrib.row_ptr)))
    A = torch.zeros(len(contrib.pixels), len(gids))
    A[rows, torch.from_numpy(contrib.cols).long()] = torch.from_numpy(contrib.weights).float()
    ((A @ field.dense_codes(gids)) * g).sum().backward()
    torch.testing.assert_close(grad_fast, field.logits.grad, atol=1e-5, rtol=1e-4)


def test_sparse_loss_equals_dense_reference_loss(small_setup):
    scene, views = small_setup
    cfg = LanguageTrainConfig(
        max_steps=1, contributions_top_k=64, field=FieldConfig(codebook_size=8, logit_init_std=1.0)
    )
    sparse = LanguageFieldTrainer(scene, views, cfg, renderer=make_renderer("cpu"))
    dense = LanguageFieldTrainer(
        scene, views, dataclasses.replace(cfg, method="dense"), renderer=make_renderer("torch")
    )
    field = CodebookField(scene.num_gaussians, sparse.config.field, seed=3)
    field.init_codebooks(torch.cat([v.features for v in views]))
    for v in views:
        ls, cs = sparse._sparse_loss(field, v, 1, 0)
        ld, cd = dense._dense_loss(field, v, 1, 0)
        assert float(ls.detach()) == pytest.approx(float(ld.detach()), rel=2e-3, abs=1e-6)
        assert cs == pytest.approx(cd, rel=2e-3, abs=1e-6)


def test_training_lowers_loss_and_writes_a_loadable_checkpoint(small_setup, tmp_path):
    scene, views = small_setup
    cfg = LanguageTrainConfig(max_steps=40, log_every=5, field=FieldConfig(codebook_size=8))
    seen = []
    trainer = LanguageFieldTrainer(scene, views, cfg, encoder_name="random-text", progress=seen.append)
    field0 = CodebookField(scene.num_gaussians, trainer.config.field)
    field0.init_codebooks(torch.cat([v.features for v in views]))
    trainer.fields[1] = field0
    before = trainer.evaluate(views, 1)["cosine_loss_valid"]
    fields = trainer.run()
    after = trainer.evaluate(views, 1)["cosine_loss_valid"]
    assert after < 0.5 * before
    assert seen[-1].step == 40 and seen[-1].fraction == 1.0
    path = fields.save(tmp_path / "f.pt")
    loaded = load_fields(path, scene)
    assert loaded.levels.keys() == {1} and loaded.encoder_name == "random-text"
    torch.testing.assert_close(loaded.levels[1].features(), fields.levels[1].features())
    assert torch.load(path, weights_only=True)["scene"]["fingerprint"] == scene.fingerprint()


def test_checkpoint_refuses_another_splat_and_garbage(small_setup, tmp_path):
    scene, views = small_setup
    trainer = LanguageFieldTrainer(scene, views, LanguageTrainConfig(max_steps=2, field=FieldConfig(codebook_size=8)))
    path = trainer.run().save(tmp_path / "ckpt" / "f.pt")
    other = floating_objects_scene(points_per_object=150, seed=4)
    with pytest.raises(FieldMismatchError, match="trained on a splat with 750 Gaussians"):
        load_fields(path, other)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(FieldMismatchError, match="bad.pt"):
        load_fields(bad)
    assert load_fields(tmp_path / "ckpt").source == str(path)  # a directory resolves to the file inside


def test_relevancy_matches_plain_formulas(small_setup):
    scene, views = small_setup
    trainer = LanguageFieldTrainer(
        scene, views, LanguageTrainConfig(max_steps=10, field=FieldConfig(codebook_size=8, num_layers=2))
    )
    fields = trainer.run()
    text = RandomTextEncoder(16)
    q = FieldQuery(fields, text)
    settings = QuerySettings(negatives=("object", "things"))
    rel, lvl = q.gaussian_relevancy("ball", settings)
    raw = fields.codes_3d(1).features()  # registered onto the Gaussians (zero where no view reached)
    f = F.normalize(raw, dim=1)
    t = text.encode_texts(["ball", "object", "things"])
    s = f @ t.T
    expect = (
        torch.stack([torch.softmax(10 * torch.stack([s[:, 0], s[:, j]], 1), 1)[:, 0] for j in (1, 2)], 1).min(1).values
    )
    expect = torch.where(raw.norm(dim=1) > 1e-9, expect, torch.zeros_like(expect))  # unseen: 0, not 0.5
    np.testing.assert_allclose(rel, expect.numpy(), atol=1e-5)
    # a second prompt reuses the negatives' cached scores and must still match
    rel2, _ = q.gaussian_relevancy("cube", dataclasses.replace(settings, level=lvl))
    s2 = f @ text.encode_texts(["cube"]).T
    expect2 = torch.sigmoid(10 * (s2[:, 0] - s[:, 1:].max(1).values))
    expect2 = torch.where(raw.norm(dim=1) > 1e-9, expect2, torch.zeros_like(expect2))
    np.testing.assert_allclose(rel2, expect2.numpy(), atol=1e-5)
    # a prompt that is one of the negatives ties with it: never above 0.5, so never selected
    tie, _ = q.gaussian_relevancy("object", dataclasses.replace(settings, level=lvl))
    assert tie.max() <= 0.5 and (tie == 0.5).any()
    # another negative set must not reuse the cached scores
    rel3, _ = q.gaussian_relevancy("cube", dataclasses.replace(settings, level=lvl, negatives=("object",)))
    expect3 = torch.where(raw.norm(dim=1) > 1e-9, torch.sigmoid(10 * (s2[:, 0] - s[:, 1])), torch.zeros_like(s2[:, 0]))
    np.testing.assert_allclose(rel3, expect3.numpy(), atol=1e-5)
    # per pixel: decode the rendered features fully and compare
    r = make_renderer("cpu")
    cam = views[0].camera
    pix, _ = q.pixel_relevancy(r, scene, cam, "ball", dataclasses.replace(settings, min_alpha=0.0))
    feats = r.render(scene, cam, features=fields.levels[1].features()).features[0]
    fp = F.normalize(feats, dim=-1)
    sp = fp @ t.T
    expect_p = torch.sigmoid(10 * (sp[..., 0] - sp[..., 1:].max(-1).values))
    expect_p = torch.where(feats.norm(dim=-1) > 1e-6, expect_p, torch.zeros_like(expect_p))
    np.testing.assert_allclose(pix, expect_p.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="prompt is empty"):
        q.gaussian_relevancy("  ")
    with pytest.raises(ValueError, match="embeds into 8 dims"):
        FieldQuery(fields, RandomTextEncoder(8))


@pytest.mark.parametrize("num_entries, queries", [(16, 5), (4, 1), (3, 2)])
def test_relevancy_kernels_match_their_numpy_twin(num_entries, queries):
    rng = np.random.default_rng(num_entries)
    n, E = 2000, 64
    idx = rng.integers(0, E, (n, num_entries)).astype(np.uint8)
    val = (rng.normal(size=(n, num_entries)) / num_entries).astype(np.float32)  # scores of cosine size
    table = rng.uniform(-1, 1, size=(E, queries)).astype(np.float32)
    expect = relevancy_kernels.relevancy_reference(idx, val, table, 7.0)
    np.testing.assert_allclose(relevancy_kernels.relevancy(idx, val, table, np.float32(7.0)), expect, atol=1e-5)
    column = np.ascontiguousarray(table[:, 0])
    if queries == 1:
        got = relevancy_kernels.positive_scores(idx, val, column)
    else:
        worst = relevancy_kernels.max_scores(idx, val, np.ascontiguousarray(table[:, 1:]))
        got = relevancy_kernels.relevancy_against(idx, val, column, worst, 7.0)
        sharp = relevancy_kernels.relevancy_against(idx, val, column, worst, 1e4)  # exp would overflow
        np.testing.assert_array_equal(sharp > 0.5, relevancy_kernels.relevancy_reference(idx, val, table, 1e4) > 0.5)
        assert np.isfinite(sharp).all()
        tie = relevancy_kernels.max_scores(idx, val, np.ascontiguousarray(table[:, :1]))  # the prompt as negative
        assert (relevancy_kernels.relevancy_against(idx, val, column, tie, 7.0) == 0.5).all()  # a tie: never > 0.5
        unseen = worst.copy()
        unseen[::7] = relevancy_kernels.UNSEEN_NEGATIVE  # Gaussians without a feature score exactly 0
        hidden = relevancy_kernels.relevancy_against(idx, val, column, unseen, 7.0)
        assert (hidden[::7] == 0).all()
        np.testing.assert_array_equal(np.delete(hidden, np.s_[::7]), np.delete(got, np.s_[::7]))
    np.testing.assert_allclose(got, expect, atol=1e-5)
    assert np.ptp(expect) > 0.1  # the scores vary, so agreement means something


class CheckpointKeeper:
    """A ``TrainingObserver`` that keeps every saved checkpoint in memory."""

    def __init__(self) -> None:
        self.checkpoints: dict[int, object] = {}

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def save_checkpoint(self, step: int, fields) -> None:  # noqa: ANN001
        self.checkpoints[step] = fields

    def save_images(self, step: int, images: dict) -> None:
        pass


class CancelAfter:
    """Cancel flag that trips once the progress callback reports ``step``."""

    def __init__(self, step: int) -> None:
        self.step, self.seen = step, 0

    def progress(self, p) -> None:  # noqa: ANN001
        self.seen = max(self.seen, p.step)

    def is_set(self) -> bool:
        return self.seen >= self.step


def test_every_checkpoint_answers_in_3d_like_the_final_one(tmp_path):
    renderer = make_renderer("cpu")
    cap = faint_capture(4, 400, background=1000, haze=100, floaters=50, width=48, height=36, num_cameras=6)
    views = planted_views(cap, renderer)
    text, graph = VocabularyTextEncoder(cap.vocabulary), build_graph(cap.scene)

    def mean_iou(fields) -> float:  # noqa: ANN001
        query = FieldQuery(fields, text)
        scores = []
        for k, name in enumerate(cap.object_names):
            rel, lvl = query.gaussian_relevancy(name)
            scores.append(iou(consistent_selection(graph, rel, 0.5, query.evidence(lvl)), cap.object_ids == k))
        return float(np.mean(scores))

    cfg = LanguageTrainConfig(max_steps=300, save_every=100)
    keeper = CheckpointKeeper()
    LanguageFieldTrainer(cap.scene, views, cfg, renderer=renderer, encoder_name=text.name, observer=keeper).run()
    assert sorted(keeper.checkpoints) == [100, 200, 300]
    final = mean_iou(keeper.checkpoints[300])
    assert final >= 0.8, final  # the scene is answerable at all
    early = keeper.checkpoints[100]
    assert early.gaussian_levels.keys() == {1}  # registered when saved, not only at the end
    for step in (100, 200):
        assert mean_iou(keeper.checkpoints[step]) >= final - 0.05, step
    # what a user loading checkpoints/<step> gets
    reloaded = load_fields(early.save(tmp_path / "100" / "fields.pt"), cap.scene)
    assert mean_iou(reloaded) == pytest.approx(mean_iou(early), abs=1e-6)
    early.gaussian_levels = {}  # what an unregistered checkpoint would answer: the raw codes only fit blends
    assert mean_iou(early) < final - 0.05

    # a cancelled run keeps the registered checkpoints saved before the cancel
    cancel, kept = CancelAfter(150), CheckpointKeeper()
    trainer = LanguageFieldTrainer(
        cap.scene, views, cfg, renderer=renderer, encoder_name=text.name, observer=kept,
        progress=cancel.progress, cancel=cancel,
    )  # fmt: skip
    with pytest.raises(Cancelled):
        trainer.run()
    assert sorted(kept.checkpoints) == [100]
    assert mean_iou(kept.checkpoints[100]) >= final - 0.05
