"""``ovseg-preprocess``: the ray executor writes the local executor's cache entries, a killed run
resumes without recomputing finished images, and a missing Ray says how to install it.

The tiny SAM 2 encodes at 1024 px whatever the image size (seconds per image), so these tests use
two images and share one local Ray instance and one reference cache per module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ovseg_app.preprocess_cli import main
from ovseg_core.camera import orbit_cameras
from ovseg_core.preprocess import load_view_features
from ovseg_core.preprocess.executor import RayConfig
from ovseg_core.synthetic import floating_objects_scene, write_capture

REPO = Path(__file__).resolve().parents[2]
TINY = ["--preprocess.tiny-models"]


def cache_entries(cache_root: Path) -> dict[str, Path]:
    """Entry name -> file, across the settings-key folders under ``cache_root``."""
    return {p.name: p for p in cache_root.glob("*/*.npz")}


def assert_same_entries(got: dict[str, Path], want: dict[str, Path]) -> None:
    assert sorted(got) == sorted(want)
    for name, path in want.items():
        with np.load(path) as a, np.load(got[name]) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(b[key], a[key], err_msg=f"{name}: {key}")


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("capture")
    scene = floating_objects_scene(points_per_object=200, backdrop=1500)
    write_capture(scene, orbit_cameras((0, 0, 0.05), 2.0, 2, elevation_deg=30, width=48, height=36), root)
    return root


@pytest.fixture(scope="module")
def reference(capture, tmp_path_factory) -> dict[str, Path]:
    """The local executor's entries, computed on one thread like each 1-CPU Ray actor (float sums in
    SAM 2 can round differently with another thread count)."""
    cache = tmp_path_factory.mktemp("reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([str(capture), *TINY, "--preprocess.cache-dir", str(cache), "--executor", "local"]) == 0
    finally:
        torch.set_num_threads(threads)
    entries = cache_entries(cache)
    assert len(entries) == 2
    return entries


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_executor_writes_the_local_executors_entries(capture, reference, local_ray, tmp_path, capsys):
    rc = main([str(capture), *TINY, "--preprocess.cache-dir", str(tmp_path), "--executor", "ray"])
    assert rc == 0
    assert "computed 2 of 2 images (0 already cached)" in capsys.readouterr().out
    assert_same_entries(cache_entries(tmp_path), reference)


@pytest.mark.slow
def test_a_killed_run_resumes_without_recomputing_finished_images(capture, reference, local_ray, tmp_path, capsys):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "ovseg_app.preprocess_cli",
        str(capture),
        *TINY,
        "--preprocess.cache-dir",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while not cache_entries(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no handler runs, like a crash or a lost node
    finally:
        proc.kill()
        _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    (first_name, first), *others = cache_entries(tmp_path).items()
    assert not others, "the run finished its second image before it was killed"
    key_dir = first.parent
    assert sorted(p.name for p in key_dir.iterdir()) == sorted([first_name, "settings.json"])  # no partial file
    assert load_view_features(first, with_masks=True).features.shape[0] > 0  # the entry is whole
    before = first.stat()

    rc = main([str(capture), *TINY, "--preprocess.cache-dir", str(tmp_path), "--executor", "ray"])
    assert rc == 0
    assert "computed 1 of 2 images (1 already cached)" in capsys.readouterr().out
    after = first.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert_same_entries(cache_entries(tmp_path), reference)


def test_without_ray_the_ray_executor_names_the_install_command(tmp_path):
    # a meta-path finder that refuses ``ray`` stands for an environment without the extra
    script = (
        "import sys\n"
        "class NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'ray'\", name=name)\n"
        "sys.meta_path.insert(0, NoRay())\n"
        "from ovseg_app.preprocess_cli import main\n"
        f"sys.exit(main([{str(tmp_path)!r}, '--executor', 'ray']))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "pip install 'ovseg[ray]'" in out.stderr and "Ray Data" in out.stderr


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"num_gpus_per_actor": -1.0}, "num_gpus_per_actor must not be negative"),
        ({"num_cpus_per_actor": 0.0}, "num_cpus_per_actor must be positive"),
    ],
)
def test_ray_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RayConfig(**kwargs)
