"""``ovseg query --relevancy-dir`` paints exactly the pixels of the 3D answer it exports (as the viewer does), on a faint
tabletop scene where scoring each pixel's blended feature (LERF's per-pixel definition) does not."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from ovseg_app.query_cli import main as query_main
from ovseg_app.render_cli import main as render_main
from ovseg_core.data import load_dataset
from ovseg_core.fields import FieldQuery, load_fields
from ovseg_core.fields.config import LiftConfig
from ovseg_core.fields.lifting import lift_language_fields
from ovseg_core.io import load_scene, save_scene
from ovseg_core.models.palette_models import VocabularyTextEncoder
from ovseg_core.render import make_renderer
from ovseg_core.render.frames import grow, to_u8
from ovseg_core.selection import SelectionConfig, consistent_selection, graph_for
from ovseg_core.synthetic import write_capture
from ovseg_core.synthetic.tabletop_capture import noisy_planted_views, tabletop_capture


@pytest.fixture(scope="module")
def lifted_capture(tmp_path_factory):
    root = tmp_path_factory.mktemp("heat")
    cap = tabletop_capture(3, 150, cameras_per_ring=3, width=96, height=54, table=700, floaters=40)
    renderer = make_renderer("cpu")
    save_scene(cap.scene, root / "scene.ply")
    scene = load_scene(root / "scene.ply")  # what the CLI reads
    text = VocabularyTextEncoder(cap.vocabulary)
    fields = lift_language_fields(
        scene, noisy_planted_views(cap, renderer), [1], renderer, LiftConfig(), encoder_name=text.name
    )
    fields.config["vocabulary"] = cap.vocabulary.to_dict()  # the text encoder comes back from the checkpoint
    fields.save(root / "fields.pt")
    write_capture(scene, cap.cameras[-2:], root / "capture", renderer=renderer)
    return root, scene, text


def test_relevancy_images_paint_the_pixels_whose_gaussian_is_selected(lifted_capture, tmp_path):
    root, scene, text = lifted_capture
    args = ["fields", str(root / "scene.ply"), "--fields", str(root / "fields.pt"), "--prompt", "red mug"]
    assert query_main([*args, "--dataset", str(root / "capture"), "--relevancy-dir", str(tmp_path / "heat")]) == 0
    query = FieldQuery(load_fields(root / "fields.pt", scene), text)
    rel, level = query.gaussian_relevancy("red mug")
    answer = consistent_selection(graph_for(scene, SelectionConfig()), rel, 0.5, query.evidence(level))
    renderer = make_renderer("cpu")
    dataset = load_dataset(root / "capture", reconstruction_metadata=scene.metadata)
    painted_any = 0
    for view in dataset:
        out = renderer.render(scene, view.camera, top_k=1)
        top = out.contrib_ids[0, ..., 0].long().numpy()
        expect = (out.alpha[0, ..., 0].numpy() >= 0.5) & (top >= 0) & answer[np.clip(top, 0, None)]
        image = iio.imread(tmp_path / "heat" / f"{view.name.rsplit('.', 1)[0].rsplit('/', 1)[-1]}.png")
        plain = to_u8(out.rgb[0].clamp(0, 1).numpy())
        painted = (image != plain).any(axis=-1)
        # the viewer's relevancy colouring: the answer's pixels painted, outlined just outside them
        assert painted[expect].all()
        assert not (painted & ~grow(expect)).any()
        painted_any += int(painted.sum())
    assert painted_any > 50  # the mug shows


def test_render_relevancy_mode_draws_what_query_draws(lifted_capture, tmp_path):
    root, _, _ = lifted_capture
    scene, capture = str(root / "scene.ply"), str(root / "capture")
    args = ["--fields", str(root / "fields.pt"), "--prompt", "red mug", "blue box"]
    assert query_main(["fields", scene, *args, "--dataset", capture, "--relevancy-dir", str(tmp_path / "heat")]) == 0
    first = sorted((tmp_path / "heat").glob("*.png"))[0]
    out = tmp_path / "view0.png"
    assert (
        render_main([scene, *args, "--dataset", capture, "--view", "0", "--mode", "relevancy", "--output", str(out)])
        == 0
    )
    np.testing.assert_array_equal(iio.imread(out), iio.imread(first))
    assert render_main([scene, "--mode", "relevancy", "--output", str(tmp_path / "x.png")]) == 2  # no prompt


def test_prompt_modes_without_fields_name_where_they_looked(lifted_capture, tmp_path, capsys):
    """``ovseg render`` and ``ovseg query`` find fields by the one discovery rule and say where they looked."""
    _, scene, _ = lifted_capture
    bare = save_scene(scene, tmp_path / "bare.ply")
    out = str(tmp_path / "x.png")
    assert render_main([str(bare), "--mode", "relevancy", "--prompt", "red mug", "--output", out]) == 2
    err = capsys.readouterr().err
    assert "no language fields for" in err and "bare.fields.pt" in err and "pass --fields" in err, err
    assert query_main(["fields", str(bare), "--prompt", "red mug", "--export", str(tmp_path / "m.ply")]) == 2
    err = capsys.readouterr().err
    assert "no language fields for" in err and "bare.fields.pt" in err and "pass --fields" in err, err
