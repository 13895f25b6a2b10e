"""``ovseg-bench robustness``'s hand-made cases: crafted scene files and a scene's hostile companions
(fields, instances, cameras) all end in a domain error or work, in the watched worker."""

from __future__ import annotations

from benchmarks.fuzz_inputs import crafted_cases
from benchmarks.robustness import run_reader_fuzz


def test_crafted_files_and_companions_are_refused_or_work_within_limits(tmp_path):
    report = run_reader_fuzz(0, tmp_path / "fuzz", seed=0, timeout_s=60.0, max_rss_gib=2.0)
    assert report.clean, report.failed + report.hangs + report.blowups
    specials = 4  # FIFO, folder, two empty files
    assert report.cases > specials + len(crafted_cases()) + 15
    # the fourth-channel PLY, the valid fields, two instance sets (one with an empty instance) and the
    # good camera work; everything else is refused
    assert report.loaded == 1 + 1 + 2 + 1
    assert report.refused == report.cases - report.loaded
