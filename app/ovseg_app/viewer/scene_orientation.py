"""The viewer's first view of a scene: its up axis (the user's last choice for this scene, else
detected) and the camera that frames its bulk.

Choices are remembered per scene in ``<output_dir>/up_axes.json`` (``{fingerprint: axis}``),
so reopening a capture keeps the orientation its user picked.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np

from ovseg_core.camera import Camera
from ovseg_core.errors import UsageError
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.orientation import AXES, Framing, UpGuess, detect_up, frame_view
from ovseg_core.scene import GaussianScene

log = logging.getLogger("ovseg.viewer")

MEMORY_FILE = "up_axes.json"


class SceneOrientation:
    """Up axis and framing of one scene, shared by every tab of a viewer."""

    def __init__(self, scene: GaussianScene, output_dir: Path | None = None, dataset: Path | None = None) -> None:
        self.fingerprint = scene.fingerprint()
        self._means = scene.means.detach().cpu().numpy()
        self._opacities = scene.opacities.detach().cpu().numpy()
        self.cameras = dataset_cameras(dataset) if dataset is not None else []
        self.detected: UpGuess = detect_up(self._means, opacities=self._opacities, cameras=self.cameras)
        self.path = Path(output_dir) / MEMORY_FILE if output_dir is not None else None
        self._lock = threading.Lock()
        remembered = self._read().get(self.fingerprint)
        self.axis = remembered if remembered in AXES else self.detected.axis
        """The up axis new tabs start with."""
        log.info(
            "up axis %s (%s)", self.axis, "remembered for this scene" if remembered in AXES else self.detected.source
        )

    def choose(self, axis: str) -> None:
        """The user picked ``axis``: new tabs (and the next viewer on this scene) use it."""
        if axis not in AXES:
            raise UsageError(f"up axis must be one of {', '.join(AXES)}, got {axis!r}")
        self.axis = axis
        if self.path is None:
            return
        with self._lock:
            memory = self._read()
            memory[self.fingerprint] = axis
            atomic_write_bytes(self.path, json.dumps(memory, indent=1, sort_keys=True).encode())

    def framing(self, axis: str | None = None, *, fov_y_deg: float = 60.0, aspect: float = 1.0) -> Framing:
        """A camera pose framing the scene's bulk with ``axis`` (default: the current one) up."""
        up = AXES[axis if axis in AXES else self.axis]
        cams = self.cameras if self.detected.source == "cameras" else ()
        return frame_view(self._means, up, opacities=self._opacities, fov_y_deg=fov_y_deg, aspect=aspect, cameras=cams)

    def _read(self) -> dict[str, str]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:  # a damaged file must not stop the viewer
            log.warning("ignoring %s: %s", self.path, e)
            return {}
        return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def dataset_cameras(dataset: Path) -> list[Camera]:
    """The cameras of a capture (transforms.json or COLMAP), or none (logged) when it cannot be read."""
    from ovseg_core.io.cameras import load_colmap, load_transforms_json

    try:
        is_transforms = dataset.suffix == ".json" or (dataset / "transforms.json").is_file()
        views = load_transforms_json(dataset) if is_transforms else load_colmap(dataset)
    except Exception as e:  # noqa: BLE001 - the dataset is optional for orientation
        log.warning("up axis: cannot read the cameras of %s (%s); using the splat's shape", dataset, e)
        return []
    return [v.camera for v in views]


def as_tuple(v: np.ndarray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))
