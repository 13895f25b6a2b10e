"""The viewer's camera-path files: saved into ``<output_dir>/camera_paths/`` never over an earlier
one, listed newest first, loaded only by a listed name, and a file without keyframes refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ovseg_app.viewer.camera_path import load_saved_path, read_path_file, save_path_file, saved_path_files
from ovseg_core.camera import orbit_cameras
from ovseg_core.camera_path import CameraPath, Keyframe, dumps_camera_path
from ovseg_core.errors import UsageError


def a_path() -> CameraPath:
    cams = orbit_cameras((0, 0, 0), 2.0, 4, width=64, height=48)
    return CameraPath(tuple(Keyframe.from_camera(c) for c in cams), fps=5, width=64, height=48)


def test_saved_paths_never_overwrite_and_load_back(tmp_path):
    name, data, saved = save_path_file(tmp_path, "trip", a_path())
    assert name == "trip.json" and saved == tmp_path / "camera_paths" / "trip.json" and saved.read_bytes() == data
    name2, _, saved2 = save_path_file(tmp_path, "trip.json", a_path())
    assert name2 == "trip-1.json" and saved.read_bytes() == data
    assert set(saved_path_files(tmp_path)) == {"trip.json", "trip-1.json"}
    loaded = load_saved_path(tmp_path, "trip.json")
    assert len(loaded.path.keyframes) == 4 and (loaded.width, loaded.height, loaded.fps) == (64, 48, 5.0)
    name3, data3, saved3 = save_path_file(None, "../../etc/x", a_path())  # no output folder: download only
    assert saved3 is None and name3 == "x.json" and json.loads(data3)["keyframes"]


def test_only_listed_files_load_and_paths_need_keyframes(tmp_path):
    save_path_file(tmp_path, "trip", a_path())
    (tmp_path / "secret.json").write_text("{}")
    for name in ("../secret.json", "missing.json"):
        with pytest.raises(UsageError, match="no saved camera path"):
            load_saved_path(tmp_path, name)
    data = json.loads((tmp_path / "camera_paths" / "trip.json").read_text())
    data["keyframes"] = data["keyframes"][:1]
    with pytest.raises(UsageError, match="up.json: key 'keyframes': fewer than 2"):
        read_path_file(json.dumps(data).encode(), "up.json")
    with pytest.raises(UsageError, match="too large"):
        read_path_file(b" " * 30_000_000, "big.json")


def test_a_nerfview_file_loads_at_its_scale():
    """nerfview saves positions divided by 10: loaded at scale 10 they are the scene's again."""
    path = a_path()
    data = dumps_camera_path(path, position_scale=10.0)
    as_stored = read_path_file(data, "nerfview.json")
    scaled = read_path_file(data, "nerfview.json", position_scale=10.0)
    original = np.array([k.position for k in path.keyframes])
    np.testing.assert_allclose([k.position for k in scaled.path.keyframes], original, atol=1e-6)
    np.testing.assert_allclose([k.position for k in as_stored.path.keyframes], original / 10, atol=1e-6)
