"""Synthetic Gaussian scenes: random ones for tests, realistic ones for benchmarks, the demo scene."""

from __future__ import annotations

import dataclasses

import numpy as np

from ovseg_core.scene import SH_C0, GaussianScene, make_scene


def random_scene(
    num_gaussians: int,
    *,
    sh_degree: int = 0,
    seed: int = 0,
    extent: float = 1.0,
    scale_range: tuple[float, float] = (0.02, 0.15),
) -> GaussianScene:
    """Uniform random Gaussians in a cube of half-size ``extent`` around the origin (tests)."""
    g = np.random.default_rng(seed)
    n = num_gaussians
    k = (sh_degree + 1) ** 2 - 1
    return make_scene(
        means=g.uniform(-extent, extent, (n, 3)),
        quats=g.normal(size=(n, 4)),
        log_scales=np.log(g.uniform(*scale_range, (n, 3)) * extent),
        logit_opacities=g.normal(0.5, 1.5, n),
        sh0=g.normal(0, 1, (n, 1, 3)),
        shN=g.normal(0, 0.3, (n, k, 3)),
    )


def realistic_scene(num_gaussians: int, *, seed: int = 0, sh_degree: int = 3) -> GaussianScene:
    """A benchmark scene shaped like a trained 3DGS capture.

    Gaussians sit on surfaces (a ground plane, a few blobs and a back wall) inside a ~10 m
    room, log-scales are normal around a size that shrinks with density, most Gaussians
    are flat (one axis 10x thinner), and opacities are bimodal (many nearly opaque, many faint).
    """
    g = np.random.default_rng(seed)
    n = num_gaussians
    parts = g.choice(3, size=n, p=[0.45, 0.35, 0.2])
    means = np.empty((n, 3))
    ground = parts == 0
    means[ground] = np.c_[g.uniform(-5, 5, (ground.sum(), 2)), g.normal(0, 0.02, ground.sum())]
    blobs = parts == 1
    centers = g.uniform([-3, -3, 0.3], [3, 3, 2.0], (12, 3))
    which = g.integers(0, len(centers), blobs.sum())
    dirs = g.normal(size=(blobs.sum(), 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    means[blobs] = centers[which] + dirs * g.uniform(0.3, 0.8, (blobs.sum(), 1))
    wall = parts == 2
    means[wall] = np.c_[
        g.uniform(-5, 5, wall.sum()),
        np.full(wall.sum(), 5.0) + g.normal(0, 0.02, wall.sum()),
        g.uniform(0, 4, wall.sum()),
    ]
    # Typical size: the surface area per Gaussian (~100 m^2 / n), a bit more to overlap.
    base = np.sqrt(150.0 / n)
    log_scales = np.log(base) + g.normal(0, 0.5, (n, 3))
    log_scales[np.arange(n), g.integers(0, 3, n)] -= np.log(10.0)
    opacity = np.where(g.random(n) < 0.6, g.beta(8, 1.2, n), g.beta(1.2, 6, n))
    opacity = np.clip(opacity, 1e-3, 1 - 1e-3)
    k = (sh_degree + 1) ** 2 - 1
    colour = np.clip(g.normal(0.45, 0.2, (n, 3)), 0.02, 0.98)
    return make_scene(
        means=means,
        quats=g.normal(size=(n, 4)),
        log_scales=log_scales,
        logit_opacities=np.log(opacity / (1 - opacity)),
        sh0=((colour - 0.5) / SH_C0)[:, None, :],
        shN=g.normal(0, 0.05, (n, k, 3)),
    )


def scene_from_points(points: np.ndarray, colors_u8: np.ndarray, *, opacity: float = 0.8) -> GaussianScene:
    """Isotropic Gaussians on a point cloud, as 3DGS initialises them: scale = mean distance
    to the 3 nearest neighbours, colour from the points."""
    from scipy.spatial import cKDTree

    pts = np.asarray(points, dtype=np.float64)
    dist, _ = cKDTree(pts).query(pts, k=4)
    scale = np.clip(dist[:, 1:].mean(1), 1e-4, None)
    n = len(pts)
    colour = np.asarray(colors_u8, dtype=np.float64) / 255.0
    quats = np.zeros((n, 4))
    quats[:, 0] = 1.0
    return make_scene(
        means=pts,
        quats=quats,
        log_scales=np.repeat(np.log(scale)[:, None], 3, axis=1),
        logit_opacities=np.full(n, np.log(opacity / (1 - opacity))),
        sh0=((colour - 0.5) / SH_C0)[:, None, :],
    )


@dataclasses.dataclass(frozen=True)
class DemoObject:
    name: str
    color: tuple[float, float, float]


DEMO_OBJECTS = (
    DemoObject("table", (0.55, 0.35, 0.2)),
    DemoObject("red mug", (0.85, 0.1, 0.1)),
    DemoObject("yellow ball", (0.95, 0.85, 0.1)),
    DemoObject("blue box", (0.15, 0.3, 0.9)),
    DemoObject("green plant", (0.15, 0.7, 0.2)),
)


def demo_scene(seed: int = 7) -> GaussianScene:
    """A small tabletop: a table with a red mug, a yellow ball, a blue box and a green plant.

    Each Gaussian carries ``object_id`` (index into ``DEMO_OBJECTS``) as an extra property,
    so tests and the viewer know the true membership.
    """
    g = np.random.default_rng(seed)
    chunks: list[tuple[np.ndarray, np.ndarray, int]] = []  # (points, scale, object id)

    def add(points: np.ndarray, scale: float, obj: int) -> None:
        chunks.append((points, np.full(len(points), scale), obj))

    # table top (1.2 x 0.8 at z = 0.75) and four legs
    top = np.c_[g.uniform(-0.6, 0.6, 5000), g.uniform(-0.4, 0.4, 5000), 0.75 + g.normal(0, 0.005, 5000)]
    add(top, 0.015, 0)
    for sx in (-0.55, 0.55):
        for sy in (-0.35, 0.35):
            leg = np.c_[sx + g.normal(0, 0.015, 300), sy + g.normal(0, 0.015, 300), g.uniform(0, 0.75, 300)]
            add(leg, 0.012, 0)
    # mug: open cylinder r=0.05, h=0.11 at (-0.25, 0.12)
    th, h = g.uniform(0, 2 * np.pi, 1500), g.uniform(0, 0.11, 1500)
    add(np.c_[-0.25 + 0.05 * np.cos(th), 0.12 + 0.05 * np.sin(th), 0.755 + h], 0.008, 1)
    # ball: sphere r=0.07 at (0.05, -0.05)
    d = g.normal(size=(1500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    add(np.array([0.05, -0.05, 0.825]) + 0.07 * d, 0.009, 2)
    # box: 0.16 x 0.12 x 0.1 at (0.32, 0.12)
    face = g.integers(0, 6, 2000)
    p = g.uniform(-1, 1, (2000, 3))
    p[np.arange(2000), face // 2] = np.where(face % 2, 1.0, -1.0)
    add(np.array([0.32, 0.12, 0.805]) + p * np.array([0.08, 0.06, 0.05]), 0.009, 3)
    # plant: a bush of leaves, an ellipsoid cloud at the back (-0.45, -0.28), standing on the table
    # (leaves drawn again until they clear the top's fuzz: none pierce the table)
    leaves = np.zeros((0, 3))
    while len(leaves) < 1500:
        cloud = np.array([-0.45, -0.28, 0.88]) + g.normal(size=(1500, 3)) * np.array([0.07, 0.07, 0.1])
        leaves = np.concatenate([leaves, cloud[cloud[:, 2] >= 0.775]])
    add(leaves[:1500], 0.012, 4)

    points = np.concatenate([c[0] for c in chunks])
    scales = np.concatenate([c[1] for c in chunks])
    ids = np.concatenate([np.full(len(c[0]), c[2], np.int32) for c in chunks])
    n = len(points)
    palette = np.array([o.color for o in DEMO_OBJECTS])
    colour = np.clip(palette[ids] + g.normal(0, 0.04, (n, 3)), 0.01, 0.99)
    log_scales = np.log(scales)[:, None] + g.normal(0, 0.15, (n, 3))
    return make_scene(
        means=points,
        quats=g.normal(size=(n, 4)),
        log_scales=log_scales,
        logit_opacities=np.full(n, 2.5),
        sh0=((colour - 0.5) / SH_C0)[:, None, :],
        extras={"object_id": ids},
    )


FLOATING_OBJECTS = (
    DemoObject("red ball", (0.85, 0.1, 0.1)),
    DemoObject("blue cube", (0.15, 0.3, 0.9)),
    DemoObject("yellow ring", (0.95, 0.85, 0.1)),
    DemoObject("green can", (0.15, 0.7, 0.2)),
    DemoObject("purple egg", (0.6, 0.2, 0.7)),
)


def floating_objects_scene(points_per_object: int = 600, seed: int = 3, backdrop: int = 0) -> GaussianScene:
    """Five separated surface objects around the origin (radius ~0.6), nothing touching.

    Every Gaussian lies on an object's outer surface, so cameras around the scene observe all
    of them; tests with known answers use it. ``object_id`` indexes ``FLOATING_OBJECTS``.
    ``backdrop`` > 0 adds that many grey Gaussians on a sphere of radius 4 around everything
    (object id -1), so views have no empty background.
    """
    g = np.random.default_rng(seed)
    n = points_per_object

    def sphere(c, r, stretch=(1.0, 1.0, 1.0)):
        d = g.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return np.asarray(c) + r * d * np.asarray(stretch)

    def cube(c, h):
        face = g.integers(0, 6, n)
        p = g.uniform(-1, 1, (n, 3))
        p[np.arange(n), face // 2] = np.where(face % 2, 1.0, -1.0)
        return np.asarray(c) + h * p

    def ring(c, R, r):
        u, v = g.uniform(0, 2 * np.pi, n), g.uniform(0, 2 * np.pi, n)
        return np.asarray(c) + np.c_[(R + r * np.cos(v)) * np.cos(u), (R + r * np.cos(v)) * np.sin(u), r * np.sin(v)]

    def can(c, r, h):
        th, side = g.uniform(0, 2 * np.pi, n), g.uniform(0, 1, n)
        z = np.where(side < 0.7, g.uniform(-h, h, n), np.where(side < 0.85, h, -h))
        rad = np.where(side < 0.7, r, r * np.sqrt(g.uniform(0, 1, n)))
        return np.asarray(c) + np.c_[rad * np.cos(th), rad * np.sin(th), z]

    shapes = [
        sphere((0.55, 0.0, 0.0), 0.14),
        cube((-0.5, 0.3, 0.05), 0.12),
        ring((0.0, 0.55, -0.1), 0.13, 0.04),
        can((-0.2, -0.5, 0.0), 0.09, 0.13),
        sphere((0.1, -0.05, 0.35), 0.1, (1.0, 1.0, 1.4)),
    ]
    points = np.concatenate(shapes)
    ids = np.repeat(np.arange(len(shapes), dtype=np.int32), n)
    palette = np.array([o.color for o in FLOATING_OBJECTS])
    colour = np.clip(palette[ids] + g.normal(0, 0.03, (len(points), 3)), 0.01, 0.99)
    sizes = np.full(len(points), 0.018)
    if backdrop > 0:
        d = g.normal(size=(backdrop, 3))
        points = np.concatenate([points, 4.0 * d / np.linalg.norm(d, axis=1, keepdims=True)])
        ids = np.concatenate([ids, np.full(backdrop, -1, np.int32)])
        colour = np.concatenate([colour, np.clip(0.5 + g.normal(0, 0.15, (backdrop, 3)), 0.01, 0.99)])
        sizes = np.concatenate([sizes, np.full(backdrop, 4.0 * np.sqrt(4.0 / backdrop))])
    return make_scene(
        means=points,
        quats=g.normal(size=(len(points), 4)),
        log_scales=np.log(sizes)[:, None] + g.normal(0, 0.1, (len(points), 3)),
        logit_opacities=np.full(len(points), 3.0),
        sh0=((colour - 0.5) / SH_C0)[:, None, :],
        extras={"object_id": ids},
    )
