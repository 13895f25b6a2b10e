"""The viewer's session without a browser: GUI state in, frames, selections and exports out."""

from __future__ import annotations

import dataclasses
import io
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from planted_models import ColourMaskGenerator
from plyfile import PlyData
from served_viewer import served_viewer

from ovseg_app.viewer.session import VIEW_MODES, ViewerSession
from ovseg_app.viewer.training_job import TrainingJob, TrainingRequest
from ovseg_core.camera import Camera, orbit_cameras
from ovseg_core.errors import SceneFormatError
from ovseg_core.render import make_renderer
from ovseg_core.render.frames import DIM
from ovseg_core.synthetic import FLOATING_OBJECTS, write_capture

PALETTE = np.array([o.color for o in FLOATING_OBJECTS])
NAMES = [o.name for o in FLOATING_OBJECTS]


@pytest.fixture(scope="module")
def trained(planted_run):
    """(scene, capture directory, fields, encoder) of the shared planted run (tests/conftest.py)."""
    scene, capture, result, encoder, _, _ = planted_run
    return scene, capture, result.fields, encoder


@pytest.fixture
def session(trained, tmp_path):
    scene, _, fields, encoder = trained
    return ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=tmp_path / "out")


def view_camera() -> Camera:
    return orbit_cameras((0, 0, 0.05), 2.0, 1, elevation_deg=30, width=160, height=120)[0]


def object_pixels(scene, camera: Camera, k: int) -> np.ndarray:
    onehot = F.one_hot(torch.from_numpy(scene.extras["object_id"]).long(), len(NAMES)).float()
    w = make_renderer("cpu").render(scene, camera, features=onehot).features[0].numpy()
    return w[..., k] > 0.5


def test_prompt_changes_the_frame_where_the_object_is(session, trained):
    scene = trained[0]
    cam = view_camera()
    rgb = session.render(cam, "rgb").astype(int)
    session.set_prompt(positives=["red ball"])
    heat = session.render(cam, "relevancy").astype(int)
    changed = np.abs(heat - rgb).sum(-1) > 30
    ball = object_pixels(scene, cam, 0)
    assert ball.sum() > 50
    assert changed[ball].mean() > 0.9 and changed[~ball].mean() < 0.02
    mask = session.render(cam, "mask")
    assert mask[ball].mean() > 2 * mask[~ball & (rgb.sum(-1) > 60)].mean()
    for mode in ("pca", "depth", "selection"):
        assert session.render(cam, mode).shape == (120, 160, 3)


def test_click_selects_the_instance_and_labels_it(session, trained):
    scene = trained[0]
    cam = view_camera()
    truth = scene.extras["object_id"]
    session.set_prompt(positives=["red ball", "blue cube"])
    hits = []
    for k in (0, 1):
        ys, xs = np.nonzero(object_pixels(scene, cam, k))
        hits.append((float(np.median(xs)) + 0.5, float(np.median(ys)) + 0.5))
    res = session.click(cam, hits[0], "medium", "replace")
    assert res.label == "red ball"
    iou = (session.selection & (truth == 0)).sum() / (session.selection | (truth == 0)).sum()
    assert iou >= 0.9
    res = session.click(cam, hits[1], "medium", "add")
    assert res.label == "blue cube" and res.selected_count == session.selection.sum()
    assert set(np.unique(truth[session.selection])) == {0, 1}
    session.click(cam, hits[0], "medium", "remove")
    assert set(np.unique(truth[session.selection])) == {1}
    session.clear_selection()
    assert not session.selection.any()
    assert session.click(cam, (1.0, 1.0), "medium").ids.size == 0  # empty background


