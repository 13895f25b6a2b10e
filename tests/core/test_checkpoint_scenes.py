"""Training checkpoints as scenes: gsplat's ``{"step", "splats"}`` and fVDB Reality Capture's
``Checkpoint.save`` layout, loaded with ``weights_only`` (foreign classes inert, nothing executed);
bad checkpoints refused naming the file and the key."""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
import types

import numpy as np
import pytest
import torch

from ovseg_core.errors import SceneFormatError
from ovseg_core.io import load_scene
from ovseg_core.synthetic import random_scene

FVDB_MODULE = "fvdb_reality_capture.training.gaussian_splat_optimizer"
CALLS: list[str] = []


class InsertionGrad2dThresholdMode(enum.StrEnum):
    CONSTANT = "constant"


@dataclasses.dataclass
class GaussianSplatOptimizerConfig:
    max_gaussians: int = -1
    insertion_grad_2d_threshold_mode: InsertionGrad2dThresholdMode = InsertionGrad2dThresholdMode.CONSTANT
    deletion_opacity_threshold: float = 0.005

    def __setstate__(self, state):  # would run if the loader unpickled this class for real
        CALLS.append("setstate")
        self.__dict__.update(state)


def _gsplat_splats(scene, quat_scale=3.0):
    return {
        "means": scene.means.clone(),
        "scales": scene.log_scales.clone(),
        "quats": scene.quats * quat_scale,  # gsplat keeps them unnormalised
        "opacities": scene.logit_opacities.clone(),
        "sh0": scene.sh0.clone(),
        "shN": scene.shN.clone(),
    }


def _fvdb_checkpoint(scene) -> dict:
    """``fvdb_reality_capture.training.checkpoint.Checkpoint.save``'s dict, with the fVDB classes its
    config pickles (registered under fVDB's module path only while saving)."""
    n = scene.num_gaussians
    splats = {
        "means": scene.means, "quats": scene.quats, "log_scales": scene.log_scales,
        "logit_opacities": scene.logit_opacities, "sh0": scene.sh0, "shN": scene.shN,
        "accumulate_mean_2d_gradients": torch.tensor(True), "accumulate_max_2d_radii": torch.tensor(False),
        "accumulated_mean_2d_gradient_norms": torch.rand(n), "accumulated_gradient_step_counts": torch.ones(n, dtype=torch.int32),
    }  # fmt: skip
    params = [torch.nn.Parameter(scene.means.clone())]
    adam = torch.optim.Adam(params, lr=1e-3)
    params[0].grad = torch.ones_like(params[0])
    adam.step()
    return {
        "version": "1.1.0",
        "step": 6999,
        "run_name": "run_2025-10-03",
        "splats": splats,
        "config": {"seed": 42, "sh_degree": 3, "eval_at_percent": [10, 20], "opt": GaussianSplatOptimizerConfig()},
        "dataset_path": "/data/garden",
        "dataset_transform": {"name": "NormalizeScene", "version": "1.0.0", "normalization_type": "pca"},
        "dataset_splits": {"train": np.arange(0, 20, dtype=np.int32), "val": np.arange(20, 24, dtype=np.int32)},
        "optimizer": {
            "optimizers": {"means": adam.state_dict()},
            "means_lr_scheduler": {"gamma": 0.99, "last_epoch": 6999},
            "version": 3,
            "config": vars(GaussianSplatOptimizerConfig()),
        },
        "num_training_poses": None,
        "pose_adjust_model": None,
        "pose_adjust_optimizer": None,
        "pose_adjust_scheduler": None,
    }


def _save_as_fvdb(obj, path):
    module = types.ModuleType(FVDB_MODULE)
    saved = {}
    for cls in (InsertionGrad2dThresholdMode, GaussianSplatOptimizerConfig):
        saved[cls] = (cls.__module__, cls.__qualname__)
        cls.__module__ = FVDB_MODULE
        setattr(module, cls.__name__, cls)
    parents = [FVDB_MODULE.rsplit(".", i)[0] for i in (2, 1)]
    sys.modules.update({name: types.ModuleType(name) for name in parents} | {FVDB_MODULE: module})
    try:
        torch.save(obj, path)
    finally:
        for name in [*parents, FVDB_MODULE]:
            del sys.modules[name]
        for cls, (mod, _) in saved.items():
            cls.__module__ = mod
    assert b"fvdb_reality_capture" in path.read_bytes()  # the real layout names fVDB's classes


def _assert_same(back, scene):
    for name in ("means", "log_scales", "logit_opacities", "sh0", "shN"):
        torch.testing.assert_close(getattr(back, name), getattr(scene, name), rtol=0, atol=0, msg=name)
    torch.testing.assert_close(back.quats, scene.quats, rtol=0, atol=2e-7)


