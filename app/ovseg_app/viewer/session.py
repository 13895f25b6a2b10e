"""One tab's view of the scene, without any GUI: its prompt and the prompt's answer, its selection
and hidden Gaussians with undo, and the frames and exports made from them.

GUI callbacks only change the tab's ``TabState`` (replaced whole); the render loop reads the current
one. Scene-wide data (fields, instances, graph, caches) is a ``SharedState`` every tab's session
holds (``fork`` makes another tab's session). Every selection edit goes through ``_edit``, which
keeps selected and hidden apart and records both for undo.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from ovseg_app.viewer import exports, picking, prompt_answer, view_frames
from ovseg_app.viewer.locked_renderer import LockedRenderer
from ovseg_app.viewer.picking import Granularity
from ovseg_app.viewer.prompt_answer import PromptAnswer
from ovseg_app.viewer.selection_history import SelectionHistory, Snapshot
from ovseg_app.viewer.tab_state import PromptState, SharedState, TabState, frozen, scene_without
from ovseg_core.camera import Camera
from ovseg_core.colormaps import COLORMAPS
from ovseg_core.errors import UsageError
from ovseg_core.fields import LanguageFields, QuerySettings
from ovseg_core.models import TextEncoder
from ovseg_core.render import Renderer
from ovseg_core.render.frames import VIEW_MODES, ViewMode
from ovseg_core.scene import GaussianScene
from ovseg_core.selection import SelectionConfig, phrase_relevancy

__all__ = ["VIEW_MODES", "ViewMode", "PromptState", "ViewerSession", "PromptAnswer", "ClickResult"]

SelectOp = Literal["replace", "add", "remove"]


@dataclasses.dataclass
class ClickResult:
    ids: np.ndarray
    """Gaussian ids of the clicked instance."""
    label: str | None
    """Best-matching current prompt for the instance, if any prompt matches."""
    selected_count: int


def combine(current: np.ndarray, mask: np.ndarray, op: SelectOp) -> np.ndarray:
    """``current`` replaced by, joined with, or stripped of ``mask`` (both ``[N]`` bool)."""
    if op == "replace":
        return mask
    if op == "add":
        return current | mask
    if op == "remove":
        return current & ~mask
    raise UsageError(f"unknown selection op {op!r}; choose replace, add or remove")


class ViewerSession:
    """One scene, its fields (shared), and one tab's prompt, selection and hidden Gaussians."""

    def __init__(
        self,
        scene: GaussianScene,
        renderer: Renderer,
        *,
        fields: LanguageFields | None = None,
        text_encoder: TextEncoder | None = None,
        output_dir: str | Path | None = None,
        device_lock: threading.RLock | None = None,
        selection: SelectionConfig = SelectionConfig(),
        shared: SharedState | None = None,
    ) -> None:
        if shared is None:
            out = Path(output_dir).resolve() if output_dir is not None else None
            shared = SharedState(scene, LockedRenderer(renderer, device_lock), out, selection)
            shared.set_fields(fields, text_encoder)
        self.shared = shared
        self.state = TabState.empty(shared.scene, shared.selection_config)
        self.history = SelectionHistory()
        self._lock = threading.RLock()

    def fork(self) -> ViewerSession:
        """A session for another tab: the same shared state; a copy of this tab's prompt, nothing
        selected or hidden, a fresh undo history."""
        tab = ViewerSession(self.shared.scene, self.renderer, shared=self.shared)
        tab.state = dataclasses.replace(tab.state, prompt=self.state.prompt)
        return tab

    # -- read-only views of the state ------------------------------------------------------------
    base_scene = property(lambda self: self.shared.scene, doc="The loaded scene.")
    scene = property(lambda self: self.state.scene, doc="The scene as this tab shows it (hidden ones transparent).")
    renderer = property(lambda self: self.shared.renderer)
    device_lock = property(lambda self: self.shared.renderer.lock)
    output_dir = property(lambda self: self.shared.output_dir)
    fields = property(lambda self: self.shared.fields)
    text_encoder = property(lambda self: self.shared.text_encoder)
    query = property(lambda self: self.shared.query)
    instances = property(lambda self: self.shared.instances)
    prompt = property(lambda self: self.state.prompt)
    selection = property(lambda self: self.state.selection, doc="``[N]`` bool, read-only.")
    hidden = property(lambda self: self.state.hidden, doc="``[N]`` bool, read-only.")
    selection_config = property(lambda self: self.state.selection_config)

    @property
    def encoder_name(self) -> str:
        return self.text_encoder.name if self.text_encoder is not None else "none (no language fields loaded)"

    @property
    def levels(self) -> list[int]:
        return sorted(self.fields.levels) if self.fields is not None else []

    @property
    def unseen_count(self) -> int:
        """Gaussians the loaded fields have no feature for (never seen by their views); they score 0."""
        return self.query.unseen_count() if self.query is not None else 0

    def set_fields(self, fields: LanguageFields | None, text_encoder: TextEncoder | None) -> None:
        """Use new fields in every tab (e.g. when a background training run finishes)."""
        self.shared.set_fields(fields, text_encoder)

    def set_instances(self, instances, text_encoder: TextEncoder | None = None) -> None:  # noqa: ANN001
        """Use 3D instances (``ovseg_core.instances.InstanceSet``) for clicks and the instance list, in every tab."""
        self.shared.set_instances(instances, text_encoder)

    def graph(self):  # noqa: ANN201
        return self.shared.graph()

    # -- prompt -------------------------------------------------------------------------------------
    def set_prompt(self, **changes) -> PromptState:  # noqa: ANN003
        """Replace prompt fields (``positives``, ``negatives``, ``threshold``, ``level``, ``colormap``)."""
        for key in ("positives", "negatives"):
            if key in changes:
                changes[key] = tuple(p.strip() for p in changes[key] if p.strip())
        if "colormap" in changes and changes["colormap"] not in COLORMAPS:
            raise UsageError(f"unknown colormap {changes['colormap']!r}; choose one of {', '.join(COLORMAPS)}")
        if "threshold" in changes and not 0.0 <= float(changes["threshold"]) <= 1.0:
            raise UsageError(f"threshold must lie in [0, 1], got {changes['threshold']}")
        if changes.get("level") is not None and changes["level"] not in self.levels:
            raise UsageError(f"level {changes['level']} is not in the loaded fields (they have {self.levels})")
        with self._lock:
            self.state = dataclasses.replace(self.state, prompt=dataclasses.replace(self.state.prompt, **changes))
            return self.state.prompt

    def set_consistency(self, *, enabled: bool | None = None, neighbourhood_weight: float | None = None) -> None:
        """This tab's spatial consistency: on/off and how much a Gaussian's neighbourhood counts
        (``SelectionConfig.neighbourhood_weight``; 0: each Gaussian alone)."""
        changes: dict = {}
        if enabled is not None:
            changes["enabled"] = bool(enabled)
        if neighbourhood_weight is not None:
            changes["neighbourhood_weight"] = float(neighbourhood_weight)
        with self._lock:
            config = dataclasses.replace(self.state.selection_config, **changes)  # validates (names the knob)
            self.state = dataclasses.replace(self.state, selection_config=config)

    def settings(self, prompt: PromptState) -> QuerySettings:
        return QuerySettings(negatives=prompt.negatives, level=prompt.level)

    def phrase_relevancy(self, prompt: PromptState | None = None) -> list[tuple[np.ndarray, int]] | None:
        """Per positive: (relevancy ``[N]``, level used) (``selection.phrase_relevancy``), or None
        without prompt/fields."""
        prompt = prompt or self.state.prompt
        query = self.query
        if query is None or not prompt.positives:
            return None

        def make() -> list[tuple[np.ndarray, int]]:
            return [phrase_relevancy(query, p, prompt.negatives, prompt.level) for p in prompt.positives]

        return self.shared.cached(("relevancy", id(query), prompt.positives, prompt.negatives, prompt.level), make)

    def gaussian_relevancy(self, prompt: PromptState | None = None) -> np.ndarray | None:
        """Max over positives of per-Gaussian relevancy ``[N]``, or None without prompt/fields."""
        prompt = prompt or self.state.prompt
        per_phrase = self.phrase_relevancy(prompt)
        if per_phrase is None:
            return None
        if len(per_phrase) == 1:
            return per_phrase[0][0]
        key = ("max relevancy", id(self.query), prompt.positives, prompt.negatives, prompt.level)
        return self.shared.cached(key, lambda: np.max([r for r, _ in per_phrase], axis=0))

    def answer(self, state: TabState | None = None) -> PromptAnswer | None:
        """What ``state``'s prompt (default: the current one) found; None without prompt or fields."""
        return prompt_answer.find(self, state or self.state)

    def prompt_selection(self) -> np.ndarray:
        """The prompt's answer ``[N]`` bool (all False without prompt or fields)."""
        found = self.answer()
        return found.gaussians if found is not None else np.zeros(self.base_scene.num_gaussians, bool)

    # -- frames and exports --------------------------------------------------------------------------
    def render(self, camera: Camera, mode: ViewMode = "rgb") -> np.ndarray:
        """A frame ``[H, W, 3]`` uint8 of ``camera`` in ``mode``, from one snapshot of the state."""
        return view_frames.render(self, self.state, camera, mode)

    def relevancy_png(
        self, camera: Camera, mode: ViewMode = "relevancy", check: Callable[[], None] = lambda: None
    ) -> bytes:
        """A PNG of ``camera``'s frame in ``mode`` (any view mode; the name is historical), rendered
        in strips (``check`` runs between them): a large one costs a strip's memory, not the frame's."""
        import imageio.v3 as iio

        return iio.imwrite(
            "<bytes>", view_frames.render_in_strips(self, self.state, camera, mode, check), extension=".png"
        )

    def gaussian_colors(self, mode: ViewMode) -> np.ndarray:
        """Per-Gaussian RGB ``[N, 3]`` in [0, 1] for browser-side splats in ``mode``."""
        return view_frames.gaussian_colors(self, self.state, mode)

    def export_mask(self, kind: str) -> np.ndarray:
        return exports.export_mask(self, kind)

    def export_ply(self, kind: str) -> bytes:
        """The chosen Gaussians as an INRIA-layout 3DGS PLY (opens in other splat viewers)."""
        return exports.export_ply(self, kind)

    def export_file(self, kind: str, suffix: str) -> bytes:
        """The chosen Gaussians in the format of ``suffix`` (``exports.EXPORT_FORMATS``: .ply, .spz, ...)."""
        return exports.export_file(self, kind, suffix)

    def export_instance_ply(self, k: int) -> bytes:
        return exports.export_instance_ply(self, k)

    def save_output(self, name: str, data: bytes) -> Path:
        return exports.save_output(self.output_dir, name, data)

    def output_path(self, name: str) -> Path:
        return exports.output_path(self.output_dir, name)

    # -- selection: every edit goes through _edit ----------------------------------------------------
    def _edit(self, selection: np.ndarray | None = None, hidden: np.ndarray | None = None) -> int:
        """Set the selection and/or hidden mask (``[N]`` bool), keep them apart (hidden wins), and
        record the previous pair for undo. Returns the selected count."""
        with self._lock:
            st = self.state
            hid = st.hidden if hidden is None else np.asarray(hidden, bool)
            sel = st.selection if selection is None else np.asarray(selection, bool)
            for what, mask in (("selection", sel), ("hidden mask", hid)):
                if mask.shape != st.selection.shape:
                    raise UsageError(f"{what} must have shape {list(st.selection.shape)}, got {list(mask.shape)}")
            sel = sel & ~hid
            if np.array_equal(sel, st.selection) and np.array_equal(hid, st.hidden):
                return int(sel.sum())
            self.history.record(Snapshot(st.selection, st.hidden))
            self._set(sel, hid)
            return int(sel.sum())

    def _set(self, selection: np.ndarray, hidden: np.ndarray) -> None:
        st = self.state
        if not np.array_equal(hidden, st.hidden):
            hidden = frozen(hidden)
            st = dataclasses.replace(st, hidden=hidden, scene=scene_without(self.base_scene, hidden))
        self.state = dataclasses.replace(st, selection=frozen(selection))

    def select(self, mask: np.ndarray, op: SelectOp = "replace") -> int:
        """Replace, add to or remove from the selection the ``[N]`` bool ``mask`` (hidden ones never join)."""
        return self._edit(selection=combine(self.selection, np.asarray(mask, bool), op))

    def set_selection(self, mask: np.ndarray) -> int:
        """Replace the selection with ``mask`` ``[N]`` bool (hidden Gaussians are left out)."""
        return self.select(mask, "replace")

    def clear_selection(self) -> int:
        return self.select(np.zeros_like(self.selection))

    def invert_selection(self) -> int:
        """Select every shown Gaussian that is not selected."""
        return self.select(~self.selection)

    def select_from_prompt(self, op: SelectOp = "replace") -> int:
        return self.select(self.prompt_selection(), op)

    def select_instance(self, k: int, op: SelectOp = "replace") -> int:
        inst = self.instances
        if inst is None or not 0 <= k < len(inst.sizes):
            raise UsageError(f"no instance {k}")
        return self.select(inst.labels == k, op)

    def set_hidden(self, hidden: np.ndarray) -> int:
        """Hide ``hidden`` ``[N]`` bool from this tab's frames, clicks and exports; returns the hidden count."""
        self._edit(hidden=hidden)
        return int(self.hidden.sum())

    def hide_selected(self) -> int:
        """Hide the selected Gaussians (undoable: the selection comes back with them)."""
        if not self.selection.any():
            raise UsageError("nothing selected to hide")
        return self.set_hidden(self.hidden | self.selection)

    def show_all(self) -> int:
        return self.set_hidden(np.zeros_like(self.hidden))

    def undo(self) -> int:
        """Go back to the selection and hidden Gaussians before the last edit."""
        return self._restore(self.history.undo)

    def redo(self) -> int:
        return self._restore(self.history.redo)

    def _restore(self, step) -> int:  # noqa: ANN001
        with self._lock:
            st = self.state
            back = step(Snapshot(st.selection, st.hidden))
            if back is None:
                raise UsageError(f"nothing to {step.__name__}")
            self._set(back.selection & ~back.hidden, back.hidden)
            return int(self.selection.sum())

    def select_rect(
        self, camera: Camera, lo: tuple[float, float], hi: tuple[float, float], op: SelectOp = "replace"
    ) -> int:
        """Select the shown Gaussians whose centres project inside the pixel rectangle ``lo``-``hi``
        (x, y), in front of the camera: a box selects through the scene, as in SuperSplat."""
        uv, z = camera.project(self.base_scene.means.detach().cpu().double().numpy())
        x, y = uv[:, 0], uv[:, 1]
        (x0, y0), (x1, y1) = (min(lo[0], hi[0]), min(lo[1], hi[1])), (max(lo[0], hi[0]), max(lo[1], hi[1]))
        return self.select((z > 1e-6) & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1), op)

    def click(
        self, camera: Camera, pixel: tuple[float, float], granularity: Granularity = "medium", op: SelectOp = "replace"
    ) -> ClickResult:
        """Select the instance under ``pixel``: the Gaussians connected in space to the front one
        whose features at the granularity's level agree with it (cosine >= 0.9)."""
        ids = picking.instance_at(self, camera, pixel, granularity)
        mask = np.zeros(self.base_scene.num_gaussians, bool)
        mask[ids] = True
        count = self.select(mask, op)
        return ClickResult(ids=ids, label=picking.best_label(self, ids), selected_count=count)

    def instance_rows(self) -> list[tuple[int, str, int, str]]:
        """(index, name, size, best current prompt or '') per instance, largest first."""
        return picking.instance_rows(self)
