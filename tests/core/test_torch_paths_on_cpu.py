"""Every torch path (the one CUDA runs) forced onto CPU tensors against its numba / scipy twin:
sparse blend and backward, training, lifting, registration, instance votes, the dense reference
loss. tests/gpu repeats them on a real CUDA device."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from blend_inputs import blend_inputs

from ovseg_core.fields import CodebookField, FieldConfig, LanguageFieldTrainer, LanguageTrainConfig
from ovseg_core.fields.config import BackprojectionConfig, LiftConfig, RegistrationConfig
from ovseg_core.fields.lifting import lift_language_fields
from ovseg_core.fields.registration import register_level
from ovseg_core.fields.view_contributions import blend_sparse_codes
from ovseg_core.instances.build import instances_from_views
from ovseg_core.instances.config import InstanceConfig
from ovseg_core.render import make_renderer
from ovseg_core.synthetic.faint_capture import faint_capture, planted_views


@pytest.fixture(scope="module")
def capture():
    renderer = make_renderer("cpu")
    cap = faint_capture(4, 300, background=600, haze=60, floaters=30, width=48, height=36, num_cameras=4)
    return cap, renderer, planted_views(cap, renderer)


def test_torch_blend_and_backward_match_numba(capture):
    cap, renderer, views = capture
    contrib, idx, val, grad = blend_inputs(cap, renderer, views[0])
    out = {}
    for backend in ("numba", "torch"):
        v = val.clone().requires_grad_(True)
        pix = blend_sparse_codes(contrib, idx, v, 16, backend=backend)
        (pix * grad).sum().backward()
        out[backend] = (pix.detach(), v.grad)
    assert out["numba"][0].abs().sum() > 0 and out["numba"][1].abs().sum() > 0
    torch.testing.assert_close(out["torch"][0], out["numba"][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["torch"][1], out["numba"][1], rtol=1e-5, atol=1e-5)


def test_torch_training_matches_numba(capture):
    cap, renderer, views = capture
    runs = {}
    for backend in ("numba", "torch"):
        # Adam's default eps (1e-15) turns float-rounding-sized gradients into full steps, so the two
        # summation orders would drift apart chaotically within a few steps; 1e-8 keeps them comparable.
        cfg = LanguageTrainConfig(
            max_steps=8, field=FieldConfig(codebook_size=8), log_every=1, blend_backend=backend, adam_eps=1e-8
        )
        trainer = LanguageFieldTrainer(cap.scene, views, cfg, renderer=renderer)
        assert trainer.blend_backend == backend
        runs[backend] = (trainer, trainer.run())
    (ref, _), (tor, _) = runs["numba"], runs["torch"]
    assert tor.initial_losses[1] == pytest.approx(ref.initial_losses[1], rel=1e-5)
    assert tor.final_losses[1] == pytest.approx(ref.final_losses[1], rel=1e-3)
    assert tor.final_losses[1] < tor.initial_losses[1]  # it trained
    for a, b in zip(ref.history, tor.history, strict=True):
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-3)
    # The trained parameters, not the top-k codes (near-tied logits may swap entries on rounding).
    # Adam moves a parameter by up to lr a step, whatever its gradient's size: rounding-sized
    # gradients of barely-seen Gaussians may move either way, so allow a quarter of the most it can move.
    bound = ref.config.lr * ref.total_steps / 4
    for name in ("logits", "codebooks"):
        a, b = getattr(tor.fields[1], name).detach(), getattr(ref.fields[1], name).detach()
        torch.testing.assert_close(a, b, rtol=0, atol=bound)
        assert (a - b).abs().mean() < 1e-2 * bound  # almost all agree far more closely


def _contributions(backend: str) -> BackprojectionConfig:
    return BackprojectionConfig(backend=backend)


def test_torch_lifting_and_registration_match_numba(capture):
    cap, renderer, views = capture
    out = {}
    for backend in ("numba", "torch"):
        lifted = lift_language_fields(
            cap.scene, views, [1], renderer, LiftConfig(contributions=_contributions(backend))
        )
        reg_cfg = RegistrationConfig(contributions=_contributions(backend))
        reg, unseen = register_level(cap.scene, lifted.levels[1], views, 1, renderer, reg_cfg)
        out[backend] = (lifted, reg, unseen)
    (l_ref, r_ref, u_ref), (l_tor, r_tor, u_tor) = out["numba"], out["torch"]
    assert l_tor.config["unseen"] == l_ref.config["unseen"] and u_tor == u_ref
    assert u_ref < cap.scene.num_gaussians  # something was reached
    torch.testing.assert_close(l_tor.levels[1].dense_codes(), l_ref.levels[1].dense_codes(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(l_tor.levels[1].evidence, l_ref.levels[1].evidence, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(r_tor.dense_codes(), r_ref.dense_codes(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r_tor.evidence, r_ref.evidence, rtol=1e-4, atol=1e-6)


def test_torch_instance_votes_match_scipy(capture):
    cap, renderer, views = capture
    (lift_ref, m_ref), (lift_tor, m_tor) = (
        instances_from_views(cap.scene, views, renderer, InstanceConfig(voting_backend=b), level=1)
        for b in ("scipy", "torch")
    )
    assert lift_ref.members.nnz > 0
    assert (lift_ref.members != lift_tor.members).nnz == 0
    np.testing.assert_array_equal(m_ref.labels, m_tor.labels)


def test_dense_reference_loss_matches_sparse_on_cpu(capture):
    cap, renderer, views = capture
    cfg = LanguageTrainConfig(max_steps=1, field=FieldConfig(codebook_size=8, logit_init_std=1.0))
    sparse = LanguageFieldTrainer(cap.scene, views, cfg, renderer=renderer)
    dense = LanguageFieldTrainer(
        cap.scene, views, dataclasses.replace(cfg, method="dense"), renderer=make_renderer("torch")
    )
    field = CodebookField(cap.scene.num_gaussians, sparse.config.field, seed=3)
    field.init_codebooks(torch.cat([v.features for v in views]))
    for v in views:
        ls, _ = sparse._sparse_loss(field, v, 1, 0)
        ld, _ = dense._dense_loss(field, v, 1, 0)
        assert float(ls.detach()) == pytest.approx(float(ld.detach()), rel=2e-3, abs=1e-6)
