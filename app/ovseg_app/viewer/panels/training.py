"""The Training panel: train (or lift) language fields, or build 3D instances, from a capture; the
run is shared by every tab and its results are written under the output folder and listed in
*Fields*, where earlier fields can be brought back."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovseg_app.demo import DEMO_CAPTURE_DIR, DEMO_MODELS, demo_capture_for
from ovseg_app.viewer.panels.inputs import checked_choice, checked_text, clamped_number
from ovseg_app.viewer.training_job import MODEL_SIZES, TrainingRequest
from ovseg_core.errors import UsageError

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab

LEVEL_CHOICES = ("1", "2", "3", "0", "1,2,3")
METHODS = ("langsplatv2", "lift", "instances")
MAX_STEPS = 1_000_000
DEMO_STEPS = 200
"""Steps the demo's default run trains (the palette fields' loss has levelled off by then)."""


@dataclasses.dataclass(frozen=True)
class PanelDefaults:
    dataset: str
    levels: str = "1"
    steps: int = 2000
    downsample: int = 4
    models: str = "tiny"


def _defaults(viewer: Any) -> PanelDefaults:
    """The demo scene (no --dataset) trains on its shipped capture with the offline palette models
    at level 0 (the palette masks' level); other scenes get the real models' settings."""
    if viewer.dataset is None:
        capture = demo_capture_for(viewer.session.base_scene)
        if capture is not None:
            return PanelDefaults(str(capture), levels="0", steps=DEMO_STEPS, downsample=1, models=DEMO_MODELS)
    return PanelDefaults(str(viewer.dataset or ""))


def _user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ovseg`` (default ``~/.cache/ovseg``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ovseg"


class TrainingPanel:
    def __init__(self, tab: Tab) -> None:
        from viser import uplot

        self.tab = tab
        v = tab.viewer
        gui = tab.client.gui
        d = _defaults(v)
        with gui.add_folder("Training", expand_by_default=False):
            self.dataset_in = gui.add_text("Dataset", initial_value=d.dataset)
            self.method_in = gui.add_dropdown("Method", options=METHODS, initial_value="langsplatv2")
            self.levels_in = gui.add_dropdown("Levels", options=LEVEL_CHOICES, initial_value=d.levels)
            self.steps_in = gui.add_number("Steps", initial_value=float(d.steps), min=1, max=MAX_STEPS, step=1)
            self.downsample_in = gui.add_number(
                "Image downsample", initial_value=float(d.downsample), min=1, max=64, step=1
            )
            self.models_in = gui.add_dropdown("Models", options=MODEL_SIZES, initial_value=d.models)
            self.sam2_in = gui.add_text("SAM2 checkpoint", initial_value="")
            self.clip_in = gui.add_text("CLIP weights", initial_value="")
            self.cache_in = gui.add_text("Cache folder", initial_value="")
            self.output_md = gui.add_markdown(self._output_text())
            self.train_btn = gui.add_button("Start training", disabled=v.job.running)
            self.cancel_btn = gui.add_button("Cancel training", disabled=not v.job.running)
            self.progress = gui.add_progress_bar(0.0, animated=False)
            self.train_md = gui.add_markdown("Idle.")
            self.loss_plot = gui.add_uplot(
                data=(np.zeros(1), np.zeros(1)),
                series=(uplot.Series(label="step"), uplot.Series(label="loss", stroke="red")),
                scales={"x": uplot.Scale(time=False)},
                title="training loss (x: step)",
                aspect=2.0,
            )
        with gui.add_folder("Fields", expand_by_default=False):
            options = v.fields_options()
            self.fields_in = gui.add_dropdown("Fields", options=options, initial_value=options[v.fields_index])
            self.fields_md = gui.add_markdown(self._fields_text())
            self.use_btn = gui.add_button("Use these fields")
            self.load_in = gui.add_text("Load from", initial_value="")
            self.load_btn = gui.add_button("Load fields")
        g = tab.guarded
        # clamp as soon as a value arrives: viser keeps whatever a client sends (1e300 steps)
        self.steps_in.on_update(g(lambda e: clamped_number(self.steps_in, 1, MAX_STEPS, integer=True)))
        self.downsample_in.on_update(g(lambda e: clamped_number(self.downsample_in, 1, 64, integer=True)))
        self.train_btn.on_click(g(self._on_train))
        self.cancel_btn.on_click(g(lambda e: v.job.cancel()))
        self.use_btn.on_click(g(self._on_use))
        self.load_btn.on_click(g(self._on_load))

    def _output_text(self) -> str:
        runs = self.tab.viewer.runs_dir
        cache = (
            "Masks and features are cached in `<dataset>/.ovseg_cache/preprocess` (the built-in demo "
            "capture's in the output folder's `cache`, else `~/.cache/ovseg`), or in *Cache folder* "
            "(a folder inside the output folder)."
        )
        if runs is None:
            return f"Results are **not saved** (start ovseg-view with --output-dir). {cache}"
        return f"Runs are saved under `{runs}`. {cache}"

    def _cache_dir(self, dataset: Path) -> Path | None:
        """The *Cache folder*, confined to the output folder (the GUI writes nowhere else it chooses).
        Empty: the default (beside the capture), except for the shipped demo capture, whose folder
        may not be writable (an installed package): ``<output folder>/cache``, else the user's cache."""
        text = checked_text(self.cache_in, "the cache folder").strip()
        out = self.tab.session.output_dir
        if not text:
            if dataset.resolve() != DEMO_CAPTURE_DIR.resolve():
                return None
            return out / "cache" if out is not None else _user_cache_dir() / "demo_capture"
        if out is None:
            raise UsageError("a cache folder needs an output folder (start ovseg-view with --output-dir)")
        path = (out / Path(text).expanduser()).resolve()
        if path != out and out not in path.parents:
            raise UsageError(f"the cache folder must lie inside the output folder {out}; got {text!r}")
        return path

    def _fields_text(self) -> str:
        v = self.tab.viewer
        if not v.saved.enabled:
            return "Fields trained here are **not kept** after a restart (start ovseg-view with --output-dir)."
        text = "Fields trained or loaded here are listed again after a restart, one pick away; the scene opens with its own."
        if v.restored:
            text += f"  \nRestored from the last session: {', '.join(v.restored)}."
        return text

    def request(self) -> TrainingRequest:
        dataset = checked_text(self.dataset_in, "the dataset path").strip()
        if not dataset:
            raise UsageError("enter the dataset path (a COLMAP scene or transforms.json) first")
        levels = tuple(int(x) for x in checked_choice(self.levels_in, LEVEL_CHOICES, "1").split(","))
        paths = {}
        for name, handle in (("SAM2 checkpoint", self.sam2_in), ("CLIP weights", self.clip_in)):
            text = checked_text(handle, f"the {name} path").strip()
            paths[name] = Path(text).expanduser() if text else None
        path = Path(dataset).expanduser()
        return TrainingRequest(
            path,
            levels=levels,
            steps=int(clamped_number(self.steps_in, 1, MAX_STEPS, integer=True)),
            model_size=checked_choice(self.models_in, MODEL_SIZES, "tiny"),  # type: ignore[arg-type]
            image_downsample_factor=int(clamped_number(self.downsample_in, 1, 64, integer=True)),
            sam2_checkpoint_path=paths["SAM2 checkpoint"],
            clip_weights=paths["CLIP weights"],
            log_path=self.tab.viewer.runs_dir,
            cache_dir=self._cache_dir(path),
            method=checked_choice(self.method_in, METHODS, "langsplatv2"),  # type: ignore[arg-type]
        )

    def _on_train(self, event: Any) -> None:
        self.tab.viewer.start_job(self.request())

    def _on_use(self, event: Any) -> None:
        options = self.tab.viewer.fields_options()
        self.tab.viewer.use_fields(options.index(checked_choice(self.fields_in, options, options[0])))

    def _on_load(self, event: Any) -> None:
        path = checked_text(self.load_in, "the fields path").strip()
        if not path:
            raise UsageError("enter a fields checkpoint or run directory to load")
        self.tab.viewer.load_fields(Path(path).expanduser())

    # -- announcements from the shared job and fields ------------------------------------------------
    def show_job(self, state: str, fraction: float, text: str, losses: list, running: bool) -> None:
        # the buttons first, the status text last: whoever reads the new text sees the buttons it implies
        self.train_btn.disabled, self.cancel_btn.disabled = running, not running
        self.progress.value = 100.0 * fraction
        if losses:
            steps, values = zip(*losses[-500:])
            self.loss_plot.data = (np.asarray(steps, float), np.asarray(values, float))
        self.train_md.content = text

    def fields_changed(self) -> None:
        v = self.tab.viewer
        options = v.fields_options()
        self.fields_in.options = options
        self.fields_in.value = options[v.fields_index]
