"""What a user makes in the viewer and gets back after a restart on the same scene: the fields
trained or loaded (by path; the files stay where training or the user put them) and the ones in
use (``FieldsLibrary`` decides what a restart does with them), the 3D instance set in use, and
named selections.

Everything lives under the output folder, one folder per splat (its fingerprint), so another
scene opened with the same ``--output-dir`` sees none of it::

    <output_dir>/viewer_state/<scene fingerprint>/state.json
    <output_dir>/viewer_state/<scene fingerprint>/selections/<name>.npy   # [N] bool

Files are written atomically; an unreadable state file is set aside (``state.json.bad``) and the
viewer starts fresh rather than failing.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ovseg_core.errors import UsageError
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.scene import GaussianScene

log = logging.getLogger("ovseg.viewer")

STATE_VERSION = 1
MAX_SELECTIONS = 200


def selection_file_name(name: str) -> str:
    """``name`` as a file stem: letters, digits, ``._-`` (anything else becomes ``_``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._-")[:80]
    if not safe:
        raise UsageError(f"{name!r} is not a usable selection name; type one such as 'mug'")
    return safe


class SavedState:
    """The per-scene state file and selection folder (nothing is kept without an output folder)."""

    def __init__(self, output_dir: Path | None, scene: GaussianScene) -> None:
        self.scene_fingerprint = scene.fingerprint()
        self.num_gaussians = scene.num_gaussians
        self.dir = Path(output_dir) / "viewer_state" / self.scene_fingerprint if output_dir is not None else None
        self._lock = threading.Lock()
        self.data: dict[str, Any] = self._read()

    @property
    def enabled(self) -> bool:
        return self.dir is not None

    # -- state.json -------------------------------------------------------------------------------
    def _empty(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "fields": [], "fields_in_use": None, "instances": None}

    def _read(self) -> dict[str, Any]:
        if self.dir is None or not (self.dir / "state.json").is_file():
            return self._empty()
        path = self.dir / "state.json"
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise UsageError(f"unknown state version {data.get('version') if isinstance(data, dict) else data!r}")
            fields = [
                {"label": str(e["label"]), "path": str(e["path"])}
                for e in data.get("fields", [])
                if isinstance(e, dict) and "label" in e and "path" in e
            ]
            in_use = data.get("fields_in_use")
            instances = data.get("instances")
            return {
                "version": STATE_VERSION,
                "fields": fields,
                "fields_in_use": str(in_use) if in_use else None,
                "instances": str(instances) if instances else None,
            }
        except (OSError, ValueError, TypeError, KeyError) as e:
            log.warning("ignoring the unreadable viewer state %s (%s); it is kept as state.json.bad", path, e)
            try:
                path.replace(path.with_name("state.json.bad"))
            except OSError:
                pass
            return self._empty()

    def _write(self) -> None:
        if self.dir is None:
            return
        atomic_write_bytes(self.dir / "state.json", json.dumps(self.data, indent=2).encode())

    def saved_fields(self) -> list[tuple[str, Path]]:
        """(label, path) of the fields earlier sessions trained or loaded, oldest first."""
        return [(e["label"], Path(e["path"])) for e in self.data["fields"]]

    @property
    def fields_in_use(self) -> Path | None:
        p = self.data["fields_in_use"]
        return Path(p) if p else None

    @property
    def instances(self) -> Path | None:
        p = self.data["instances"]
        return Path(p) if p else None

    def add_fields(self, label: str, path: Path) -> None:
        """Remember fields at ``path`` (a checkpoint or run directory) under ``label``."""
        path = Path(path).resolve()
        with self._lock:
            if all(Path(e["path"]) != path for e in self.data["fields"]):
                self.data["fields"].append({"label": label, "path": str(path)})
            self._write()

    def use_fields(self, path: Path | None) -> None:
        """The fields in use are at ``path`` (None: the ones the viewer was started with)."""
        with self._lock:
            self.data["fields_in_use"] = str(Path(path).resolve()) if path is not None else None
            self._write()

    def use_instances(self, path: Path | None) -> None:
        with self._lock:
            self.data["instances"] = str(Path(path).resolve()) if path is not None else None
            self._write()

    # -- selections -------------------------------------------------------------------------------
    def _selection_dir(self) -> Path:
        if self.dir is None:
            raise UsageError("selections are saved in the output folder; start ovseg-view with --output-dir")
        return self.dir / "selections"

    def selection_names(self) -> list[str]:
        if self.dir is None or not (self.dir / "selections").is_dir():
            return []
        return sorted(p.stem for p in (self.dir / "selections").glob("*.npy"))

    def save_selection(self, name: str, mask: np.ndarray) -> str:
        """Store ``mask`` ``[N]`` bool as ``name`` (replacing a selection of that name); returns the
        name used."""
        mask = np.asarray(mask, bool)
        if mask.shape != (self.num_gaussians,):
            raise UsageError(f"a selection has {self.num_gaussians} entries, got {list(mask.shape)}")
        if not mask.any():
            raise UsageError("nothing selected to save")
        stem = selection_file_name(name)
        folder = self._selection_dir()
        if stem not in self.selection_names() and len(self.selection_names()) >= MAX_SELECTIONS:
            raise UsageError(f"{MAX_SELECTIONS} selections are saved already; delete some in {folder}")
        buf = io.BytesIO()
        np.save(buf, np.packbits(mask), allow_pickle=False)
        atomic_write_bytes(folder / f"{stem}.npy", buf.getvalue())
        return stem

    def load_selection(self, name: str) -> np.ndarray:
        path = self._selection_dir() / f"{selection_file_name(name)}.npy"
        if not path.is_file():
            raise UsageError(f"no saved selection {name!r}")
        try:
            packed = np.load(path, allow_pickle=False)
            mask = np.unpackbits(np.asarray(packed, np.uint8))[: self.num_gaussians].astype(bool)
        except (OSError, ValueError) as e:
            raise UsageError(f"saved selection {path} is unreadable: {e}") from e
        if packed.ndim != 1 or packed.shape[0] != (self.num_gaussians + 7) // 8:
            raise UsageError(f"saved selection {path} is not one for this splat's {self.num_gaussians} Gaussians")
        return mask
