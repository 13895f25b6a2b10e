""".spz reading and writing: round trips within the format's quantisation, hand-made records decoded
to known values, and hostile files refused with a SceneFormatError naming the file before the body
they claim is allocated."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from scene_checks import assert_refused

from benchmarks.fuzz_inputs import spz_v4_bytes
from ovseg_core.errors import SceneFormatError, UsageError
from ovseg_core.io import load_scene, save_scene
from ovseg_core.io.scene_file import encode_scene
from ovseg_core.io.spz_codec import COLOR_SCALE, SH1_BUCKET, SH_REST_BUCKET
from ovseg_core.io.spz_file import MAGIC, read_spz, write_spz
from ovseg_core.scene import GaussianScene
from ovseg_core.synthetic import random_scene

LEGACY = struct.Struct("<IIIBBBB")


def _legacy(version: int, count: int, degree: int, body: bytes, fractional_bits: int = 12, flags: int = 0) -> bytes:
    return gzip.compress(LEGACY.pack(MAGIC, version, count, degree, fractional_bits, flags, 0) + body)


def _representable(scene: GaussianScene) -> dict[str, np.ndarray]:
    """What an exact SPZ codec can give back: each value clipped to the range its byte covers."""
    return {
        "log_scales": np.clip(scene.log_scales.numpy(), -10.0, 255 / 16 - 10.0),
        "opacities": scene.opacities.numpy(),
        "sh0": np.clip(scene.sh0.numpy(), -0.5 / COLOR_SCALE, 0.5 / COLOR_SCALE),
        "shN": np.clip(scene.shN.numpy(), -1.0, 127 / 128),
    }


@pytest.mark.parametrize("version", [2, 3, 4])
@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip_within_the_quantisation(tmp_path, version, degree):
    scene = random_scene(400, sh_degree=degree, seed=version * 10 + degree, extent=5.0)
    path = tmp_path / "s.spz"
    if version == 4:  # ovseg writes 2 and 3; version 4 is built here as the reference lays it out
        path.write_bytes(spz_v4_bytes(scene))
    else:
        save_scene(scene, path, version=version)
    back = load_scene(path)
    want = _representable(scene)
    assert back.num_gaussians == scene.num_gaussians and back.sh_degree == degree
    # half a step of each code, plus float32 rounding
    np.testing.assert_allclose(back.means.numpy(), scene.means.numpy(), rtol=0, atol=0.5 / 4096 + 1e-6)
    np.testing.assert_allclose(back.log_scales.numpy(), want["log_scales"], rtol=0, atol=0.5 / 16 + 1e-6)
    np.testing.assert_allclose(back.opacities.numpy(), want["opacities"], rtol=0, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(back.sh0.numpy(), want["sh0"], rtol=0, atol=0.5 / (255 * COLOR_SCALE) + 1e-6)
    if degree:  # 8-bit value, then rounded to a bucket of SH1_BUCKET (band 1) or SH_REST_BUCKET codes
        err = np.abs(back.shN.numpy() - want["shN"])
        assert err[:, :3].max() <= (0.5 + SH1_BUCKET / 2) / 128 + 1e-6
        assert err[:, 3:].max(initial=0) <= (0.5 + SH_REST_BUCKET / 2) / 128 + 1e-6
    # version 2: 8-bit x, y, z and w derived, so w is off by up to sqrt(2 * sqrt(3) * 0.5 / 127.5) near w = 0;
    # smallest three: 9-bit magnitudes over +-sqrt(1/2), the largest (>= 1/2) derived
    dots = np.abs((back.quats.numpy().astype(np.float64) * scene.quats.numpy()).sum(1))
    assert 1 - dots.min() <= (7e-3 if version == 2 else 3e-6)
    assert np.allclose(np.linalg.norm(back.quats.numpy(), axis=1), 1, atol=1e-6)


def test_hand_made_records_decode_to_known_values(tmp_path):
    # two Gaussians, degree 1; each block written out byte by byte
    positions = bytes([0x00, 0xE8, 0xFF, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00]) + bytes(9)  # -1.5, 1.0, 1/4096; 0
    alphas = bytes([255, 0])
    colors = bytes([128, 255, 0, 0, 0, 0])
    scales = bytes([160, 0, 255, 0, 0, 0])  # log scale 0, -10, 5.9375
    mag = int(511 * 0.6 / np.sqrt(0.5) + 0.5)
    rotations = struct.pack("<I", 3 << 30) + struct.pack("<I", (((3 << 10) | mag) << 20))  # identity; x = 0.6
    sh = bytes([128 + 64] + [128] * 8) + bytes([0] * 9)
    path = tmp_path / "hand.spz"
    path.write_bytes(_legacy(3, 2, 1, positions + alphas + colors + scales + rotations + sh))
    s = read_spz(path)
    np.testing.assert_array_equal(s.means.numpy(), [[-1.5, 1.0, 1 / 4096], [0, 0, 0]])
    np.testing.assert_allclose(s.opacities.numpy(), [1 - 1e-6, 1e-6], rtol=0, atol=1e-7)  # float32
    np.testing.assert_allclose(s.sh0[0, 0].numpy(), [(128 / 255 - 0.5) / 0.15, 0.5 / 0.15, -0.5 / 0.15], atol=1e-6)
    np.testing.assert_array_equal(s.log_scales[0].numpy(), [0.0, -10.0, 5.9375])
    x = mag / 511 * np.sqrt(0.5)
    np.testing.assert_allclose(s.quats.numpy(), [[1, 0, 0, 0], [np.sqrt(1 - x * x), x, 0, 0]], atol=1e-6)
    np.testing.assert_array_equal(s.shN[0, 0].numpy(), [0.5, 0, 0])  # RGB innermost: first coefficient of R
    np.testing.assert_array_equal(s.shN[1].numpy(), -np.ones((3, 3)))


def test_writer_keeps_far_centres_drops_nan_rows_and_refuses_what_spz_cannot_hold(tmp_path):
    scene = random_scene(50, seed=1)
    scene.means[0] = torch.tensor([5000.0, -3000.0, 1.0])  # beyond +-2048: fewer fractional bits
    scene.means[1, 0] = float("nan")
    with pytest.warns(UserWarning, match="dropped 1 Gaussians with NaN/Inf values on save"):
        data = write_spz(scene)
    assert LEGACY.unpack(gzip.decompress(data)[:16])[4] == 10  # 5000 * 2**10 fits in 23 bits, * 2**11 does not
    (tmp_path / "far.spz").write_bytes(data)
    back = load_scene(tmp_path / "far.spz")
    keep = np.r_[0, 2:50]
    np.testing.assert_allclose(back.means.numpy(), scene.means.numpy()[keep], rtol=0, atol=0.5 / 1024)
    with pytest.raises(UsageError, match="3 channels|RGB"):
        encode_scene(GaussianScene(scene.means, scene.quats, scene.log_scales, scene.logit_opacities,
                                   torch.zeros(50, 1, 4), torch.zeros(50, 0, 4)), "x.spz")  # fmt: skip
    with pytest.raises(UsageError, match="SH degree up to 3"):
        write_spz(random_scene(5, sh_degree=4))
    with pytest.raises(UsageError, match="beyond SPZ's 24-bit range"):
        far = random_scene(5)
        far.means[2, 1] = -1e7  # even with no fractional bits, beyond 2**23
        write_spz(far)
    with pytest.raises(UsageError, match="cannot save a scene as '.txt'; use .ply, .compressed.ply, .spz, .splat"):
        save_scene(scene, tmp_path / "x.txt")


def test_detected_by_content_not_name(tmp_path):
    scene = random_scene(30, sh_degree=1, seed=2)
    for name in ("scene.bin", "SCENE.SPZ", "mislabelled.ply", "v4.splat"):
        path = tmp_path / name
        path.write_bytes(spz_v4_bytes(scene) if name == "v4.splat" else write_spz(scene))
        assert load_scene(path).num_gaussians == 30
    (tmp_path / "text.spz").write_bytes(gzip.compress(b"hello, this is not a splat"))
    with pytest.raises(SceneFormatError, match=r"text.spz: not a SPZ file \(no gzip-compressed or plain 'NGSP'"):
        load_scene(tmp_path / "text.spz")


def test_hostile_headers_are_refused_before_allocating(tmp_path):
    body = bytes(2000)
    cases = {
        "huge.spz": (_legacy(3, 2**31, 3, body), "claims 2147483648 Gaussians"),
        "max.spz": (_legacy(3, 2**32 - 1, 0, body), "claims 4294967295 Gaussians"),
        "lying.spz": (_legacy(2, 5_000_000, 0, body), "more than .* compressed bytes can hold"),
        "degree.spz": (_legacy(3, 10, 4, body), "SH degree 4 is not supported"),
        "version1.spz": (_legacy(1, 10, 0, body), "SPZ version 1 is not supported"),
        "version9.spz": (_legacy(9, 10, 0, body), "SPZ version 9 is not supported"),
        "v4gzip.spz": (_legacy(4, 10, 0, body), "version 4 inside gzip"),
        "bits.spz": (_legacy(3, 10, 0, body, fractional_bits=40), "40 fractional bits"),
        "zero.spz": (_legacy(3, 0, 0, b""), "zero Gaussians"),
        "short.spz": (_legacy(3, 100, 0, bytes(100 * 20 - 1)), "header promises 2000 bytes .* holds 1999"),
        "header.spz": (gzip.compress(LEGACY.pack(MAGIC, 3, 1, 0, 12, 0, 0)[:10]), "ends inside the 16-byte header"),
        "cut.spz": (_legacy(3, 100, 0, np.arange(2000, dtype=np.uint8).tobytes())[:-300], "truncated SPZ file"),
        "v4short.spz": (struct.pack("<IIIBBBB", MAGIC, 4, 10, 0, 12, 0, 0), "shorter than its 32-byte header"),
        "v4huge.spz": (struct.pack("<IIIBBBBI12x", MAGIC, 4, 2**31 - 1, 3, 12, 0, 6, 32) + body, "claims"),
        "v4toc.spz": (spz_v4_bytes(random_scene(20, sh_degree=1), streams=5), "table of contents is malformed"),
        "v4cut.spz": (spz_v4_bytes(random_scene(20, sh_degree=1), cut=5), "stream 5 is malformed or truncated"),
        "v3plain.spz": (LEGACY.pack(MAGIC, 3, 10, 0, 12, 0, 0) + bytes(64), "version 3 must be gzip-compressed"),
    }
    for name, (data, match) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert_refused(tmp_path / name, match, max_traced_bytes=8 << 20)
    corrupt = bytearray(_legacy(3, 100, 0, bytes(range(256)) * 8))
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 8] = b"\xff" * 8  # inside the deflate data
    (tmp_path / "corrupt.spz").write_bytes(bytes(corrupt))
    assert_refused(
        tmp_path / "corrupt.spz", "corrupt SPZ gzip data|truncated SPZ file|does not end", max_traced_bytes=8 << 20
    )
    v4 = bytearray(spz_v4_bytes(random_scene(200, sh_degree=1, seed=3)))
    v4[32 + 6 * 16 : 32 + 6 * 16 + 4] = bytes(4)  # the first zstd stream's frame magic
    (tmp_path / "v4corrupt.spz").write_bytes(bytes(v4))
    assert_refused(
        tmp_path / "v4corrupt.spz", "corrupt SPZ zstd stream|truncated SPZ zstd stream", max_traced_bytes=8 << 20
    )


def test_a_decompression_bomb_is_refused_after_inflating_little_more_than_the_header_promises(tmp_path):
    # 1000 Gaussians of degree 0 (20 kB) followed by 300 MB of zeros in the same gzip stream (~300 kB)
    compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [compressor.compress(LEGACY.pack(MAGIC, 3, 1000, 0, 12, 0, 0) + bytes(20_000))]
    zeros = bytes(1 << 20)
    parts += [compressor.compress(zeros) for _ in range(300)]
    path = tmp_path / "bomb.spz"
    path.write_bytes(b"".join(parts) + compressor.flush())
    assert_refused(
        path, "does not end within 1048576 bytes after the 20000 bytes the header promises", max_traced_bytes=8 << 20
    )
    whole = _legacy(3, 1000, 0, bytes(20_000))
    (tmp_path / "no_trailer.spz").write_bytes(whole[:-8])  # the gzip trailer (checksum, length) cut off
    assert_refused(tmp_path / "no_trailer.spz", "is truncated", max_traced_bytes=8 << 20)
    (tmp_path / "whole.spz").write_bytes(whole)
    assert load_scene(tmp_path / "whole.spz").num_gaussians == 1000


def test_a_header_claiming_two_billion_points_leaves_peak_memory_small(tmp_path):
    path = tmp_path / "huge.spz"
    path.write_bytes(_legacy(3, 2**31 - 1, 3, bytes(4096)))
    probe = (
        "import resource, sys\n"
        "from ovseg_core.io import load_scene\n"
        "from ovseg_core.errors import SceneFormatError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    load_scene(sys.argv[1])\nexcept SceneFormatError as e:\n    print('refused', e)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines[0].startswith("refused"), done.stderr
    assert int(lines[-1]) < 64 * 1024, f"peak RSS grew by {lines[-1]} KiB"  # the body would be 139 GB
