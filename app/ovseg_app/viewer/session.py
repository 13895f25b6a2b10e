"""Viewer state and everything computed from it, without any GUI.

GUI callbacks only change this state (prompts, thresholds, selection, modes); the render loop
asks it for frames. Every method is safe to call from several threads: scene-wide data sits
behind one lock, and the renderer is a ``LockedRenderer`` (each render holds the device lock
only while it runs, so training and instance building interleave with frames).

One session per browser tab (``fork``): prompt, selection, hidden Gaussians and the undo history
are the tab's own; the scene, fields, text encoder, 3D instances and the relevancy cache are
shared, so fields trained or loaded in one tab are in use in all of them.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ovseg_app.viewer.locked_renderer import LockedRenderer
from ovseg_app.viewer.selection_history import SelectionHistory
from ovseg_core.camera import Camera
from ovseg_core.colormaps import COLORMAPS, heat_overlay, turbo
from ovseg_core.fields import DEFAULT_NEGATIVES, FieldQuery, LanguageFields, QuerySettings
from ovseg_core.fields.feature_pca import pca_colors
from ovseg_core.io.atomic import atomic_write_bytes
from ovseg_core.io.ply import write_ply
from ovseg_core.models import TextEncoder
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene
from ovseg_core.selection import SelectionConfig, connected_within, consistent_selection, graph_for, grow_from_seed

ViewMode = Literal["rgb", "relevancy", "heatmap", "mask", "pca", "depth", "selection"]
VIEW_MODES: tuple[str, ...] = ("rgb", "relevancy", "heatmap", "mask", "pca", "depth", "selection")
HIDDEN_LOGIT_OPACITY = -30.0
"""Hidden Gaussians get this opacity logit (sigmoid ~1e-13): below every backend's alpha cut, so
they neither show nor can be picked, while ids stay those of the loaded scene."""
Granularity = Literal["small", "medium", "large"]
GRANULARITY_LEVEL = {"small": 1, "medium": 2, "large": 3}
ExportKind = Literal["selection", "prompt", "selection-complement", "prompt-complement"]
EXPORT_KINDS: tuple[str, ...] = ("selection", "prompt", "selection-complement", "prompt-complement")
SELECTION_COLOR = np.array([1.0, 0.2, 0.9], np.float32)


@dataclasses.dataclass(frozen=True)
class PromptState:
    """What the prompt panel says."""

    positives: tuple[str, ...] = ()
    negatives: tuple[str, ...] = DEFAULT_NEGATIVES
    threshold: float = 0.5
    level: int | None = None
    """Feature level, None = auto (per prompt, the level with the highest relevancy)."""
    colormap: str = "turbo"
    """Heat-map colours: turbo, hot or gray."""


@dataclasses.dataclass
class RelevancyStats:
    """What the prompt panel reports for the current prompt."""

    max_relevancy: float
    """Highest per-Gaussian relevancy over the positives."""
    above_threshold: int
    """Gaussians whose relevancy exceeds the threshold."""

    @property
    def no_match(self) -> bool:
        return self.above_threshold == 0


class _SharedFields:
    """Fields, encoders and instances every tab's session sees (set in one, used by all)."""

    def __init__(self) -> None:
        self.fields: LanguageFields | None = None
        self.text_encoder: TextEncoder | None = None
        self.query: FieldQuery | None = None
        self.instances = None
        self.instance_encoder: TextEncoder | None = None
        self.graph = None
        """The scene's neighbourhood graph (built once, on first use, for every tab)."""


def _shared_attribute(name: str) -> property:
    return property(lambda self: getattr(self._shared, name), lambda self, v: setattr(self._shared, name, v))


@dataclasses.dataclass
class ClickResult:
    ids: np.ndarray
    """Gaussian ids of the clicked instance."""
    label: str | None
    """Best-matching current prompt for the instance, if any prompt matches."""
    selected_count: int


