"""Hostile files that come with a scene (``ovseg-bench robustness`` and the test suite): fields
checkpoints, instance sets and camera JSON that carry the scene's own fingerprint, so only the
validation of their contents stands between them and a 160 GB allocation, an overflow or a
degenerate render.

``companion_cases`` writes them; ``check_companion`` loads one and uses it the way ``ovseg query``
and ``ovseg-render`` do: ``("loaded" | "refused" | "failed", detail)``, refused = an ``OvsegError``,
failed = any other exception or a numeric warning (an overflow means garbage got through).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

TINY_CLIP_SEED = 0
HUGE_BASIS_ROWS = 200_000
"""The oversized basis: its Gram matrix would take 160 GB."""


def companion_cases(scene_path: Path, workdir: Path) -> list[tuple[str, str, str]]:
    """Write every hostile companion of the scene at ``scene_path`` under ``workdir``;
    -> ``(kind, path, summary)`` with kind ``fields``, ``instances`` or ``camera``."""
    from ovseg_core.camera import orbit_cameras
    from ovseg_core.io import load_scene
    from ovseg_core.models import tiny_open_clip

    workdir.mkdir(parents=True, exist_ok=True)
    scene = load_scene(scene_path)
    n, dim = scene.num_gaussians, tiny_open_clip(seed=TINY_CLIP_SEED).embed_dim
    g = torch.Generator().manual_seed(0)
    rows = 16
    fields = {
        "fields_valid": {},
        "fields_huge_basis": {"basis": torch.randn(HUGE_BASIS_ROWS, dim, generator=g)},
        "fields_huge_weights": {"val": torch.full((n, 4), 3e38)},
        "fields_huge_basis_values": {"basis": torch.full((rows, dim), 1e30)},
        "fields_wide_features": {"basis": torch.randn(rows, 40_000, generator=g)},
    }
    cases = []
    for name, level in fields.items():
        codes = {
            "idx": torch.randint(0, rows, (n, 4), generator=g),
            "val": torch.rand(n, 4, generator=g),
            "basis": torch.randn(rows, dim, generator=g),
            **level,
        }
        path = _save_fields(scene, codes, workdir / f"{name}.pt")
        cases.append(("fields", str(path), name))
    cases.append(("fields", str(_save_trained(scene, dim, workdir / "fields_trained_huge_codebook.pt")), "trained"))

    labels = np.full(n, -1, np.int64)
    labels[: n // 2], labels[n // 2 :] = 0, 2  # instance 1 is empty
    sizes = np.bincount(labels[labels >= 0], minlength=3)
    instance_sets = {
        "instances_valid": {},
        "instances_empty_one": {"sizes": sizes},
        "instances_huge_sizes": {"sizes": np.array([10**12, 0, n - n // 2])},
        "instances_wrong_sizes": {"sizes": sizes + 1},
        "instances_huge_support": {"support": np.array([1, 10**12, 1])},
    }
    for name, override in instance_sets.items():
        path = workdir / f"{name}.pt"
        _save_instances(scene, labels if name != "instances_valid" else np.zeros(n, np.int64), override, dim, path)
        cases.append(("instances", str(path), name))

    good = orbit_cameras(scene.means.mean(0).numpy(), 3.0, 1, width=16, height=12)[0].to_dict()
    cameras = {
        "camera_valid": {},
        "camera_zero_w2c": {"w2c": [[0.0] * 4] * 4},
        "camera_scaled_w2c": {"w2c": (np.diag([3.0, 3.0, 3.0, 1.0]) @ np.array(good["w2c"])).tolist()},
        "camera_mirrored_w2c": {"w2c": (np.diag([-1.0, 1.0, 1.0, 1.0]) @ np.array(good["w2c"])).tolist()},
        "camera_zero_K": {"K": [[0.0] * 3] * 3},
        "camera_projective_K": {"K": [[20.0, 0, 8], [0, 20.0, 6], [1, 1, 1]]},
        "camera_nan": {"w2c": [[float("nan")] * 4] * 4},
        "camera_fractional_size": {"width": 15.5},
    }
    for name, override in cameras.items():
        path = workdir / f"{name}.json"
        path.write_text(json.dumps({**good, **override}))
        cases.append(("camera", str(path), name))
    return cases


def check_companion(kind: str, path: str, scene_path: str) -> tuple[str, str]:
    """Load the ``kind`` file at ``path`` for the scene at ``scene_path`` and use it (see the module doc)."""
    from ovseg_core.errors import OvsegError
    from ovseg_core.io import load_scene

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # overflow / invalid value: garbage got through
            scene = load_scene(scene_path)
            detail = {"fields": _use_fields, "instances": _use_instances, "camera": _use_camera}[kind](path, scene)
    except OvsegError as e:
        return "refused", str(e).splitlines()[0][:200]
    except Exception as e:  # noqa: BLE001 (counting what escapes is the point)
        return "failed", f"{kind}: {type(e).__name__}: {e}"[:300]
    return "loaded", detail


def _use_fields(path: str, scene) -> str:  # noqa: ANN001
    from ovseg_core.fields import FieldQuery, load_fields
    from ovseg_core.models import tiny_open_clip

    query = FieldQuery(load_fields(path, scene), tiny_open_clip(seed=TINY_CLIP_SEED))
    rel, _ = query.gaussian_relevancy("chair")
    if not np.isfinite(rel).all():
        raise ValueError("relevancy is not finite")
    return f"max relevancy {rel.max():.3f}"


def _use_instances(path: str, scene) -> str:  # noqa: ANN001
    from ovseg_core.instances import export_instances, load_instances

    instances = load_instances(path, scene)
    with tempfile.TemporaryDirectory(prefix="ovseg-instances-") as out:
        written = export_instances(scene, instances, out)
        counts = [len(os.listdir(out)), sum(p is not None for p in written)]
    if counts[0] != counts[1] or int(instances.sizes.sum()) > scene.num_gaussians:
        raise ValueError(f"wrote {counts[0]} files for {counts[1]} instances; sizes sum to {instances.sizes.sum()}")
    return f"{counts[1]} of {instances.num_instances} instances exported"


def _use_camera(path: str, scene) -> str:  # noqa: ANN001
    from ovseg_core.camera import load_camera_json
    from ovseg_core.render import make_renderer

    camera = load_camera_json(Path(path).read_text(), path)[0]
    image = make_renderer("cpu").render(scene, camera).rgb
    if not torch.isfinite(image).all():
        raise ValueError("the render is not finite")
    return f"rendered {camera.width}x{camera.height}"


def _save_fields(scene, codes: dict, path: Path) -> Path:  # noqa: ANN001
    from ovseg_core.fields.language_fields import LanguageFields, LevelCodes
    from ovseg_core.models import tiny_open_clip

    fields = LanguageFields(
        levels={0: LevelCodes(**codes)}, method="lifted", encoder_name=tiny_open_clip(seed=TINY_CLIP_SEED).name,
        embed_dim=codes["basis"].shape[1],
        scene_fingerprint=scene.fingerprint(), num_gaussians=scene.num_gaussians,
    )  # fmt: skip
    return fields.save(path)


def _save_trained(scene, dim: int, path: Path) -> Path:  # noqa: ANN001
    """A trained-form checkpoint whose field settings claim 4,096 x 4,096 codebook entries."""
    from ovseg_core.fields.language_fields import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "method": "langsplatv2",
        "encoder": {"name": "tiny", "embed_dim": dim},
        "scene": {"fingerprint": scene.fingerprint(), "num_gaussians": scene.num_gaussians},
        "config": {"field": {"num_layers": 4096, "codebook_size": 4096, "embed_dim": dim}},
        "levels": {0: {"logits": torch.zeros(scene.num_gaussians, 8), "codebooks": torch.zeros(1, 8, dim)}},
    }  # fmt: skip
    torch.save(payload, path)
    return path


def _save_instances(scene, labels: np.ndarray, override: dict, dim: int, path: Path) -> None:  # noqa: ANN001
    """An instances file at ``path`` with ``labels`` and any stored tensor replaced by ``override``'s."""
    from ovseg_core.instances.instance_set import INSTANCES_FORMAT, INSTANCES_VERSION

    k = int(labels.max()) + 1
    stored = {
        "labels": labels, "sizes": np.bincount(labels[labels >= 0], minlength=k),
        "support": np.ones(k, np.int64), "features": np.eye(k, dim, dtype=np.float32), **override,
    }  # fmt: skip
    payload = {
        "format": INSTANCES_FORMAT, "version": INSTANCES_VERSION,
        "scene": {"fingerprint": scene.fingerprint(), "num_gaussians": scene.num_gaussians},
        "encoder": {"name": "tiny", "embed_dim": dim}, "names": [], "scores": None, "config": {},
        **{name: torch.from_numpy(np.asarray(v)) for name, v in stored.items()},
    }  # fmt: skip
    torch.save(payload, path)
