"""Compact view contributions, their byte-budgeted cache, and the numba and torch blends against
each other (CPU; tests/gpu repeats the torch paths on CUDA)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovseg_core.camera import orbit_cameras
from ovseg_core.errors import Cancelled
from ovseg_core.fields import CodebookField, FieldConfig, LanguageFieldTrainer, LanguageTrainConfig, TrainingView
from ovseg_core.fields import _blend_kernels as kernels
from ovseg_core.fields import _blend_torch as blend_torch
from ovseg_core.fields.contribution_cache import ContributionCache
from ovseg_core.fields.view_contributions import (
    ViewContributions,
    blend_sparse_codes,
    compute_contributions,
    resolve_blend_backend,
)
from ovseg_core.render import make_renderer
from ovseg_core.synthetic import floating_objects_scene


def random_contributions(P: int = 300, U: int = 80, per_pixel: int = 7, seed: int = 0) -> ViewContributions:
    g = np.random.default_rng(seed)
    counts = g.integers(0, per_pixel + 1, P)
    row_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    E = int(row_ptr[-1])
    return ViewContributions(
        height=1,
        width=P,
        pixels=np.arange(P, dtype=np.int32),
        gaussian_ids=np.arange(U, dtype=np.int32) * 3,
        row_ptr=row_ptr,
        cols=g.integers(0, U, E).astype(np.int32),
        weights=g.uniform(0, 0.4, E).astype(np.float16),
    )


def random_codes(U: int, J: int, width: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randperm(width, generator=g)[:J] for _ in range(U)])
    return idx, torch.rand(U, J, generator=g)


@pytest.fixture(scope="module")
def small_setup():
    scene = floating_objects_scene(points_per_object=150)
    cams = orbit_cameras((0, 0, 0.05), 2.0, 4, elevation_deg=30, width=48, height=36)
    feats = F.normalize(torch.randn(5, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    r = make_renderer("cpu")
    ids = torch.from_numpy(scene.extras["object_id"]).long()
    views = []
    for i, c in enumerate(cams):
        w, obj = r.render(scene, c, features=F.one_hot(ids, 5).float()).features[0].max(dim=-1)
        seg = torch.where(w > 0.5, obj, torch.full_like(obj, -1))
        views.append(TrainingView(f"v{i}", c, feats, torch.stack([seg] * 4)))
    return scene, views


def test_contributions_take_six_bytes_an_entry(small_setup):
    scene, views = small_setup
    c = compute_contributions(make_renderer("cpu"), scene, views[0].camera, None, top_k=64, min_weight=0.0)
    assert c.weights.dtype == np.float16 and c.cols.dtype == np.int32 and c.row_ptr.dtype == np.int32
    # 6 bytes an entry, 8 a pixel (its id and row pointer), 4 a touched Gaussian
    P, U = len(c.pixels), len(c.gaussian_ids)
    assert c.num_entries > P and c.nbytes() == 6 * c.num_entries + 8 * P + 4 + 4 * U


def test_numba_half_widening_is_exact():
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16)  # every finite non-negative float16
    c = ViewContributions(1, len(halves), np.arange(len(halves), dtype=np.int32), np.zeros(1, np.int32),
                          np.arange(len(halves) + 1, dtype=np.int32), np.zeros(len(halves), np.int32), halves)  # fmt: skip
    out = kernels.blend_codes(c.row_ptr, c.cols, c.weights, np.zeros((1, 1), np.int32), np.ones((1, 1), np.float32), 1)
    np.testing.assert_array_equal(out[:, 0], halves.astype(np.float32))


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_numba_and_torch_blends_agree(chunk):
    c = random_contributions()
    width, J = 24, 8
    idx, val = random_codes(len(c.gaussian_ids), J, width)
    args = (torch.from_numpy(c.row_ptr).long(), torch.from_numpy(c.cols), torch.from_numpy(c.weights))
    out_t = blend_torch.blend_codes_torch(*args, idx, val, width, chunk_entries=chunk)
    out_n = kernels.blend_codes(c.row_ptr, c.cols, c.weights, idx.int().numpy(), val.numpy(), width)
    torch.testing.assert_close(out_t, torch.from_numpy(out_n), rtol=1e-5, atol=1e-7)
    grad = torch.randn(len(c.pixels), width, generator=torch.Generator().manual_seed(2))
    g_t = blend_torch.blend_codes_backward_torch(*args, idx, grad, len(c.gaussian_ids), chunk_entries=chunk)
    g_n = kernels.blend_codes_backward(
        c.row_ptr, c.cols, c.weights, idx.int().numpy(), grad.numpy(), len(c.gaussian_ids)
    )
    torch.testing.assert_close(g_t, torch.from_numpy(g_n), rtol=1e-5, atol=1e-6)
    # a single-chunk numba backward (no per-thread split) sums the same
    g_1 = kernels.blend_codes_backward(
        c.row_ptr, c.cols, c.weights, idx.int().numpy(), grad.numpy(), len(c.gaussian_ids), scratch_bytes=1
    )
    np.testing.assert_allclose(g_1, g_n, rtol=1e-5, atol=1e-6)


def test_blend_sparse_codes_gradients_agree_across_backends():
    c = random_contributions(seed=3)
    idx, val = random_codes(len(c.gaussian_ids), 4, 16, seed=4)
    grad = torch.randn(len(c.pixels), 16, generator=torch.Generator().manual_seed(5))
    results = {}
    for backend in ("numba", "torch"):
        v = val.clone().requires_grad_(True)
        out = blend_sparse_codes(c, idx, v, 16, backend)
        (out * grad).sum().backward()
        results[backend] = (out.detach(), v.grad)
    torch.testing.assert_close(results["torch"][0], results["numba"][0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(results["torch"][1], results["numba"][1], rtol=1e-5, atol=1e-6)


def test_backend_resolution():
    assert resolve_blend_backend("auto", "cpu") == "numba"
    assert resolve_blend_backend("auto", "cuda") == "torch"
    assert resolve_blend_backend("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="CPU only"):
        resolve_blend_backend("numba", "cuda")


def test_sparse_loss_and_gradients_agree_across_backends(small_setup):
    scene, views = small_setup
    cfg = LanguageTrainConfig(max_steps=1, field=FieldConfig(num_layers=2, codebook_size=8, logit_init_std=1.0))
    trainers = {
        b: LanguageFieldTrainer(scene, views, dataclasses.replace(cfg, blend_backend=b)) for b in ("numba", "torch")
    }
    field = CodebookField(scene.num_gaussians, trainers["numba"].config.field, seed=3)
    field.init_codebooks(torch.cat([v.features for v in views]))
    for v in views:
        for active in (0, 1):
            out = {}
            for b, tr in trainers.items():
                field.zero_grad()
                loss, cos = tr._sparse_loss(field, v, 1, active)
                loss.backward()
                out[b] = (loss.detach(), cos, field.logits.grad.clone(), field.codebooks.grad.clone())
            torch.testing.assert_close(out["torch"][0], out["numba"][0], rtol=1e-5, atol=1e-8)
            assert out["torch"][1] == pytest.approx(out["numba"][1], rel=1e-5)
            torch.testing.assert_close(out["torch"][2], out["numba"][2], rtol=1e-5, atol=1e-9)
            torch.testing.assert_close(out["torch"][3], out["numba"][3], rtol=1e-5, atol=1e-9)


def test_cache_holds_within_budget_and_spills_the_rest(tmp_path):
    entries = [random_contributions(seed=s) for s in range(6)]
    size = entries[0].nbytes()
    with ContributionCache(int(2.5 * size), str(tmp_path)) as cache:
        for k, c in enumerate(entries):
            cache.put(k, c)
            assert cache.memory_bytes <= cache.budget_bytes
        assert len(cache) == 6 and cache.num_spilled >= 3 and cache.peak_bytes <= cache.budget_bytes
        spill_dir = cache.spill_dir
        assert spill_dir is not None and spill_dir.parent == tmp_path and any(spill_dir.iterdir())
        for k in [0, 5, 1, 0, 3]:
            got = cache.get(k)
            for name in ViewContributions.ARRAYS:
                np.testing.assert_array_equal(getattr(got, name), getattr(entries[k], name))
                assert getattr(got, name).dtype == getattr(entries[k], name).dtype
            assert cache.memory_bytes <= cache.budget_bytes
        assert cache.num_loaded >= 2 and cache.get("missing") is None
    assert not spill_dir.exists() and len(cache) == 0


def test_zero_budget_keeps_nothing_in_memory(tmp_path):
    cache = ContributionCache(0, str(tmp_path))
    c = random_contributions()
    cache.put("a", c)
    assert cache.memory_bytes == 0 and cache.peak_bytes == 0
    assert cache.get("a").num_entries == c.num_entries
    spill_dir = cache.spill_dir
    del cache  # the finalizer removes the directory
    assert not spill_dir.exists()


class _CancelAfter:
    def __init__(self, checks: int) -> None:
        self.left = checks

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0


@pytest.mark.parametrize("cancel", [False, True])
def test_training_leaves_no_spill_files(small_setup, tmp_path, cancel):
    scene, views = small_setup
    cfg = LanguageTrainConfig(
        max_steps=6,
        field=FieldConfig(codebook_size=8),
        registration=dataclasses.replace(LanguageTrainConfig().registration, enabled=False),
        contributions_cache_gb=0.0,
        contributions_spill_dir=str(tmp_path),
    )
    seen_dirs = []
    trainer = LanguageFieldTrainer(
        scene,
        views,
        cfg,
        cancel=_CancelAfter(4) if cancel else None,
        progress=lambda p: seen_dirs.append(trainer._cache.spill_dir),
    )
    if cancel:
        with pytest.raises(Cancelled):
            trainer.run()
    else:
        trainer.run()
    assert any(d is not None for d in seen_dirs) and trainer._cache.num_loaded > 0
    assert list(tmp_path.iterdir()) == []


def test_floor_complete_renders_hold_every_contribution_above_the_floor_with_fewer_slots():
    from ovseg_core.fields.backprojection import FloorCompleteRenderer
    from ovseg_core.synthetic.faint_capture import faint_capture

    cap = faint_capture(num_objects=3, gaussians_per_object=1500, num_cameras=2, width=64, height=48)
    renderer, floor = make_renderer("cpu"), 1.0 / 1024.0
    full = renderer.render(cap.scene, cap.cameras[0], top_k=1024)
    ids, ws = full.contrib_ids[0].numpy(), full.contrib_weights[0].numpy()
    need = int(((ids >= 0) & (ws >= floor)).sum(-1).max())  # most entries above the floor in a pixel
    assert 8 < need < 256  # a faint splat blends dozens of Gaussians per pixel, far fewer than 1024

    adaptive = FloorCompleteRenderer(renderer, max_k=1024, min_weight=floor, first_k=8)
    out = adaptive.render(cap.scene, cap.cameras[0])
    k = out.contrib_ids.shape[-1]
    assert need <= k < 1024 and adaptive.k == k  # it grew from 8, and stopped well below 1024

    def above(i: np.ndarray, w: np.ndarray) -> list[set]:
        return [
            set(zip(pi[pw >= floor].tolist(), pw[pw >= floor].tolist()))
            for pi, pw in zip(i.reshape(-1, i.shape[-1]), w.reshape(-1, w.shape[-1]))
        ]

    assert above(out.contrib_ids[0].numpy(), out.contrib_weights[0].numpy()) == above(ids, ws)

    # the view's stored contributions (instances) are the same as with all 1024 slots
    a = compute_contributions(renderer, cap.scene, cap.cameras[1], top_k=1024, min_weight=floor)
    fixed = FloorCompleteRenderer(renderer, max_k=1024, min_weight=floor, first_k=1024)
    assert fixed.k == 1024
    b_ids = fixed.render(cap.scene, cap.cameras[1]).contrib_ids[0].numpy()
    b_ws = renderer.render(cap.scene, cap.cameras[1], top_k=1024).contrib_weights[0].numpy()
    keep = (b_ids >= 0) & (b_ws > floor)
    assert a.num_entries == int(keep.sum())
    np.testing.assert_array_equal(np.sort(a.gaussian_ids), np.unique(b_ids[keep]))
