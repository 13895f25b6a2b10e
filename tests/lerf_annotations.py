"""Writing LERF-OVS annotation files (labelme polygons and the LERF-OVS JSON layout) for tests."""

from __future__ import annotations

import json
from pathlib import Path


def labelme(path: Path, name: str, h: int, w: int, shapes: list[tuple[str, list]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "version": "5.0.1",
                "imagePath": f"{name}.jpg",
                "imageHeight": h,
                "imageWidth": w,
                "shapes": [{"label": lab, "points": pts, "shape_type": "polygon"} for lab, pts in shapes],
            }
        )
    )


def lerf_json(path: Path, name: str, h: int, w: int, objects: list[tuple[str, list]]) -> None:
    """The LERF-OVS release's own flavour: info + objects with category, segmentation and bbox."""
    path.parent.mkdir(parents=True, exist_ok=True)
    objs = [
        {
            "category": lab,
            "segmentation": pts,
            "bbox": [min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts), max(p[1] for p in pts)],
        }
        for lab, pts in objects
    ]
    path.write_text(json.dumps({"info": {"name": f"{name}.jpg", "height": h, "width": w}, "objects": objs}))
