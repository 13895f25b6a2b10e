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
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ovseg_app.demo import (  # noqa: E402
    DEMO_FIELDS_PATH,
    DEMO_PATH,
    compact_for_shipping,
    demo_capture_cameras,
    load_demo_scene,
    train_demo_fields,
)


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
