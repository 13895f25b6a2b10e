"""Hostile command lines end in one clear error line, before any work, and never replace an input
or an existing file without --overwrite; signals end a run with one line and no partial files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ovseg_app import query_cli, render_cli
from ovseg_app.cli_checks import check_output_file
from ovseg_core.io import save_scene
from ovseg_core.synthetic import random_scene


@pytest.fixture
def scene_path(tmp_path):
    path = tmp_path / "victim.ply"
    save_scene(random_scene(40, seed=1), path)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fps", "0"], "--fps must be a positive number"),
        (["--fov-deg", "0"], "--fov-deg must lie strictly between 0 and 180"),
        (["--fov-deg", "180"], "strictly between 0 and 180"),
        (["--width", "20000", "--height", "20000"], "20000x20000 is too large"),
        (["--height", "0"], "image size must be positive"),
        (["--orbit-frames", "0"], "--orbit-frames must lie in 1.."),
        (["--downsample", "0"], "--downsample must be a positive number"),
    ],
)
def test_render_values_are_refused_at_parse_time(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        render_cli.main(["--output", str(tmp_path / "o.png"), *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err  # tyro wraps long lines in its box
    assert not (tmp_path / "o.png").exists()


def _one_line_error(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}: error:") and "\n" not in err and "Traceback" not in err, err
    return err


def test_render_output_paths(tmp_path, capsys, scene_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "a_dir.png").mkdir()
    cases = [
        (a_file / "o.png", "is a file, not a directory"),
        (tmp_path / "a_dir.png", "is a directory"),
        (scene_path, "is an input of this command"),
        (tmp_path / "....png", "not a usable file name"),
    ]
    for output, message in cases:
        assert render_cli.main([str(scene_path), "--output", str(output)]) == 2
        assert message in _one_line_error(capsys, "ovseg-render")
    (tmp_path / "camera.json").write_text(
        json.dumps({"w2c": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]],
                    "K": [[1e3, 0, 5e4], [0, 1e3, 5e4], [0, 0, 1]], "width": 100000, "height": 100000})
    )  # fmt: skip
    args = [str(scene_path), "--camera", str(tmp_path / "camera.json"), "--output", str(tmp_path / "big.png")]
    assert render_cli.main(args) == 2
    assert "100000x100000 is too large" in _one_line_error(capsys, "ovseg-render")


def test_existing_output_needs_overwrite(tmp_path, capsys, scene_path):
    out = tmp_path / "o.png"
    args = [str(scene_path), "--output", str(out), "--width", "16", "--height", "12", "--backend", "cpu"]
    assert render_cli.main(args) == 0
    before = out.read_bytes()
    assert render_cli.main(args) == 2
    assert "already exists; pass --overwrite" in _one_line_error(capsys, "ovseg-render")
    assert out.read_bytes() == before
    assert render_cli.main([*args, "--overwrite"]) == 0


def test_query_refuses_hostile_prompts_and_exports(tmp_path, capsys, scene_path):
    with pytest.raises(SystemExit):
        query_cli.main(["fields", str(scene_path), "--prompt", "a" * 100_000, "--export", str(tmp_path / "x.ply")])
    assert "100,000 characters" in " ".join(capsys.readouterr().err.split())
    before = scene_path.read_bytes()
    base = ["fields", str(scene_path), "--fields", str(tmp_path / "none.pt"), "--prompt", "chair"]
    assert query_cli.main([*base, "--export", str(scene_path)]) == 2
    assert "is an input of this command" in _one_line_error(capsys, "ovseg-query")
    assert query_cli.main([*base, "--export", str(scene_path), "--overwrite"]) == 2  # never the input
    _one_line_error(capsys, "ovseg-query")
    assert scene_path.read_bytes() == before
    for name, message in [("..", "not a usable file name"), (".", "is a directory"), ("....ply", "not a usable")]:
        assert query_cli.main([*base, "--export", f"{tmp_path}/{name}"]) == 2  # pathlib drops a trailing "."
        assert message in _one_line_error(capsys, "ovseg-query")
    assert query_cli.main([*base, "--relevancy-dir", str(scene_path), "--dataset", str(tmp_path)]) == 2
    assert "is a file, not a directory" in _one_line_error(capsys, "ovseg-query")
    heat = tmp_path / "heat"
    heat.mkdir()
    (heat / "frame_00001.png").write_bytes(b"earlier result")
    assert query_cli.main([*base, "--relevancy-dir", str(heat), "--dataset", str(tmp_path)]) == 2
    assert "already holds PNG files; pass --overwrite" in _one_line_error(capsys, "ovseg-query")
    assert (heat / "frame_00001.png").read_bytes() == b"earlier result"


def test_training_without_sam2_says_how_to_install_it(tmp_path, scene_path):
    """A plain install has no SAM 2 (an extra): ``ovseg train`` says how to add it, in one line."""
    from random_capture import write_capture

    write_capture(tmp_path / "capture", num_views=2)
    # a meta-path finder that refuses ``sam2`` stands for an environment without the extra
    script = (
        "import sys\n"
        "class NoSam2:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sam2' or name.startswith('sam2.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoSam2())\n"
        "from ovseg_app.train_cli import main\n"
        f"sys.exit(main(['langsplatv2', '--sfm-dataset-path', {str(tmp_path / 'capture')!r}, "
        f"'--reconstruction-path', {str(scene_path)!r}, '--preprocess.tiny-models', '--log-path', "
        f"{str(tmp_path / 'logs')!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("ovseg-train: error:")]
    assert len(lines) == 1 and "SAM 2 is not installed" in lines[0] and "pip install" in lines[0], out.stderr


def test_output_file_check_accepts_ordinary_paths(tmp_path):
    check_output_file("--output", tmp_path / "new" / "deeper" / "out.ply")
    (tmp_path / "old.ply").write_text("x")
    check_output_file("--output", tmp_path / "old.ply", overwrite=True)
    with pytest.raises(ValueError, match="already exists"):
        check_output_file("--output", tmp_path / "old.ply")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_video_ends_with_one_line_and_no_partial_file(tmp_path, signum):
    out = tmp_path / "orbit.mp4"
    cmd = [sys.executable, "-m", "ovseg_app.render_cli", "--output", str(out), "--orbit-frames", "2000"]
    proc = subprocess.Popen(
        [*cmd, "--width", "64", "--height", "48", "--backend", "cpu"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    seen = ""
    while "frame 3/" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read(1)
    proc.send_signal(signum)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signum
    assert "Traceback" not in rest and f"stopped by {signal.Signals(signum).name}" in rest
    assert list(tmp_path.iterdir()) == []  # neither the video nor its hidden temporary file


@pytest.mark.slow
def test_sigterm_stops_training_like_ctrl_c(tmp_path, scene_path):
    from random_capture import write_capture

    write_capture(tmp_path / "capture", num_views=3)
    cmd = [sys.executable, "-m", "ovseg_app.train_cli", "langsplatv2", "--sfm-dataset-path", str(tmp_path / "capture")]
    cmd += ["--reconstruction-path", str(scene_path), "--preprocess.tiny-models", "--log-path", str(tmp_path / "logs")]
    cmd += ["--preprocess.cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 120
    seen = ""
    while "preprocess" not in seen.lower() and time.monotonic() < deadline:  # the first progress bar
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, seen + rest
    assert "Traceback" not in rest and "ovseg-train: interrupted" in rest
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes removed their temporary files


def test_train_and_eval_output_folders_are_checked_before_work(tmp_path, scene_path):
    from ovseg_app.eval_lerf_cli import EvalLerfCommand
    from ovseg_app.train_cli import TrainCommand

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    base = {"sfm_dataset_path": tmp_path, "reconstruction_path": scene_path}
    for kwargs, message in [
        ({"log_path": a_file / "logs"}, "is a file, so .* cannot be a directory"),
        ({"log_path": a_file}, "is a file, not a directory"),
        ({"run_name": ".."}, "not a usable folder name"),
        ({"use_every_n_as_val": 1}, "at least 2"),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainCommand(**base, **kwargs)
    TrainCommand(**base, log_path=tmp_path / "new" / "logs")  # a folder that can be made is fine
    gt = tmp_path / "gt"
    gt.mkdir()
    cmd = EvalLerfCommand(scene=(scene_path,), dataset=(tmp_path,), gt=(gt,), output_dir=a_file)
    with pytest.raises(ValueError, match="is a file, not a directory"):
        cmd._check()
