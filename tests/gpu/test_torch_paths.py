"""The torch paths (sparse blend and backward, training, lifting, registration, instance votes)
on CUDA against the CPU (numba / scipy) results. Skipped without CUDA; the same torch code on CPU
tensors is checked in CI by tests/core/test_torch_paths_on_cpu.py, so this adds only the device."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from blend_inputs import blend_inputs

from ovseg_core.fields import CodebookField, FieldConfig, LanguageFieldTrainer, LanguageTrainConfig
from ovseg_core.fields.config import LiftConfig
from ovseg_core.fields.lifting import lift_language_fields
from ovseg_core.fields.registration import register_level
from ovseg_core.fields.view_contributions import blend_sparse_codes
from ovseg_core.instances.build import instances_from_views
from ovseg_core.render import make_renderer
from ovseg_core.synthetic.faint_capture import faint_capture, planted_views

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(scope="module")
def capture():
    renderer = make_renderer("cpu")  # reads a CUDA scene too; contributions come back on the host
    cap = faint_capture(4, 800, background=2000, haze=200, floaters=100, width=64, height=48, num_cameras=6)
    return cap, renderer, planted_views(cap, renderer)


def test_blend_on_cuda_matches_numba(capture):
    cap, renderer, views = capture
    contrib, idx, val, grad = blend_inputs(cap, renderer, views[0])
    out = {}
    for dev in ("cpu", "cuda"):
        v = val.to(dev).requires_grad_(True)
        pix = blend_sparse_codes(contrib, idx.to(dev), v, 16)
        (pix * grad.to(dev)).sum().backward()
        out[dev] = (pix.detach().cpu(), v.grad.cpu())
    torch.testing.assert_close(out["cuda"][0], out["cpu"][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["cuda"][1], out["cpu"][1], rtol=1e-5, atol=1e-5)


def test_training_on_cuda_matches_cpu(capture):
    cap, renderer, views = capture
    cfg = LanguageTrainConfig(max_steps=12, field=FieldConfig(codebook_size=8), log_every=1)
    runs = {}
    for dev in ("cpu", "cuda"):
        trainer = LanguageFieldTrainer(cap.scene.to(dev), views, cfg, renderer=renderer)
        assert trainer.blend_backend == ("numba" if dev == "cpu" else "torch")
        fields = trainer.run()
        assert trainer.fields[1].logits.device.type == dev
        runs[dev] = (trainer, fields)
    (cpu, f_cpu), (gpu, f_gpu) = runs["cpu"], runs["cuda"]
    assert gpu.initial_losses[1] == pytest.approx(cpu.initial_losses[1], rel=1e-5)
    assert gpu.final_losses[1] == pytest.approx(cpu.final_losses[1], rel=1e-3)
    for a, b in zip(cpu.history, gpu.history):
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-3)
    torch.testing.assert_close(f_gpu.levels[1].dense_codes(), f_cpu.levels[1].dense_codes(), rtol=0, atol=2e-2)


def test_forced_torch_blend_on_cpu_and_numba_refused_on_cuda(capture):
    cap, renderer, views = capture
    with pytest.raises(ValueError, match="CPU only"):
        LanguageFieldTrainer(cap.scene.to("cuda"), views, LanguageTrainConfig(blend_backend="numba"), renderer=renderer)


def test_lifting_and_registration_on_cuda_match_cpu(capture):
    cap, renderer, views = capture
    out = {}
    for dev in ("cpu", "cuda"):
        scene = cap.scene.to(dev)
        lifted = lift_language_fields(scene, views, [1], renderer, LiftConfig())
        reg, unseen = register_level(scene, lifted.levels[1], views, 1, renderer)
        out[dev] = (lifted, reg, unseen)
    (l_cpu, r_cpu, u_cpu), (l_gpu, r_gpu, u_gpu) = out["cpu"], out["cuda"]
    assert l_gpu.config["unseen"] == l_cpu.config["unseen"] and u_gpu == u_cpu
    torch.testing.assert_close(l_gpu.levels[1].dense_codes(), l_cpu.levels[1].dense_codes(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r_gpu.dense_codes(), r_cpu.dense_codes(), rtol=1e-4, atol=1e-5)


def test_instance_votes_on_cuda_match_cpu(capture):
    cap, renderer, views = capture
    (lift_cpu, m_cpu), (lift_gpu, m_gpu) = (
        instances_from_views(cap.scene.to(dev), views, renderer, level=1) for dev in ("cpu", "cuda")
    )
    assert (lift_cpu.members != lift_gpu.members).nnz == 0
    np.testing.assert_array_equal(m_cpu.labels, m_gpu.labels)


def test_dense_reference_loss_runs_on_cuda(capture):
    cap, renderer, views = capture
    cfg = LanguageTrainConfig(max_steps=1, field=FieldConfig(codebook_size=8, logit_init_std=1.0))
    sparse = LanguageFieldTrainer(cap.scene.to("cuda"), views, cfg, renderer=renderer)
    dense = LanguageFieldTrainer(
        cap.scene.to("cuda"), views, dataclasses.replace(cfg, method="dense"), renderer=make_renderer("torch")
    )
    field = CodebookField(cap.scene.num_gaussians, sparse.config.field, seed=3).to("cuda")
    field.init_codebooks(torch.cat([v.features for v in views]))
    for v in views:
        ls, _ = sparse._sparse_loss(field, v, 1, 0)
        ld, _ = dense._dense_loss(field, v, 1, 0)
        assert float(ls) == pytest.approx(float(ld), rel=2e-3, abs=1e-6)