def test_export_selection_prompt_and_complement(session, trained):
    scene = trained[0]
    truth = scene.extras["object_id"]
    session.set_prompt(positives=["green can"], threshold=0.5)
    data = session.export_ply("prompt")
    ply = PlyData.read(io.BytesIO(data))
    assert ply["vertex"].count == session.prompt_selection().sum()
    assert "f_dc_0" in ply["vertex"].data.dtype.names
    selected = session.prompt_selection()
    assert (selected & (truth == 3)).sum() / (selected | (truth == 3)).sum() >= 0.9
    rest = PlyData.read(io.BytesIO(session.export_ply("prompt-complement")))
    assert rest["vertex"].count == scene.num_gaussians - selected.sum()
    with pytest.raises(ValueError, match="selection is empty"):
        session.export_ply("selection")
    path = session.save_output("../../etc/evil name.ply", data)
    assert path.parent == session.output_dir and path.name == "evil_name.ply" and path.read_bytes() == data


def test_bad_state_is_refused(session):
    with pytest.raises(ValueError, match="threshold"):
        session.set_prompt(threshold=2.0)
    with pytest.raises(ValueError, match="level 3 is not in the loaded fields"):
        session.set_prompt(level=3)
    with pytest.raises(ValueError, match="unknown view mode"):
        session.render(view_camera(), "x-ray")


@pytest.mark.slow
def test_training_job_runs_in_the_background_and_swaps_fields(trained, tmp_path):
    scene, root, _, _ = trained
    lock = threading.RLock()
    session = ViewerSession(scene, make_renderer("cpu"), device_lock=lock)
    from ovseg_core.models.registry import text_encoder_for

    job = TrainingJob(scene, session.renderer, on_finished=lambda f: session.set_fields(f, text_encoder_for(f)))
    small = tmp_path / "capture"
    write_capture(scene, orbit_cameras((0, 0, 0.05), 2.0, 2, elevation_deg=30, width=48, height=36), small)
    job.start(TrainingRequest(small, levels=(0,), steps=8, model_size="tiny-random"))
    frames = 0
    while not job.wait(0.05):  # the viewer keeps rendering meanwhile
        session.render(view_camera(), "rgb")
        frames += 1
    assert job.state == "done", job.message
    assert job.fraction == 1.0 and job.losses and session.fields is not None and session.levels == [0]
    assert frames >= 1
    job.start(TrainingRequest(small, levels=(0,), steps=100_000, model_size="tiny-random"))
    with pytest.raises(RuntimeError, match="already in progress"):
        job.start(TrainingRequest(small, levels=(0,), steps=1, model_size="tiny-random"))
    job.cancel()
    job.wait(60)
    assert job.state == "cancelled"
    (tmp_path / "empty").mkdir()  # refused by the preflight, before any thread or model starts
    with pytest.raises(SceneFormatError, match="not a dataset"):
        job.start(TrainingRequest(tmp_path / "empty", levels=(0,), steps=1, model_size="tiny-random"))
    assert job.state == "cancelled"


def test_colormaps_and_browser_side_colours(session, trained):
    scene = trained[0]
    cam = view_camera()
    session.set_prompt(positives=["purple egg"])
    turbo_frame = session.render(cam, "relevancy")
    session.set_prompt(colormap="hot")
    assert not np.array_equal(session.render(cam, "relevancy"), turbo_frame)
    with pytest.raises(ValueError, match="unknown colormap"):
        session.set_prompt(colormap="rainbow")
    # browser-side display: per-Gaussian colours mark the prompt's object
    colors = session.gaussian_colors("relevancy")
    base = session.gaussian_colors("rgb")
    changed = np.abs(colors - base).sum(1) > 0.05
    egg = scene.extras["object_id"] == 4
    assert changed[egg].mean() > 0.9 and changed[~egg].mean() < 0.05


