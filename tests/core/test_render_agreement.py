"""The numba CPU rasteriser against the plain-PyTorch reference, and the reference against gsplat."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ovseg_core.camera import Camera
from ovseg_core.render import RenderSettings, make_renderer
from ovseg_core.render.projection import covariances, project_gaussians, sh_colors
from ovseg_core.scene import make_scene
from ovseg_core.synthetic import random_scene

CAMS = [
    Camera.look_at([2.5, -2.0, 1.5], [0, 0, 0], width=72, height=56),
    Camera.look_at([-1.5, 2.6, -0.8], [0.1, 0, 0], width=72, height=56, fov_y_deg=70),
]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a - b) ** 2).item()
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_cpu_matches_torch_rgb(sh_degree):
    scene = random_scene(1500, sh_degree=sh_degree, seed=sh_degree + 1)
    a = make_renderer("cpu").render(scene, CAMS)
    b = make_renderer("torch").render(scene, CAMS)
    assert a.rgb.shape == (2, 56, 72, 3) and a.alpha.shape == (2, 56, 72, 1)
    assert (a.rgb - b.rgb).abs().max().item() <= 2e-3
    assert psnr(a.rgb, b.rgb) >= 50
    assert (a.alpha - b.alpha).abs().max().item() <= 2e-3
    covered = b.alpha[..., 0] > 0.5
    assert covered.float().mean() > 0.2  # the view is not empty
    assert (a.depth - b.depth).abs()[covered].max().item() <= 1e-3


@pytest.mark.parametrize("dims", [1, 3, 31, 32, 64])  # both accumulator layouts and their boundary
def test_cpu_matches_torch_features(dims):
    scene = random_scene(1200, seed=7)
    feats = torch.randn(scene.num_gaussians, dims, generator=torch.Generator().manual_seed(dims))
    a = make_renderer("cpu").render(scene, CAMS, features=feats)
    b = make_renderer("torch").render(scene, CAMS, features=feats)
    assert a.features.shape == (2, 56, 72, dims)
    assert (a.features - b.features).abs().max().item() <= 2e-3
    assert psnr(a.features / 10, b.features / 10) >= 50


def test_colour_channels_past_the_third_blend_like_the_first_three():
    """Channels past the third take the second pass's own accumulator (the torch twin renders three):
    copies of channels 0 and 1 there must come out as channels 0 and 1 do."""
    base = random_scene(1200, seed=11)
    sh0 = torch.cat([base.sh0, base.sh0[..., :2]], dim=-1)  # [N, 1, 5]
    scene = make_scene(base.means, base.quats, base.log_scales, base.logit_opacities, sh0)
    settings = RenderSettings(background=(0.1, 0.2, 0.3, 0.1, 0.2))
    a = make_renderer("cpu", settings).render(scene, CAMS, top_k=3)
    assert a.rgb.shape == (2, 56, 72, 5)
    torch.testing.assert_close(a.rgb[..., 3:], a.rgb[..., :2], atol=1e-5, rtol=0)
    rgb_settings = RenderSettings(background=(0.1, 0.2, 0.3))
    b = make_renderer("torch", rgb_settings).render(base, CAMS, top_k=3)
    assert (a.rgb[..., :3] - b.rgb).abs().max().item() <= 2e-3
    strong = b.contrib_weights > 1e-3
    assert strong.any()
    assert torch.equal(a.contrib_ids[strong], b.contrib_ids[strong])


def test_features_are_weighted_sums_of_constant_features():
    """Rendering f = 1 everywhere gives alpha: the image is sum_i w_i f_i."""
    scene = random_scene(800, seed=9)
    out = make_renderer("cpu").render(scene, CAMS[0], features=torch.ones(scene.num_gaussians, 2))
    torch.testing.assert_close(out.features[..., :1], out.alpha, atol=1e-5, rtol=0)


def test_contributions_identical_above_threshold():
    scene = random_scene(1500, seed=21)
    a = make_renderer("cpu").render(scene, CAMS, top_k=8)
    b = make_renderer("torch").render(scene, CAMS, top_k=8)
    strong = b.contrib_weights > 1e-3
    assert strong.sum() > 1000
    assert torch.equal(a.contrib_ids[strong], b.contrib_ids[strong])
    torch.testing.assert_close(a.contrib_weights, b.contrib_weights, atol=1e-4, rtol=0)
    # weights are sorted and bounded by alpha
    assert (a.contrib_weights[..., :-1] >= a.contrib_weights[..., 1:]).all()
    assert (a.contrib_weights.sum(-1, keepdim=True) <= a.alpha + 1e-5).all()


def test_pick_returns_front_gaussians(tiny_scene, tiny_camera):
    for backend in ("cpu", "torch"):
        r = make_renderer(backend)
        full = r.render(tiny_scene, tiny_camera, top_k=5)
        p = r.pick(tiny_scene, tiny_camera, (20.5, 14.2), k=5)
        ids = full.contrib_ids[0, 14, 20]
        assert torch.equal(p.ids, ids[ids >= 0])
    with pytest.raises(ValueError, match="outside"):
        make_renderer("cpu").pick(tiny_scene, tiny_camera, (40, 3))


def test_background_and_settings():
    scene = random_scene(200, seed=2)
    cam = Camera.look_at([3, 0, 0], [0, 0, 0], width=32, height=24)
    white = RenderSettings(background=(1.0, 1.0, 1.0))
    a = make_renderer("cpu", white).render(scene, cam)
    b = make_renderer("torch", white).render(scene, cam)
    assert (a.rgb - b.rgb).abs().max() < 2e-3
    empty = a.alpha[..., 0] < 1e-6
    assert empty.any() and torch.allclose(a.rgb[empty], torch.ones(3))
    with pytest.raises(ValueError, match="near"):
        RenderSettings(near=0.0)
    with pytest.raises(ValueError, match="unknown render backend"):
        make_renderer("vulkan")


@pytest.mark.parametrize("tile_size", [8, 16, 32])
def test_cpu_matches_torch_at_every_tile_size_and_ragged_edges(tile_size):
    """The compositing kernel stores a tile as blocks of 8 columns and runs a Gaussian only over the
    blocks and rows it reaches; image sizes that are no multiple of the tile exercise the ragged edges."""
    scene = random_scene(1500, sh_degree=1, seed=31)
    cam = Camera.look_at([2.2, -2.1, 1.2], [0, 0, 0], width=77, height=45)
    settings = RenderSettings(tile_size=tile_size, background=(0.2, 0.4, 0.6))
    feats = torch.randn(scene.num_gaussians, 5, generator=torch.Generator().manual_seed(3))
    a = make_renderer("cpu", settings).render(scene, cam, features=feats, top_k=4)
    b = make_renderer("torch", settings).render(scene, cam, features=feats, top_k=4)
    assert (a.rgb - b.rgb).abs().max().item() <= 2e-3
    assert (a.alpha - b.alpha).abs().max().item() <= 2e-3
    assert (a.features - b.features).abs().max().item() <= 2e-3
    covered = b.alpha[..., 0] > 0.5
    assert covered.float().mean() > 0.2
    assert (a.depth - b.depth).abs()[covered].max().item() <= 1e-3
    strong = b.contrib_weights > 1e-3
    assert torch.equal(a.contrib_ids[strong], b.contrib_ids[strong])
    # the RGB-only build of the kernel gives the same colours as the build with a second pass
    plain = make_renderer("cpu", settings).render(scene, cam)
    torch.testing.assert_close(plain.rgb, a.rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(plain.alpha, a.alpha, atol=1e-6, rtol=0)


def test_render_limited_to_tiles_leaves_the_rest_empty():
    scene = random_scene(800, seed=4)
    cam = Camera.look_at([2.5, -2.0, 1.5], [0, 0, 0], width=72, height=56)
    r = make_renderer("cpu", RenderSettings(background=(1.0, 0.5, 0.0)))
    full = r.render(scene, cam, top_k=3)
    part = r.render(scene, cam, top_k=3, tiles=[(1, 1)])
    inside = (slice(16, 32), slice(16, 32))
    torch.testing.assert_close(part.rgb[0][inside], full.rgb[0][inside])
    torch.testing.assert_close(part.contrib_ids[0][inside], full.contrib_ids[0][inside])
    outside = torch.ones(56, 72, dtype=torch.bool)
    outside[inside] = False
    assert torch.equal(part.rgb[0][outside], torch.tensor([1.0, 0.5, 0.0]).expand(int(outside.sum()), 3))
    assert (part.alpha[0][outside] == 0).all() and (part.contrib_ids[0][outside] == -1).all()


def test_camera_batches_must_share_size(tiny_scene):
    cams = [
        Camera.look_at([3, 0, 0], [0, 0, 0], width=32, height=24),
        Camera.look_at([3, 0, 0], [0, 0, 0], width=16, height=24),
    ]
    with pytest.raises(ValueError, match="share an image size"):
        make_renderer("cpu").render(tiny_scene, cams)
    with pytest.raises(ValueError, match="features must be"):
        make_renderer("cpu").render(tiny_scene, cams[0], features=torch.ones(3, 2))


def test_torch_reference_is_differentiable(tiny_scene, tiny_camera):
    scene = tiny_scene
    feats = torch.randn(scene.num_gaussians, 4, requires_grad=True)
    scene.sh0.requires_grad_(True)
    out = make_renderer("torch").render(scene, tiny_camera, features=feats)
    (out.features.sum() + out.rgb.sum()).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert scene.sh0.grad is not None and scene.sh0.grad.abs().sum() > 0


def test_sh_matches_gsplat():
    gs = pytest.importorskip("gsplat.cuda._torch_impl")
    g = torch.Generator().manual_seed(0)
    sh = torch.randn(500, 16, 3, generator=g)
    dirs = torch.randn(500, 3, generator=g)
    for degree in range(4):
        ours = sh_colors(sh[:, :1], sh[:, 1:], dirs, degree)
        ref = gs._spherical_harmonics(degree, dirs, sh) + 0.5
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels", [3, 5])  # the unrolled RGB path at degree 3 and the general one
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_cpu_sh_kernel_matches_torch(degree, channels):
    from ovseg_core.render.cpu.records import COL, record_width
    from ovseg_core.render.cpu.shading import sh_colors as cpu_sh_colors

    g = torch.Generator().manual_seed(degree * 10 + channels)
    n = 700
    sh = torch.randn(n, 16, channels, generator=g)
    means = torch.randn(n, 3, generator=g) * 2
    cam_pos = np.array([0.3, -2.5, 1.1])
    ref = sh_colors(sh[:, :1], sh[:, 1:], means - torch.from_numpy(cam_pos).float(), degree)
    rec = np.full((n, record_width(channels)), np.nan, np.float32)
    ids = np.arange(0, n, 2, dtype=np.int32)  # only the listed Gaussians are written
    cpu_sh_colors(ids, means.numpy(), sh[:, :1].numpy(), sh[:, 1:].numpy(), degree, cam_pos, rec)
    ours = torch.from_numpy(rec[:, COL : COL + channels])
    torch.testing.assert_close(ours[ids], ref[ids], atol=2e-6, rtol=1e-5)
    assert torch.isnan(ours[1::2]).all()


def test_projection_matches_gsplat_on_garden(shared_data):
    gs = pytest.importorskip("gsplat.cuda._torch_impl")
    data = np.load(shared_data / "gsplat_test_garden" / "test_garden.npz")
    means = torch.from_numpy(data["means3d"]).float()
    g = torch.Generator().manual_seed(0)
    quats = torch.randn(len(means), 4, generator=g)
    log_scales = torch.log(torch.rand(len(means), 3, generator=g) * 0.05 + 0.005)
    covars = covariances(quats, log_scales)
    W, H = int(data["width"]), int(data["height"])
    viewmats = torch.from_numpy(data["viewmats"]).float()
    Ks = torch.from_numpy(data["Ks"]).float()
    radii_ref, means2d_ref, depths_ref, conics_ref, _ = gs._fully_fused_projection(means, covars, viewmats, Ks, W, H)
    settings = RenderSettings()
    for c in range(len(viewmats)):
        p = project_gaussians(means, covars, viewmats[c], Ks[c], W, H, settings)
        visible = radii_ref[c].min(dim=1).values > 0
        assert visible.sum() > 10_000  # the cameras really see the garden
        assert (
            torch.equal(p.radii > 0, radii_ref[c] > 0)
            or ((p.radii > 0) != (radii_ref[c] > 0)).any(1).float().mean() < 1e-4
        )
        torch.testing.assert_close(p.means2d[visible], means2d_ref[c][visible], atol=1e-3, rtol=1e-5)
        torch.testing.assert_close(p.depths, depths_ref[c], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(p.conics[visible], conics_ref[c][visible], atol=1e-4, rtol=1e-3)
        agree = (p.radii[visible] == radii_ref[c][visible]).all(1).float().mean()
        assert agree > 0.999  # ceil() may flip on float rounding for a handful


def test_exp_neg_error_bound():
    """The compositing kernel's polynomial exp stays within its stated bound (2.5e-7 relative)."""
    from ovseg_core.render.cpu.numerics import EXP_ARG_MAX, exp_neg_array

    s = np.concatenate([np.linspace(0, float(EXP_ARG_MAX), 200_001), np.linspace(0, 1e-3, 1001)]).astype(np.float32)
    rel = np.abs(exp_neg_array(s).astype(np.float64) / np.exp(-s.astype(np.float64)) - 1.0)
    assert rel.max() <= 2.5e-7
    # beyond the clamp it is exp(-16), far below any alpha that counts
    assert exp_neg_array(np.array([40.0], np.float32))[0] <= np.exp(-16.0) * (1 + 2.5e-7)


