"""Checks that refuse a bad capture before anything slow, shared by the viewer's training job and
``ovseg train``: the capture's cameras must see the splat (seconds, no images read), its photos
should look like the splat (a few small renders; a warning, not a refusal), and the chosen levels
must have masks (a census of the preprocessing cache while preprocessing: the first, middle and
last views first, so a level none of them has is refused in seconds)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ovseg_core.data.view_dataset import ViewDataset
from ovseg_core.errors import UsageError
from ovseg_core.fields.training import CancelFlag
from ovseg_core.models import ImageEncoder, MaskGenerator
from ovseg_core.preprocess.config import PreprocessConfig
from ovseg_core.render import Renderer
from ovseg_core.scene import GaussianScene

MIN_VISIBLE_FRACTION = 0.05
"""A view sees the splat when at least this share of (sampled) Gaussian centres projects into it."""
MIN_SEEING_VIEWS = 0.5
"""The preflight refuses a capture where fewer than this share of views see the splat."""
PHOTO_VIEWS = 4
"""Views (spread over the capture) whose photos are compared with renders of the splat."""
PHOTO_WIDTH = 96
"""Width the photos and renders are compared at: coarse structure, not detail or noise."""
MIN_PHOTO_CORRELATION = 0.5
"""Photos and renders whose brightness correlates less than this (median over the compared views)
disagree: a splat's renders of its own capture correlate near 1, unrelated photos near 0."""


@dataclasses.dataclass(frozen=True)
class PhotoCheck:
    correlations: list[float]
    """Per compared view: Pearson correlation of the photo's and the render's brightness."""

    @property
    def median(self) -> float:
        return float(np.median(self.correlations)) if self.correlations else float("nan")

    @property
    def agree(self) -> bool:
        return not self.correlations or self.median >= MIN_PHOTO_CORRELATION

    def summary(self) -> str:
        return f"photos vs renders: brightness correlation {self.median:.2f} (median of {len(self.correlations)} views)"

    def warning(self, dataset_path: object) -> str:
        """'' when the photos agree with the splat, else a one-line warning."""
        if self.agree:
            return ""
        return (
            f"the photos of {dataset_path} do not look like the loaded splat (brightness correlation "
            f"{self.median:.2f} between photos and renders, below {MIN_PHOTO_CORRELATION}); "
            "is it the capture this splat was reconstructed from?"
        )


def check_cameras(scene: GaussianScene, dataset: ViewDataset) -> str:
    """Check that enough of the capture's cameras see ``scene`` (seconds, no images read). Returns a
    one-line summary; raises ValueError naming the problem otherwise."""
    means = scene.means.detach().cpu().double().numpy()
    if len(means) > 20_000:
        means = means[np.random.default_rng(0).choice(len(means), 20_000, replace=False)]
    seen = []
    for view in dataset:
        cam = view.camera
        uv, z = cam.project(means)
        x, y = uv[:, 0], uv[:, 1]
        inside = (z > 1e-6) & (x >= 0) & (x < cam.width) & (y >= 0) & (y < cam.height)
        seen.append(float(inside.mean()))
    seeing = sum(f >= MIN_VISIBLE_FRACTION for f in seen)
    if seeing < MIN_SEEING_VIEWS * len(seen):
        raise UsageError(
            f"the capture's cameras do not see the loaded splat: only {seeing} of {len(seen)} views show at least "
            f"{MIN_VISIBLE_FRACTION:.0%} of its Gaussians (median {np.median(seen):.1%}); is {dataset.root} "
            "the capture this splat was reconstructed from?"
        )
    cam = dataset[0].camera
    return f"{len(seen)} views at {cam.width}x{cam.height}; {seeing} see the splat (median {np.median(seen):.0%})"


def check_photos(
    scene: GaussianScene, dataset: ViewDataset, renderer: Renderer, views: int = PHOTO_VIEWS
) -> PhotoCheck:
    """Compare ``views`` photos (spread over the capture) with renders of ``scene`` from their
    cameras, both at ``PHOTO_WIDTH`` pixels wide."""
    from PIL import Image

    picks = sorted(set(np.linspace(0, len(dataset) - 1, min(views, len(dataset))).round().astype(int).tolist()))
    correlations = []
    for i in picks:
        cam = dataset[i].camera
        width = min(PHOTO_WIDTH, cam.width)
        small = cam.resized(width, max(1, round(cam.height * width / cam.width)))
        rendered = renderer.render(scene, small).rgb[0].clamp(0, 1).cpu().numpy()
        photo = Image.fromarray(dataset.load_image(i)).resize((small.width, small.height), Image.Resampling.BOX)
        correlations.append(_correlation(_brightness(np.asarray(photo) / 255.0), _brightness(rendered)))
    return PhotoCheck(correlations)


def _brightness(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., :3] @ np.array([0.299, 0.587, 0.114])).reshape(-1)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 where either image is flat (nothing to compare)."""
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 1e-12 else 0.0


def preprocess_checked(
    dataset: ViewDataset,
    mask_generator: MaskGenerator,
    image_encoder: ImageEncoder,
    preprocess: PreprocessConfig,
    levels: tuple[int, ...],
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelFlag | None = None,
) -> str:
    """Preprocess every view (cached) with each view's mask counts checked: cached views first
    (free), then the first, middle and last views (seconds), then the rest. A chosen level that no
    view has a mask at is refused (ValueError) as soon as that is known; returns a one-line census
    ("masks in all N views checked", with any level's partial coverage)."""
    from ovseg_core.preprocess import preprocess_views
    from ovseg_core.preprocess.census import PROBE_VIEWS, MaskCensus, probe_order
    from ovseg_core.preprocess.pipeline import feature_cache_for

    fuse = dict(fuse_global=preprocess.concept_fusion, fusion_temperature=preprocess.fusion_temperature)
    cache = feature_cache_for(dataset, mask_generator, image_encoder, preprocess.cache_dir, **fuse)
    census = MaskCensus(dataset, cache, mask_generator.name)
    todo = [i for i in range(len(dataset)) if not census.read(i)]
    if todo:
        order = probe_order(todo)
        # after the probe views (plus any cached ones) a level none of them has masks at is refused
        probe_at = len(census.lengths) + PROBE_VIEWS if len(order) > PROBE_VIEWS else -1

        def on_view(index: int, computed: bool) -> None:
            census.read(index)
            if len(census.lengths) == probe_at:
                census.check(levels, complete=False)

        preprocess_views(
            dataset, mask_generator, image_encoder, preprocess.cache_dir, indices=order, progress=progress,
            cancel=cancel, on_view=on_view, **fuse,
        )  # fmt: skip
        for i in todo:  # entries written by an earlier, interrupted pass are in the cache as well
            census.read(i)
    elif progress is not None:
        progress(len(dataset), len(dataset))
    note = census.check(levels, complete=True)
    return f"masks in all {len(dataset)} views checked" + (f" ({note})" if note else "")
