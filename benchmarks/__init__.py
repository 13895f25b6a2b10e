"""Speed, memory, quality and robustness benchmarks, run from a checkout (not installed):
``python -m benchmarks <name>`` or ``ovseg-bench <name>``. Targets are checked here, never in unit tests."""
