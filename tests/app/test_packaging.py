"""The wheel as a user installs it: ``ovseg_app`` (no top-level ``app``) with the demo assets inside,
every module of the two packages and no developer tool (benchmarks, fuzzers, demo-field training), and ``ovseg-view`` serving the demo with its fields from a fresh venv
that reuses this environment's dependencies (the wheel itself is installed with ``--no-deps``)."""

from __future__ import annotations

import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # builds a wheel and starts a server (~30 s)


def expected_files() -> set[str]:
    """Every module and data file of the checkout, under its installed name."""
    files = {str(p.relative_to(ROOT / "app")) for p in (ROOT / "app" / "ovseg_app").rglob("*.py")}
    files |= {str(p.relative_to(ROOT)) for p in (ROOT / "ovseg_core").rglob("*.py")}
    files |= {str(p.relative_to(ROOT)) for p in (ROOT / "ovseg_core").rglob("*.json")}
    files |= {f"ovseg_app/assets/{p.name}" for p in (ROOT / "assets").iterdir() if p.suffix in (".ply", ".pt")}
    capture = ROOT / "assets" / "demo_capture"  # the Training panel's default capture (not its cache)
    files |= {
        f"ovseg_app/assets/{p.relative_to(ROOT / 'assets')}"
        for p in capture.rglob("*")
        if p.suffix in (".json", ".png") and ".ovseg_cache" not in p.parts
    }
    files |= {"ovseg_app/py.typed", "ovseg_core/py.typed"}
    return {f for f in files if "__pycache__" not in f}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (setuptools writes build/ beside the sources, and
    a stale build/ of the checkout could leak deleted modules into the wheel)."""
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("app", "ovseg_core", "assets", "benchmarks", "scripts"):  # the last two must not ship
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("ovseg-*.whl")
    return path


def test_wheel_holds_every_module_and_the_demo_assets_and_no_app_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {n.split("/")[0] for n in names}
    assert top - {n for n in top if n.endswith(".dist-info")} == {"ovseg_app", "ovseg_core"}, top
    missing = expected_files() - names
    assert not missing, sorted(missing)
    extra = {n for n in names if not n.startswith("ovseg-")} - expected_files()
    assert not extra, sorted(extra)
    # developer tools stay in the checkout: no benchmark, fuzzer, memory probe or demo-field training
    modules = " ".join(n for n in names if n.endswith(".py"))
    for tool in ("benchmarks/", "fuzz_inputs", "process_memory", "make_demo_fields"):
        assert tool not in modules, tool
    demo = zipfile.ZipFile(wheel).read("ovseg_app/demo.py").decode()
    assert "def train_demo_fields" not in demo
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for command in ("ovseg", "ovseg-view", "ovseg-train", "ovseg-query", "ovseg-render", "ovseg-eval-lerf"):
        assert f"\n{command} = " in scripts, command


def test_installed_wheel_serves_the_demo_with_its_fields(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies of this environment, as plain path entries: their own .pth files (such as an
    # editable install of this checkout) are not processed, so ovseg comes from the wheel only
    ours = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()] + sorted(ours)
    (Path(purelib) / "_ovseg_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    where = subprocess.run(
        [str(python), "-c", "import ovseg_app, ovseg_core; print(ovseg_app.__file__); print(ovseg_core.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    # the benchmarks are not installed: outside a checkout the launcher says where they are
    bench = subprocess.run([str(venv / "bin" / "ovseg-bench"), "render"], capture_output=True, text=True, cwd=tmp_path)
    assert bench.returncode == 2 and "run them from a source checkout" in bench.stderr, bench.stderr

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(venv / "bin" / "ovseg"), "view", "--port", str(port), "--output-dir", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        lines = []
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            lines.append(line)
            if "ovseg-view: serving" in line:
                break
        text = "".join(lines)
        # the demo scene and its shipped fields, whose fixed-vocabulary text encoder is rebuilt from them
        assert "text encoder: vocabulary:ovseg-demo-tabletop-v1" in text, text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=30) as response:
            assert response.status == 200
            assert b"<html" in response.read().lower()
    finally:
        proc.terminate()
        proc.wait(20)
