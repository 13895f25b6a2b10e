#!/usr/bin/env python
"""Regenerate ``assets/demo_scene.fields.pt``: LangSplatV2 language fields of the built-in demo scene.

Renders the demo scene from four rings of cameras into a temporary capture, runs the ordinary
pipeline (``train_from_dataset``) with the palette demo models (colour masks + a fixed vocabulary,
``ovseg_core.models.palette_models``; no SAM 2 / CLIP weights needed), stores the vocabulary in the
fields' config, gives the Gaussians no view shows their nearest observed neighbour's codes, and
saves the compact factored form beside ``assets/demo_scene.ply``. ``--rebuild-scene`` first writes
``assets/demo_scene.ply`` anew from ``ovseg_core.synthetic.demo_scene`` (after changing the scene).

    .venv/bin/python scripts/make_demo_fields.py [--steps 500] [--out assets/demo_scene.fields.pt] [--rebuild-scene]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ovseg_app.demo import (  # noqa: E402
    DEMO_FEATURE_LEVEL,
    DEMO_FIELDS_PATH,
    DEMO_PATH,
    demo_vocabulary,
    load_demo_scene,
)
from ovseg_core.camera import Camera, orbit_cameras  # noqa: E402
from ovseg_core.fields.language_fields import LanguageFields  # noqa: E402
from ovseg_core.models.palette_models import PaletteImageEncoder, PaletteMaskGenerator, Vocabulary  # noqa: E402
from ovseg_core.scene import GaussianScene  # noqa: E402


def demo_capture_cameras(width: int = 160, height: int = 120, per_ring: int = 8) -> list[Camera]:
    """Four rings around the table: high, mid and near-horizontal rings on the objects, and a low
    ring from below the table top (its underside and legs)."""
    rings = (
        ((0.0, 0.0, 0.8), 1.3, 60.0),
        ((0.0, 0.0, 0.8), 1.3, 30.0),
        ((0.0, 0.0, 0.8), 1.3, 6.0),
        ((0.0, 0.0, 0.45), 1.6, -20.0),
    )
    cams: list[Camera] = []
    for i, (center, radius, elevation) in enumerate(rings):
        # every other ring half a step round, so the rings' azimuths interleave
        ring = orbit_cameras(center, radius, 2 * per_ring, elevation_deg=elevation, width=width, height=height)
        cams += ring[i % 2 :: 2]
    return cams


def train_demo_fields(
    scene: GaussianScene,
    work_dir: str | os.PathLike[str],
    *,
    cameras: Sequence[Camera] | None = None,
    max_steps: int = 500,
    contributions_top_k: int = 16,
    contributions_min_weight: float = 0.02,
    fill: bool = True,
    vocabulary: Vocabulary | None = None,
    progress: Callable[..., None] | None = None,
):
    """Render ``cameras`` (default ``demo_capture_cameras()``) of ``scene`` into a capture under
    ``work_dir``, then preprocess and train LangSplatV2 fields at level 0 with the palette models.
    ``contributions_top_k`` 16 (not 64): the demo's Gaussians are nearly opaque, so a pixel's
    first 16 carry all but a negligible part of its weight, and steps are ~4x cheaper.
    ``contributions_min_weight`` 0.02: a Gaussian learns only from pixels where it is at least
    slightly visible (Adam's per-parameter step would otherwise pull Gaussians hidden behind an
    object to that object's feature from their tiny weights alone); with ``fill`` the Gaussians
    that no view showed above that weight then take their nearest observed neighbour's codes
    (``fill_unobserved``).
    Returns the ``PipelineResult``; its fields carry the vocabulary in ``config["vocabulary"]``."""
    from ovseg_core.fields.training import LanguageTrainConfig
    from ovseg_core.pipeline import train_from_dataset
    from ovseg_core.synthetic import write_capture

    vocabulary = vocabulary or demo_vocabulary()
    cameras = list(cameras) if cameras is not None else demo_capture_cameras()
    write_capture(scene, cameras, work_dir)
    result = train_from_dataset(
        scene,
        work_dir,
        config=LanguageTrainConfig(
            feature_level=DEMO_FEATURE_LEVEL,
            max_steps=max_steps,
            log_every=20,
            contributions_top_k=contributions_top_k,
            contributions_min_weight=contributions_min_weight,
        ),
        mask_generator=PaletteMaskGenerator(vocabulary.colors.numpy()),
        image_encoder=PaletteImageEncoder(vocabulary),
        progress=progress,
    )
    result.fields.config["vocabulary"] = vocabulary.to_dict()
    if fill:
        fill_unobserved(
            result.fields,
            scene,
            observed_weight(scene, cameras, contributions_top_k),
            min_weight=max(contributions_min_weight, 1e-4),
        )
    return result


def observed_weight(scene: GaussianScene, cameras: Sequence[Camera], top_k: int = 16) -> np.ndarray:
    """``[N]`` the largest blending weight (alpha * transmittance) each Gaussian has in any pixel of
    ``cameras``: ~0 for Gaussians no view sees (under or inside objects)."""
    from ovseg_core.render import make_renderer

    renderer = make_renderer("cpu")
    best = np.zeros(scene.num_gaussians, np.float32)
    for cam in cameras:
        out = renderer.render(scene, cam, top_k=top_k)
        ids = out.contrib_ids[0].cpu().numpy().reshape(-1)
        w = out.contrib_weights[0].cpu().numpy().astype(np.float32).reshape(-1)
        ok = ids >= 0
        np.maximum.at(best, ids[ok], w[ok])
    return best


def fill_unobserved(
    fields: LanguageFields,
    scene: GaussianScene,
    observed: np.ndarray,
    min_weight: float = 0.02,
    source_weight: float = 0.3,
) -> int:
    """Give every Gaussian whose ``observed`` weight is below ``min_weight`` the codes of its nearest
    (in 3D) Gaussian observed with weight >= ``source_weight``. Returns how many were filled.

    Training never touches Gaussians that no view sees (the parts of objects resting on the table,
    the table under them): they keep the uniform initial logits, whose top-k code decodes to an
    arbitrary mix of codebook entries and so to an arbitrary object. For the demo they inherit
    their surroundings instead. Works on the factored levels; clears ``state`` (the raw logits no
    longer match)."""
    from scipy.spatial import cKDTree

    observed = np.asarray(observed)
    targets = np.flatnonzero(observed < min_weight)
    sources = np.flatnonzero(observed >= source_weight)
    if len(targets) == 0 or len(sources) == 0:
        return 0
    means = scene.means.detach().cpu().numpy().astype(np.float64)
    _, nn = cKDTree(means[sources]).query(means[targets])
    src = torch.from_numpy(sources[nn])
    dst = torch.from_numpy(targets)
    for codes in fields.levels.values():
        codes.idx[dst] = codes.idx[src]
        codes.val[dst] = codes.val[src]
    fields.state = {}
    fields.config["filled_unobserved"] = {
        "count": int(len(targets)),
        "min_weight": float(min_weight),
        "source_weight": float(source_weight),
    }
    return int(len(targets))


def compact_for_shipping(fields: LanguageFields) -> LanguageFields:
    """Drop the raw training tensors so ``save`` writes the factored levels (idx/val/basis), which
    are ~5x smaller than the per-Gaussian logits and load the same for queries."""
    fields.state = {}
    return fields


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEMO_FIELDS_PATH)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=120)
    ap.add_argument("--per-ring", type=int, default=8)
    ap.add_argument("--rebuild-scene", action="store_true", help=f"write {DEMO_PATH.name} from demo_scene() first")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    if args.rebuild_scene:
        from ovseg_core.io import save_scene
        from ovseg_core.synthetic import demo_scene

        save_scene(demo_scene(), DEMO_PATH)
        print(f"wrote {DEMO_PATH}")
    scene = load_demo_scene()
    cams = demo_capture_cameras(args.width, args.height, args.per_ring)
    with tempfile.TemporaryDirectory(prefix="ovseg-demo-capture-") as tmp:
        result = train_demo_fields(scene, tmp, cameras=cams, max_steps=args.steps)
    fields = compact_for_shipping(result.fields)
    fields.save(args.out)
    print(
        f"{fields.config.get('filled_unobserved', {}).get('count', 0)} unobserved Gaussians took their neighbours' codes"
    )
    print(f"{len(cams)} views, {args.steps} steps: loss {result.initial_losses} -> {result.final_losses}")
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, encoder {fields.encoder_name}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
