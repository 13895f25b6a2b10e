import sys

from benchmarks.cli import main

sys.exit(main(prog="python -m benchmarks"))
