"""``ovseg eval-lerf`` end to end: fields trained on a synthetic capture, annotations drawn from the
rendered objects, the scores and files the command writes, and its one-line errors."""

from __future__ import annotations

import json

import numpy as np
import torch
from lerf_annotations import labelme


def test_cli_end_to_end_on_trained_fields(tmp_path, capsys):
    import cv2
    import torch.nn.functional as F

    from ovseg_app.eval_lerf_cli import main
    from ovseg_core.camera import orbit_cameras
    from ovseg_core.fields.training import LanguageTrainConfig
    from ovseg_core.io import save_scene
    from ovseg_core.models.palette_models import PaletteImageEncoder, PaletteMaskGenerator, Vocabulary
    from ovseg_core.pipeline import train_from_dataset
    from ovseg_core.render import make_renderer
    from ovseg_core.synthetic import FLOATING_OBJECTS, floating_objects_scene, write_capture

    scene = floating_objects_scene(points_per_object=300)
    names = [o.name for o in FLOATING_OBJECTS]
    vocab = Vocabulary.build(names, [o.color for o in FLOATING_OBJECTS], dim=32, seed=0, name="floating")
    cams = orbit_cameras((0, 0, 0.05), 2.0, 6, elevation_deg=35, width=96, height=72)
    write_capture(scene, cams, tmp_path / "capture")
    result = train_from_dataset(
        scene,
        tmp_path / "capture",
        config=LanguageTrainConfig(feature_level=0, max_steps=120),
        mask_generator=PaletteMaskGenerator(vocab.colors.numpy()),
        image_encoder=PaletteImageEncoder(vocab),
    )
    result.fields.config["vocabulary"] = vocab.to_dict()  # lets the CLI rebuild the text encoder
    result.fields.save(tmp_path / "fields.pt")
    save_scene(scene, tmp_path / "scene.ply")

    # ground truth: outer contours of each object's rendered mask in views 0 and 3 (frames 1 and 4)
    renderer = make_renderer("cpu")
    onehot = F.one_hot(torch.from_numpy(scene.extras["object_id"]).long(), len(names)).float()
    for view in (0, 3):
        weight, obj = renderer.render(scene, cams[view], features=onehot).features[0].max(dim=-1)
        shapes = []
        for k, name in enumerate(names):
            mask = ((obj == k) & (weight > 0.5)).numpy().astype(np.uint8)
            if mask.sum() >= 40:
                contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                shapes.append((name, max(contours, key=cv2.contourArea).reshape(-1, 2).tolist()))
        labelme(tmp_path / "gt" / f"frame_{view + 1:05d}.json", f"frame_{view + 1:05d}", 72, 96, shapes)

    out = tmp_path / "eval"
    argv = [
        "--scene",
        str(tmp_path / "scene.ply"),
        "--fields",
        str(tmp_path / "fields.pt"),
        "--dataset",
        str(tmp_path / "capture"),
        "--gt",
        str(tmp_path / "gt"),
        "--name",
        "floating",
        "--output-dir",
        str(out),
        "--backend",
        "cpu",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "floating" in printed and "overall (scene-weighted)" in printed
    report = json.loads((out / "lerf_results.json").read_text())["overall"]
    assert report["num_queries"] >= 6
    # 96 x 72 views: the 29-pixel pooling merges neighbouring objects, so a few peaks land between
    # them (measured: mIoU 0.78, localisation 7 of 10)
    assert report["localization_accuracy_query_weighted"] >= 0.6, report
    assert report["mean_iou_query_weighted"] >= 0.65, report
    assert (out / "floating" / "frame_00001.png").is_file() and (out / "floating" / "frame_00004.png").is_file()

    # errors: one line, exit status 2
    assert main([*argv[:2], "--dataset", "a", "b", "--gt", str(tmp_path / "gt"), "--output-dir", str(out)]) == 2
    assert "ovseg-eval-lerf: error: --dataset needs one value per --scene (1), got 2" in capsys.readouterr().err
    assert (
        main(
            [
                *argv[:4],
                "--dataset",
                str(tmp_path / "capture"),
                "--gt",
                str(tmp_path / "nope"),
                "--output-dir",
                str(out),
            ]
        )
        == 2
    )
    assert "nope: annotation folder not found" in capsys.readouterr().err
