"""The Instances panel: the 3D instance list (best prompt per instance), select one, download one,
save the set beside the exports (``ovseg-view --instances`` and ``ovseg-query --instances`` read it),
and switch to (or back to) any instance set saved under the output folder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ovseg_app.viewer.panels.inputs import checked_choice
from ovseg_core.errors import UsageError

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab


class InstancesPanel:
    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        gui = tab.client.gui
        with gui.add_folder("Instances", expand_by_default=False):
            self.instances_md = gui.add_markdown(self._text())
            options = self._options()
            self.instance_in = gui.add_dropdown("Instance", options=options, initial_value=options[0])
            self.select_btn = gui.add_button("Select instance")
            self.ply_btn = gui.add_button("Download instance PLY")
            self.save_btn = gui.add_button("Save instances", disabled=tab.session.output_dir is None)
            files = self._file_options()
            self.file_in = gui.add_dropdown("Instance set", options=files, initial_value=files[0])
            self.load_btn = gui.add_button("Load instance set")
        g = tab.guarded
        self.select_btn.on_click(g(self._on_select))
        self.ply_btn.on_click(g(self._on_ply))
        self.save_btn.on_click(g(self._on_save))
        self.load_btn.on_click(g(self._on_load))

    def _file_options(self) -> tuple[str, ...]:
        """Saved instance sets under the output folder, as paths relative to it (newest first)."""
        out = self.tab.session.output_dir
        files = self.tab.viewer.instance_files()
        return tuple(str(f.relative_to(out)) for f in files) if files and out is not None else ("none",)

    def _on_save(self, event: Any) -> None:
        self.tab.viewer.save_instances(event.client)
        self.tab.viewer.instance_files_changed()

    def _on_load(self, event: Any) -> None:
        options = self._file_options()
        value = checked_choice(self.file_in, options, options[0])
        if value == "none" or self.tab.session.output_dir is None:
            raise UsageError("no saved instance set under the output folder (build one: Training, Method = instances)")
        self.tab.viewer.load_instances(self.tab.session.output_dir / value)

    def refresh_files(self) -> None:
        options = self._file_options()
        if tuple(self.file_in.options) != options:
            self.file_in.options = options
            self.file_in.value = options[0]

    def _text(self) -> str:
        rows = self.tab.session.instance_rows()
        if not rows:
            return "No 3D instances loaded (build them in the Training panel: Method = instances)."
        lines = ["| # | name | Gaussians | best prompt |", "|---:|---|---:|---|"]
        lines += [f"| {k} | {name} | {size:,} | {best} |" for k, name, size, best in rows[:30]]
        return "\n".join(lines)

    def _options(self) -> tuple[str, ...]:
        rows = self.tab.session.instance_rows()
        return tuple(f"{k}: {name}" for k, name, _, _ in rows) or ("none",)

    def _index(self) -> int:
        options = self._options()
        value = checked_choice(self.instance_in, options, options[0])
        if value == "none":
            raise UsageError("no 3D instances loaded")
        return int(value.split(":")[0])

    def _on_select(self, event: Any) -> None:
        k = self._index()
        self.tab.edit_selection(lambda: self.tab.session.select_instance(k))
        self.tab.panels.selection.selection_md.content = (
            f"Selection: {int(self.tab.session.selection.sum()):,} Gaussians (instance {self.instance_in.value})."
        )

    def _on_ply(self, event: Any) -> None:
        from ovseg_core.instances import safe_name

        k = self._index()
        name = safe_name(self.instance_in.value.split(":", 1)[1].strip()) or "instance"
        event.client.send_file_download(f"{k}_{name}.ply", self.tab.session.export_instance_ply(k))

    def refresh(self) -> None:
        """The instance set or this tab's prompt changed (best prompts depend on it)."""
        if self.tab.session.instances is None and self.instance_in.options == ("none",):
            return
        self.instances_md.content = self._text()
        options = self._options()
        if tuple(self.instance_in.options) != options:
            self.instance_in.options = options
            self.instance_in.value = options[0]