def test_exact_binning_keeps_every_contributing_pair():
    """Tiles a Gaussian is binned into (its 3.33-sigma rect, less what the ellipse test drops for rects
    over 2 x 2 tiles) cover every tile where it has alpha >= 1/255, each tile's list is depth-ordered,
    and the test drops pairs the rectangle would keep."""
    import math

    from ovseg_core.render.cpu import CpuRenderer

    scene = random_scene(1500, seed=5)
    cam = CAMS[0]
    r = CpuRenderer()
    r.render(scene, cam)
    b = r._last_binning
    rec, rects, order, offsets, gids = b["rec"], b["rects"], b["order"], b["offsets"], b["gids"]
    rank = np.full(len(rec), -1)
    rank[order] = np.arange(len(order))
    binned = {int(g): set() for g in order}
    for tile in range(len(offsets) - 1):
        members = gids[offsets[tile] : offsets[tile + 1]]
        assert (rank[members] >= 0).all() and (np.diff(rank[members]) > 0).all()  # visible, depth-ordered, once
        for g in members.tolist():
            binned[g].add(tile)
    T, W, H = r.settings.tile_size, cam.width, cam.height
    tiles_x = math.ceil(W / T)
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    dropped = 0
    for g in order.tolist():
        u, v, ca, cb, cc, nlogop = rec[g, :6]  # the record keeps -ln(opacity)
        op = np.exp(-np.float64(nlogop))
        dx, dy = u - xs, v - ys
        sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
        hit = (sigma >= 0) & (op * np.exp(-sigma) >= 1 / 255)
        needed = set(np.unique((ys[hit] // T).astype(int) * tiles_x + (xs[hit] // T).astype(int)).tolist())
        assert needed <= binned[g]
        x0, y0, x1, y1 = rects[g]
        assert binned[g] <= {ty * tiles_x + tx for ty in range(y0, y1) for tx in range(x0, x1)}
        dropped += (x1 - x0) * (y1 - y0) - len(binned[g])
    assert dropped > 0


def test_projection_culls_like_the_reference_at_the_frustum_edges():
    """Behind the camera, inside the near plane, past the far plane, too faint for 1/255, off screen,
    and just past the near plane far to the side (projected thousands of pixels out): the vectorised
    projection culls exactly what the reference gives no pixel, renders the rest as it does, and
    leaves each survivor the footprint code of its rect."""
    from ovseg_core.render.cpu import CpuRenderer
    from ovseg_core.render.cpu.records import FOOT_WIDE

    g = np.random.default_rng(3)
    cam = Camera.look_at([0.0, -3.0, 0.0], [0, 0, 0], width=96, height=64)
    w2c = np.asarray(cam.w2c, np.float64)
    groups = {  # camera-space points (x, y, z)
        "in view": np.c_[g.uniform(-1, 1, 400), g.uniform(-0.6, 0.6, 400), g.uniform(1.5, 4.5, 400)],
        "behind": np.c_[g.uniform(-1, 1, 50), g.uniform(-1, 1, 50), g.uniform(-3, -0.05, 50)],
        "inside near": np.c_[g.uniform(-1e-3, 1e-3, 50), g.uniform(-1e-3, 1e-3, 50), g.uniform(0, 0.009, 50)],
        "past far": np.c_[g.uniform(-1, 1, 50), g.uniform(-1, 1, 50), g.uniform(60, 90, 50)],
        "off screen": np.c_[g.choice([-1, 1], 50) * g.uniform(6, 9, 50), g.uniform(-1, 1, 50), g.uniform(2, 3, 50)],
        "near side": np.c_[
            g.choice([-1, 1], 50) * g.uniform(0.5, 2, 50), g.uniform(-1, 1, 50), g.uniform(0.011, 0.05, 50)
        ],
    }
    cam_pts = np.concatenate(list(groups.values()))
    means = (cam_pts - w2c[:3, 3]) @ w2c[:3, :3]  # camera -> world (w2c is a rigid transform)
    n = len(means)
    logit_op = g.normal(-1.0, 1.5, n)
    logit_op[:40] = -8.0  # opacity 3e-4 < 1/255: never composited anywhere
    scene = make_scene(
        means, g.normal(size=(n, 4)), np.log(g.uniform(0.01, 0.08, (n, 3))), logit_op, g.uniform(-1, 1, (n, 3))
    )
    settings = RenderSettings(far=50.0)
    r = CpuRenderer(settings)
    a = r.render(scene, cam)
    b = make_renderer("torch", settings).render(scene, cam)
    assert (a.rgb - b.rgb).abs().max().item() <= 2e-3
    assert (a.alpha - b.alpha).abs().max().item() <= 2e-3
    assert b.alpha.max().item() > 0.5

    rects, foot = r._last_binning["rects"], r._last_binning["foot"]
    culled = (rects[:, 2] <= rects[:, 0]) | (rects[:, 3] <= rects[:, 1])
    start = np.cumsum([0] + [len(v) for v in groups.values()])
    for (name, _), lo, hi in zip(groups.items(), start[:-1], start[1:]):
        if name != "in view":
            assert culled[lo:hi].all(), name
    assert culled[:40].all()  # the faint ones
    assert not culled[40:400].all()
    tiles_x = math.ceil(cam.width / settings.tile_size)
    for i in np.flatnonzero(~culled):
        x0, y0, x1, y1 = (int(v) for v in rects[i])
        w, h = x1 - x0, y1 - y0
        if w > 2 or h > 2:
            assert foot[i] == FOOT_WIDE
        else:
            mask = 1 | (w == 2) << 1 | (h == 2) << 2 | (w == 2 and h == 2) << 3
            assert foot[i] == ((y0 * tiles_x + x0) << 4) | mask
