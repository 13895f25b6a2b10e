"""PlayCanvas SOG v2 reading: a per-Gaussian slow twin of the decoder, scenes encoded and read back within
the format's quantisation, the three ways to name a SOG, and hostile files refused before big allocations."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image
from scene_checks import assert_refused
from sog_builder import encode_scene, save_sog, to_texels, webp_bytes

from ovseg_core.io import load_scene
from ovseg_core.io.sog import read_sog
from ovseg_core.synthetic import random_scene


def _slow_decode(meta: dict, files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """The decoder written texel by texel, as splat-transform's read-sog.ts loops."""
    img = {
        n: np.asarray(Image.open(io.BytesIO(b)).convert("RGBA")).reshape(-1, 4).astype(int) for n, b in files.items()
    }
    n = meta["count"]
    out = {k: [] for k in ("means", "quats", "log_scales", "logit_opacities", "sh0", "shN")}
    coeffs = {1: 3, 2: 8, 3: 15}[meta["shN"]["bands"]] if "shN" in meta else 0
    for i in range(n):
        mean = []
        for a in range(3):
            lo, hi = meta["means"]["mins"][a], meta["means"]["maxs"][a]
            v = lo + ((hi - lo) or 1) * ((img["means_l.webp"][i][a] | img["means_u.webp"][i][a] << 8) / 65535)
            mean.append(math.copysign(math.exp(abs(v)) - 1, v))
        out["means"].append(mean)
        px, py, pz, tag = img["quats.webp"][i]
        q = [1.0, 0.0, 0.0, 0.0]
        if 252 <= tag <= 255:
            largest = tag - 252
            abc = [(p / 255 * 2 - 1) / math.sqrt(2) for p in (px, py, pz)]
            others = [k for k in range(4) if k != largest]
            q = [0.0] * 4
            for k, v in zip(others, abc, strict=True):
                q[k] = v
            q[largest] = math.sqrt(max(0.0, 1 - sum(v * v for v in abc)))
        out["quats"].append(q)
        out["log_scales"].append([meta["scales"]["codebook"][img["scales.webp"][i][a]] for a in range(3)])
        colour = img["sh0.webp"][i]
        out["sh0"].append([[meta["sh0"]["codebook"][colour[c]] for c in range(3)]])
        alpha = min(1 - 1e-6, max(1e-6, colour[3] / 255))
        out["logit_opacities"].append(math.log(alpha / (1 - alpha)))
        rest = [[0.0] * 3 for _ in range(coeffs)]
        if coeffs:
            label = img["shN_labels.webp"][i][0] | img["shN_labels.webp"][i][1] << 8
            palette = img["shN_centroids.webp"]
            rows = len(palette) // (64 * coeffs)
            if label < meta["shN"]["count"]:
                for j in range(coeffs):
                    row, col = label // 64, (label % 64) * coeffs + j
                    texel = palette[row * 64 * coeffs + col] if row < rows else [0, 0, 0, 0]
                    rest[j] = [meta["shN"]["codebook"][texel[c]] for c in range(3)]
        out["shN"].append(rest)
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}
    out["shN"] = out["shN"].reshape(n, coeffs, 3)
    return out


def _random_sog(g: np.random.Generator, n: int, bands: int) -> tuple[dict, dict[str, bytes]]:
    """Random texels, including invalid rotation tags and SH labels beyond the palette."""

    def rows(low=0, high=256):  # noqa: ANN001, ANN202
        return g.integers(low, high, (n, 4)).astype(np.uint8)

    quats = rows()
    quats[:, 3] = g.integers(250, 256, n)
    book = lambda: sorted(g.normal(0, 2, 256).astype(np.float32).tolist())  # noqa: E731
    meta = {
        "version": 2, "count": n,
        "means": {"mins": [-1.5, -0.2, 0.0], "maxs": [1.0, 2.0, 0.0], "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": book(), "files": ["scales.webp"]}, "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": book(), "files": ["sh0.webp"]},
    }  # fmt: skip
    files = {name: webp_bytes(to_texels(rows(), n)) for name in ("means_l.webp", "means_u.webp")}
    files |= {"quats.webp": webp_bytes(to_texels(quats, n)), "scales.webp": webp_bytes(to_texels(rows(), n))}
    files["sh0.webp"] = webp_bytes(to_texels(rows(), n))
    if bands:
        coeffs, palette = {1: 3, 2: 8, 3: 15}[bands], 100
        labels = rows()
        labels[:, 1] = 0  # labels 0..255: some beyond the 100-entry palette, some past its 2 rows
        meta["shN"] = {"count": palette, "bands": bands, "codebook": book(), "files": ["c.webp", "l.webp"]}
        files["c.webp"] = webp_bytes(g.integers(0, 256, (2, 64 * coeffs, 4)).astype(np.uint8))
        files["l.webp"] = webp_bytes(to_texels(labels, n))
        files = {{"c.webp": "shN_centroids.webp", "l.webp": "shN_labels.webp"}.get(k, k): v for k, v in files.items()}
        meta["shN"]["files"] = ["shN_centroids.webp", "shN_labels.webp"]
    return meta, files


