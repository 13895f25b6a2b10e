"""What a click picks: the instance under a pixel (a 3D instance when loaded, else the Gaussians
grown from the front one by feature similarity), and which prompt it looks like."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

import numpy as np

from ovseg_core.camera import Camera
from ovseg_core.selection import connected_within, grow_from_seed

if TYPE_CHECKING:
    from ovseg_app.viewer.session import ViewerSession

Granularity = Literal["small", "medium", "large"]
GRANULARITY_LEVEL = {"small": 1, "medium": 2, "large": 3}


def instance_at(
    session: ViewerSession, camera: Camera, pixel: tuple[float, float], granularity: Granularity
) -> np.ndarray:
    """Gaussian ids of the object under ``pixel`` in the tab's scene (hidden ones cannot be picked)."""
    pick = session.renderer.pick(session.scene, camera, pixel, k=8)
    inst = session.instances
    if len(pick.ids) == 0:
        return np.zeros(0, np.int64)
    seed = int(pick.ids[0])
    if inst is not None and inst.labels[seed] >= 0:
        return np.flatnonzero(inst.labels == inst.labels[seed])
    return grown_from(session, seed, granularity)


def grown_from(session: ViewerSession, seed: int, granularity: Granularity) -> np.ndarray:
    """The clicked object: Gaussians connected to ``seed`` on the neighbourhood graph whose 3D
    features at the granularity's level agree with the seed's (cosine >= 0.9, smoothed and filled
    into unseen Gaussians by ``ovseg_core.selection``); without fields, the blob spatially connected
    to it."""
    query = session.query
    if query is not None:
        wanted = GRANULARITY_LEVEL[granularity]
        level = wanted if wanted in query.levels else min(query.levels, key=lambda lvl: abs(lvl - wanted))
        similarity = query.similarity_to(level, seed)
        return grow_from_seed(session.graph(), seed, similarity, 0.9, query.evidence(level), session.selection_config)
    scale = float(np.median(session.base_scene.scales.detach().cpu().numpy().max(axis=1)))
    factor = {"small": 2.0, "medium": 4.0, "large": 8.0}[granularity]
    return connected_within(session.shared.points, seed, factor * scale)


def best_label(session: ViewerSession, ids: np.ndarray) -> str | None:
    """The current positive prompt with the highest mean relevancy over ``ids`` (if > 0.5)."""
    prompt = session.prompt
    if session.query is None or len(ids) == 0 or not prompt.positives:
        return None
    best, score = None, 0.5
    for p in prompt.positives:
        rel = session.gaussian_relevancy(dataclasses.replace(prompt, positives=(p,)))
        assert rel is not None
        m = float(rel[ids].mean())
        if m > score:
            best, score = p, m
    return best


def instance_rows(session: ViewerSession) -> list[tuple[int, str, int, str]]:
    """(index, name, size, best current prompt or '') per 3D instance, largest first."""
    inst, prompt = session.instances, session.prompt
    if inst is None:
        return []
    best = [""] * len(inst.sizes)
    encoder = session.shared.instance_encoder or session.text_encoder
    if prompt.positives and encoder is not None and encoder.embed_dim == inst.features.shape[1]:
        rel = inst.relevancy(encoder, list(prompt.positives), list(prompt.negatives))  # [K, P]
        for k in range(len(best)):
            j = int(np.argmax(rel[k]))
            best[k] = prompt.positives[j] if rel[k, j] > 0.5 else ""
    names = list(inst.names) if inst.names else [""] * len(best)
    rows = [(k, names[k] or f"instance {k}", int(inst.sizes[k]), best[k]) for k in range(len(best))]
    return sorted(rows, key=lambda r: -r[2])
