"""Training-free lifting (OpenScene's 2D-3D fusion, on Gaussians).

Each Gaussian's feature is the visibility-weighted average of the 2D mask features it contributes
to over all views, with the renderer's blending weights as the visibility: F_i = sum w_pi t_p /
sum w_pi. No optimisation. To store and query it like a LangSplatV2 field, the mask features are
first quantised to a K-means codebook (S entries); a Gaussian then accumulates weight per codebook
entry, and its top-k entries (renormalised) are its code, i.e. the same factored form
(idx, val, basis) that trained fields use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence

import numba as nb
import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.errors import Cancelled
from ovseg_core.fields.config import LiftConfig
from ovseg_core.fields.language_fields import LanguageFields, LevelCodes
from ovseg_core.fields.training import CancelFlag, TrainingView
from ovseg_core.fields.view_contributions import compute_contributions
from ovseg_core.render.base import Renderer
from ovseg_core.scene import GaussianScene


@nb.njit(cache=True)
def _accumulate(acc, gaussian_ids, row_ptr, cols, weights, pixel_entry):
    """acc[g, e] += w for every contribution (pixel p -> Gaussian g, weight w), e = entry of p's mask."""
    for p in range(row_ptr.shape[0] - 1):
        e = pixel_entry[p]
        for k in range(row_ptr[p], row_ptr[p + 1]):
            acc[gaussian_ids[cols[k]], e] += weights[k]


def lift_language_fields(
    scene: GaussianScene,
    views: Sequence[TrainingView],
    levels: Sequence[int],
    renderer: Renderer,
    config: LiftConfig = LiftConfig(),
    *,
    encoder_name: str = "",
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelFlag | None = None,
    device_lock=None,  # noqa: ANN001
) -> LanguageFields:
    """Lift every level's mask features of ``views`` onto the Gaussians of ``scene``."""
    from sklearn.cluster import MiniBatchKMeans

    if not views:
        raise ValueError("lifting needs at least one view")
    started = time.perf_counter()
    S = config.codebook_size
    out: dict[int, LevelCodes] = {}
    total = len(levels) * len(views)
    done = 0
    for level in levels:
        used = [v.features[torch.unique(v.seg_maps[level][v.seg_maps[level] >= 0])] for v in views]
        pooled = torch.cat([u for u in used if len(u)]) if any(len(u) for u in used) else torch.zeros(0)
        if pooled.numel() == 0:
            raise ValueError(f"no view has a mask at feature level {level}; pick another level")
        data = pooled.float().numpy()
        if len(data) < S:  # K-means needs S samples; repeated ones give duplicate (harmless) entries
            data = np.resize(data, (S, data.shape[1]))
        basis = torch.from_numpy(
            MiniBatchKMeans(n_clusters=S, random_state=config.seed).fit(data).cluster_centers_
        ).float()
        unit_basis = F.normalize(basis, dim=1)
        acc = np.zeros((scene.num_gaussians, S), np.float32)
        for v in views:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"lifting cancelled after {done} of {total} views")
            seg = v.seg_maps[level]
            valid = (seg >= 0).cpu().numpy()
            if valid.any():
                with device_lock or contextlib.nullcontext():
                    contrib = compute_contributions(renderer, scene, v.camera, valid, config.contributions_top_k, 0.0)
                entry_of_mask = (
                    (F.normalize(v.features.float(), dim=1) @ unit_basis.T).argmax(dim=1).numpy().astype(np.int64)
                )
                pixel_entry = entry_of_mask[seg.reshape(-1).numpy()[contrib.pixels]]
                _accumulate(acc, contrib.gaussian_ids, contrib.row_ptr, contrib.cols, contrib.weights, pixel_entry)
            done += 1
            if progress is not None:
                progress(done / total, f"lifting level {level}: view {done}/{total}")
        acc_t = torch.from_numpy(acc)
        val, idx = torch.topk(acc_t, min(config.top_k, S), dim=1)
        val = val / val.sum(dim=1, keepdim=True).clamp_min(1e-12)  # unobserved Gaussians keep all-zero codes
        out[level] = LevelCodes(idx=idx, val=val, basis=basis)
    dim = next(iter(out.values())).basis.shape[1]
    return LanguageFields(
        levels=out,
        method="lift",
        encoder_name=encoder_name,
        embed_dim=int(dim),
        scene_fingerprint=scene.fingerprint(),
        num_gaussians=scene.num_gaussians,
        config={"lift": dataclasses.asdict(config), "seconds": time.perf_counter() - started},
    )
