#!/usr/bin/env python
"""Regenerate ``assets/demo_capture/``: renders of the built-in demo scene with their cameras, the
capture the viewer's Training panel trains on by default (with the offline palette demo models).

Renders ``demo_capture_cameras`` (the rings ``scripts/make_demo_fields.py`` trains the shipped
fields from, fewer views) with the project's own CPU rasteriser into ``transforms.json`` +
``images/frame_XXXXX.png``, and records the splat they show (fingerprint, Gaussian count) in
``scene.json``, so the viewer offers the capture only for that splat.

    .venv/bin/python scripts/make_demo_capture.py [--per-ring 5] [--width 160] [--height 120]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_demo_fields import demo_capture_cameras  # noqa: E402

from ovseg_app.demo import DEMO_CAPTURE_DIR, load_demo_scene  # noqa: E402
from ovseg_core.io.atomic import atomic_write_bytes  # noqa: E402
from ovseg_core.synthetic import write_capture  # noqa: E402


def make_demo_capture(out: Path, width: int = 160, height: int = 120, per_ring: int = 5) -> Path:
    """Write the capture to ``out`` (replacing what is there); returns ``out``."""
    scene = load_demo_scene()
    with tempfile.TemporaryDirectory(prefix="ovseg-demo-capture-", dir=out.parent) as tmp:
        write_capture(scene, demo_capture_cameras(width, height, per_ring), tmp)
        record = {"fingerprint": scene.fingerprint(), "num_gaussians": scene.num_gaussians}
        atomic_write_bytes(Path(tmp) / "scene.json", json.dumps(record, indent=1).encode())
        if out.exists():
            shutil.rmtree(out)
        shutil.move(tmp, out)
    out.chmod(0o755)  # the temporary folder was private
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEMO_CAPTURE_DIR)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=120)
    ap.add_argument("--per-ring", type=int, default=5)
    args = ap.parse_args(argv)
    out = make_demo_capture(args.out.resolve(), args.width, args.height, args.per_ring)
    files = [p for p in out.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    print(f"wrote {out}: {len(files)} files, {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
