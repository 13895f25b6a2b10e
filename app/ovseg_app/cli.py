"""``ovseg``: one command for everything, ``ovseg view|train|query|render|eval-lerf|bench``.

Each subcommand is the command of its module (``ovseg-view`` etc. remain as aliases). ``ovseg --help``
parses the tyro union of all of them; ``ovseg <command> ...`` imports only that command's module, so
its ``--help`` stays quick whatever the other commands import.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import tyro

from ovseg_app.command_runner import run_command

SUBCOMMANDS: dict[str, str] = {
    "view": "ovseg_app.viewer.cli",
    "train": "ovseg_app.train_cli",
    "query": "ovseg_app.query_cli",
    "render": "ovseg_app.render_cli",
    "eval-lerf": "ovseg_app.eval_lerf_cli",
    "preprocess": "ovseg_app.preprocess_cli",
}
"""Subcommand -> module with ``COMMAND`` (a dataclass or a union), ``DESCRIPTION`` and ``main(argv, prog)``."""


DESCRIPTION = """Open-vocabulary 3D segmentation of Gaussian splats: view, train, query, render, evaluate, benchmark.

examples:
  ovseg view                                   # the built-in demo in the browser
  ovseg train langsplatv2 --sfm-dataset-path capture/ --reconstruction-path scene.ply
  ovseg query fields scene.ply --prompt mug --export mug.ply
  ovseg render scene.ply --output orbit.mp4
  ovseg bench render                           # benchmarks (from a source checkout)
  ovseg <command> --help                       # a command's options and examples"""


def command_union() -> Any:
    """The tyro union of every subcommand (each described by the first paragraph of its description)."""
    members = []
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        summary = module.DESCRIPTION.split("\n\n")[0]
        members.append(Annotated[module.COMMAND, tyro.conf.subcommand(name, description=summary)])
    union = members[0]
    for member in members[1:]:
        union = union | member
    return union


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "bench":  # the benchmarks run from a checkout (not installed): a launcher
        from ovseg_app.bench_launcher import main as bench_main

        return bench_main(args[1:], prog="ovseg bench")
    if args and args[0] in SUBCOMMANDS:
        return importlib.import_module(SUBCOMMANDS[args[0]]).main(args[1:], prog=f"ovseg {args[0]}")
    cmd = tyro.cli(command_union(), args=args, prog="ovseg", description=DESCRIPTION)
    return run_command("ovseg", cmd)


if __name__ == "__main__":
    sys.exit(main())
