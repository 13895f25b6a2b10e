"""Hostile scene files: every reader refuses them with a SceneFormatError naming the file, quickly
and without large allocations, or loads a finite, viewable scene. Includes a seeded mutation fuzz."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from scene_checks import assert_refused

from benchmarks.fuzz_inputs import compressed_ply_bytes, crafted_cases, mutated_cases, seed_files
from benchmarks.robustness import check_scene_file
from ovseg_core.data.normalization import NORMALIZATION_METADATA_KEY
from ovseg_core.io import load_scene
from ovseg_core.io.ply import write_ply
from ovseg_core.io.ply_table import MAX_HEADER_BYTES
from ovseg_core.io.splat_file import write_splat
from ovseg_core.synthetic import random_scene

HEADER = b"ply\nformat binary_little_endian 1.0\n"


def test_fifo_and_directory_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.ply"
    os.mkfifo(fifo)  # opening it for reading would wait forever for a writer
    assert_refused(fifo, "not a regular file")
    (tmp_path / "dir.ply").mkdir()
    assert_refused(tmp_path / "dir.ply", "is a directory")
    assert_refused(tmp_path / "absent.ply", "file not found")


def test_tiny_files_claiming_huge_counts_are_refused_before_allocating(tmp_path):
    cases = {
        "list_property.ply": HEADER
        + b"element vertex 100000000\nproperty list uchar int idx\nend_header\n"
        + b"\0" * 600,
        "huge_count.ply": HEADER + b"element vertex 4700000\nproperty float x\nend_header\n" + b"\0" * 600,
        "overflow_count.ply": HEADER + b"element vertex 18446744073709551616\nproperty float x\nend_header\n",
        "negative_count.ply": HEADER + b"element vertex -1\nproperty float x\nend_header\n",
        "ascii_count.ply": b"ply\nformat ascii 1.0\nelement vertex 10000000\nproperty float x\nend_header\n1 2 3\n",
    }
    messages = {
        "list_property.ply": "list property",
        "huge_count.ply": "truncated PLY: the header promises 18800000 bytes",
        "overflow_count.ply": "truncated",
        "negative_count.ply": "bad element line",
        "ascii_count.ply": "truncated",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert_refused(tmp_path / name, messages[name])


def test_header_bombs_and_garbage_headers(tmp_path):
    bomb = tmp_path / "bomb.ply"
    bomb.write_bytes(b"ply\nformat ascii 1.0\ncomment " + b"x" * (MAX_HEADER_BYTES + 10) + b"\nend_header\n")
    assert_refused(bomb, "longer than")
    for name, header, match in [
        ("int.ply", HEADER + b"element vertex 1x\n", "bad element line"),
        ("type.ply", HEADER + b"element vertex 1\nproperty float128 x\n", "bad property line"),
        ("dup.ply", HEADER + b"element vertex 1\nproperty float x\nproperty float x\n", "declared twice"),
        ("orphan.ply", HEADER + b"property float x\n", "before any element"),
        ("format.ply", b"ply\nformat binary_middle_endian 1.0\n", "bad format line"),
        ("noformat.ply", b"ply\nelement vertex 0\n", "no 'format' line"),
        ("keyword.ply", HEADER + b"elephant vertex 1\n", "unknown keyword"),
        ("utf.ply", HEADER + "comment \u00e9\n".encode(), "not ASCII"),
    ]:
        (tmp_path / name).write_bytes(header + b"end_header\n" + b"\0" * 64)
        assert_refused(tmp_path / name, match)


def test_bad_ascii_values_are_refused(tmp_path):
    good = write_ply(random_scene(5), text=True)
    head, body = good.split(b"end_header\n")
    (tmp_path / "word.ply").write_bytes(head + b"end_header\n" + body.replace(b" ", b" x ", 1))
    assert_refused(tmp_path / "word.ply", "not a number")
    (tmp_path / "short.ply").write_bytes(head + b"end_header\n" + body[: len(body) // 2])
    assert_refused(tmp_path / "short.ply", "truncated")


def test_nonfinite_rows_dropped_in_every_flavour(tmp_path):
    scene = random_scene(30, seed=2)
    scene.means[4, 1] = 3.0e38  # finite but beyond MAX_COORDINATE: no camera frames it, dropped like an Inf
    scene.means[7, 0] = -1e11  # far but within it: kept, and the default view must stay finite
    scene.log_scales[5, 2] = 200.0  # exp() overflows float32: an infinite Gaussian
    raw = write_ply(scene)  # the writer drops NaN rows itself, so patch one into the bytes
    start = raw.index(b"end_header\n") + len(b"end_header\n")
    row = (len(raw) - start) // 30
    x_of_row_3 = start + 3 * row  # x is the first property
    ply = tmp_path / "s.ply"
    ply.write_bytes(raw[:x_of_row_3] + np.float32(np.nan).tobytes() + raw[x_of_row_3 + 4 :])
    with pytest.warns(UserWarning, match="dropped 3 of 30 Gaussians with NaN/Inf or out-of-range values"):
        back = load_scene(ply)
    assert back.num_gaussians == 27 and float(back.means[:, 0].min()) == float(np.float32(-1e11))
    assert check_scene_file(ply)[0] == "loaded"

    splat = tmp_path / "s.splat"
    data = bytearray(write_splat(random_scene(10, seed=3)))
    data[32 * 2 : 32 * 2 + 4] = np.float32(np.inf).tobytes()
    data[32 * 6 + 12 : 32 * 6 + 16] = np.float32(-1.0).tobytes()  # negative linear scale
    splat.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="dropped 2 of 10"):
        assert load_scene(splat).num_gaussians == 8

    compressed = tmp_path / "c.ply"
    raw = compressed_ply_bytes(600, seed=1)
    start = raw.index(b"end_header\n") + len(b"end_header\n")
    raw = raw[:start] + np.float32(np.nan).tobytes() + raw[start + 4 :]  # chunk 0 min_x: its 256 rows
    compressed.write_bytes(raw)
    with pytest.warns(UserWarning, match="dropped 256 of 600"):
        back = load_scene(compressed)
    assert back.num_gaussians == 344 and torch.isfinite(back.means).all()


def test_fvdb_metadata_nonfinite_dropped_and_malformed_refused(tmp_path):
    scene = random_scene(8, seed=4)
    bad = np.eye(4, dtype=np.float32)
    bad[0, 3] = np.nan
    scene.metadata = {NORMALIZATION_METADATA_KEY: bad, "camera_to_world_matrices": np.eye(4, dtype=np.float32)[None]}
    path = tmp_path / "f.ply"
    path.write_bytes(write_ply(scene, flavour="fvdb"))
    with pytest.warns(UserWarning, match=f"dropped fVDB metadata '{NORMALIZATION_METADATA_KEY}'"):
        back = load_scene(path)
    assert list(back.metadata) == ["camera_to_world_matrices"]

    data = path.read_bytes()
    no_value = data.replace(b"property float value", b"property float other", 1)
    (tmp_path / "novalue.ply").write_bytes(no_value)
    assert_refused(tmp_path / "novalue.ply", "no element with a 'value' property")
    shape = data.replace(b"|tensor|2,4,4", b"|tensor|2,-4,4", 1)
    (tmp_path / "shape.ply").write_bytes(shape)
    assert_refused(tmp_path / "shape.ply", "bad shape")
    integer = write_ply(random_scene(3)).replace(b"end_header", b"comment fvdb_ply_af_8198767135k|int64|x\nend_header")
    (tmp_path / "int.ply").write_bytes(integer)
    assert_refused(tmp_path / "int.ply", "bad int64 value")


def _fuzz(seeds, count, tmp_path, seed):
    outcomes = {"loaded": 0, "refused": 0}
    failures = []
    start = time.perf_counter()
    for name, summary, data in mutated_cases(seeds, count, seed=seed):
        path = tmp_path / name
        path.write_bytes(data)
        kind, detail = check_scene_file(path, render=False)
        if kind == "failed":
            failures.append(f"{name} [{summary}]: {detail}")
        else:
            outcomes[kind] += 1
        path.unlink()
    assert not failures, "\n".join(failures[:20])
    assert time.perf_counter() - start < 120  # a hang guard: ~0.01 s per case here
    return outcomes


def test_reader_fuzz_generated_seeds(tmp_path):
    outcomes = _fuzz(seed_files(None), 300, tmp_path, seed=1)
    assert outcomes["loaded"] > 30 and outcomes["refused"] > 100  # the mutations reach both paths


def test_reader_fuzz_real_files(shared_data, tmp_path):
    seeds = seed_files(shared_data)[-2:]
    assert [n for n, _ in seeds] == ["point_cloud_iter7000.ply", "model_1.splat"]
    outcomes = _fuzz(seeds, 80, tmp_path, seed=2)
    assert outcomes["loaded"] > 5 and outcomes["refused"] > 5


CRAFTED_EXPECTED = {
    "crafted_uchar_x.ply": ("refused", ["['x'] are uint8", "float or double"]),
    "crafted_uchar_opacity.ply": ("refused", ["['opacity'] are uint8"]),
    "crafted_uchar_f_dc_0.ply": ("refused", ["['f_dc_0'] are uint8"]),
    "crafted_uchar_f_rest_2.ply": ("refused", ["['f_rest_2'] are uint8"]),
    "crafted_f_dc_00.ply": ("refused", ["property 'f_dc_00' is not a spherical-harmonics name (expected f_dc_0)"]),
    "crafted_far.splat": ("refused", ["all 60 Gaussians", "centres beyond 1e+12"]),
    "crafted_spread.splat": ("refused", ["all 60 Gaussians", "centres beyond 1e+12"]),
    "crafted_f_dc_3.ply": ("loaded", ["60 Gaussians"]),
    "crafted_count.sog": ("refused", ["SOG count 2147483648 is not a number of Gaussians"]),
    "crafted_texels.sog": ("refused", ["8x8 texels, fewer than the 10000000 Gaussians"]),
    "crafted_traversal.sog": ("refused", ["zip entry name '../x.webp' points outside the archive"]),
    "crafted_bomb.sog": ("refused", ["zip entry 'sh0.webp' claims 16777216 bytes"]),
    "crafted_png.sog": ("refused", ["SOG image 'quats.webp' is not a WebP file"]),
}


@pytest.mark.parametrize(("name", "summary", "data"), crafted_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_crafted_cases_are_refused_naming_file_and_property_or_load_and_render(tmp_path, name, summary, data):
    """Files that once escaped as bare ValueErrors (strides, broadcast, missing field, look_at)."""
    path = tmp_path / name
    path.write_bytes(data)
    outcome, detail = check_scene_file(path)  # loads, then renders from ovseg-render's default camera
    expected, parts = CRAFTED_EXPECTED[name]
    assert outcome == expected, (summary, detail)
    for part in parts + ([str(path)] if expected == "refused" else []):
        assert part in detail, (summary, detail)


def test_a_fourth_colour_channel_renders_over_the_rgb_background(tmp_path):
    path = tmp_path / "four.ply"
    path.write_bytes(dict((n, d) for n, _, d in crafted_cases())["crafted_f_dc_3.ply"])
    scene = load_scene(path)
    assert scene.num_channels == 4
    from ovseg_core.orientation import default_orbit
    from ovseg_core.render import RenderSettings, make_renderer

    cam = default_orbit(scene, 1, width=24, height=16)[0]
    four = make_renderer("cpu", RenderSettings(background=(0.2, 0.4, 0.6))).render(scene, cam).rgb
    padded = make_renderer("cpu", RenderSettings(background=(0.2, 0.4, 0.6, 0.0))).render(scene, cam).rgb
    assert four.shape[-1] == 4
    torch.testing.assert_close(four, padded)
