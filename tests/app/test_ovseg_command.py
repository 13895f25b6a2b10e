"""The ``ovseg`` command: its subcommands, their --help (with examples), the shared error handler,
and a start-up that parses before torch loads."""

from __future__ import annotations

import subprocess
import sys

import imageio.v3 as iio
import pytest

from ovseg_app import cli
from ovseg_app.command_runner import REPORT_BUGS_TO, run_command
from ovseg_core.errors import MissingDependencyError, MissingFileError, SceneFormatError, UsageError


def _help(main, argv: list[str], capsys) -> str:  # noqa: ANN001
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_ovseg_help_lists_every_subcommand(capsys):
    text = _help(cli.main, [], capsys)
    assert "examples:" in text and "ovseg query fields scene.ply --prompt mug" in text
    for name in ("view", "train", "query", "render", "eval-lerf", "preprocess"):
        assert f"• {name}" in text, name
    assert "ovseg bench render" in text  # the benchmarks' launcher is named in the examples


@pytest.mark.parametrize(
    "argv, shown, hidden",
    [
        (["view"], ["examples:", "ovseg view scene.ply --fields"], []),
        (["render"], ["examples:", "ovseg render scene.ply --output orbit.mp4"], []),
        (["eval-lerf"], ["examples:", "--no-visualizations"], ["--no-no-visualizations"]),
        (["query", "fields"], ["examples:", "ovseg query fields scene.ply", "--relevancy-dir"], ["--export-instances"]),
        (["query", "instances"], ["ovseg query instances", "--export-instances"], ["--relevancy-dir", "--level"]),
        (["train", "langsplatv2"], ["ovseg train langsplatv2", "--config.method"], ["--method", "--lift.top-k"]),
        (["train", "lift"], ["ovseg train lift", "--lift.top-k", "--config.feature-level"], ["--method"]),
        (["bench", "render"], ["--no-garden", "--sizes"], []),
    ],
)
def test_subcommand_help_shows_examples_and_only_its_options(argv, shown, hidden, capsys):
    text = _help(cli.main, argv, capsys)
    assert text.startswith(f"usage: ovseg {' '.join(argv)}")
    for s in shown:
        assert s in text, s
    for s in hidden:
        assert f"{s} " not in text and f"{s}\n" not in text, s


def test_aliases_and_subcommands_run_the_same_command(tmp_path, capsys):
    from ovseg_app import render_cli

    small = ["--width", "32", "--height", "24"]
    assert cli.main(["render", "--output", str(tmp_path / "a.png"), *small]) == 0
    assert render_cli.main(["--output", str(tmp_path / "b.png"), *small]) == 0
    assert (iio.imread(tmp_path / "a.png") == iio.imread(tmp_path / "b.png")).all()
    capsys.readouterr()
    # one error handler: the program name of the spelling used, one line, exit status 2
    assert cli.main(["render", str(tmp_path / "missing.ply")]) == 2
    assert capsys.readouterr().err.startswith("ovseg render: error:")
    assert render_cli.main([str(tmp_path / "missing.ply")]) == 2
    assert capsys.readouterr().err.startswith("ovseg-render: error:")


def test_parsing_any_command_loads_no_heavy_dependency():
    """What keeps ``--help`` quick: the command modules and the union of all of them import without
    torch, numba, open_clip, sam2 or viser (those load inside ``execute``)."""
    code = (
        "import sys, importlib\n"
        "from ovseg_app import cli\n"
        "for m in cli.SUBCOMMANDS.values(): importlib.import_module(m)\n"
        "cli.command_union()\n"
        "print(sorted(m for m in ('torch', 'numba', 'open_clip', 'sam2', 'viser') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_entry_point_is_a_main_and_every_subcommand_has_its_alias():
    import importlib
    import tomllib
    from pathlib import Path

    scripts = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    targets = {}
    for command, target in scripts.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), command
        targets[module] = command
    assert scripts["ovseg"] == "ovseg_app.cli:main"
    for name, module in cli.SUBCOMMANDS.items():
        assert targets.get(module) == f"ovseg-{name}", name  # `ovseg NAME` and `ovseg-NAME` run one main


class _Command:
    """A parsed command whose ``execute`` raises ``error`` (as a real command's code would)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def execute(self) -> None:
        raise self.error


def test_a_bug_prints_its_traceback_and_says_it_is_a_bug(capsys):
    assert run_command("ovseg-x", _Command(ValueError("too many values to unpack"))) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ValueError: too many values to unpack" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ovseg-x: internal error: this is a bug in ovseg") and REPORT_BUGS_TO in last


@pytest.mark.parametrize(
    "error",
    [
        UsageError("--threshold must lie in [0, 1], got 2"),
        SceneFormatError("scene.ply: truncated"),
        MissingFileError("scene.ply: no such file"),
        MissingDependencyError("reading a COLMAP scene needs pycolmap (pip install pycolmap)"),
        FileNotFoundError(2, "No such file or directory", "scene.ply"),
        PermissionError(13, "Permission denied", "out/"),
    ],
)
def test_input_errors_are_one_line(error, capsys):
    assert run_command("ovseg-x", _Command(error)) == 2
    err = capsys.readouterr().err
    assert err == f"ovseg-x: error: {error}\n"
