"""The CLI abuse list of ``ovseg-bench robustness``: each hostile invocation runs as a subprocess and
must exit non-zero with a one-line ``error:`` message and no traceback."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path


def _cli_abuse(tmp: Path) -> list[tuple[str, list[str]]]:
    """(label, argv) of hostile invocations; ``tmp`` holds the files they point at."""
    from ovseg_core.io import save_scene
    from ovseg_core.synthetic import random_scene

    scene = tmp / "victim.ply"
    save_scene(random_scene(50, seed=1), scene)
    a_file = tmp / "a_file.txt"
    a_file.write_text("not a folder")
    a_dir = tmp / "a_dir"
    a_dir.mkdir(exist_ok=True)
    (a_dir / "x.png").mkdir(exist_ok=True)
    fields = _fields_for(scene, tmp)
    evil = tmp / "evil_clip.pt"
    evil.write_bytes(pickle.dumps({"state_dict": _RunsCode()}))
    render = [sys.executable, "-m", "ovseg_app.render_cli"]
    train = [sys.executable, "-m", "ovseg_app.train_cli", "langsplatv2", "--sfm-dataset-path", str(tmp),
             "--reconstruction-path", str(scene), "--preprocess.tiny-models"]  # fmt: skip
    evaluate = [sys.executable, "-m", "ovseg_app.eval_lerf_cli", "--scene", str(scene), "--dataset", str(tmp),
                "--gt", str(a_dir)]  # fmt: skip
    query = [sys.executable, "-m", "ovseg_app.query_cli", "fields"]
    return [
        ("render --fps 0", [*render, str(scene), "--output", str(tmp / "o.mp4"), "--fps", "0"]),
        ("render --fov-deg 0", [*render, str(scene), "--output", str(tmp / "o.png"), "--fov-deg", "0"]),
        ("render --fov-deg 180", [*render, str(scene), "--output", str(tmp / "o.png"), "--fov-deg", "180"]),
        ("render --width 20000 --height 20000", [*render, str(scene), "--width", "20000", "--height", "20000"]),
        ("render --height 0", [*render, str(scene), "--output", str(tmp / "o.png"), "--height", "0"]),
        ("render --orbit-frames 0", [*render, str(scene), "--output", str(tmp / "o.mp4"), "--orbit-frames", "0"]),
        ("render --downsample 0", [*render, str(scene), "--output", str(tmp / "o.png"), "--downsample", "0"]),
        ("render output parent is a file", [*render, str(scene), "--output", str(a_file / "o.png")]),
        ("render output is a directory", [*render, str(scene), "--output", str(a_dir / "x.png")]),
        ("render output onto the input scene", [*render, str(scene), "--output", str(scene)]),
        ("render scene is a FIFO", [*render, str(tmp / "fifo.ply"), "--output", str(tmp / "o2.png")]),
        ("render scene is a directory", [*render, str(a_dir), "--output", str(tmp / "o3.png")]),
        ("render camera 100000x100000", [*render, str(scene), "--output", str(tmp / "o4.png"), "--camera",
                                         str(_big_camera(tmp))]),
        ("query --export onto the input scene", [*query, str(scene), "--fields", str(tmp / "none.pt"),
                                                 "--prompt", "chair", "--export", str(scene)]),
        ("query prompt of 100,000 characters", [*query, str(scene), "--fields", str(tmp / "none.pt"),
                                                "--prompt", "a" * 100_000]),
        ("query --clip-pretrained is a malicious pickle", [*query, str(scene), "--fields", str(fields),
                                                           "--prompt", "chair", "--export", str(tmp / "q.ply"),
                                                           "--clip-pretrained", str(evil)]),
        ("query checkpoint with out-of-range code indices", [*query, str(scene), "--fields",
                                                             str(_fields_for(scene, tmp, corrupt=True)),
                                                             "--prompt", "chair", "--export", str(tmp / "q.ply")]),
        ("query --level 7", [*query, str(scene), "--prompt", "chair", "--level", "7"]),
        ("query --threshold nan", [*query, str(scene), "--prompt", "chair", "--threshold", "nan"]),
        ("query empty prompt", [*query, str(scene), "--prompt", " "]),
        ("query --relevancy-dir is a file", [*query, str(scene), "--fields", str(fields), "--prompt", "chair",
                                             "--dataset", str(tmp), "--relevancy-dir", str(a_file)]),
        ("render --camera is a FIFO", [*render, str(scene), "--camera", str(tmp / "fifo.ply"),
                                       "--output", str(tmp / "o5.png")]),
        ("render --camera is not JSON", [*render, str(scene), "--camera", str(a_file), "--output", str(tmp / "o6.png")]),
        ("train --log-path parent is a file", [*train, "--log-path", str(a_file / "logs")]),
        ("train --log-path is a file", [*train, "--log-path", str(a_file)]),
        ("train --use-every-n-as-val 1", [*train, "--use-every-n-as-val", "1"]),
        ("train --run-name ..", [*train, "--run-name", ".."]),
        ("eval-lerf --output-dir is a file", [*evaluate, "--output-dir", str(a_file)]),
        ("query --export parent is a file", [*query, str(scene), "--fields", str(tmp / "none.pt"),
                                             "--prompt", "chair", "--export", str(a_file / "x.ply")]),
        ("query fields with a 200,000-row basis", [*query, str(scene), "--fields",
                                                   str(_fields_for(scene, tmp, rows=200_000, dim=64)),
                                                   "--prompt", "chair", "--export", str(tmp / "q2.ply")]),
        ("query instances with sizes of 10^12", [sys.executable, "-m", "ovseg_app.query_cli", "instances", str(scene),
                                                 "--instances", str(_lying_instances(scene, tmp)),
                                                 "--export-instances", str(tmp / "parts")]),
        ("render --camera with an all-zero w2c", [*render, str(scene), "--camera", str(_zero_camera(tmp)),
                                                  "--output", str(tmp / "o7.png")]),
    ]  # fmt: skip


class _RunsCode:
    """Unpickling this runs ``touch /tmp/ovseg-pwned``: weights_only loading must refuse it."""

    def __reduce__(self):  # noqa: ANN204
        return (os.system, ("touch /tmp/ovseg-pwned",))


def _fields_for(scene: Path, tmp: Path, corrupt: bool = False, rows: int = 8, dim: int = 512) -> Path:
    """A fields checkpoint for ``scene`` claiming OpenCLIP ViT-B-32 with a ``[rows, dim]`` basis
    (ViT-B-32 embeds into 512 dims; the encoder only loads after the checks); ``corrupt``: code indices far outside the basis (the checkpoint that used to segfault ``ovseg-query``)."""
    import torch

    from ovseg_core.fields.language_fields import LanguageFields, LevelCodes
    from ovseg_core.io import load_scene

    splat = load_scene(scene)
    n = splat.num_gaussians
    idx = torch.full((n, 2), 10**9) if corrupt else torch.randint(0, rows, (n, 2))
    fields = LanguageFields(
        levels={0: LevelCodes(idx=idx, val=torch.rand(n, 2), basis=torch.randn(rows, dim))},
        method="lifted", encoder_name="open_clip:ViT-B-32:openai", embed_dim=dim,
        scene_fingerprint=splat.fingerprint(), num_gaussians=n,
    )  # fmt: skip
    return fields.save(tmp / ("corrupt_fields.pt" if corrupt else f"fields_{rows}.pt"))


def _lying_instances(scene: Path, tmp: Path) -> Path:
    """Instances of ``scene`` whose stored sizes say 10^12 Gaussians."""
    import numpy as np

    from ovseg_core.instances import InstanceSet
    from ovseg_core.io import load_scene

    splat = load_scene(scene)
    instances = InstanceSet(
        labels=np.zeros(splat.num_gaussians, np.int64), features=np.eye(1, 512, dtype=np.float32),
        sizes=np.array([10**12]), support=np.array([1]), scene_fingerprint=splat.fingerprint(),
    )  # fmt: skip
    return instances.save(tmp / "lying.instances.pt")


def _zero_camera(tmp: Path) -> Path:
    path = tmp / "zero_camera.json"
    K = [[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]]
    path.write_text(json.dumps({"w2c": [[0.0] * 4] * 4, "K": K, "width": 64, "height": 48}))
    return path


def _big_camera(tmp: Path) -> Path:
    path = tmp / "big_camera.json"
    K = [[1000.0, 0, 50000], [0, 1000.0, 50000], [0, 0, 1]]
    w2c = [[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]]
    path.write_text(json.dumps({"w2c": w2c, "K": K, "width": 100000, "height": 100000}))
    return path


def run_cli_abuse(tmp: Path, timeout_s: float = 120.0) -> list[dict]:
    """Run every ``_cli_abuse`` case; each result says whether it ended with a one-line error."""
    tmp.mkdir(parents=True, exist_ok=True)
    if not (tmp / "fifo.ply").exists():
        os.mkfifo(tmp / "fifo.ply")
    rows = []
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for label, argv in _cli_abuse(tmp):
        t0 = time.perf_counter()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
            code, err = done.returncode, done.stderr
        except subprocess.TimeoutExpired:
            code, err = None, "timed out"
        # ours: "prog: error: ..."; tyro's parse errors sit in a box: "│ Error parsing X: ... │"
        lines = [ln.strip("│ ") for ln in err.splitlines() if "error:" in ln or "Error parsing" in ln]
        ok = code not in (0, None) and "Traceback" not in err and len(lines) >= 1
        rows.append(
            {
                "case": label,
                "exit": code,
                "seconds": round(time.perf_counter() - t0, 1),
                "ok": ok,
                "message": (lines[0] if lines else err.strip()[-200:])[:200],
            }
        )
    return rows