class ViewerSession:
    """One scene, its fields, the current prompt and the current selection."""

    fields = _shared_attribute("fields")
    text_encoder = _shared_attribute("text_encoder")
    query = _shared_attribute("query")
    instances = _shared_attribute("instances")
    instance_encoder = _shared_attribute("instance_encoder")
    _graph = _shared_attribute("graph")

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
    ) -> None:
        self._shared = _SharedFields()
        self.scene = scene
        self.base_scene = scene
        """The loaded scene (``scene`` is it with this tab's hidden Gaussians made transparent)."""
        self.renderer = LockedRenderer(renderer, device_lock)
        self.output_dir = Path(output_dir).resolve() if output_dir is not None else None
        self.device_lock = self.renderer.lock
        """The renderer's lock, for library calls that still take one (training, lifting)."""
        self._lock = threading.RLock()
        self.prompt = PromptState()
        self.selection = np.zeros(scene.num_gaussians, bool)
        self.hidden = np.zeros(scene.num_gaussians, bool)
        self.history = SelectionHistory()
        self._rel_cache: dict[tuple, np.ndarray] = {}
        self.relevancy_source: Literal["splat", "pixel"] = "splat"
        self._points = scene.means.detach().cpu().numpy()
        self.selection_config = selection
        """Spatial consistency of prompt and click selections (``ovseg_core.selection``); a tab
        changes the solve's knobs (``set_consistency``), the graph's come from the command line."""
        self.set_fields(fields, text_encoder)

    def fork(self) -> ViewerSession:
        """A session for another tab: same scene, fields, instances and caches; its own prompt
        (a copy of this one's), an empty selection, nothing hidden and a fresh undo history."""
        tab = copy.copy(self)
        tab.scene = self.base_scene
        tab.selection = np.zeros(self.base_scene.num_gaussians, bool)
        tab.hidden = np.zeros(self.base_scene.num_gaussians, bool)
        tab.history = SelectionHistory()
        return tab

    # -- fields ---------------------------------------------------------------------------------
    def set_fields(self, fields: LanguageFields | None, text_encoder: TextEncoder | None) -> None:
        """Use new fields (e.g. when a background training run finishes)."""
        if fields is not None:
            fields.check_scene(self.base_scene)
            if text_encoder is None:
                raise ValueError("fields need a text encoder to be queried")
        with self._lock:
            self.fields = fields
            self.text_encoder = text_encoder
            self.query = FieldQuery(fields, text_encoder) if fields is not None else None
            self._rel_cache.clear()

    def set_instances(self, instances, text_encoder: TextEncoder | None = None) -> None:  # noqa: ANN001
        """Use 3D instances (``ovseg_core.instances.InstanceSet``) for clicks and the instance list."""
        if instances is not None:
            instances.check_scene(self.base_scene)
        with self._lock:
            self.instances = instances
            self.instance_encoder = text_encoder

    def instance_rows(self) -> list[tuple[int, str, int, str]]:
        """(index, name, size, best current prompt or '') per instance, largest first."""
        inst = self.instances
        if inst is None:
            return []
        best = [""] * len(inst.sizes)
        encoder = self.instance_encoder or self.text_encoder
        if self.prompt.positives and encoder is not None and encoder.embed_dim == inst.features.shape[1]:
            rel = inst.relevancy(encoder, list(self.prompt.positives), list(self.prompt.negatives))  # [K, P]
            for k in range(len(best)):
                j = int(np.argmax(rel[k]))
                best[k] = self.prompt.positives[j] if rel[k, j] > 0.5 else ""
        names = list(inst.names) if inst.names else [""] * len(best)
        rows = [(k, names[k] or f"instance {k}", int(inst.sizes[k]), best[k]) for k in range(len(best))]
        return sorted(rows, key=lambda r: -r[2])

    def select_instance(self, k: int, op: Literal["replace", "add", "remove"] = "replace") -> int:
        if self.instances is None or not 0 <= k < len(self.instances.sizes):
            raise ValueError(f"no instance {k}")
        ids = np.flatnonzero(self.instances.labels == k)
        with self._lock:
            if op == "replace":
                self.selection = np.zeros_like(self.selection)
            self.selection[ids] = op != "remove"
            return int(self.selection.sum())

    @property
    def encoder_name(self) -> str:
        return self.text_encoder.name if self.text_encoder is not None else "none (no language fields loaded)"

    @property
    def levels(self) -> list[int]:
        return sorted(self.fields.levels) if self.fields is not None else []

    # -- prompt state ---------------------------------------------------------------------------
    def set_prompt(self, **changes) -> PromptState:  # noqa: ANN003
        """Replace prompt fields (``positives``, ``negatives``, ``threshold``, ``level``)."""
        if "positives" in changes:
            changes["positives"] = tuple(p.strip() for p in changes["positives"] if p.strip())
        if "negatives" in changes:
            changes["negatives"] = tuple(n.strip() for n in changes["negatives"] if n.strip())
        if "colormap" in changes and changes["colormap"] not in COLORMAPS:
            raise ValueError(f"unknown colormap {changes['colormap']!r}; choose one of {', '.join(COLORMAPS)}")
        if "threshold" in changes and not 0.0 <= float(changes["threshold"]) <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {changes['threshold']}")
        if changes.get("level") is not None and changes["level"] not in self.levels:
            raise ValueError(f"level {changes['level']} is not in the loaded fields (they have {self.levels})")
        with self._lock:
            self.prompt = dataclasses.replace(self.prompt, **changes)
            return self.prompt

    def _settings(self, prompt: PromptState) -> QuerySettings:
        return QuerySettings(negatives=prompt.negatives, level=prompt.level)

    def gaussian_relevancy(self, prompt: PromptState | None = None) -> np.ndarray | None:
        """Max over positives of per-Gaussian relevancy ``[N]``, or None without prompt/fields."""
        prompt = prompt or self.prompt
        query = self.query
        if query is None or not prompt.positives:
            return None
        key = (id(query), prompt.positives, prompt.negatives, prompt.level)
        cached = self._rel_cache.get(key)
        if cached is None:
            rels = [query.gaussian_relevancy(p, self._settings(prompt))[0] for p in prompt.positives]
            cached = np.max(rels, axis=0)
            with self._lock:
                if len(self._rel_cache) > 32:
                    self._rel_cache.clear()
                self._rel_cache[key] = cached
        return cached

    @property
    def unseen_count(self) -> int:
        """Gaussians the loaded fields have no feature for (never seen by their views); they score 0."""
        return self.query.unseen_count() if self.query is not None else 0

    def graph(self):  # noqa: ANN201
        """The scene's neighbourhood graph (built on first use)."""
        if self._graph is None:
            graph = graph_for(self.base_scene, self.selection_config)
            with self._lock:
                self._graph = graph
        return self._graph

    def set_consistency(self, *, enabled: bool | None = None, neighbourhood_weight: float | None = None) -> None:
        """This tab's spatial consistency: on/off and how much a Gaussian's neighbourhood counts
        (``SelectionConfig.neighbourhood_weight``; 0: each Gaussian alone)."""
        changes: dict = {}
        if enabled is not None:
            changes["enabled"] = bool(enabled)
        if neighbourhood_weight is not None:
            changes["neighbourhood_weight"] = float(neighbourhood_weight)
        new = dataclasses.replace(self.selection_config, **changes)  # validates (ValueError names the knob)
        with self._lock:
            self.selection_config = new

    def _evidence(self, level: int | None) -> np.ndarray:
        """``[N]`` how much the views said about each Gaussian's 3D feature at ``level`` (None: the
        most at any level); 0 for Gaussians no view showed."""
        query = self.query
        if query is None:
            return np.ones(self.scene.num_gaussians, np.float32)
        levels = [level] if level is not None else list(query.levels_3d)
        return np.maximum.reduce([query.evidence(lvl) for lvl in levels])

    def prompt_selection(self) -> np.ndarray:
        """Gaussians selected by the current prompt ``[N]`` bool: above the threshold, made
        spatially consistent (``selection_config``: hidden Gaussians follow their neighbours,
        isolated strays drop out)."""
        rel = self.gaussian_relevancy()
        if rel is None:
            return np.zeros(self.scene.num_gaussians, bool)
        if not self.selection_config.enabled:
            return rel > self.prompt.threshold
        return consistent_selection(
            self.graph(), rel, self.prompt.threshold, self._evidence(self.prompt.level), self.selection_config
        )

    # -- frames ---------------------------------------------------------------------------------
    def render(self, camera: Camera, mode: ViewMode = "rgb") -> np.ndarray:
        """A frame ``[H, W, 3]`` uint8 of ``camera`` in ``mode``.

        With ``relevancy_source == "splat"`` (default) relevancy and masks come from the
        per-Gaussian relevancy blended like colour (one extra channel: interactive on a CPU);
        ``"pixel"`` renders the codes and scores each pixel's blended feature (LERF's exact
        definition, ~64x the channels)."""
        if mode not in VIEW_MODES:
            raise ValueError(f"unknown view mode {mode!r}; choose one of {', '.join(VIEW_MODES)}")
        prompt, query, selection = self.prompt, self.query, self.selection
        features = None
        level = None
        if mode in ("relevancy", "heatmap", "mask") and query is not None and prompt.positives:
            if self.relevancy_source == "pixel":
                level = self._display_level(prompt)
                features = query.levels[level].codes.dense_codes()
            else:
                rel_g = self.gaussian_relevancy(prompt)
                assert rel_g is not None
                features = torch.from_numpy(rel_g)[:, None]
        elif mode == "pca" and query is not None:
            features = torch.from_numpy(self._pca_gaussian_colors())
        elif mode == "selection":
            features = torch.from_numpy(selection.astype(np.float32))[:, None]
        out = self.renderer.render(self.scene, camera, features=features)
        rgb = out.rgb[0].clamp(0, 1).cpu().numpy()
        if mode == "depth":
            d = out.depth[0, ..., 0].cpu().numpy()
            valid = out.alpha[0, ..., 0].cpu().numpy() > 0.5
            lo, hi = np.percentile(d[valid], [2, 98]) if valid.any() else (0.0, 1.0)
            return _to_u8(turbo(1 - (d - lo) / max(hi - lo, 1e-6)) * valid[..., None])
        if features is None:
            return _to_u8(rgb * 0.3) if mode == "heatmap" else _to_u8(rgb)
        if mode == "selection":
            w = out.features[0, ..., 0].cpu().numpy()[..., None]
            return _to_u8(rgb * (1 - 0.6 * w) + 0.6 * w * SELECTION_COLOR)
        alpha = out.alpha[0].cpu().numpy()
        if mode == "pca":
            return _to_u8(out.features[0].cpu().numpy() / np.maximum(alpha, 1e-6) * (alpha > 0.5))
        if level is not None:  # exact per-pixel relevancy from rendered codes
            rel = self._pixel_relevancy(out.features[0].float().cpu(), level, prompt)
        else:
            rel = np.where(
                alpha[..., 0] >= 0.5, out.features[0, ..., 0].cpu().numpy() / np.maximum(alpha[..., 0], 1e-6), 0.0
            )
        if mode == "heatmap":  # LERF-style: the whole frame coloured by relevancy, 0.5 (neutral) to 1
            heat = COLORMAPS[prompt.colormap](np.clip((rel - 0.5) / 0.5, 0, 1))
            return _to_u8(heat * alpha.clip(0, 1))
        if mode == "relevancy":  # overlay only where the relevancy passes the threshold
            return heat_overlay(rgb, rel, floor=prompt.threshold, colormap=prompt.colormap)
        keep = (rel > prompt.threshold)[..., None]
        return _to_u8(np.where(keep, rgb, 0.25 * rgb))

    def _pca_gaussian_colors(self) -> np.ndarray:
        """Per-Gaussian RGB from the first three principal components of the decoded features."""
        assert self.query is not None
        key = ("pca", id(self.query), self.prompt.level)
        cached = self._rel_cache.get(key)
        if cached is None:
            level = self.prompt.level if self.prompt.level is not None else self.levels[0]
            feats = self.query.levels[level].codes.features()
            cached = pca_colors(feats[None]).reshape(-1, 3).astype(np.float32) / 255.0
            self._rel_cache[key] = cached
        return cached

    def _display_level(self, prompt: PromptState) -> int:
        if prompt.level is not None:
            return prompt.level
        assert self.query is not None
        if prompt.positives:  # the level the 3D query picks for the first prompt
            return self.query.gaussian_relevancy(prompt.positives[0], self._settings(prompt))[1]
        return self.levels[0]

    def _pixel_relevancy(self, codes: torch.Tensor, level: int, prompt: PromptState) -> np.ndarray:
        assert self.query is not None
        settings = self._settings(prompt)
        rels = []
        for p in prompt.positives:
            q = self.query.queries(p, settings)
            rels.append(
                self.query.pixel_relevancy_from_codes(codes, level, q, settings.temperature, settings.min_alpha)
            )
        return np.max(rels, axis=0)

    def relevancy_png(self, camera: Camera, mode: ViewMode = "relevancy") -> bytes:
        """A PNG of ``camera``'s frame in ``mode`` (any view mode; the name is historical)."""
        import imageio.v3 as iio

        return iio.imwrite("<bytes>", self.render(camera, mode), extension=".png")

    def relevancy_stats(self) -> RelevancyStats | None:
        """Max relevancy and how many Gaussians pass the threshold; None without prompt or fields."""
        rel = self.gaussian_relevancy()
        if rel is None:
            return None
        visible = rel[~self.hidden]
        top = float(visible.max()) if visible.size else 0.0
        return RelevancyStats(top, int((visible > self.prompt.threshold).sum()))

    def gaussian_colors(self, mode: ViewMode) -> np.ndarray:
        """Per-Gaussian RGB ``[N, 3]`` in [0, 1] for browser-side splat rendering in ``mode``."""
        base = self.scene.base_colors.detach().cpu().numpy()[:, :3].clip(0, 1).astype(np.float32)
        if mode == "selection":
            return np.where(self.selection[:, None], 0.4 * base + 0.6 * SELECTION_COLOR, base)
        rel = self.gaussian_relevancy()
        if rel is None or mode not in ("relevancy", "mask"):
            return base
        if mode == "mask":
            return np.where((rel > self.prompt.threshold)[:, None], base, 0.25 * base)
        hot = rel > 0.5
        heat = COLORMAPS[self.prompt.colormap](np.clip((rel - 0.5) / 0.5, 0, 1))
        return np.where(hot[:, None], 0.3 * base + 0.7 * heat, base)

    # -- selection ------------------------------------------------------------------------------
    def click(
        self,
        camera: Camera,
        pixel: tuple[float, float],
        granularity: Granularity = "medium",
        op: Literal["replace", "add", "remove"] = "replace",
    ) -> ClickResult:
        """Select the instance under ``pixel``: the Gaussians connected in space to the front one
        whose features at the granularity's level agree with it (cosine >= 0.9)."""
        with self.device_lock:
            pick = self.renderer.pick(self.scene, camera, pixel, k=8)
        if len(pick.ids) == 0:
            ids = np.zeros(0, np.int64)
        elif self.instances is not None and self.instances.labels[int(pick.ids[0])] >= 0:
            ids = np.flatnonzero(self.instances.labels == self.instances.labels[int(pick.ids[0])])
        else:
            ids = self._instance(int(pick.ids[0]), granularity)
        with self._lock:
            if op == "replace":
                self.selection = np.zeros_like(self.selection)
            if op == "remove":
                self.selection[ids] = False
            else:
                self.selection[ids] = True
            count = int(self.selection.sum())
        return ClickResult(ids=ids, label=self.best_label(ids), selected_count=count)

    def select_from_prompt(self, op: Literal["replace", "add", "remove"] = "replace") -> int:
        hits = self.prompt_selection()
        with self._lock:
            if op == "replace":
                self.selection = hits.copy()
            elif op == "add":
                self.selection |= hits
            else:
                self.selection &= ~hits
            return int(self.selection.sum())

    def clear_selection(self) -> None:
        with self._lock:
            self.selection = np.zeros_like(self.selection)

    # -- selection tools (box, invert, hide, undo) -----------------------------------------------
    def set_selection(self, mask: np.ndarray) -> int:
        """Replace the selection with ``mask`` ``[N]`` bool (e.g. from the undo history)."""
        mask = np.asarray(mask, bool)
        if mask.shape != self.selection.shape:
            raise ValueError(f"selection must have shape {list(self.selection.shape)}, got {list(mask.shape)}")
        with self._lock:
            self.selection = mask.copy()
            return int(self.selection.sum())

    def select_rect(
        self,
        camera: Camera,
        lo: tuple[float, float],
        hi: tuple[float, float],
        op: Literal["replace", "add", "remove"] = "replace",
    ) -> int:
        """Select the shown Gaussians whose centres project inside the pixel rectangle ``lo``-``hi``
        (x, y), in front of the camera: a box selects through the scene, as in SuperSplat."""
        pts = self.base_scene.means.detach().cpu().double().numpy()
        uv, z = camera.project(pts)
        x, y = uv[:, 0], uv[:, 1]
        (x0, y0), (x1, y1) = (min(lo[0], hi[0]), min(lo[1], hi[1])), (max(lo[0], hi[0]), max(lo[1], hi[1]))
        inside = (z > 1e-6) & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1) & ~self.hidden
        with self._lock:
            if op == "replace":
                self.selection = inside
            elif op == "add":
                self.selection = self.selection | inside
            else:
                self.selection = self.selection & ~inside
            return int(self.selection.sum())

    def invert_selection(self) -> int:
        """Select every shown Gaussian that is not selected (hidden ones stay unselected)."""
        with self._lock:
            self.selection = ~self.selection & ~self.hidden
            return int(self.selection.sum())

    def set_hidden(self, hidden: np.ndarray) -> int:
        """Hide ``hidden`` ``[N]`` bool from this tab's frames and clicks (nothing is deleted)."""
        hidden = np.asarray(hidden, bool)
        if hidden.shape != self.hidden.shape:
            raise ValueError(f"hidden mask must have shape {list(self.hidden.shape)}, got {list(hidden.shape)}")
        base = self.base_scene
        with self._lock:
            self.hidden = hidden.copy()
            if hidden.any():
                logits = base.logit_opacities.clone()
                logits[torch.from_numpy(hidden).to(logits.device)] = HIDDEN_LOGIT_OPACITY
                self.scene = dataclasses.replace(base, logit_opacities=logits)
            else:
                self.scene = base
            self.selection &= ~self.hidden
            return int(hidden.sum())

    def _instance(self, seed: int, granularity: Granularity) -> np.ndarray:
        """The clicked object: Gaussians connected to ``seed`` on the neighbourhood graph whose 3D
        features at the granularity's level agree with the seed's (cosine >= 0.9, smoothed and
        filled into unseen Gaussians by ``ovseg_core.selection``); without fields, the blob
        spatially connected to it."""
        query = self.query
        if query is not None:
            wanted = GRANULARITY_LEVEL[granularity]
            level = wanted if wanted in query.levels else min(query.levels, key=lambda lvl: abs(lvl - wanted))
            similarity = query.similarity_to(level, seed)
            return grow_from_seed(self.graph(), seed, similarity, 0.9, query.evidence(level), self.selection_config)
        scale = float(np.median(self.scene.scales.detach().cpu().numpy().max(axis=1)))
        factor = {"small": 2.0, "medium": 4.0, "large": 8.0}[granularity]
        return connected_within(self._points, seed, factor * scale)

    def best_label(self, ids: np.ndarray) -> str | None:
        """The current positive prompt with the highest mean relevancy over ``ids`` (if > 0.5)."""
        if self.query is None or len(ids) == 0 or not self.prompt.positives:
            return None
        best, score = None, 0.5
        for p in self.prompt.positives:
            rel = self.gaussian_relevancy(dataclasses.replace(self.prompt, positives=(p,)))
            assert rel is not None
            m = float(rel[ids].mean())
            if m > score:
                best, score = p, m
        return best

    # -- export ---------------------------------------------------------------------------------
    def export_mask(self, kind: ExportKind) -> np.ndarray:
        if kind not in EXPORT_KINDS:
            raise ValueError(f"unknown export {kind!r}; choose one of {', '.join(EXPORT_KINDS)}")
        base = self.selection if kind.startswith("selection") else self.prompt_selection()
        return ~base & ~self.hidden if kind.endswith("complement") else base & ~self.hidden

    def export_instance_ply(self, k: int) -> bytes:
        if self.instances is None or not 0 <= k < len(self.instances.sizes):
            raise ValueError(f"no instance {k}")
        return write_ply(self.base_scene.subset(self.instances.labels == k))

    def export_ply(self, kind: ExportKind) -> bytes:
        """The chosen Gaussians as an INRIA-layout 3DGS PLY (opens in other splat viewers)."""
        keep = self.export_mask(kind)
        if not keep.any():
            raise ValueError(f"nothing to export: the {kind.replace('-', ' ')} is empty")
        return write_ply(self.base_scene.subset(keep))

    def save_output(self, name: str, data: bytes) -> Path:
        """Write ``data`` into the output directory under a sanitised ``name`` (never outside it,
        never over an existing file: ``a.ply`` becomes ``a-1.ply``, ``a-2.ply``, ...)."""
        with _SAVE_LOCK:  # two tabs saving the same name at once still get two files
            return atomic_write_bytes(self.output_path(name), data)

    def output_path(self, name: str) -> Path:
        """A path in the output directory for ``name``, sanitised, confined to it, and not yet taken."""
        if self.output_dir is None:
            raise ValueError("no output directory was given at start-up (--output-dir)")
        base = Path(name).name
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._")
        if not Path(base).stem.strip("._- ") or not Path(safe).stem.strip("._-"):
            raise ValueError(f"{name!r} is not a usable file name; type a name such as 'mug.ply'")
        path = (self.output_dir / safe).resolve()
        if path.parent != self.output_dir:
            raise ValueError(f"refusing to write outside {self.output_dir}")
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ValueError(f"output directory {self.output_dir} is a file")
        stem, suffix, n = path.stem, path.suffix, 0
        while path.exists():
            n += 1
            path = path.with_name(f"{stem}-{n}{suffix}")
        return path


_SAVE_LOCK = threading.Lock()


def _to_u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
