""".ksplat reading (mkkellogg GaussianSplats3D): hand-made records decoded to known values, files laid out as the
library lays them out read back within each level's quantisation, and hostile headers refused with a
SceneFormatError naming the file before the body they claim is allocated. Files the library itself wrote
are checked in tests/interop/test_ksplat_peer.py."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from scene_checks import assert_refused

from benchmarks.ksplat_builder import ksplat_bytes
from ovseg_core.io import load_scene
from ovseg_core.io.ksplat_file import HEADER_BYTES, MAIN_HEADER, SECTION_HEADER, SECTION_HEADER_BYTES, SMALLEST_SCALE
from ovseg_core.io.scene_file import format_for_name
from ovseg_core.scene import SH_C0
from ovseg_core.synthetic import random_scene


def _file(tmp_path, data: bytes, name: str = "s.ksplat"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _patch(data: bytes, offset: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("section_size", [0, 70])
def test_library_layout_reads_back_within_the_quantisation(tmp_path, level, section_size):
    scene = random_scene(300, sh_degree=2, seed=level, extent=4.0)
    back = load_scene(_file(tmp_path, ksplat_bytes(scene, level=level, section_size=section_size, bucket_size=16)))
    assert back.num_gaussians == 300 and back.sh_degree == 2
    step = 1.0 / 32767 * np.abs(scene.means.numpy()).max()  # the builder's block is about the bucket's extent
    np.testing.assert_allclose(back.means.numpy(), scene.means.numpy(), rtol=0, atol=step if level else 0)
    np.testing.assert_allclose(back.log_scales.numpy(), scene.log_scales.numpy(), rtol=0, atol=5e-4 if level else 1e-6)
    np.testing.assert_allclose(back.opacities.numpy(), scene.opacities.numpy(), rtol=0, atol=0.5 / 255 + 1e-6)
    sh_tol = {0: 1e-7, 1: 2.0**-11 * np.abs(scene.shN.numpy()).max(), 2: np.ptp(scene.shN.numpy()) / 255}[level]
    np.testing.assert_allclose(back.shN.numpy(), scene.shN.numpy(), rtol=0, atol=sh_tol + 1e-6)


def test_hand_made_level_1_record_decodes_to_known_values(tmp_path):
    main = bytearray(HEADER_BYTES)
    MAIN_HEADER.pack_into(main, 0, 0, 1, 1, 1, 1, 1, 1)
    record = struct.pack(
        "<3H3e4e4B", 32767 + 100, 32767, 32767 - 32767, 1.0, 0.5, 0.0, 1.0, 0.0, 0.0, 0.0, 255, 128, 0, 0
    )
    body = struct.pack("<3f", 1.0, 2.0, 3.0) + record  # one full bucket, centre (1, 2, 3)
    section = bytearray(SECTION_HEADER_BYTES)
    SECTION_HEADER.pack_into(section, 0, 1, 1, 1, 1, 2.0, 12, 32767, len(body), 1, 0, 0)
    scene = load_scene(_file(tmp_path, bytes(main) + bytes(section) + body))
    # centre = (u16 - 32767) * (block / 2) / 32767 + bucket centre
    np.testing.assert_allclose(scene.means.numpy()[0], [1 + 100 / 32767, 2.0, 2.0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(scene.log_scales.numpy()[0], [0.0, np.log(0.5), np.log(SMALLEST_SCALE)], atol=1e-6)
    np.testing.assert_allclose(scene.quats.numpy()[0], [1, 0, 0, 0])
    np.testing.assert_allclose(scene.sh0.numpy()[0, 0], (np.array([255, 128, 0]) / 255 - 0.5) / SH_C0, atol=1e-6)
    assert scene.opacities.numpy()[0] < 1e-5  # alpha 0, clamped to 1e-6 like .splat


def test_negative_scales_are_dropped_with_a_warning(tmp_path):
    data = bytearray(ksplat_bytes(random_scene(20, seed=1), level=0))
    start = HEADER_BYTES + SECTION_HEADER_BYTES + 12  # first record's scale
    struct.pack_into("<f", data, start, -1.0)
    with pytest.warns(UserWarning, match="dropped 1 of 20"):
        assert load_scene(_file(tmp_path, bytes(data))).num_gaussians == 19


def test_chosen_by_suffix():
    assert format_for_name("scene.KSPLAT").name.startswith(".ksplat")


def _hostile_cases() -> list[tuple[str, bytes, str]]:
    good = ksplat_bytes(random_scene(50, sh_degree=1, seed=2), level=1, bucket_size=16)
    section = HEADER_BYTES
    return [
        ("short", good[:100], "shorter than the 4096-byte"),
        ("version", _patch(good, 0, "<BB", 1, 0), "version 1.0"),
        ("level", _patch(good, 20, "<H", 3), "compression level 3"),
        ("slots", _patch(good, 4, "<I", 0xFFFFFFFF), "4294967295 section headers do not fit"),
        ("count", _patch(good, 16, "<I", 4_000_000_000), "the header counts 4000000000 splats, its sections 50"),
        ("section_count", _patch(_patch(good, section, "<II", 4_000_000_000, 4_000_000_000), 16, "<I", 4_000_000_000),
         "truncated"),
        ("over_max", _patch(good, section, "<I", 51), "holds 51 splats in room for 50"),
        ("bucket_bytes", _patch(good, section + 20, "<H", 16), "16-byte buckets"),
        ("buckets", _patch(good, section + 32, "<I", 9), "do not cover"),
        ("degree", _patch(good, section + 40, "<H", 7), "SH degree 7"),
        ("empty", _patch(_patch(good, section, "<I", 0), 16, "<I", 0), "zero Gaussians"),
        ("truncated", good[:-1], "truncated"),
    ]  # fmt: skip


@pytest.mark.parametrize("name,data,match", _hostile_cases(), ids=[c[0] for c in _hostile_cases()])
def test_hostile_headers_are_refused_before_allocating(tmp_path, name, data, match):
    path = _file(tmp_path, data, f"{name}.ksplat")
    assert_refused(path, match, max_traced_bytes=50 * len(data) + (1 << 20))
