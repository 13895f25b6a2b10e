"""What the sparse-blend tests share (tests/core on CPU, tests/gpu on CUDA): one view's contributions
of a capture and seeded sparse codes over them, plus an upstream gradient."""

from __future__ import annotations

import torch

from ovseg_core.fields import CodebookField, FieldConfig
from ovseg_core.fields.view_contributions import compute_contributions

CODEBOOK_SIZE = 16


def blend_inputs(cap, renderer, view):  # noqa: ANN001, ANN201 - faint capture, Renderer, PlantedView
    """(contributions, idx, val, grad) for ``blend_sparse_codes`` on ``view``: codes of a field with
    a 16-entry codebook, detached, and a seeded ``[P, 16]`` gradient for the backward pass."""
    contrib = compute_contributions(renderer, cap.scene, view.camera, None, top_k=64, min_weight=0.0)
    field = CodebookField(
        cap.scene.num_gaussians, FieldConfig(codebook_size=CODEBOOK_SIZE, embed_dim=8, logit_init_std=1.0)
    )
    idx, val = field.flat_sparse_codes(torch.from_numpy(contrib.gaussian_ids).long())
    grad = torch.randn(len(contrib.pixels), CODEBOOK_SIZE, generator=torch.Generator().manual_seed(0))
    return contrib, idx.detach(), val.detach(), grad