def test_ovseg_view_serves_the_demo_and_warns_on_open_hosts(tmp_path):
    import subprocess
    import sys
    import urllib.request

    command = [sys.executable, "-m", "ovseg_app.viewer.cli", "--host", "0.0.0.0", "--output-dir", str(tmp_path / "out")]
    with served_viewer(command) as (port, text):
        assert "vocabulary:ovseg-demo-tabletop-v1" in text and "anyone who can reach this machine" in text, text
        html = urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=10).read()
        assert b"<html" in html.lower() or b"<!doctype" in html.lower()
    bad = subprocess.run(
        [sys.executable, "-m", "ovseg_app.viewer.cli", str(tmp_path / "missing.ply")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "missing.ply" in bad.stderr


def test_instances_drive_clicks_the_list_and_per_instance_export(session, trained):
    from ovseg_core.pipeline import build_instances_from_dataset

    scene, root, _, encoder = trained
    instances = build_instances_from_dataset(scene, root, ColourMaskGenerator(PALETTE), encoder)
    session.set_instances(instances, encoder)
    session.set_prompt(positives=["blue cube", "red ball"])
    rows = session.instance_rows()
    assert len(rows) == 5 and {best for *_, best in rows} >= {"blue cube", "red ball"}
    truth = scene.extras["object_id"]
    cam = view_camera()
    ys, xs = np.nonzero(object_pixels(scene, cam, 1))
    res = session.click(cam, (float(np.median(xs)) + 0.5, float(np.median(ys)) + 0.5), "small")
    assert res.label == "blue cube" and (truth[session.selection] == 1).all()
    cube = next(k for k, _, _, best in rows if best == "blue cube")
    assert np.array_equal(np.flatnonzero(session.selection), np.flatnonzero(instances.labels == cube))
    ply = PlyData.read(io.BytesIO(session.export_instance_ply(cube)))
    assert ply["vertex"].count == (instances.labels == cube).sum()
    with pytest.raises(ValueError, match="no instance 99"):
        session.select_instance(99)


def test_tabs_have_their_own_prompt_and_selection_but_share_fields(session, trained):
    scene, _, fields, encoder = trained
    other = session.fork()
    session.set_prompt(positives=["red ball"])
    assert other.prompt.positives == () and session.prompt.positives == ("red ball",)
    cam = view_camera()
    ys, xs = np.nonzero(object_pixels(scene, cam, 0))
    session.click(cam, (float(np.median(xs)) + 0.5, float(np.median(ys)) + 0.5))
    assert session.selection.any() and not other.selection.any()
    other.set_fields(None, None)  # fields are shared: a change in one tab is seen by all
    assert session.query is None and session.encoder_name.startswith("none")
    session.set_fields(fields, encoder)
    assert other.query is not None


def test_each_tab_sets_its_own_spatial_consistency_over_one_shared_graph(session, trained):
    other = session.fork()
    session.set_prompt(positives=["red ball"])
    other.set_prompt(positives=["red ball"])
    consistent = session.prompt_selection()
    other.set_consistency(enabled=False)
    rel = other.gaussian_relevancy()
    assert rel is not None
    np.testing.assert_array_equal(other.prompt_selection(), rel > other.prompt.threshold)
    np.testing.assert_array_equal(session.prompt_selection(), consistent)  # this tab is unchanged
    assert session.selection_config.enabled and not other.selection_config.enabled
    other.set_consistency(enabled=True, neighbourhood_weight=0.0)  # each Gaussian alone
    assert other.selection_config.neighbourhood_weight == 0.0 and session.selection_config.neighbourhood_weight == 1.0
    assert other.graph() is session.graph()  # built once for every tab
    with pytest.raises(ValueError, match="neighbourhood_weight"):
        other.set_consistency(neighbourhood_weight=-1.0)
    assert other.selection_config.neighbourhood_weight == 0.0  # a refused value changes nothing


def test_box_select_invert_hide_and_undo(session, trained):
    scene = trained[0]
    truth = scene.extras["object_id"]
    cam = view_camera()
    ys, xs = np.nonzero(object_pixels(scene, cam, 1))  # the blue cube
    n = session.select_rect(cam, (xs.min(), ys.min()), (xs.max() + 1, ys.max() + 1))
    assert n > 0 and (truth[session.selection] == 1).mean() > 0.8 and session.selection[truth == 1].mean() > 0.8
    cube = session.selection.copy()
    session.invert_selection()
    assert not (session.selection & cube).any() and (session.selection | cube).all()
    session.undo()
    assert np.array_equal(session.selection, cube)
    session.redo()
    assert not (session.selection & cube).any()
    with pytest.raises(ValueError, match="nothing to redo"):
        session.redo()
    # hiding the cube: its pixels no longer show it, a click there cannot pick it, exports skip it
    session.set_selection(cube)
    before = session.render(cam, "rgb").astype(int)
    session.hide_selected()
    after = session.render(cam, "rgb").astype(int)
    pixels = object_pixels(scene, cam, 1)
    assert np.abs(after - before).sum(-1)[pixels].mean() > 30
    assert not session.selection.any()
    res = session.click(cam, (float(np.median(xs)) + 0.5, float(np.median(ys)) + 0.5), "medium", "replace")
    assert not (truth[res.ids] == 1).any()
    assert session.invert_selection() == (~cube).sum()
    assert not (session.export_mask("selection") & cube).any()
    with pytest.raises(ValueError, match="shape"):
        session.set_hidden(np.zeros(3, bool))


def test_hide_is_undone_with_the_selection_it_hid(session, trained):
    truth = trained[0].extras["object_id"]
    cube = truth == 1
    session.set_selection(cube)
    session.hide_selected()
    assert session.hidden.sum() == cube.sum() and not session.selection.any()
    session.undo()  # the selection is back and nothing is hidden
    assert np.array_equal(session.selection, cube) and not session.hidden.any()
    assert PlyData.read(io.BytesIO(session.export_ply("selection")))["vertex"].count == cube.sum()
    session.redo()  # hidden again
    assert session.hidden.sum() == cube.sum() and not session.selection.any()
    session.show_all()
    session.select(truth == 0, "add")
    session.set_hidden(truth == 0)  # hiding what is selected drops it from the selection, never both
    assert not (session.selection & session.hidden).any()
    session.undo()
    assert session.selection[truth == 0].all() and not session.hidden.any()


def test_the_prompt_answer_is_one_set_for_count_frame_selection_and_export(session, trained):
    scene = trained[0]
    cam = view_camera()
    session.set_prompt(positives=["red ball"], threshold=0.5)
    found = session.answer()
    assert found is not None and found.count > 0
    relevant = found.relevancy > 0.5
    ply = PlyData.read(io.BytesIO(session.export_ply("prompt")))
    assert ply["vertex"].count == found.count == session.answer().count
    assert session.select_from_prompt() == found.count
    # the frame highlights the answer's Gaussians: pixels it covers change, others do not
    answer = make_renderer("cpu").render(scene, cam, features=torch.from_numpy(found.gaussians[:, None] * 1.0))
    covered = answer.features[0, ..., 0].numpy() > 0.5
    session.clear_selection()
    rgb = session.render(cam, "rgb").astype(int)
    changed = np.abs(session.render(cam, "relevancy").astype(int) - rgb).sum(-1) > 30
    assert covered.sum() > 50 and changed[covered].mean() > 0.9
    session.set_consistency(enabled=False)  # without spatial consistency the answer is the plain threshold
    assert np.array_equal(session.answer().gaussians, relevant)


def test_no_match_shows_the_plain_frame_dimmed_without_speckle(session):
    cam = view_camera()
    rgb = session.render(cam, "rgb").astype(int)
    session.set_prompt(positives=["red ball"])
    top = session.answer().max_relevancy
    session.set_prompt(threshold=min(1.0, top + 1e-3))  # nothing passes
    assert session.answer().no_match
    for mode in ("relevancy", "heatmap", "mask"):
        frame = session.render(cam, mode).astype(int)
        assert np.abs(frame - np.round(DIM * rgb)).max() <= 1, mode


def test_the_selection_shows_in_every_view_mode(session, trained):
    scene = trained[0]
    cam = view_camera()
    session.set_prompt(positives=["green can"])
    plain = {mode: session.render(cam, mode).astype(int) for mode in VIEW_MODES}
    session.set_selection(scene.extras["object_id"] == 1)  # the blue cube
    cube = object_pixels(scene, cam, 1)
    for mode in VIEW_MODES:
        changed = np.abs(session.render(cam, mode).astype(int) - plain[mode]).sum(-1) > 30
        assert changed[cube].mean() > 0.8, mode
        if mode != "selection":  # that view also dims what is not selected
            assert changed[~cube].mean() < 0.03, mode


def test_relevancy_stats_and_no_match(session, trained):
    truth = trained[0].extras["object_id"]
    assert session.answer() is None  # no prompt
    session.set_prompt(positives=["red ball"], threshold=0.5)
    stats = session.answer()
    assert stats.count == session.prompt_selection().sum() and not stats.no_match
    assert (truth[session.prompt_selection()] == 0).mean() > 0.9
    session.set_prompt(threshold=min(1.0, stats.max_relevancy + 1e-3))
    assert session.answer().no_match
    heat = session.render(view_camera(), "heatmap")
    assert heat.shape == (120, 160, 3) and heat.std() > 0


def test_saving_never_overwrites_and_refuses_degenerate_names(session):
    first = session.save_output("mug.ply", b"one")
    second = session.save_output("mug.ply", b"two")
    assert first.name == "mug.ply" and second.name == "mug-1.ply"
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
    for bad in ("..", ".", "", "....ply", "/"):
        with pytest.raises(ValueError, match="not a usable file name"):
            session.save_output(bad, b"x")


def test_preflight_refuses_a_capture_that_does_not_see_the_splat(trained, tmp_path):
    from ovseg_app.viewer.training_job import preflight_capture

    scene = trained[0]
    away = tmp_path / "away"
    # cameras orbiting a point far from the splat, looking at it: the splat is behind or outside them
    write_capture(scene, orbit_cameras((40.0, 0, 0), 2.0, 4, elevation_deg=20, width=32, height=24), away)
    with pytest.raises(ValueError, match="do not see the loaded splat"):
        preflight_capture(scene, TrainingRequest(away, levels=(0,), model_size="tiny-random"))
    summary, dataset = preflight_capture(scene, TrainingRequest(trained[1], levels=(0,), model_size="tiny-random"))
    assert "24 views" in summary and len(dataset) == 24


def test_frames_keep_coming_while_instances_are_built(trained, tmp_path):
    scene, root, _, encoder = trained
    session = ViewerSession(scene, make_renderer("cpu"))
    job = TrainingJob(
        scene,
        session.renderer,
        on_instances=lambda payload: session.set_instances(*payload),
        models=(ColourMaskGenerator(PALETTE), encoder),
    )
    cam = view_camera()
    session.render(cam, "rgb")
    started = time.perf_counter()
    job.start(TrainingRequest(root, method="instances", log_path=tmp_path / "runs"))
    stamps = []
    while not job.wait(0.01):
        session.render(cam, "rgb")
        stamps.append(time.perf_counter())
    took = time.perf_counter() - started
    assert job.state == "done", job.message
    assert session.instances is not None and job.instances_path is not None and job.instances_path.is_file()
    gaps = np.diff([started, *stamps])
    # the build (preprocessing and one render per view) never holds the renderer for long
    assert len(stamps) >= 5 and gaps.max() < 0.5 * took, (len(stamps), gaps.max(), took)


def test_ovseg_view_refuses_bad_sizes_and_a_file_as_output_dir(tmp_path, capsys):
    from ovseg_app.viewer.cli import main

    for height in ("0", "100000"):
        assert main(["--height", height]) == 2
        assert "--height must be between" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["--output-dir", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["--output-dir", str(tmp_path / "file" / "sub")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_locked_renderer_holds_its_lock_only_while_rendering():
    from ovseg_app.viewer.locked_renderer import LockedRenderer
    from ovseg_core.synthetic import floating_objects_scene

    scene = floating_objects_scene(points_per_object=50, backdrop=100)
    inner = make_renderer("cpu")
    locked = LockedRenderer(inner)
    assert LockedRenderer(locked).inner is inner and LockedRenderer(locked).lock is locked.lock  # never nested
    cam = view_camera()
    seen = []

    class Spy:  # a renderer that records whether the lock is held while it runs
        name, settings = inner.name, inner.settings

        def render(self, *a, **k):  # noqa: ANN002, ANN003, ANN202
            def probe() -> None:
                got = locked.lock.acquire(blocking=False)
                seen.append(got)
                if got:
                    locked.lock.release()

            checker = threading.Thread(target=probe)
            checker.start()
            checker.join()
            return inner.render(*a, **k)

    locked.inner = Spy()
    locked.render(scene, cam)
    assert seen == [False]  # another thread could not take the lock during the render
    assert locked.lock.acquire(blocking=False)  # and it is free afterwards
    locked.lock.release()


def test_trainer_reports_contributions_before_the_first_step_and_cancels_there(trained):
    from ovseg_core.data import load_dataset
    from ovseg_core.errors import Cancelled
    from ovseg_core.fields import LanguageFieldTrainer, LanguageTrainConfig
    from ovseg_core.fields.config import FieldConfig
    from ovseg_core.pipeline import training_views
    from ovseg_core.preprocess import preprocess_views

    scene, root, _, encoder = trained
    dataset = load_dataset(root, reconstruction_metadata=scene.metadata)
    idx = [0, 1, 2]
    views = training_views(dataset, preprocess_views(dataset, ColourMaskGenerator(PALETTE), encoder, indices=idx), idx)
    seen = []
    cfg = LanguageTrainConfig(feature_level=0, max_steps=2, field=FieldConfig(codebook_size=8))
    LanguageFieldTrainer(scene, views, cfg, progress=seen.append).run()
    phases = [(p.phase, p.views_done, p.step) for p in seen]
    assert phases[:4] == [("contributions", k, 0) for k in range(4)]
    assert [p for p, _, _ in phases[4:]] == ["train", "train", "register"]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled, match="precomputing contributions"):
        LanguageFieldTrainer(scene, views, cfg, cancel=cancel).run()


def test_a_level_without_masks_in_any_view_is_refused_before_training(trained, tmp_path):
    from ovseg_core.models.protocols import MaskSet

    class NoSmallMasks(ColourMaskGenerator):
        def generate(self, image):  # noqa: ANN001, ANN202
            masks = super().generate(image)
            masks["s"] = MaskSet.empty(*image.shape[:2])
            return masks

    scene, _, _, encoder = trained
    capture = tmp_path / "capture"  # 3 views: no probe, every view is checked before training
    write_capture(scene, orbit_cameras((0, 0, 0.05), 2.0, 3, elevation_deg=30, width=48, height=36), capture)
    job = TrainingJob(scene, make_renderer("cpu"), models=(NoSmallMasks(PALETTE), encoder))
    job.start(TrainingRequest(capture, levels=(1,), steps=2, image_downsample_factor=1))
    job.wait(120)
    assert job.state == "failed" and "in any of the capture's 3 views" in job.error, job.message
    assert "level 0 (default): 3/3" in job.error and not job.losses
    job.start(TrainingRequest(capture, levels=(0,), steps=2, image_downsample_factor=1))
    job.wait(120)
    assert job.state == "done", job.message
    assert "masks in all 3 views checked" in job.preflight


def _demo_instances(scene):  # noqa: ANN001, ANN202
    from ovseg_app.demo import demo_vocabulary
    from ovseg_core.instances.instance_set import InstanceSet
    from ovseg_core.models.palette_models import VocabularyTextEncoder

    voc = demo_vocabulary()
    labels = scene.extras["object_id"].astype(np.int64)
    K = int(labels.max()) + 1
    return InstanceSet(
        labels=labels,
        features=voc.features.numpy()[:K],
        sizes=np.bincount(labels, minlength=K),
        support=np.ones(K, np.int64),
        scene_fingerprint=scene.fingerprint(),
        encoder_name=VocabularyTextEncoder(voc).name,
        config={"vocabulary": voc.to_dict()},
    )


def test_fields_instances_and_selections_come_back_after_a_restart(tmp_path):
    import shutil

    from ovseg_app.demo import DEMO_FIELDS_PATH
    from ovseg_app.viewer.cli import ViewCommand, load_session_inputs
    from ovseg_app.viewer.server import Viewer

    scene, fields, encoder, _ = load_session_inputs(ViewCommand())
    out = tmp_path / "out"

    def start(restore: bool = True) -> Viewer:
        session = ViewerSession(scene, make_renderer("cpu"), fields=fields, text_encoder=encoder, output_dir=out)
        return Viewer(session, host="127.0.0.1", port=0, restore=restore)

    copy = tmp_path / "copy.fields.pt"
    shutil.copy(DEMO_FIELDS_PATH, copy)
    v = start()
    v.load_fields(copy)
    v.session.set_instances(_demo_instances(scene))
    v.save_instances(None)
    mug = scene.extras["object_id"] == 1
    assert v.save_selection(None, "my mug!", mug) == "my_mug"
    with pytest.raises(ValueError, match="nothing selected"):
        v.save_selection(None, "empty", np.zeros_like(mug))
    v.stop()

    v = start()
    try:
        # the scene's own fields are in use; the loaded ones are listed, not made the default
        assert v.fields_index == 0 and v.session.fields is fields
        assert v.fields_history[1].path == copy.resolve() and v.fields_history[1].fields is None
        assert v.session.instances is not None and len(v.session.instances.sizes) == 5
        assert np.array_equal(v.saved.load_selection("my_mug"), mug) and v.saved.selection_names() == ["my_mug"]
        assert any("listed" in r for r in v.restored) and any("instances" in r for r in v.restored)
        v.use_fields(1)  # offered: one click brings them back
        assert v.session.fields is not None and v.session.fields is not fields
        v.use_fields(0)
        # a second instance set, then back to the first: the panel's list is the output folder's files
        first = v.saved.instances
        v.session.set_instances(_demo_instances(scene))
        v.save_instances(None)
        assert {f.name for f in v.instance_files()} == {"scene.instances-1.pt", "scene.instances.pt"}
        v.load_instances(first)
        assert v.saved.instances == first.resolve()
        v.use_fields(1)  # in use when this session ends
    finally:
        v.stop()
    v = start()
    assert v.fields_index == 0 and len(v.fields_history) == 2  # still listed, not in use
    v.stop()
    # a scene started without fields of its own gets back the ones in use when it was left
    bare = Viewer(ViewerSession(scene, make_renderer("cpu"), output_dir=out), host="127.0.0.1", port=0)
    assert bare.fields_index == 1 and bare.session.fields is not None and any("fields" in r for r in bare.restored)
    bare.stop()
    v = start(restore=False)
    assert v.session.instances is None and not any("instances" in r for r in v.restored)
    v.stop()

    # a damaged state file is set aside; the viewer starts with nothing restored
    state = next((out / "viewer_state").glob("*/state.json"))
    state.write_text("{not json")
    v = start()
    assert v.restored == [] and len(v.fields_history) == 1 and state.with_name("state.json.bad").is_file()
    v.stop()
    # another splat opened with the same output folder sees none of it
    other = dataclasses.replace(scene, means=scene.means + 1.0)
    from ovseg_app.viewer.saved_state import SavedState

    assert SavedState(out, other).selection_names() == [] and SavedState(out, scene).selection_names() == ["my_mug"]


def test_the_heat_overlay_reads_on_any_colour():
    from ovseg_core.render import frames

    region = np.zeros((40, 40), bool)
    region[10:30, 10:30] = True
    for colour in ([0.8, 0.05, 0.05], [0.1, 0.1, 0.9], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]):  # red: turbo's top end
        rgb = np.broadcast_to(np.float32(colour), (40, 40, 3)).copy()
        out = frames.heat_overlay(rgb, np.full((40, 40), 0.95), region, 0.5, "turbo")
        edge, ring = frames.outline(region), frames.grow(region) & ~region
        # the answer's border is white inside a black ring, whatever the object's colour
        assert (out[edge] == 1.0).all() and (out[ring] == 0.0).all()
        assert np.array_equal(out[~frames.grow(region)], rgb[~frames.grow(region)])  # the rest is untouched
