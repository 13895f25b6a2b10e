"""The whole language-field chain on synthetic captures: dataset on disk -> masks + features
(cached) -> LangSplatV2 training -> 3D and 2D text queries, with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovseg_core.camera import orbit_cameras
from ovseg_core.fields import FieldQuery, LanguageTrainConfig, load_fields
from ovseg_core.pipeline import PipelineProgress, PreprocessConfig, train_from_dataset
from ovseg_core.render import make_renderer
from ovseg_core.synthetic import FLOATING_OBJECTS, floating_objects_scene, write_capture

PALETTE = np.array([o.color for o in FLOATING_OBJECTS])
NAMES = [o.name for o in FLOATING_OBJECTS]


def ring_cameras(width: int, height: int, per_ring: int = 8):
    cams = []
    for elevation in (50, 10, -35):
        cams += orbit_cameras((0, 0, 0.05), 2.0, per_ring, elevation_deg=elevation, width=width, height=height)
    return cams


# planted_run: the session fixture in tests/conftest.py


def test_run_directory_has_the_reference_layout(planted_run):
    scene, root, result, encoder, masks, events = planted_run
    run = root / "logs" / "planted"
    assert result.checkpoint == run / "checkpoints" / "300" / "langsplatv2_ckpt.pt"
    header, *rows = (run / "metrics_log.csv").read_text().splitlines()
    assert header.split(",")[:3] == ["step", "train/loss", "train/cosine_loss_valid"]
    assert "val/cosine_loss_valid" in header and len(rows) >= 15
    assert any(p.name.endswith(".png") for p in (run / "images").iterdir())
    assert events[-1].phase == "train" and events[-1].fraction == pytest.approx(1.0)
    assert any(e.phase == "preprocess" for e in events)
    loaded = load_fields(result.checkpoint, scene)
    assert loaded.encoder_name == encoder.name


def test_planted_features_select_each_object_in_3d(planted_run):
    scene, root, result, encoder, _, _ = planted_run
    query = FieldQuery(load_fields(result.checkpoint, scene), encoder)
    truth = scene.extras["object_id"]
    for k, name in enumerate(NAMES):
        rel, level = query.gaussian_relevancy(name)
        selected, gt = rel > 0.5, truth == k
        iou = (selected & gt).sum() / (selected | gt).sum()
        assert iou >= 0.9, f"{name}: per-Gaussian IoU {iou:.3f}"


def test_planted_features_segment_each_object_in_2d(planted_run):
    scene, root, result, encoder, _, _ = planted_run
    query = FieldQuery(result.fields, encoder)
    renderer = make_renderer("cpu")
    onehot = F.one_hot(torch.from_numpy(scene.extras["object_id"]).long(), len(NAMES)).float()
    inter, union = np.zeros(len(NAMES)), np.zeros(len(NAMES))
    for cam in orbit_cameras((0, 0, 0.05), 2.0, 3, elevation_deg=25, width=128, height=96):  # unseen viewpoints
        weight, obj = renderer.render(scene, cam, features=onehot).features[0].max(dim=-1)
        codes = {lvl: query.render_codes(renderer, scene, cam, lvl) for lvl in query.levels}
        for k, name in enumerate(NAMES):
            gt = ((obj == k) & (weight > 0.5)).numpy()
            pred = query.pixel_relevancy(renderer, scene, cam, name, code_images=codes)[0] > 0.5
            inter[k] += (pred & gt).sum()
            union[k] += (pred | gt).sum()
    for k, name in enumerate(NAMES):  # IoU pooled over the views, so tiny occluded slivers do not dominate
        assert union[k] > 300 and inter[k] / union[k] >= 0.9, f"{name}: pixel IoU {inter[k] / union[k]:.3f}"


def test_preprocessing_cache_is_reused(planted_run, tmp_path):
    scene, root, result, encoder, masks, _ = planted_run
    calls = masks.calls
    train_from_dataset(
        scene,
        root,
        config=LanguageTrainConfig(feature_level=0, max_steps=2),
        mask_generator=masks,
        image_encoder=encoder,
    )
    assert masks.calls == calls  # every view came from the cache


@pytest.mark.slow
def test_tiny_real_models_run_the_whole_chain(tmp_path):
    from ovseg_core.models import tiny_open_clip, tiny_sam2

    scene = floating_objects_scene(points_per_object=300, backdrop=3000)  # no empty (unlearnable) background
    write_capture(scene, orbit_cameras((0, 0, 0.05), 2.0, 3, elevation_deg=30, width=64, height=48), tmp_path)
    masks, encoder = tiny_sam2(), tiny_open_clip()
    result = train_from_dataset(
        scene,
        tmp_path,
        config=LanguageTrainConfig(feature_level=0, max_steps=15, log_every=1),
        mask_generator=masks,
        image_encoder=encoder,
        log_path=tmp_path / "logs",
    )
    assert len(result.history) == 15
    # mean masked cosine loss over all training views, before and after the 15 steps. The tiny random
    # CLIP's crop features are close to one another, so the loss plateaus near 0.4x its start
    # (torch 2.14: 0.57x after 15 steps, 0.47x after 30, 0.38x after 60); 15 steps must cut it clearly.
    assert result.final_losses[0] <= 0.7 * result.initial_losses[0], (result.initial_losses, result.final_losses)
    rel, _ = FieldQuery(load_fields(result.checkpoint, scene), encoder).gaussian_relevancy("a red ball")
    assert rel.shape == (scene.num_gaussians,) and np.isfinite(rel).all()


def test_lifting_selects_each_object_without_training(planted_run, tmp_path):
    scene, root, _, encoder, masks, _ = planted_run
    events: list[PipelineProgress] = []
    result = train_from_dataset(
        scene,
        root,
        config=LanguageTrainConfig(feature_level=0),
        use_every_n_as_val=6,
        mask_generator=masks,
        image_encoder=encoder,
        method="lift",
        log_path=tmp_path,
        run_name="lift",
        progress=events.append,
    )
    assert result.checkpoint == tmp_path / "lift" / "checkpoints" / "0" / "langsplatv2_ckpt.pt"
    # the held-out validation views (every 6th of 24) are never lifted
    lifted_views = result.fields.config["views"]
    held_out = {f"frame_{i:05d}" for i in range(0, 24, 6)}
    assert len(lifted_views) == 20 and not any(v.split("/")[-1].split(".")[0] in held_out for v in lifted_views)
    assert events[-1].message.endswith("view 20/20")
    fields = load_fields(result.checkpoint, scene)
    assert fields.method == "lift" and fields.levels.keys() == {0}
    query = FieldQuery(fields, encoder)
    truth = scene.extras["object_id"]
    for k, name in enumerate(NAMES):
        selected = query.gaussian_relevancy(name)[0] > 0.5
        iou = (selected & (truth == k)).sum() / (selected | (truth == k)).sum()
        assert iou >= 0.85, f"{name}: lifted per-Gaussian IoU {iou:.3f}"


def test_concept_fusion_changes_features_and_results(planted_run):
    from ovseg_core.preprocess.concept_fusion import fuse_local_global

    # the formula on a hand-made case: two masks, one equal to the global feature
    g = torch.tensor([1.0, 0.0])
    local = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    w = torch.softmax(torch.tensor([1.0, 0.0]), 0)  # cosines 1 and 0, temperature 1
    expect = F.normalize(w[:, None] * g + (1 - w[:, None]) * local, dim=1)
    torch.testing.assert_close(fuse_local_global(local, g), expect)
    # through the pipeline: a different cache, different features, a measurably different field
    scene, root, _, encoder, masks, _ = planted_run
    plain = train_from_dataset(
        scene,
        root,
        config=LanguageTrainConfig(feature_level=0),
        mask_generator=masks,
        image_encoder=encoder,
        method="lift",
    )
    fused = train_from_dataset(
        scene,
        root,
        config=LanguageTrainConfig(feature_level=0),
        mask_generator=masks,
        image_encoder=encoder,
        method="lift",
        preprocess=PreprocessConfig(concept_fusion=True),
    )
    caches = {p.name for p in (root / ".ovseg_cache" / "preprocess").iterdir() if p.is_dir()}
    assert len(caches) == 2
    a = FieldQuery(plain.fields, encoder).gaussian_relevancy("red ball")[0]
    b = FieldQuery(fused.fields, encoder).gaussian_relevancy("red ball")[0]
    assert np.abs(a - b).mean() > 0.005 and np.abs(a - b).max() > 0.02


def test_eta_model_times_the_contributions_phase_and_only_steps_after_it():
    from ovseg_core.fields.training import TrainProgress
    from ovseg_core.pipeline.progress import EtaModel

    nan = float("nan")
    eta = EtaModel(levels=1, views=4)

    def contrib(done: int, now: float) -> str:
        t = TrainProgress(1, 0, 100, nan, nan, now - 100.0, "contributions", done, 4)
        return eta.update(PipelineProgress("train", 0.3, "level 1 step 0/100, loss nan", t), now=now)

    assert "precomputing view contributions 0/4" in contrib(0, 100.0) and eta.eta_s is None
    assert "contributions 1/4" in contrib(1, 110.0)  # 10 s a view: 30 s left in this phase
    assert eta.eta_s == pytest.approx(30.0)
    contrib(4, 140.0)
    for step in range(1, 11):  # 0.1 s a step after the 40 s phase; the trainer's own ETA would be ~4000 s
        now = 140.0 + 0.1 * step
        t = TrainProgress(1, step, 100, 0.5, 0.4, now - 100.0)
        message = eta.update(PipelineProgress("train", 0.3, "", t), now=now)
    assert t.eta_s > 300  # the trainer's own ETA counts the contributions phase as step time
    assert eta.eta_s == pytest.approx(9.0, rel=0.15), eta.eta_s
    assert message.startswith("level 1 step 10/100, loss 0.4000") and "s left" in message
    t = TrainProgress(1, 100, 100, 0.5, 0.4, 60.0, "register", 0, 4)
    assert "registering" in eta.update(PipelineProgress("train", 1.0, "", t), now=200.0) and eta.eta_s is None


def test_eta_model_of_a_phase_comes_from_its_own_rate():
    from ovseg_core.pipeline.progress import EtaModel

    eta = EtaModel()
    assert eta.update(PipelineProgress("preprocess", 0.0, "preprocessing view 0/10"), now=0.0).endswith("0/10")
    message = eta.update(PipelineProgress("preprocess", 0.15, "preprocessing view 5/10"), now=10.0)
    assert eta.eta_s == pytest.approx(10.0) and "~10 s left in preprocessing" in message


def test_fields_config_is_stamped_into_the_result_and_the_checkpoint(tmp_path):
    from planted_models import ColourMaskGenerator, PlantedEncoder

    scene = floating_objects_scene(points_per_object=60, backdrop=300)
    write_capture(scene, orbit_cameras((0, 0, 0.05), 2.0, 3, elevation_deg=30, width=32, height=24), tmp_path / "cap")
    events: list[PipelineProgress] = []
    result = train_from_dataset(
        scene,
        tmp_path / "cap",
        config=LanguageTrainConfig(feature_level=0, max_steps=3),
        log_path=tmp_path / "logs",
        mask_generator=ColourMaskGenerator(PALETTE),
        image_encoder=PlantedEncoder(PALETTE, NAMES),
        progress=events.append,
        fields_config={"note": {"made_by": "test"}},
    )
    assert result.fields.config["note"] == {"made_by": "test"}
    assert load_fields(result.checkpoint, scene).config["note"] == {"made_by": "test"}
    checked = [e.checked for e in events if e.checked]
    assert checked == ["masks in all 3 views checked"]  # the census ran once, before training
