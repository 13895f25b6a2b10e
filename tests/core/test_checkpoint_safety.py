"""Hostile fields checkpoints and instance files are refused at load time, before any numba kernel
indexes with them (out-of-range code indices used to crash ``ovseg-query`` with a segfault)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from ovseg_core.errors import FieldMismatchError
from ovseg_core.fields import load_fields
from ovseg_core.fields.language_fields import LanguageFields, LevelCodes
from ovseg_core.instances import InstanceSet, load_instances
from ovseg_core.io import save_scene
from ovseg_core.models import tiny_open_clip
from ovseg_core.synthetic import random_scene

TINY_CLIP_PREFIX = "open_clip:ovseg-tiny-clip:random-seed"  # the tiny test CLIP's encoder name (seed follows)
N, J, E = 200, 4, 16


def _fields(scene, dim: int, **level) -> LanguageFields:
    g = torch.Generator().manual_seed(0)
    codes = {
        "idx": torch.randint(0, E, (N, J), generator=g),
        "val": torch.rand(N, J, generator=g),
        "basis": torch.randn(E, dim, generator=g),
        **level,
    }
    return LanguageFields(
        levels={0: LevelCodes(**codes)},
        method="lifted",
        encoder_name=f"{TINY_CLIP_PREFIX}0",
        embed_dim=dim,
        scene_fingerprint=scene.fingerprint(),
        num_gaussians=N,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    scene = random_scene(N, seed=7)
    save_scene(scene, root / "scene.ply")
    return root, scene, tiny_open_clip(seed=0).embed_dim


@pytest.mark.parametrize(
    ("name", "level", "match"),
    [
        (
            "out_of_range",
            {"idx": torch.full((N, J), 10**9)},
            r"code indices span 1000000000\.\.1000000000 but the basis",
        ),
        ("negative", {"idx": -torch.ones(N, J, dtype=torch.long)}, "code indices span -1"),
        ("float_idx", {"idx": torch.full((N, J), 1.5)}, "not integers"),
        (
            "short",
            {"idx": torch.zeros(N - 5, J, dtype=torch.long), "val": torch.ones(N - 5, J)},
            r"expected \[200, J\]",
        ),
        ("weights_shape", {"val": torch.ones(N, J + 1)}, "weights have shape"),
        ("nan_basis", {"basis": torch.full((E, 32), float("nan"))}, "basis contain NaN"),
        ("basis_dim", {"basis": torch.zeros(E, 3)}, r"expected \[E, "),
        ("empty_basis", {"basis": torch.zeros(0, 32), "idx": torch.zeros(N, J, dtype=torch.long)}, "basis has shape"),
        ("negative_evidence", {"evidence": -torch.ones(N)}, "evidence must be finite floats >= 0"),
        ("nan_evidence", {"evidence": torch.full((N,), float("nan"))}, "evidence must be finite floats >= 0"),
        ("evidence_shape", {"evidence": torch.ones(N - 1)}, r"evidence has shape \[199\], expected \[200\]"),
    ],
)
def test_bad_checkpoints_are_refused_on_load(setup, name, level, match):
    root, scene, dim = setup
    assert dim == 32  # the tiny CLIP's width, used by the basis cases above
    path = _fields(scene, dim, **level).save(root / f"{name}.pt")
    with pytest.raises(FieldMismatchError, match=match):
        load_fields(path)


def test_valid_checkpoint_still_loads(setup):
    root, scene, dim = setup
    path = _fields(scene, dim).save(root / "good.pt")
    assert load_fields(path, scene).levels[0].idx.shape == (N, J)
    assert load_fields(path, scene).levels[0].evidence is None  # unknown, as in trained codes


def test_valid_indices_are_stored_small_and_load_unchanged(setup):
    root, scene, dim = setup
    fields = _fields(scene, dim)
    path = fields.save(root / "small.pt")
    stored = torch.load(path, weights_only=True)
    assert stored["levels"][0]["idx"].dtype == torch.uint8  # E = 16 rows fit a byte
    back = load_fields(path, scene).levels[0].idx
    assert back.dtype == torch.int64 and torch.equal(back, fields.levels[0].idx)


def test_evidence_and_registered_codes_round_trip_and_are_checked(setup):
    root, scene, dim = setup
    evidence = torch.rand(N)
    evidence[:3] = 0  # never seen
    fields = _fields(scene, dim, evidence=evidence)
    g = torch.Generator().manual_seed(1)
    fields.gaussian_levels = {
        0: LevelCodes(torch.randint(0, E, (N, 8), generator=g), torch.rand(N, 8), fields.levels[0].basis, evidence)
    }
    back = load_fields(fields.save(root / "evidence.pt"), scene)
    torch.testing.assert_close(back.levels[0].evidence, evidence)
    torch.testing.assert_close(back.gaussian_levels[0].evidence, evidence)
    assert torch.equal(back.gaussian_levels[0].idx, fields.gaussian_levels[0].idx)
    # registered codes are indexed by the same kernels: an out-of-range index is refused too
    fields.gaussian_levels[0].idx[5, 2] = E + 3
    with pytest.raises(FieldMismatchError, match=r"\(registered\): level 0: code indices span"):
        load_fields(fields.save(root / "bad_registered.pt"))


def test_out_of_range_checkpoint_gives_a_clear_error_not_a_segfault(setup):
    root, scene, dim = setup
    path = _fields(scene, dim, idx=torch.full((N, J), 10**9)).save(root / "crash.pt")
    cmd = [sys.executable, "-m", "ovseg_app.query_cli", "fields", str(root / "scene.ply"), "--fields", str(path)]
    done = subprocess.run(
        [*cmd, "--prompt", "chair", "--export", str(root / "out.ply")], capture_output=True, text=True
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    assert "code indices span" in done.stderr and str(path) in done.stderr
    assert not (root / "out.ply").exists()


def test_bad_instance_files_are_refused(tmp_path):
    good = InstanceSet(
        labels=np.array([0, 1, -1, 1]),
        features=np.eye(2, 4, dtype=np.float32),
        sizes=np.array([1, 2]),
        support=np.array([3, 3]),
        scene_fingerprint="x",
    )
    assert load_instances(good.save(tmp_path / "good.pt")).num_instances == 2
    path = good.save(tmp_path / "i.pt")
    payload = torch.load(path, weights_only=True)
    for key, value, match in [
        ("labels", torch.tensor([0.0, 1.7, -1.0, 1.0]), "labels are torch.float32, not integers"),
        ("labels", torch.tensor([0, 5, -1, 1]), "labels must lie in"),
        ("features", torch.full((2, 4), float("inf")), "finite floats"),
        ("sizes", torch.tensor([-1, 2]), "sizes must not be negative"),
        ("support", None, "no support tensor"),
    ]:
        torch.save({**payload, key: value}, tmp_path / "bad.pt")
        with pytest.raises(FieldMismatchError, match=match):
            load_instances(tmp_path / "bad.pt")


HUGE_BASIS_SCRIPT = """
import resource, sys
import torch
from ovseg_core.errors import FieldMismatchError
from ovseg_core.fields import FieldQuery, load_fields
from ovseg_core.io import load_scene
from ovseg_core.models import tiny_open_clip
# a regression would try to allocate 160 GB for basis @ basis.T: fail fast instead of swapping
resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))
try:
    FieldQuery(load_fields(sys.argv[1], load_scene(sys.argv[2])), tiny_open_clip(seed=0))
