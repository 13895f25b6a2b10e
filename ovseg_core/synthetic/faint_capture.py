"""A synthetic scene that looks like a real photogrammetric capture to ovseg's 3D side.

Real splats are faint: the INRIA capture in ``../shared/data/kacytran_try_inria`` has median
opacity 0.06 (10th percentile 0.01, 90th 0.33) and a real capture blends ~30 Gaussians per
pixel. Opaque toy scenes (one Gaussian per pixel) hide every problem of lifting, per-Gaussian
relevancy and instance building. This scene is built to have those statistics:

- objects are thick shells of many small Gaussians whose opacities follow a heavy-tailed
  distribution with median ~0.06 (most faint, a few nearly opaque);
- a floor and a backdrop wall behind them (their own 2D regions, labelled background);
- semi-transparent haze (large, very faint Gaussians) between the cameras and the objects, and
  small floaters scattered in the air, both labelled background.

``object_id`` (extra property) is the object index, -1 for background; ``part`` says which kind
of Gaussian it is (``PARTS``). ``planted_views`` renders what a perfect 2D segmenter and encoder
would hand ovseg on such a capture: per view, every pixel's mask is the region (object, floor or
wall) with the largest blended weight there, and every mask's feature is that region's planted
vocabulary feature, so only the 3D side (lifting, training, queries, instances) is measured.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.camera import Camera
from ovseg_core.fields.training import TrainingView
from ovseg_core.models.palette_models import Vocabulary
from ovseg_core.render import Renderer
from ovseg_core.scene import SH_C0, GaussianScene, make_scene

PARTS: tuple[str, ...] = ("object", "floor", "wall", "haze", "floater")
OBJECT_NAMES: tuple[str, ...] = (
    "red mug",
    "yellow ball",
    "blue box",
    "green plant",
    "purple vase",
    "orange can",
    "white lamp",
    "black shoe",
)
_COLOURS = np.array(
    [
        (0.85, 0.1, 0.1),
        (0.95, 0.85, 0.1),
        (0.15, 0.3, 0.9),
        (0.15, 0.7, 0.2),
        (0.6, 0.2, 0.7),
        (0.95, 0.5, 0.1),
        (0.9, 0.9, 0.9),
        (0.1, 0.1, 0.1),
    ]
)
BACKGROUND_NAMES: tuple[str, ...] = ("floor", "wall")
COVER_OBJECT = 7.0
"""How many times Gaussians cover an object's surface (sets their size; ~30 blended per pixel)."""
COVER_BACKGROUND = 5.0


@dataclasses.dataclass
class FaintCapture:
    """The scene, its cameras, and the planted vocabulary of its regions."""

    scene: GaussianScene
    """``object_id`` [N] int32 (-1 background) and ``part`` [N] int32 (index into ``PARTS``) extras."""
    object_names: tuple[str, ...]
    cameras: list[Camera]
    vocabulary: Vocabulary
    """Names = object names, then ``floor`` and ``wall``; features planted per region."""

    @property
    def object_ids(self) -> np.ndarray:
        return np.asarray(self.scene.extras["object_id"])

    @property
    def num_objects(self) -> int:
        return len(self.object_names)

    def region_ids(self) -> np.ndarray:
        """``[N]`` int64 2D region each Gaussian shows as: its object, K = floor, K+1 = wall, -1 haze/floater."""
        part = np.asarray(self.scene.extras["part"])
        K = self.num_objects
        out = np.where(part == 0, self.object_ids, -1).astype(np.int64)
        out[part == 1] = K
        out[part == 2] = K + 1
        return out


def _opacities(g: np.random.Generator, n: int) -> np.ndarray:
    """Heavy-tailed opacities with median ~0.06: log-normal around 0.06, capped at 0.99."""
    return np.clip(np.exp(g.normal(math.log(0.06), 1.3, n)), 0.004, 0.99)


