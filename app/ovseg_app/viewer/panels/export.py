"""The Export panel: the selection, the prompt result or their complements as a 3DGS PLY (or any
format in ``EXPORT_FORMATS``: SPZ for PlayCanvas/Scaniverse, ``.splat``), downloaded or saved into
the output folder (never over an existing file)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovseg_app.viewer.exports import EXPORT_FORMATS, EXPORT_KINDS, with_format
from ovseg_app.viewer.panels.inputs import checked_choice, checked_text

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab

LARGE_EXPORT = 50_000
"""Exports of more Gaussians than this show a spinner notification while they are written."""


class ExportPanel:
    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        gui = tab.client.gui
        with gui.add_folder("Export"):
            self.kind_in = gui.add_dropdown("Export what", options=EXPORT_KINDS, initial_value="selection")
            self.format_in = gui.add_dropdown("Format", options=tuple(EXPORT_FORMATS), initial_value="PLY")
            self.name_in = gui.add_text("File name", initial_value="selection.ply")
            self.download_btn = gui.add_button("Download PLY")
            self.save_btn = gui.add_button("Save PLY to output dir", disabled=tab.session.output_dir is None)
        g = tab.guarded
        self.format_in.on_update(g(self._on_format))
        self.download_btn.on_click(g(self._on_download))
        self.save_btn.on_click(g(self._on_save))

    def _kind(self) -> str:
        return checked_choice(self.kind_in, EXPORT_KINDS, "selection")

    def _format(self) -> str:
        return checked_choice(self.format_in, tuple(EXPORT_FORMATS), "PLY")

    def _on_format(self, _event: Any) -> None:
        """Buttons and the file name follow the chosen format."""
        fmt = self._format()
        self.download_btn.label = f"Download {fmt}"
        self.save_btn.label = f"Save {fmt} to output dir"
        name = checked_text(self.name_in, "the file name", 200).strip()
        if name:
            self.name_in.value = with_format(name, fmt)

    def _export(self) -> tuple[str, bytes]:
        kind, fmt = self._kind(), self._format()
        name = with_format(checked_text(self.name_in, "the file name", 200).strip() or kind, fmt)
        return name, self.tab.session.export_file(kind, EXPORT_FORMATS[fmt])

    def _with_progress(self, client: Any, work: Callable[[], Any]) -> Any:
        n = int(self.tab.session.export_mask(self._kind()).sum())
        note = (
            client.add_notification("Exporting", f"{n:,} Gaussians ...", loading=True, with_close_button=False)
            if n > LARGE_EXPORT
            else None
        )
        try:
            return work()
        finally:
            if note is not None:
                note.remove()

    def _on_download(self, event: Any) -> None:
        def work() -> None:
            name, data = self._export()
            event.client.send_file_download(Path(name).name, data)

        self._with_progress(event.client, work)

    def _on_save(self, event: Any) -> None:
        def work() -> Path:
            name, data = self._export()
            return self.tab.session.save_output(name, data)

        path = self._with_progress(event.client, work)
        self.tab.viewer.notify(event.client, "Saved", f"{path}")
