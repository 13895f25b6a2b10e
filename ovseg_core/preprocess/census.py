"""Which views have masks at which level, from the preprocessing cache (each entry's ``lengths``:
a few bytes a view), so a level without masks is refused before training, checking every view."""

from __future__ import annotations

import numpy as np

from ovseg_core.data.view_dataset import ViewDataset
from ovseg_core.errors import UsageError
from ovseg_core.fields.language_fields import LEVEL_NAMES
from ovseg_core.preprocess.cache import FeatureCache, file_sha256

PROBE_VIEWS = 3
"""Views (first, middle, last) preprocessed first: a level none of them has a mask at is refused
in seconds instead of after the whole capture."""


class MaskCensus:
    """Masks per level of the views read so far (``lengths[view index]`` is ``[4]``)."""

    def __init__(self, dataset: ViewDataset, cache: FeatureCache, generator: str = "sam2") -> None:
        """``generator``: the mask generator's name (errors call its masks SAM2 masks when it is SAM 2)."""
        self.dataset, self.cache = dataset, cache
        self.masks = "SAM2 mask" if generator.lower().startswith("sam2") else "mask"
        self.lengths: dict[int, np.ndarray] = {}

    def read(self, index: int) -> bool:
        """Record view ``index`` if its cache entry is valid; False when it needs preprocessing."""
        view = self.dataset[index]
        shape = (view.camera.height, view.camera.width, 3)
        lengths = self.cache.read_lengths(self.cache.path_for(view.name), file_sha256(view.image_path), shape)
        if lengths is not None:
            self.lengths[index] = lengths
        return lengths is not None

    def views_with(self, level: int) -> list[int]:
        return sorted(i for i, n in self.lengths.items() if n[level] > 0)

    def summary(self) -> str:
        n = len(self.lengths)
        return ", ".join(f"level {k} ({LEVEL_NAMES[k]}): {len(self.views_with(k))}/{n}" for k in range(4))

    def check(self, levels: tuple[int, ...], complete: bool) -> str:
        """Raise ValueError naming the level(s) no checked view has a mask at (and every view's
        per-level coverage); returns a note on partial coverage ('' if full). ``complete``: every
        view of the capture has been checked (else only a probe has)."""
        n, total = len(self.lengths), len(self.dataset)
        checked = (
            f"any of the capture's {total} views" if complete else f"any of the {n} views checked so far (of {total})"
        )
        if not any(int(v.sum()) for v in self.lengths.values()):
            raise UsageError(
                f"{'SAM2' if self.masks == 'SAM2 mask' else 'the mask generator'} found no mask at all in "
                f"{checked}; use less image downsampling (or other mask-generator weights)"
            )
        missing = [lvl for lvl in levels if not self.views_with(lvl)]
        if missing:
            names = ", ".join(f"{lvl} ({LEVEL_NAMES[lvl]})" for lvl in missing)
            raise UsageError(
                f"no {self.masks} at level {names} in {checked}; views with masks per level: "
                f"{self.summary()}. Choose a level that has masks, or use less image downsampling"
            )
        thin = [(lvl, len(self.views_with(lvl))) for lvl in levels if len(self.views_with(lvl)) < n]
        return "; ".join(f"level {lvl} has masks in {k} of {n} views" for lvl, k in thin)


def probe_order(indices: list[int]) -> list[int]:
    """``indices`` with the first, middle and last up front."""
    if len(indices) <= PROBE_VIEWS:
        return list(indices)
    probe = list(dict.fromkeys([indices[0], indices[len(indices) // 2], indices[-1]]))
    return probe + [i for i in indices if i not in probe]
