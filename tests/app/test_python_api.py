"""The one-call Python API (``ovseg_core.segment``, ``ovseg_core.open_fields``) answers as ``ovseg
query`` and the viewer do, finds a scene's fields beside it, and the README's example runs."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ovseg_core
from ovseg_app.demo import DEMO_FIELDS_PATH, DEMO_PATH
from ovseg_app.query_cli import main as query_main
from ovseg_app.viewer.session import ViewerSession
from ovseg_core.errors import FieldMismatchError, MissingFileError, UsageError
from ovseg_core.fields import LanguageFields, load_fields
from ovseg_core.fields.discovery import candidate_field_paths
from ovseg_core.io import load_scene, save_scene
from ovseg_core.models.registry import text_encoder_for
from ovseg_core.render import make_renderer
from ovseg_core.selection import SelectionConfig
from ovseg_core.synthetic import DEMO_OBJECTS

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def demo():
    scene = load_scene(DEMO_PATH)
    fields = load_fields(DEMO_FIELDS_PATH, scene)
    return scene, fields


def cli_selection(scene, tmp_path: Path, prompts: tuple[str, ...], *extra: str) -> np.ndarray:
    """``[N]`` bool: the Gaussians ``ovseg query fields`` exports, matched back by their centres."""
    out = tmp_path / "cli.ply"
    args = ["fields", str(DEMO_PATH), "--prompt", *prompts, "--export", str(out), "--overwrite", *extra]
    assert query_main(args) == 0
    exported = load_scene(out).means.numpy()
    means = scene.means.numpy()
    keys = {row.tobytes(): i for i, row in enumerate(means)}
    assert len(keys) == len(means)  # centres identify the Gaussians
    mask = np.zeros(len(means), bool)
    mask[[keys[row.tobytes()] for row in exported]] = True
    assert mask.sum() == len(exported)
    return mask


def viewer_selection(scene, fields, prompts: tuple[str, ...], **prompt) -> np.ndarray:
    session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=text_encoder_for(fields))
    session.set_prompt(positives=prompts, **prompt)
    return session.prompt_selection()


@pytest.mark.parametrize(
    ("prompts", "threshold"),
    [(("mug",), None), (("yellow ball", "blue box"), None), (("plant",), 0.9)],
)
def test_segment_answers_as_the_cli_and_the_viewer(demo, tmp_path, prompts, threshold):
    scene, fields = demo
    kwargs = {"threshold": threshold} if threshold is not None else {}
    mask = ovseg_core.segment(DEMO_PATH, None, prompts if len(prompts) > 1 else prompts[0], **kwargs)
    assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (scene.num_gaussians,)
    names = [o.name for o in DEMO_OBJECTS]
    truth = np.isin(scene.extras["object_id"], [k for k, n in enumerate(names) if any(p in n for p in prompts)])
    assert (mask & truth).sum() / (mask | truth).sum() >= 0.9  # it is the object asked for
    if threshold is not None:  # the threshold is passed on, not replaced by the default
        assert not np.array_equal(mask, ovseg_core.segment(DEMO_PATH, None, prompts[0]))

    extra = ("--threshold", str(threshold)) if threshold is not None else ()
    assert np.array_equal(mask, cli_selection(scene, tmp_path, prompts, *extra))
    assert np.array_equal(mask, viewer_selection(scene, fields, prompts, **kwargs))
    assert np.array_equal(mask, ovseg_core.segment(scene, fields, list(prompts), **kwargs))  # loaded inputs


def test_segment_options_reach_the_rule(demo):
    """Consistency and negatives reach the same rule the viewer applies."""
    scene, fields = demo
    plain = ovseg_core.segment(scene, fields, "mug", selection=SelectionConfig(enabled=False))
    consistent = ovseg_core.segment(scene, fields, "mug")
    assert not np.array_equal(plain, consistent)  # consistency is on by default
    session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=text_encoder_for(fields))
    session.set_prompt(positives=("mug",))
    session.set_consistency(enabled=False)
    assert np.array_equal(plain, session.prompt_selection())
    session.set_consistency(enabled=True)
    session.set_prompt(negatives=(), threshold=0.9)  # plain cosine against a stricter threshold
    cosine = ovseg_core.segment(scene, fields, "mug", negatives=(), threshold=0.9)
    assert np.array_equal(cosine, session.prompt_selection())


def test_segment_refuses_what_it_cannot_answer(demo, tmp_path):
    scene, fields = demo
    with pytest.raises(UsageError, match="empty"):
        ovseg_core.segment(scene, fields, "  ")
    with pytest.raises(UsageError, match="pass the scene as a path"):
        ovseg_core.segment(scene, None, "mug")
    other = scene.subset(np.arange(scene.num_gaussians) % 2 == 0)
    with pytest.raises(FieldMismatchError):
        ovseg_core.segment(other, fields, "mug")


def copy_scene(tmp_path: Path, name: str = "scene.ply") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_PATH, path)
    return path


def test_open_fields_finds_trained_and_lifted_fields_beside_the_scene(demo, tmp_path):
    scene, fields = demo
    beside = copy_scene(tmp_path / "a")
    shutil.copyfile(DEMO_FIELDS_PATH, tmp_path / "a" / "scene.fields.pt")
    found = ovseg_core.open_fields(beside)
    assert found.method == fields.method and found.scene_fingerprint == scene.fingerprint()

    logs = copy_scene(tmp_path / "b")  # an `ovseg train` log directory
    run = tmp_path / "b" / "langsplatv2_logs" / "run" / "checkpoints" / "10"
    run.mkdir(parents=True)
    shutil.copyfile(DEMO_FIELDS_PATH, run / "langsplatv2_ckpt.pt")
    assert ovseg_core.open_fields(logs, scene).source == str(run / "langsplatv2_ckpt.pt")

    lifted_scene = copy_scene(tmp_path / "c")  # lifted fields: per-Gaussian codes with evidence
    codes = dataclasses.replace(fields.codes_3d(0), evidence=torch.ones(scene.num_gaussians))
    lifted = LanguageFields(
        levels={0: codes},
        method="lift",
        encoder_name=fields.encoder_name,
        embed_dim=fields.embed_dim,
        scene_fingerprint=fields.scene_fingerprint,
        num_gaussians=fields.num_gaussians,
        config=fields.config,
    )
    (tmp_path / "c" / "scene_fields").mkdir()
    lifted.save(tmp_path / "c" / "scene_fields" / "lifted.pt")
    found = ovseg_core.open_fields(lifted_scene)
    assert found.method == "lift" and found.levels[0].evidence is not None
    assert ovseg_core.segment(lifted_scene, None, "mug").sum() > 0


def test_open_fields_names_where_it_looked(demo, tmp_path):
    scene, _ = demo
    lonely = copy_scene(tmp_path)
    with pytest.raises(MissingFileError) as err:
        ovseg_core.open_fields(lonely)
    for place in candidate_field_paths(lonely):
        assert str(place) in str(err.value)
    other = tmp_path / "other.ply"  # fields of another splat beside it are named and passed over
    save_scene(scene.subset(np.arange(scene.num_gaussians) % 2 == 0), other)
    shutil.copyfile(DEMO_FIELDS_PATH, tmp_path / "other.fields.pt")
    with pytest.raises(MissingFileError, match=re.escape(f"{tmp_path / 'other.fields.pt'}: trained on another splat")):
        ovseg_core.open_fields(other)


def readme_python_example() -> str:
    """The ```python blocks of README.md's "Python API" section, in order (one program)."""
    text = README.read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "README.md's Python API section has no python code block"
    return "\n".join(blocks)


def test_readme_python_api_example_runs(demo, tmp_path, monkeypatch):
    scene, _ = demo
    (tmp_path / "assets").symlink_to(DEMO_PATH.resolve().parent)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_python_example(), "README.md (Python API)", "exec"), namespace)
    mug = ovseg_core.segment(DEMO_PATH, None, "mug")
    assert np.array_equal(namespace["mask"], mug)
    assert load_scene(tmp_path / "mug.ply").num_gaussians == int(mug.sum())
    assert namespace["out"].rgb.shape[-1] == 3  # the rendering example ran too
