"""Writing SuperSplat compressed PLY: read back within each chunk's quantisation step, chosen by name in
save_scene, Morton-ordered into tight chunks, and refusing what the layout cannot hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ovseg_core.errors import UsageError
from ovseg_core.io import load_scene, save_scene
from ovseg_core.io.compressed_ply_writer import encode_compressed_ply, morton_order
from ovseg_core.io.ply_table import read_ply_table
from ovseg_core.scene import SH_C0
from ovseg_core.synthetic import random_scene


def _half_steps(chunk: np.ndarray, prefix: str, axes: str, bits: tuple[int, ...], n: int) -> np.ndarray:
    """``[n, 3]`` half a quantisation step of each row's chunk range per axis (the whole range when
    the range is under 1e-5: the writer then stores the minimum)."""
    owner = np.arange(n) // 256
    out = []
    for a, b in zip(axes, bits, strict=True):
        span = (chunk[f"max_{prefix}{a}"].astype(np.float64) - chunk[f"min_{prefix}{a}"])[owner]
        out.append(np.where(span < 1e-5, span, 0.5 * span / ((1 << b) - 1)))
    return np.stack(out, 1)


@pytest.mark.parametrize(("n", "degree"), [(1000, 3), (256, 0), (3, 1)])
def test_round_trip_within_each_chunks_quantisation(tmp_path, n, degree):
    source = random_scene(n, sh_degree=degree, seed=n)
    data, order = encode_compressed_ply(source)
    assert sorted(order.tolist()) == list(range(n))
    path = tmp_path / "s.compressed.ply"
    path.write_bytes(data)
    back, src = load_scene(path), source.subset(torch.from_numpy(order))
    chunk = read_ply_table(path).elements["chunk"]
    eps = lambda x: 4 * np.finfo(np.float32).eps * (1 + np.abs(x))  # noqa: E731 (float32 storage)
    f64 = lambda t: t.double().numpy()  # noqa: E731
    want, got = f64(src.means), f64(back.means)
    assert (np.abs(got - want) <= _half_steps(chunk, "", "xyz", (11, 10, 11), n) + eps(want)).all()
    want, got = f64(src.log_scales), f64(back.log_scales)
    assert (np.abs(got - want) <= _half_steps(chunk, "scale_", "xyz", (11, 10, 11), n) + eps(want)).all()
    want, got = f64(src.sh0)[:, 0] * SH_C0 + 0.5, f64(back.sh0)[:, 0] * SH_C0 + 0.5
    assert (np.abs(got - want) <= _half_steps(chunk, "", "rgb", (8, 8, 8), n) + eps(want)).all()
    assert np.abs(f64(back.opacities) - f64(src.opacities)).max() <= 0.5 / 255 + 1e-6
    q, p = f64(src.quats), f64(back.quats)
    q = q * np.sign((q * p).sum(1, keepdims=True))
    stored = np.ones_like(q, bool)
    stored[np.arange(n), np.abs(q).argmax(1)] = False
    assert np.abs(p - q)[stored].max() <= 0.5 / 1023 * math.sqrt(2) + 1e-6
    assert back.shN.shape == src.shN.shape
    if degree:
        assert np.abs(f64(back.shN) - np.clip(f64(src.shN), -4, 4)).max() <= 0.5 * 8 / 255 + 1e-6


def test_save_scene_picks_the_layout_by_name(tmp_path):
    scene = random_scene(300, sh_degree=1, seed=1)
    packed = save_scene(scene, tmp_path / "a.Compressed.PLY")
    plain = save_scene(scene, tmp_path / "a.ply")
    assert "chunk" in read_ply_table(packed).elements and "chunk" not in read_ply_table(plain).elements
    assert packed.stat().st_size < plain.stat().st_size / 3
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file
    with pytest.raises(UsageError, match=r"use \.ply, \.compressed\.ply, \.spz, \.splat"):
        save_scene(scene, tmp_path / "a.obj")


def _slow_morton_order(points: np.ndarray) -> list[int]:
    """The twin: per point, 10-bit cells interleaved bit by bit (x highest in each triple), stable sort."""
    lo, hi = points.min(0), points.max(0)
    codes = []
    for p in points:
        cells = [min(1023, max(0, int((p[a] - lo[a]) / (hi[a] - lo[a]) * 1023))) for a in range(3)]
        codes.append(sum(((cells[a] >> b) & 1) << (3 * b + 2 - a) for b in range(10) for a in range(3)))
    return sorted(range(len(points)), key=lambda i: codes[i])


def test_morton_order_matches_its_twin_and_makes_small_chunks():
    points = np.random.default_rng(0).uniform(-1, 1, (256 * 64, 3))
    order = morton_order(points)
    assert order.tolist() == _slow_morton_order(points)
    volume = lambda p: np.prod(np.ptp(p.reshape(-1, 256, 3), axis=1), axis=1).mean()  # noqa: E731
    # shuffled, each chunk spans about the whole scene; sorted, chunks average well under an octant
    assert volume(points[order]) < volume(points) / 8


def test_what_the_layout_cannot_hold(tmp_path):
    features = random_scene(10, seed=2)
    features.sh0 = torch.zeros(10, 1, 8)
    features.shN = torch.zeros(10, 0, 8)
    with pytest.raises(UsageError, match="stores RGB; the scene has 8 channels"):
        encode_compressed_ply(features)
    scene = random_scene(20, sh_degree=4, seed=3)
    scene.means[3, 0] = float("nan")
    with pytest.warns(UserWarning) as caught:
        data, order = encode_compressed_ply(scene)
    assert {"band 4 is dropped" in str(w.message) or "dropped 1 Gaussians" in str(w.message) for w in caught} == {True}
    assert 3 not in order and len(order) == 19
    path = tmp_path / "s.compressed.ply"
    path.write_bytes(data)
    assert load_scene(path).shN.shape == (19, 15, 3)