def test_gsplat_checkpoint_loads_as_its_splats(tmp_path):
    scene = random_scene(120, sh_degree=3, seed=1)
    path = tmp_path / "ckpt_6999_rank0.pt"
    torch.save({"step": 6999, "splats": _gsplat_splats(scene)}, path)
    _assert_same(load_scene(path), scene)
    legacy = tmp_path / "legacy.pth"  # torch's pre-zip format, by content too
    torch.save({"step": 1, "splats": _gsplat_splats(scene)}, legacy, _use_new_zipfile_serialization=False)
    _assert_same(load_scene(legacy), scene)
    bare = tmp_path / "splats.bin"
    torch.save(_gsplat_splats(scene, quat_scale=1.0), bare)
    _assert_same(load_scene(bare), scene)


def test_fvdb_reality_capture_checkpoint_loads_without_fvdb_and_runs_none_of_its_code(tmp_path):
    scene = random_scene(80, sh_degree=2, seed=2)
    path = tmp_path / "ckpt_final.pt"
    _save_as_fvdb(_fvdb_checkpoint(scene), path)
    assert not any(name.startswith("fvdb_reality_capture") for name in sys.modules)
    CALLS.clear()
    _assert_same(load_scene(path), scene)
    assert CALLS == []
    bare = tmp_path / "model.pt"  # GaussianSplat3d.state_dict() saved alone, as fVDB's tests do
    torch.save(_fvdb_checkpoint(scene)["splats"], bare)
    _assert_same(load_scene(bare), scene)


class _Payload:
    """Unpickled for real, this would create a folder."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_bad_checkpoints_are_refused_naming_file_and_key(tmp_path):
    scene = random_scene(10, sh_degree=1, seed=3)
    good = _gsplat_splats(scene)
    cases = {
        "list.pt": ([1, 2], "holds a list, expected a dict"),
        "splats_list.pt": ({"splats": [1]}, "key 'splats' is a list"),
        "no_means.pt": ({"step": 1, "splats": {"quats": good["quats"]}}, "no key 'splats.means'"),
        "no_quats.pt": ({"splats": {k: v for k, v in good.items() if k != "quats"}}, "no key 'splats.quats'"),
        "shape.pt": ({"splats": {**good, "scales": good["scales"][:, :2]}}, r"'splats.scales' has shape \[10, 2\]"),
        "rows.pt": ({"splats": {**good, "sh0": good["sh0"][:9]}}, r"'splats.sh0' has shape \[9, 1, 3\]"),
        "int.pt": ({"splats": {**good, "means": torch.zeros(10, 3, dtype=torch.int64)}}, "'splats.means' is a torch.int64"),
        "str.pt": ({"splats": {**good, "opacities": "x"}}, "'splats.opacities' is a str"),
        "degree.pt": ({"splats": {**good, "shN": torch.zeros(10, 24, 3)}}, r"'splats.shN' has shape \[10, 24, 3\]"),
        "appearance.pt": (
            {"splats": {**{k: v for k, v in good.items() if k not in ("sh0", "shN")}, "features": torch.zeros(10, 32)}},
            "appearance embeddings",
        ),
        "empty.pt": ({"splats": {k: v[:0] for k, v in good.items()}}, "zero Gaussians"),
        "payload.pt": ({"splats": _Payload(tmp_path / "pwned")}, "'splats' is a _Inert|not a readable torch checkpoint"),
    }  # fmt: skip
    for name, (obj, match) in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(SceneFormatError, match=match) as info:
            load_scene(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    assert not (tmp_path / "pwned").exists()
    data = (tmp_path / "list.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(SceneFormatError, match="cut.pt: (not a readable torch checkpoint|corrupt checkpoint archive)"):
        load_scene(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(SceneFormatError, match=r"text.pt: not a checkpoint \(gsplat / fVDB Reality Capture\) file"):
        load_scene(tmp_path / "text.pt")


def test_nonfinite_rows_are_dropped_like_every_reader(tmp_path):
    scene = random_scene(20, seed=4)
    splats = _gsplat_splats(scene)
    splats["means"][3, 0] = float("nan")
    splats["quats"][5] = 0.0  # a zero quaternion is the identity, as in PLY files
    torch.save({"splats": splats}, tmp_path / "c.pt")
    with pytest.warns(UserWarning, match="dropped 1 of 20 Gaussians"):
        back = load_scene(tmp_path / "c.pt")
    assert back.num_gaussians == 19 and torch.equal(back.quats[4], torch.tensor([1.0, 0, 0, 0]))