def _shell(g: np.random.Generator, kind: str, n: int, centre: np.ndarray, size: float) -> np.ndarray:
    """``n`` points in a shell (thickness ~15% of ``size``) of one primitive shape sitting on z = 0."""
    if kind == "sphere":
        d = g.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        p = d * size
        p[:, 2] += size
    elif kind == "box":
        face = g.integers(0, 6, n)
        p = g.uniform(-1, 1, (n, 3))
        p[np.arange(n), face // 2] = np.where(face % 2, 1.0, -1.0)
        p = p * size * np.array([1.0, 0.8, 0.9])
        p[:, 2] += 0.9 * size
    else:  # cylinder with caps
        th, side = g.uniform(0, 2 * np.pi, n), g.uniform(0, 1, n)
        r = np.where(side < 0.75, size * 0.7, size * 0.7 * np.sqrt(g.uniform(0, 1, n)))
        z = np.where(side < 0.75, g.uniform(0, 2 * size, n), np.where(side < 0.875, 2 * size, 0.0))
        p = np.c_[r * np.cos(th), r * np.sin(th), z]
    inward = -(p - np.array([0, 0, size])) * g.uniform(0, 0.15, (n, 1))  # thickness: some fill inside
    return centre + p + inward


def faint_capture(
    num_objects: int = 6,
    gaussians_per_object: int = 3000,
    *,
    num_cameras: int = 12,
    width: int = 96,
    height: int = 72,
    haze: int = 600,
    floaters: int = 300,
    background: int = 6000,
    seed: int = 0,
    embed_dim: int = 64,
) -> FaintCapture:
    """Objects (spheres, boxes, cylinders ~0.1-0.15 across) in a ring on a floor, a wall behind,
    haze and floaters, seen by ``num_cameras`` orbit cameras at 20-45 degrees elevation (the
    undersides stay hidden, as on a real capture). Sizes scale with ``gaussians_per_object`` so
    the blend count per pixel stays ~30 whatever the size."""
    if not 1 <= num_objects <= len(OBJECT_NAMES):
        raise ValueError(f"num_objects must be in [1, {len(OBJECT_NAMES)}], got {num_objects}")
    g = np.random.default_rng(seed)
    kinds = ("sphere", "box", "cylinder")
    means, ids, parts, scales, colours = [], [], [], [], []
    ring = 0.45
    # Gaussian size so that a surface of area A is covered c times: n * 2 pi s^2 = c A.
    for k in range(num_objects):
        a = 2 * np.pi * k / num_objects
        size = 0.11 + 0.03 * (k % 3)
        centre = np.array([ring * math.cos(a), ring * math.sin(a), 0.0])
        for part, value in zip(
            (means, scales, colours, ids, parts),
            _object(g, k, kinds[k % 3], gaussians_per_object, centre, size, COVER_OBJECT),
            strict=True,
        ):
            part.append(value)
    # floor disc (radius 1.2) and a wall behind (y = -1.1 .. seen by the cameras on that side)
    n_floor = background * 2 // 3
    r, th = 1.2 * np.sqrt(g.uniform(0, 1, n_floor)), g.uniform(0, 2 * np.pi, n_floor)
    floor = np.c_[r * np.cos(th), r * np.sin(th), g.normal(0, 0.005, n_floor)]
    n_wall = background - n_floor
    wall = np.c_[
        g.uniform(-1.2, 1.2, n_wall), np.full(n_wall, -1.1) + g.normal(0, 0.005, n_wall), g.uniform(0, 1.0, n_wall)
    ]
    for pts, part, area, base in ((floor, 1, np.pi * 1.44, 0.45), (wall, 2, 2.4, 0.6)):
        s = math.sqrt(COVER_BACKGROUND * area / (len(pts) * 2 * np.pi))
        means.append(pts)
        ids.append(np.full(len(pts), -1))
        parts.append(np.full(len(pts), part))
        scales.append(s * np.exp(g.normal(0, 0.35, (len(pts), 3))))
        colours.append(np.clip(base + g.normal(0, 0.08, (len(pts), 3)), 0.01, 0.99))
    # haze: big faint blobs around the objects' height; floaters: small specks anywhere
    hz = np.c_[g.uniform(-0.9, 0.9, (haze, 2)), g.uniform(0.0, 0.5, haze)]
    fl = np.c_[g.uniform(-1.0, 1.0, (floaters, 2)), g.uniform(0.0, 0.8, floaters)]
    means += [hz, fl]
    ids += [np.full(haze, -1), np.full(floaters, -1)]
    parts += [np.full(haze, 3), np.full(floaters, 4)]
    scales += [np.exp(g.normal(math.log(0.06), 0.3, (haze, 3))), np.exp(g.normal(math.log(0.008), 0.3, (floaters, 3)))]
    colours += [np.clip(0.7 + g.normal(0, 0.05, (haze, 3)), 0, 1), g.uniform(0.05, 0.95, (floaters, 3))]
    means_a = np.concatenate(means)
    n = len(means_a)
    part_a = np.concatenate(parts)
    opacity = _opacities(g, n)
    opacity[part_a == 3] = np.clip(np.exp(g.normal(math.log(0.03), 0.4, int((part_a == 3).sum()))), 0.005, 0.08)
    cams = []
    for i in range(num_cameras):
        phi = 2 * np.pi * (i + 0.5) / num_cameras
        elev = math.radians(20 + 25 * ((i * 7) % num_cameras) / max(num_cameras - 1, 1))
        eye = 1.4 * np.array([math.cos(elev) * math.cos(phi), math.cos(elev) * math.sin(phi), math.sin(elev)])
        cams.append(Camera.look_at(eye + [0, 0, 0.1], (0, 0, 0.12), width=width, height=height, fov_y_deg=55))
    quats = g.normal(size=(n, 4))
    layers = (means_a, quats, scales, colours, ids, part_a, opacity)
    return _capture(layers, cams, num_objects, (0.45, 0.6), f"faint-capture-{num_objects}-{seed}", seed, embed_dim)


def _object(
    g: np.random.Generator, k: int, kind: str, n: int, centre: np.ndarray, size: float, cover: float
) -> tuple[np.ndarray, ...]:
    """Object ``k``: ``n`` Gaussians on a ``kind`` shell of ``size`` at ``centre``, sized so they cover its
    surface ``cover`` times (n * 2 pi s^2 = cover * 4 pi size^2); (means, scales, colours, ids, parts)."""
    pts = _shell(g, kind, n, centre, size)
    s = math.sqrt(cover * 4 * np.pi * size**2 / (n * 2 * np.pi))
    scales = s * np.exp(g.normal(0, 0.35, (len(pts), 3)))
    colours = np.clip(_COLOURS[k] + g.normal(0, 0.05, (len(pts), 3)), 0.01, 0.99)
    return pts, scales, colours, np.full(len(pts), k), np.zeros(len(pts), np.int64)


def _capture(
    layers: tuple, cams: list[Camera], num_objects: int, greys: tuple[float, float], name: str, seed: int, dim: int
) -> FaintCapture:
    """The ``FaintCapture`` of ``layers`` (means [N, 3], quats [N, 4], per-part lists of scales,
    colours and object ids, parts [N], opacities [N]) with a vocabulary of the objects and the two
    background regions (grey levels ``greys``)."""
    means, quats, scales, colours, ids, parts, opacity = layers
    names = tuple(OBJECT_NAMES[:num_objects])
    vocab = Vocabulary.build(
        [*names, *BACKGROUND_NAMES],
        np.concatenate([_COLOURS[:num_objects], [[greys[0]] * 3, [greys[1]] * 3]]),
        dim=dim,
        seed=seed,
        name=name,
    )
    colour_a = np.concatenate(colours)
    return FaintCapture(
        scene=make_scene(
            means=means,
            quats=quats,
            log_scales=np.log(np.concatenate(scales)),
            logit_opacities=np.log(opacity / (1 - opacity)),
            sh0=((colour_a - 0.5) / SH_C0)[:, None, :],
            extras={"object_id": np.concatenate(ids).astype(np.int32), "part": parts.astype(np.int32)},
        ),
        object_names=names,
        cameras=cams,
        vocabulary=vocab,
    )


def region_labels(capture: FaintCapture, renderer: Renderer, camera: Camera, min_weight: float = 0.3) -> np.ndarray:
    """``[H, W]`` int64 region of every pixel (the region with the largest blended weight; object
    k, K = floor, K + 1 = wall), -1 where regions add up to less than ``min_weight`` (sky, haze)."""
    regions = torch.from_numpy(capture.region_ids())
    R = capture.num_objects + 2
    onehot = F.one_hot(regions.clamp_min(0), R).float() * (regions >= 0)[:, None].float()
    rendered = renderer.render(capture.scene, camera, features=onehot).features[0]
    w, lab = rendered.max(dim=-1)
    total = rendered.sum(dim=-1)
    return torch.where((total >= min_weight) & (w > 0), lab, torch.full_like(lab, -1)).cpu().numpy().astype(np.int64)


def top_labels(capture: FaintCapture, renderer: Renderer, camera: Camera, min_alpha: float = 0.5) -> np.ndarray:
    """``[H, W]`` int64: the region (``FaintCapture.region_ids``) of the Gaussian with the most
    blending weight at each pixel; -1 where that is a floater or haze, or the pixel is mostly
    empty. The per-pixel truth of ``ovseg_core.eval.segment_quality``: what a pixel shows is the
    Gaussian a click there picks (``ovseg_core.render.pixel_answer``)."""
    out = renderer.render(capture.scene, camera, top_k=1)
    assert out.contrib_ids is not None
    top = out.contrib_ids[0, ..., 0].long().cpu().numpy()
    alpha = out.alpha[0, ..., 0].cpu().numpy()
    regions = capture.region_ids()
    lab = np.where(top >= 0, regions[np.clip(top, 0, None)], -1)
    return np.where(alpha >= min_alpha, lab, -1).astype(np.int64)


def planted_views(capture: FaintCapture, renderer: Renderer, cameras: list[Camera] | None = None) -> list[TrainingView]:
    """One ``TrainingView`` per camera: the region labels as the mask map of all four scales and
    the vocabulary's region features as the mask features."""
    feats = capture.vocabulary.features.float()
    out = []
    for i, cam in enumerate(capture.cameras if cameras is None else cameras):
        seg = torch.from_numpy(region_labels(capture, renderer, cam))
        out.append(TrainingView(f"view_{i:03d}", cam, feats, torch.stack([seg] * 4)))
    return out


@dataclasses.dataclass
class CaptureStats:
    """How real the scene looks: per-pixel blend counts and opacity statistics."""

    opacity_median: float
    opacity_mean: float
    opacity_p90: float
    blend_median: float
    """Median over covered pixels of the number of Gaussians blended (weight >= 1e-4)."""
    blend_p90: float
    object_hidden_fraction: float
    """Fraction of object Gaussians that no camera's top-256 contributions include."""


def capture_stats(capture: FaintCapture, renderer: Renderer, top_k: int = 256) -> CaptureStats:
    """Blend counts over all cameras and opacity percentiles of ``capture``."""
    o = capture.scene.opacities.detach().cpu().numpy()
    counts = []
    seen = np.zeros(capture.scene.num_gaussians, bool)
    for cam in capture.cameras:
        out = renderer.render(capture.scene, cam, top_k=top_k)
        assert out.contrib_weights is not None and out.contrib_ids is not None
        w = out.contrib_weights[0].cpu().numpy()
        c = (w >= 1e-4).sum(-1).reshape(-1)
        counts.append(c[c > 0])
        ids = out.contrib_ids[0].cpu().numpy().reshape(-1)
        seen[ids[ids >= 0]] = True
    allc = np.concatenate(counts)
    obj = capture.object_ids >= 0
    return CaptureStats(
        opacity_median=float(np.median(o)),
        opacity_mean=float(o.mean()),
        opacity_p90=float(np.percentile(o, 90)),
        blend_median=float(np.median(allc)),
        blend_p90=float(np.percentile(allc, 90)),
        object_hidden_fraction=float(1 - seen[obj].mean()),
    )
