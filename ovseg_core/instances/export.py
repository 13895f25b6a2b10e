"""Every instance as its own INRIA-layout 3DGS PLY."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ovseg_core.instances.instance_set import InstanceSet
from ovseg_core.io import save_scene
from ovseg_core.scene import GaussianScene


def safe_name(name: str, max_len: int = 60) -> str:
    """A file-name-safe form of a label ("red ball" -> "red_ball"); "" stays ""."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")[:max_len]


def instance_file_names(instances: InstanceSet) -> list[str]:
    """``<index>_<name>.ply`` (``<index>.ply`` when unnamed); indices zero-padded so they sort."""
    width = len(str(max(instances.num_instances - 1, 0)))
    out = []
    for k, name in enumerate(instances.names):
        label = safe_name(name)
        out.append(f"{k:0{width}d}_{label}.ply" if label else f"{k:0{width}d}.ply")
    return out


def export_instances(
    scene: GaussianScene, instances: InstanceSet, out_dir: str | os.PathLike[str]
) -> list[Path | None]:
    """Write instance ``k``'s Gaussians to ``out_dir/<k>_<name>.ply``; -> the paths, in instance order,
    None for an instance without Gaussians (no PLY can hold zero; the others are still written)."""
    instances.check_scene(scene)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path | None] = []
    for k, fname in enumerate(instance_file_names(instances)):
        mask = instances.mask(k)
        if not mask.any():
            paths.append(None)
            continue
        path = out / fname
        save_scene(scene.subset(mask), path)
        paths.append(path)
    return paths
