"""The Help panel: mouse and keyboard habits, and what the loaded text encoder understands."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab

HELP = """\
**Mouse**: drag to orbit, right-drag to pan, wheel to zoom.
**Click** an object: select it. **Shift-click** adds, **Ctrl/Cmd- or Alt-click** removes.
**Box select**: tick it in *Selection*, then drag (shift adds, ctrl removes).
**Views**: *relevancy* overlays the heat map where the prompt passes the threshold; *heatmap*
colours the whole frame (LERF style); *mask* dims what does not pass.
Each browser tab has its own prompt, view, selection and camera; fields, instances and training
runs are shared by all tabs.
**Kept across restarts** (with an output folder): trained or loaded fields (the ones in use come
back), the instance set in use, and selections saved by name in *Selection*.
"""


class HelpPanel:
    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        with tab.client.gui.add_folder("Help", expand_by_default=False):
            self.help_md = tab.client.gui.add_markdown(HELP + self._vocabulary())

    def _vocabulary(self) -> str:
        encoder = self.tab.session.text_encoder
        vocabulary = getattr(encoder, "vocabulary", None)  # the demo's fixed-vocabulary encoder
        words = getattr(vocabulary, "names", None)
        if not words:
            return ""
        return "\n**This encoder knows only:** " + ", ".join(f"`{w}`" for w in list(words)[:60])

    def fields_changed(self) -> None:
        self.help_md.content = HELP + self._vocabulary()
