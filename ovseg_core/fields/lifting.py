"""Training-free lifting (OpenScene's 2D-3D fusion, on Gaussians).

Each Gaussian's feature is the visibility-weighted average of the 2D mask features it contributes
to over all training views, with the renderer's blending weights as the visibility: F_i = sum w_pi
t_p / sum w_pi (``backprojection``: every contribution above a weight floor, not a fixed top-k).
No optimisation. To store and query it like a LangSplatV2 field, the mask features are first
quantised to a K-means codebook (S entries); a Gaussian then accumulates weight per codebook
entry, and its top-k entries (renormalised) are its code, i.e. the same factored form
(idx, val, basis) that trained fields use. Gaussians no training view shows keep all-zero codes:
they are *unseen*, score relevancy 0 for every prompt, and are counted in ``config["unseen"]``.
Each Gaussian's ``evidence`` (sum of its squared weights: how much the views said about it) is kept.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.errors import Cancelled, UsageError
from ovseg_core.fields.backprojection import (
    accumulate_entries,
    accumulate_entries_torch,
    accumulation_device,
    contribution_bands,
    sparse_top,
)
from ovseg_core.fields.config import LiftConfig
from ovseg_core.fields.language_fields import LanguageFields, LevelCodes
from ovseg_core.fields.training import CancelFlag, TrainingView
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene


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
) -> LanguageFields:
    """Lift every level's mask features of ``views`` (training views only: never pass held-out
    validation views) onto the Gaussians of ``scene``."""
    from sklearn.cluster import MiniBatchKMeans

    if not views:
        raise UsageError("lifting needs at least one view")
    started = time.perf_counter()
    S = config.codebook_size
    floor = np.float32(config.contributions.min_weight)
    dev = accumulation_device(config.contributions, scene)
    out: dict[int, LevelCodes] = {}
    unseen: dict[int, int] = {}
    total = len(levels) * len(views)
    done = 0
    for level in levels:
        used = [v.features[torch.unique(v.seg_maps[level][v.seg_maps[level] >= 0])] for v in views]
        pooled = torch.cat([u for u in used if len(u)]) if any(len(u) for u in used) else torch.zeros(0)
        if pooled.numel() == 0:
            raise UsageError(f"no view has a mask at feature level {level}; pick another level")
        data = pooled.float().numpy()
        if len(data) < S:  # K-means needs S samples; repeated ones give duplicate (harmless) entries
            data = np.resize(data, (S, data.shape[1]))
        basis = torch.from_numpy(
            MiniBatchKMeans(n_clusters=S, random_state=config.seed).fit(data).cluster_centers_
        ).float()
        unit_basis = F.normalize(basis, dim=1)
        # numba on the CPU; torch on the scene's device (GPU) when ``accumulation_device`` says so.
        if dev is None:
            acc, evidence = np.zeros((scene.num_gaussians, S), np.float32), np.zeros(scene.num_gaussians, np.float32)
        else:
            acc, evidence = (
                torch.zeros(scene.num_gaussians, S, device=dev),
                torch.zeros(scene.num_gaussians, device=dev),
            )
        for v in views:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"lifting cancelled after {done} of {total} views")
            seg = v.seg_maps[level].numpy()
            if (seg >= 0).any():
                entry_of_mask = (
                    (F.normalize(v.features.float(), dim=1) @ unit_basis.T).argmax(dim=1).numpy().astype(np.int64)
                )
                pixel_entry = np.where(seg >= 0, entry_of_mask[np.maximum(seg, 0)], -1)
                bands = list(contribution_bands(renderer, scene, v.camera, config.contributions, dev))
                if dev is not None:
                    pixel_entry = torch.from_numpy(pixel_entry).to(dev)
                for row0, ids, ws in bands:
                    h, W, K = ids.shape
                    accumulate = accumulate_entries if dev is None else accumulate_entries_torch
                    accumulate(
                        acc,
                        evidence,
                        ids.reshape(-1, K),
                        ws.reshape(-1, K),
                        pixel_entry[row0 : row0 + h].reshape(-1),
                        floor if dev is None else float(floor),
                    )
            done += 1
            if progress is not None:
                progress(done / total, f"lifting level {level}: view {done}/{total}")
        idx, val = sparse_top(acc, config.top_k)
        evidence = torch.from_numpy(evidence) if isinstance(evidence, np.ndarray) else evidence.float().cpu()
        out[level] = LevelCodes(idx=idx, val=val, basis=basis, evidence=evidence)
        unseen[level] = int((evidence <= 0).sum())
        del acc
    dim = next(iter(out.values())).basis.shape[1]
    return LanguageFields(
        levels=out,
        method="lift",
        encoder_name=encoder_name,
        embed_dim=int(dim),
        scene_fingerprint=scene.fingerprint(),
        num_gaussians=scene.num_gaussians,
        config={
            "lift": dataclasses.asdict(config),
            "seconds": time.perf_counter() - started,
            "views": [v.name for v in views],
            "unseen": unseen,
        },
    )