except FieldMismatchError as e:
    print("refused:", e)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would report pytest's own size
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("peak MiB", int(hwm.split()[1]) // 1024)
"""


def test_oversized_basis_is_refused_before_any_large_allocation(setup):
    """200,000 basis rows with the scene's own fingerprint: queries would form a 160 GB Gram matrix."""
    root, scene, dim = setup
    g = torch.Generator().manual_seed(2)
    rows = 200_000
    fields = _fields(scene, dim, basis=torch.randn(rows, dim, generator=g), idx=torch.randint(0, rows, (N, J)))
    path = fields.save(root / "huge_basis.pt")
    done = subprocess.run(
        [sys.executable, "-c", HUGE_BASIS_SCRIPT, str(path), str(root / "scene.ply")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"refused: {path}: level 0 basis has 200,000 entries; at most 1024" in done.stdout, done.stdout
    peak = int(done.stdout.split("peak MiB")[1])
    assert peak < 2048, done.stdout  # the 26 MB basis and the imports, nothing of [E, E] size


def test_in_memory_fields_with_an_oversized_basis_are_refused_by_the_query(setup):
    """Fields built in memory skip loading's checks; the query refuses before the Gram matrix."""
    from ovseg_core.fields import FieldQuery
    from ovseg_core.fields.config import MAX_BASIS_ROWS

    _, scene, dim = setup
    rows = MAX_BASIS_ROWS + 1
    fields = _fields(scene, dim, basis=torch.randn(rows, dim), idx=torch.randint(0, rows, (N, J)))
    with pytest.raises(FieldMismatchError, match=f"basis has {rows:,} entries"):
        FieldQuery(fields, tiny_open_clip(seed=0))


@pytest.mark.parametrize(
    ("level", "match"),
    [
        ({"val": torch.full((N, J), 3e38)}, r"weights reach 3e\+38; values beyond 1e\+06"),
        ({"val": -torch.full((N, J), 2e6)}, r"weights reach 2e\+06"),
        ({"basis": torch.full((E, 32), 1e30)}, r"basis reach 1e\+30"),
    ],
)
def test_huge_weights_and_basis_values_are_refused(setup, level, match):
    root, scene, dim = setup
    path = _fields(scene, dim, **level).save(root / "huge_values.pt")
    with pytest.raises(FieldMismatchError, match=f"{path}: level 0: {match}"):
        load_fields(path, scene)


def test_trained_checkpoint_claiming_a_huge_codebook_is_refused_before_building_it(setup):
    from ovseg_core.fields.language_fields import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

    root, scene, dim = setup
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "method": "langsplatv2",
        "encoder": {"name": "tiny", "embed_dim": dim},
        "scene": {"fingerprint": scene.fingerprint(), "num_gaussians": N},
        # CodebookField(N, config) would allocate N x 2^24 logits and 2^24 x D codebooks first
        "config": {"field": {"num_layers": 4096, "codebook_size": 4096, "embed_dim": dim}},
        "levels": {0: {"logits": torch.zeros(N, 8), "codebooks": torch.zeros(1, 8, dim)}},
    }  # fmt: skip
    torch.save(payload, root / "huge_codebook.pt")
    with pytest.raises(FieldMismatchError, match="field settings claim 4096 x 4096 codebook entries; at most 1024"):
        load_fields(root / "huge_codebook.pt")


def test_instance_sizes_must_be_the_label_counts(tmp_path):
    good = InstanceSet(
        labels=np.array([0, 1, -1, 1]),
        features=np.eye(2, 4, dtype=np.float32),
        sizes=np.array([1, 2]),
        support=np.array([3, 3]),
        scene_fingerprint="x",
    )
    payload = torch.load(good.save(tmp_path / "i.pt"), weights_only=True)
    for key, value, match in [
        ("sizes", torch.tensor([10**12, 2]), "instance 0 claims 1,000,000,000,000 Gaussians but 1 are labelled"),
        ("sizes", torch.tensor([1, 3]), "instance 1 claims 3 Gaussians but 2 are labelled"),
        ("support", torch.tensor([3, 10**12]), "instance 1 claims 1,000,000,000,000 supporting views"),
    ]:
        torch.save({**payload, key: value}, tmp_path / "bad.pt")
        with pytest.raises(FieldMismatchError, match=f"^{tmp_path / 'bad.pt'}: {match}"):
            load_instances(tmp_path / "bad.pt")