@pytest.mark.parametrize("bands", [0, 1, 3])
def test_vectorised_decoder_matches_the_per_texel_twin(tmp_path, bands):
    meta, files = _random_sog(np.random.default_rng(bands), 300, bands)
    scene = read_sog(save_sog(tmp_path / "s", meta, files))
    slow = _slow_decode(meta, files)
    slow["quats"] /= np.linalg.norm(slow["quats"], axis=1, keepdims=True)
    assert scene.num_gaussians == 300
    for name, want in slow.items():
        np.testing.assert_allclose(getattr(scene, name).numpy(), want, rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("degree", [0, 2, 3])
def test_a_scene_reads_back_within_the_formats_quantisation(tmp_path, degree):
    source = random_scene(500, sh_degree=degree, seed=degree)
    meta, files = encode_scene(source)
    back = read_sog(save_sog(tmp_path / "s.sog", meta, files))
    enc = lambda x: np.sign(x) * np.log1p(np.abs(x))  # noqa: E731
    step = (np.asarray(meta["means"]["maxs"]) - meta["means"]["mins"]) / 65535
    err = np.abs(enc(back.means.double().numpy()) - enc(source.means.double().numpy()))
    assert (err <= step / 2 + 1e-6).all()  # half a 16-bit step, plus float32 rounding of the centres
    for name, book in (("log_scales", meta["scales"]["codebook"]), ("sh0", meta["sh0"]["codebook"])):
        want = np.asarray(book)[np.abs(getattr(source, name).double().numpy()[..., None] - book).argmin(-1)]
        np.testing.assert_allclose(getattr(back, name).numpy(), want, rtol=0, atol=1e-6, err_msg=name)
    if degree:
        book = meta["shN"]["codebook"]
        want = np.asarray(book)[np.abs(source.shN.double().numpy()[..., None] - book).argmin(-1)]
        np.testing.assert_allclose(back.shN.numpy(), want, rtol=0, atol=1e-6)
    assert np.abs(back.opacities.double().numpy() - source.opacities.double().numpy()).max() <= 0.5 / 255 + 1e-6
    # the three stored components are within half an 8-bit step of sqrt2-scaled [-1, 1]
    q, p = source.quats.double().numpy(), back.quats.double().numpy()
    q = q * np.sign((q * p).sum(1, keepdims=True))
    stored = np.ones_like(q, bool)
    stored[np.arange(len(q)), np.abs(q).argmax(1)] = False
    assert np.abs(p - q)[stored].max() <= 0.5 / 255 * math.sqrt(2) + 1e-6


def test_zip_meta_json_and_folder_read_the_same(tmp_path):
    meta, files = encode_scene(random_scene(100, sh_degree=1, seed=4))
    meta_path = save_sog(tmp_path / "unbundled", meta, files)
    scenes = [load_scene(p) for p in (save_sog(tmp_path / "s.sog", meta, files), meta_path, meta_path.parent)]
    for other in scenes[1:]:
        for name in ("means", "quats", "log_scales", "logit_opacities", "sh0", "shN"):
            assert np.array_equal(getattr(other, name).numpy(), getattr(scenes[0], name).numpy()), name


def _good(tmp_path):
    return encode_scene(random_scene(40, sh_degree=1, seed=5))


def test_hostile_meta_json_isassert_refused(tmp_path):
    meta, files = _good(tmp_path)
    png = io.BytesIO()
    Image.new("RGBA", (8, 8)).save(png, "PNG")
    small = webp_bytes(np.zeros((4, 4, 4), np.uint8))
    cases = [
        ({"count": 2**31}, {}, "count 2147483648 is not a number of Gaussians"),
        ({"count": 60_000_000}, {}, "fewer than the 60000000 Gaussians"),
        ({"count": 0}, {}, "count 0"),
        ({"count": "40"}, {}, "count '40'"),
        ({"version": 3}, {}, "SOG version 3"),
        ({"means": {**meta["means"], "files": ["../../etc/passwd", "means_u.webp"]}}, {}, "not a plain file name"),
        ({"means": {**meta["means"], "mins": [0, float("nan"), 0]}}, {}, "means.mins is not a list of 3 finite"),
        ({"scales": {"codebook": [], "files": ["scales.webp"]}}, {}, "scales.codebook is not a list of 1-256"),
        ({"sh0": {"codebook": [0.0] * 10, "files": ["sh0.webp"]}}, {}, "sh0 image indexes entry"),
        ({"shN": {**meta["shN"], "bands": 4}}, {}, "shN.bands 4"),
        ({}, {"quats.webp": png.getvalue()}, "'quats.webp' is not a WebP file"),
        ({}, {"quats.webp": webp_bytes(np.zeros((8, 8, 4), np.uint8), lossless=False)}, "lossy WebP"),
        ({}, {"scales.webp": small}, "4x4 texels, fewer than the 40"),
        ({}, {"sh0.webp": webp_bytes(np.zeros((400, 400, 4), np.uint8))}, "far more than the 40"),
        ({}, {"shN_centroids.webp": webp_bytes(np.zeros((1, 64, 4), np.uint8))}, "palette image"),
        ({}, {"sh0.webp": b"RIFF\x10\0\0\0WEBPVP8L" + b"\0" * 16}, "cannot be decoded"),
    ]
    for i, (meta_change, file_change, match) in enumerate(cases):
        path = save_sog(tmp_path / f"case{i}", {**meta, **meta_change}, {**files, **file_change})
        assert_refused(path, match)
    del meta["version"]
    assert_refused(save_sog(tmp_path / "v1", meta, files), "SOG v1")
    missing = save_sog(
        tmp_path / "missing", {**meta, "version": 2}, {k: v for k, v in files.items() if "quats" not in k}
    )
    assert_refused(missing, "'quats.webp': .* file not found")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"cameras": []}))
    assert_refused(other, "a JSON file that is not a SOG meta.json")
    (tmp_path / "broken.json").write_text("{ not json")
    assert_refused(tmp_path / "broken.json", "not valid JSON")


