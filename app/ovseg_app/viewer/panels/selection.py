"""The Selection panel: click (shift adds, ctrl/alt removes), box select, prompt result, invert,
hide, undo/redo. Every edit (hiding too) records an undo step in the tab's own history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ovseg_app.viewer.panels.inputs import checked_choice, checked_text
from ovseg_core.errors import UsageError

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab

GRANULARITIES = ("small", "medium", "large")
RECT_MODIFIERS = {None: "replace", "shift": "add", "cmd/ctrl": "remove"}


class SelectionPanel:
    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        gui = tab.client.gui
        with gui.add_folder("Selection"):
            self.gran_in = gui.add_dropdown("Granularity", options=GRANULARITIES, initial_value=tab.granularity)
            self.box_in = gui.add_checkbox("Box select (drag)", initial_value=False)
            self.select_prompt_btn = gui.add_button("Select prompt result")
            self.invert_btn = gui.add_button("Invert selection")
            self.hide_btn = gui.add_button("Hide selected")
            self.show_btn = gui.add_button("Show all")
            self.undo_btn = gui.add_button("Undo selection")
            self.redo_btn = gui.add_button("Redo selection")
            self.clear_btn = gui.add_button("Clear selection")
            self.selection_md = gui.add_markdown(
                "Click an object to select it (shift adds, ctrl/alt removes); tick *Box select* to drag a box."
            )
            saved = tab.viewer.saved
            self.name_in = gui.add_text("Selection name", initial_value="selection")
            self.save_btn = gui.add_button("Save selection", disabled=not saved.enabled)
            options = self._saved_options()
            self.saved_in = gui.add_dropdown("Saved selection", options=options, initial_value=options[0])
            self.load_btn = gui.add_button("Load selection", disabled=not saved.enabled)
        g = tab.guarded
        s = tab.session
        self.gran_in.on_update(g(self._on_granularity))
        self.box_in.on_update(g(self._on_box))
        self.select_prompt_btn.on_click(g(lambda e: tab.edit_selection(lambda: s.select_from_prompt("replace"))))
        self.invert_btn.on_click(g(lambda e: tab.edit_selection(s.invert_selection)))
        self.hide_btn.on_click(g(self._on_hide))
        self.show_btn.on_click(g(self._on_show_all))
        self.undo_btn.on_click(g(lambda e: tab.undo()))
        self.redo_btn.on_click(g(lambda e: tab.redo()))
        self.clear_btn.on_click(g(lambda e: tab.edit_selection(s.clear_selection)))
        self.save_btn.on_click(g(self._on_save))
        self.load_btn.on_click(g(self._on_load))
        self._rect_callbacks: list = []

    # -- saved selections (kept under the output folder, listed again after a restart) -----------
    def _saved_options(self) -> tuple[str, ...]:
        return tuple(self.tab.viewer.saved.selection_names()) or ("none",)

    def _on_save(self, event: Any) -> None:
        name = checked_text(self.name_in, "the selection name")
        stem = self.tab.viewer.save_selection(self.tab.client, name, self.tab.session.selection.copy())
        self.saved_in.value = stem

    def _on_load(self, event: Any) -> None:
        options = self._saved_options()
        name = checked_choice(self.saved_in, options, options[0])
        if name == "none":
            raise UsageError("no saved selection to load")
        mask = self.tab.viewer.saved.load_selection(name)
        s = self.tab.session
        self.tab.edit_selection(lambda: s.set_selection(mask))
        self.selection_md.content = f"Selection: {int(s.selection.sum()):,} Gaussians (loaded '{name}')."

    def refresh_saved(self) -> None:
        """Another tab (or this one) saved a selection: list it."""
        options = self._saved_options()
        if tuple(self.saved_in.options) != options:
            value = self.saved_in.value
            self.saved_in.options = options
            self.saved_in.value = value if value in options else options[0]

    def _on_granularity(self, event: Any) -> None:
        self.tab.granularity = checked_choice(self.gran_in, GRANULARITIES, self.tab.granularity)

    def _on_box(self, event: Any) -> None:
        """While ticked, a drag on the canvas selects a box (shift adds, ctrl removes) instead of orbiting."""
        scene = self.tab.client.scene
        for cb in self._rect_callbacks:
            scene.remove_rect_select_callback(cb)
        self._rect_callbacks = []
        if self.box_in.value is True:
            for modifier, op in RECT_MODIFIERS.items():
                cb = self.tab.guarded(self.tab.rect_handler(op))
                scene.on_rect_select(modifier=modifier)(cb)
                self._rect_callbacks.append(cb)

    def _on_hide(self, event: Any) -> None:
        self.tab.edit_selection(self.tab.session.hide_selected)

    def _on_show_all(self, event: Any) -> None:
        self.tab.edit_selection(self.tab.session.show_all)

    def show_count(self) -> None:
        s = self.tab.session
        hidden = int(s.hidden.sum())
        extra = f", {hidden:,} hidden" if hidden else ""
        text = f"Selection: {int(s.selection.sum()):,} Gaussians{extra}."
        if self.selection_md.content != text:
            self.selection_md.content = text

    def show_click(self, result: Any) -> None:
        n = int(self.tab.session.selection.sum())
        if result is None or n == 0:
            self.show_count()
            return
        label = f", looks like **{result.label}**" if result.label else ""
        self.selection_md.content = f"Selection: {n:,} Gaussians (clicked instance: {len(result.ids):,}{label})."
