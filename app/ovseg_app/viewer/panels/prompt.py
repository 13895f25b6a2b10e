"""The Prompt panel: what to look for, how relevancy is shown, and what it found."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ovseg_app.viewer.panels.inputs import checked_choice, checked_text, clamped_number
from ovseg_core.colormaps import COLORMAPS
from ovseg_core.errors import UsageError
from ovseg_core.render.frames import LEGEND_MODES, VIEW_MODES

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab

MAX_PROMPTS = 16
"""Comma-separated prompts per query (each costs one text encoding and one relevancy pass)."""


def legend_image(colormap: str) -> np.ndarray:
    """A ``[24, 256, 3]`` uint8 colour bar: relevancy 0.5 (left, neutral) to 1.0 (right)."""
    bar = COLORMAPS[colormap](np.linspace(0.0, 1.0, 256))
    return (np.repeat(bar[None], 24, axis=0) * 255 + 0.5).astype(np.uint8)


class PromptPanel:
    """The counts (prompt's answer and selection, at the top of the panel), then prompt, negatives,
    threshold, level, view mode, colour map and a legend (in the modes that use the colour map)."""

    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        gui, s = tab.client.gui, tab.session
        self.stats_md = gui.add_markdown(self._stats_text())
        self.encoder_md = gui.add_markdown(self._encoder_text())
        with gui.add_folder("Prompt"):
            self.prompt_in = gui.add_text("Prompt", initial_value=", ".join(s.prompt.positives))
            self.neg_in = gui.add_text("Negatives", initial_value=", ".join(s.prompt.negatives))
            self.threshold_in = gui.add_slider(
                "Threshold", min=0.0, max=1.0, step=0.01, initial_value=s.prompt.threshold
            )
            self.level_in = gui.add_dropdown("Level", options=self._level_options(), initial_value="auto")
            cfg = s.selection_config
            self.consistent_in = gui.add_checkbox(
                "Spatial consistency",
                initial_value=cfg.enabled,
                hint="Prompt and click selections follow the scene's neighbourhood graph: hidden parts join, strays drop",
            )
            self.neighbourhood_in = gui.add_slider(
                "Neighbourhood", min=0.0, max=4.0, step=0.05, initial_value=cfg.neighbourhood_weight
            )
            self.view_in = gui.add_dropdown("View", options=VIEW_MODES, initial_value=tab.view_mode)
            self.cmap_in = gui.add_dropdown("Colormap", options=tuple(COLORMAPS), initial_value=s.prompt.colormap)
            self.legend = gui.add_image(legend_image(s.prompt.colormap), label="relevancy 0.5 → 1.0", format="png")
        self.legend.visible = self._legend_applies()
        g = tab.guarded
        self.prompt_in.on_update(g(self._on_prompt))
        self.neg_in.on_update(g(self._on_negatives))
        self.threshold_in.on_update(g(self._on_threshold))
        self.level_in.on_update(g(self._on_level))
        self.consistent_in.on_update(g(self._on_consistency))
        self.neighbourhood_in.on_update(g(self._on_consistency))
        self.view_in.on_update(g(self._on_view))
        self.cmap_in.on_update(g(self._on_colormap))

    # -- shown text --------------------------------------------------------------------------------
    def _encoder_text(self) -> str:
        s = self.tab.session
        levels = ", ".join(str(lvl) for lvl in s.levels) or "none"
        unseen = (
            f"  \n**Unseen Gaussians:** {s.unseen_count:,} (no view showed them; relevancy 0)" if s.unseen_count else ""
        )
        return f"**Text encoder:** `{s.encoder_name}`  \n**Field levels:** {levels}{unseen}"

    def _level_options(self) -> tuple[str, ...]:
        return ("auto", *(str(lvl) for lvl in self.tab.session.levels))

    def _stats_text(self) -> str:
        """What the prompt found (the same set the frame highlights and *Select prompt result*
        selects), and the selection, from one snapshot of the tab's state."""
        s = self.tab.session
        st = s.state
        hidden = int(st.hidden.sum())
        selection = f"**Selection:** {int(st.selection.sum()):,} Gaussians" + (f", {hidden:,} hidden" if hidden else "")
        if s.query is None:
            return f"No language fields loaded: prompts need fields (train or load them in the Training panel).  \n{selection}"
        if not st.prompt.positives:
            return f"Type a prompt (several: separate them with commas).  \n{selection}"
        found = s.answer(st)
        if found is None:
            return selection
        t = st.prompt.threshold
        if found.no_match:
            text = f"**No match**: no Gaussian passes threshold {t:.2f} (max relevancy {found.max_relevancy:.2f})."
        else:
            text = f"**Prompt:** {found.count:,} Gaussians above {t:.2f} (max relevancy {found.max_relevancy:.2f})."
        return f"{text}  \n{selection}"

    def show_stats(self) -> None:
        text = self._stats_text()
        if self.stats_md.content != text:
            self.stats_md.content = text
        legend = self._legend_applies()
        if self.legend.visible != legend:
            self.legend.visible = legend

    def _legend_applies(self) -> bool:
        return self.tab.view_mode in LEGEND_MODES and bool(self.tab.session.prompt.positives)

    def fields_changed(self) -> None:
        """Announced to every tab when the shared fields change."""
        self.encoder_md.content = self._encoder_text()
        self.level_in.options = self._level_options()
        if self.level_in.value not in self.level_in.options:
            self.level_in.value = "auto"
        self.show_stats()

    # -- callbacks -----------------------------------------------------------------------------------
    def _on_prompt(self, event: Any) -> None:
        text = checked_text(self.prompt_in, "the prompt")
        positives = [p for p in text.split(",") if p.strip()]
        if len(positives) > MAX_PROMPTS:
            raise UsageError(f"{len(positives)} prompts at once; the limit is {MAX_PROMPTS}")
        self.tab.session.set_prompt(positives=positives)
        self.tab.panels.instances.refresh()
        self.tab.changed()

    def _on_negatives(self, event: Any) -> None:
        text = checked_text(self.neg_in, "the negatives")
        self.tab.session.set_prompt(negatives=text.split(","))
        self.tab.changed()

    def _on_threshold(self, event: Any) -> None:
        self.tab.session.set_prompt(threshold=clamped_number(self.threshold_in, 0.0, 1.0))
        self.tab.changed()

    def _on_consistency(self, event: Any) -> None:
        self.tab.session.set_consistency(
            enabled=bool(self.consistent_in.value),
            neighbourhood_weight=clamped_number(self.neighbourhood_in, 0.0, 4.0),
        )
        self.tab.changed()

    def _on_level(self, event: Any) -> None:
        value = checked_choice(self.level_in, self._level_options(), "auto")
        self.tab.session.set_prompt(level=None if value == "auto" else int(value))
        self.tab.changed()

    def _on_view(self, event: Any) -> None:
        self.tab.view_mode = checked_choice(self.view_in, VIEW_MODES, self.tab.view_mode)
        self.tab.changed()

    def _on_colormap(self, event: Any) -> None:
        value = checked_choice(self.cmap_in, tuple(COLORMAPS), self.tab.session.prompt.colormap)
        self.tab.session.set_prompt(colormap=value)
        self.legend.image = legend_image(value)
        self.tab.changed()
