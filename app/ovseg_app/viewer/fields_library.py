"""The fields a viewer can use: the scene's own (shipped or found at start-up), and the ones
trained or loaded in this or an earlier session (listed, and used only when asked for).

Restore policy: a scene always starts with its own fields; fields an earlier session trained or
loaded are listed in the Fields panel, never made the start-up default behind the user's back. Only
a scene that has no fields of its own gets back the ones in use when its last session ended.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from ovseg_app.viewer.saved_state import SavedState
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.errors import UsageError
from ovseg_core.models.registry import text_encoder_for

log = logging.getLogger("ovseg.viewer")

START_LABEL = "fields at start-up"


@dataclasses.dataclass
class FieldsEntry:
    """One set of fields the viewer can use; entries from an earlier session are loaded from
    ``path`` when first used."""

    label: str
    fields: Any
    encoder: Any
    path: Path | None = None


class FieldsLibrary:
    """The list of fields, the one in use (shared by every tab), and what is remembered of them."""

    def __init__(self, session: ViewerSession, saved: SavedState) -> None:
        self.session = session
        self.saved = saved
        start = START_LABEL if session.fields is not None else "no fields"
        self.entries: list[FieldsEntry] = [FieldsEntry(start, session.fields, session.text_encoder)]
        self.index = 0
        self.notes: list[str] = []
        """What the start-up brought back or lists from earlier sessions (shown in the Fields panel)."""

    def options(self) -> tuple[str, ...]:
        return tuple(f"{i}: {e.label}" for i, e in enumerate(self.entries))

    def use(self, index: int) -> None:
        """Use entry ``index`` in every tab; remembered for the next start."""
        if not 0 <= index < len(self.entries):
            raise UsageError(f"no fields entry {index}")
        entry = self.entries[index]
        if entry.fields is None and entry.path is not None:  # saved by an earlier session
            from ovseg_core.fields import load_fields

            fields = load_fields(entry.path, self.session.base_scene)
            entry.fields, entry.encoder = fields, text_encoder_for(fields)
        self.session.set_fields(entry.fields, entry.encoder)
        self.index = index
        self.saved.use_fields(entry.path if index else None)

    def add(self, label: str, fields: Any, path: Path | None) -> None:
        """List new fields (trained or loaded now) and use them."""
        self.entries.append(FieldsEntry(label, fields, text_encoder_for(fields), path))
        if path is not None:
            self.saved.add_fields(label, path)
        self.use(len(self.entries) - 1)

    def load(self, path: Path) -> None:
        from ovseg_core.fields import load_fields

        self.add(f"loaded {path.name}", load_fields(path, self.session.base_scene), path)

    def restore(self, restore: bool) -> None:
        """List the fields earlier sessions made; use the last one in use only when the scene has
        no fields of its own (and ``restore``). A file that went missing or no longer loads is
        skipped with a warning: the viewer always starts."""
        earlier = self.saved.saved_fields()
        for label, path in earlier:
            self.entries.append(FieldsEntry(label, None, None, path))
        in_use = self.saved.fields_in_use
        index = next((i for i, e in enumerate(self.entries) if i and e.path == in_use), None)
        if restore and self.session.fields is None and in_use is not None and index is not None:
            try:
                self.use(index)
                self.notes.append(f"fields *{self.entries[index].label}*")
            except Exception as e:  # noqa: BLE001 - a stale entry must not stop the viewer
                log.warning("could not restore the fields in %s: %s", in_use, e)
        elif earlier:
            self.notes.append(
                f"{len(earlier)} fields trained or loaded earlier, listed in *Fields* (the scene's own are in use)"
            )
