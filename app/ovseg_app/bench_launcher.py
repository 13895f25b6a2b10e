"""``ovseg-bench`` (and ``ovseg bench``): a thin launcher for the benchmarks of a source checkout.

The benchmarks live in the checkout's top-level ``benchmarks/`` package and are not installed with
ovseg; this finds that folder (from the current directory upwards, or beside an editable install)
and runs ``benchmarks.cli``, or says how to get it.
"""

from __future__ import annotations

import sys
from pathlib import Path

HOW_TO = (
    "the benchmarks are not part of the installed package: run them from a source checkout,\n"
    "  cd <ovseg checkout> && python -m benchmarks --help"
)


def checkout_root(start: Path | None = None) -> Path | None:
    """The nearest folder holding ``benchmarks/cli.py``: the current directory or a parent, else the
    checkout this module was installed from in editable mode; ``None`` if neither has it."""
    candidates = [start or Path.cwd(), *(start or Path.cwd()).parents, *Path(__file__).resolve().parents]
    for folder in candidates:
        if (folder / "benchmarks" / "cli.py").is_file():
            return folder
    return None


def main(argv: list[str] | None = None, prog: str = "ovseg-bench") -> int:
    root = checkout_root()
    if root is None:
        print(f"{prog}: error: {HOW_TO}", file=sys.stderr)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.cli import main as bench_main

    return bench_main(argv, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