def test_hostile_zips_areassert_refused(tmp_path):
    meta, files = _good(tmp_path)

    def zipped(name, entries):  # noqa: ANN001, ANN202
        with zipfile.ZipFile(tmp_path / name, "w", zipfile.ZIP_DEFLATED) as z:
            for entry, data in entries.items():
                z.writestr(entry, data)
        return tmp_path / name

    body = {"meta.json": json.dumps(meta), **files}
    assert_refused(zipped("traversal.sog", {**body, "../evil.webp": b"x"}), "points outside the archive")
    assert_refused(zipped("absolute.sog", {**body, "/etc/x": b"x"}), "points outside the archive")
    assert_refused(zipped("nometa.sog", files), "without meta.json")
    assert_refused(
        zipped("missing.sog", {k: v for k, v in body.items() if k != "sh0.webp"}), "'sh0.webp' is not in the"
    )
    bomb = zipped("bomb.sog", {**body, "sh0.webp": b"\0" * (64 << 20)})  # deflates ~1000:1
    assert_refused(bomb, "zip entry 'sh0.webp' claims 67108864 bytes")
    # the same bomb with its sizes rewritten small: the inflated bytes are still bounded
    data = bytearray(bomb.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = -1
        while (at := data.find(sig, at + 1)) >= 0:
            if data[at + (30 if sig == b"PK\x03\x04" else 46) :].startswith(b"sh0.webp"):
                data[at + offset : at + offset + 4] = (1000).to_bytes(4, "little")
    (tmp_path / "liar.sog").write_bytes(bytes(data))
    assert_refused(tmp_path / "liar.sog", "sh0.webp")
    (tmp_path / "junk.sog").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    assert_refused(tmp_path / "junk.sog", "not a readable zip archive")


HUGE_COUNT_SCRIPT = """
import sys
from ovseg_core.errors import SceneFormatError
from ovseg_core.io import load_scene
for path in sys.argv[1:]:
    try:
        load_scene(path)
    except SceneFormatError as e:
        print("refused:", e)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("peak MiB", int(hwm.split()[1]) // 1024)
"""


def test_huge_claimed_counts_are_refused_with_a_small_peak_memory(tmp_path):
    meta, files = _good(tmp_path)
    paths = [save_sog(tmp_path / f"c{c}.sog", {**meta, "count": c}, files) for c in (2**31, (1 << 26) - 1)]
    done = subprocess.run([sys.executable, "-c", HUGE_COUNT_SCRIPT, *map(str, paths)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("refused:") == 2, done.stdout
    # decoding 2^31 texels would take 8 GiB per image; the imports (torch) take a few hundred MiB
    assert int(done.stdout.split("peak MiB")[1]) < 1024, done.stdout


def test_real_playbot_sog_is_read_and_detected_y_down(shared_data):
    from ovseg_core.orientation import detect_up

    scene = load_scene(shared_data / "playcanvas_playbot_sog_lod3")
    assert scene.num_gaussians == 31_000 and scene.sh_degree == 2
    up = detect_up(scene.means.numpy(), opacities=scene.opacities.numpy())
    assert up.axis == "-y" and up.source == "geometry"  # its feet near y = 0, its head near y = -1
