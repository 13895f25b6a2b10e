"""The viewer's GUI, one file per panel; each panel owns its widgets and their callbacks and is
built per browser tab (``client.gui``), so widgets show that tab's own state."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ovseg_app.viewer.panels.camera_path import CameraPathPanel
from ovseg_app.viewer.panels.display import DisplayPanel
from ovseg_app.viewer.panels.export import ExportPanel
from ovseg_app.viewer.panels.help import HelpPanel
from ovseg_app.viewer.panels.instances import InstancesPanel
from ovseg_app.viewer.panels.prompt import PromptPanel
from ovseg_app.viewer.panels.selection import SelectionPanel
from ovseg_app.viewer.panels.training import TrainingPanel

if TYPE_CHECKING:
    from ovseg_app.viewer.tab import Tab


@dataclasses.dataclass
class Panels:
    prompt: PromptPanel
    selection: SelectionPanel
    instances: InstancesPanel
    export: ExportPanel
    display: DisplayPanel
    camera_path: CameraPathPanel
    training: TrainingPanel
    help: HelpPanel

    def fields_changed(self) -> None:
        """Shared fields were trained, loaded or reverted (announced to every tab)."""
        self.prompt.fields_changed()
        self.training.fields_changed()
        self.help.fields_changed()


def build_panels(tab: Tab) -> Panels:
    """The GUI of one tab, top to bottom. ``tab.panels`` is set as soon as it exists, since
    panels' callbacks reach each other through it."""
    panels = Panels.__new__(Panels)
    tab.panels = panels
    panels.prompt = PromptPanel(tab)
    panels.selection = SelectionPanel(tab)
    panels.instances = InstancesPanel(tab)
    panels.export = ExportPanel(tab)
    panels.display = DisplayPanel(tab)
    panels.camera_path = CameraPathPanel(tab)
    panels.training = TrainingPanel(tab)
    panels.help = HelpPanel(tab)
    return panels
