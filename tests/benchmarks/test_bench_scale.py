"""``ovseg-bench scale`` at a tiny size: the report has every stage with sane figures (no timing
thresholds: those belong to the benchmark run, not to unit tests)."""

from __future__ import annotations

import json
import mmap
import time

import numpy as np
import pytest

from benchmarks import cli as bench
from benchmarks.scale import STAGES, RssSampler, ScaleBench
from ovseg_core.synthetic.scale_capture import scale_capture


def test_scale_bench_reports_every_stage(tmp_path, capsys):
    out = tmp_path / "sub" / "scale.json"
    argv = ["scale", "--gaussians", "20000", "--views", "6", "--width", "128", "--height", "96", "--steps", "20"]
    assert bench.main([*argv, "--devices", "cpu", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["table"] in printed and "GB budget" in printed
    assert report["capture"]["gaussians"] == 20_000 and report["capture"]["views"] == 6
    assert report["capture"]["resolution"] == "128x96" and 0.3 < report["capture"]["mask_coverage"] <= 1
    rows = {r["stage"]: r for r in report["stages"]}
    expected = {
        "setup",
        *STAGES,
        "training: first pass",
        "training: per 1k steps",
        "training: final loss + registration",
    }
    assert set(rows) == expected
    for r in report["stages"]:
        assert r["device"] == "cpu" and not r.get("error"), r
        assert r["seconds"] > 0 and r["peak_rss_mb"] > 50 and r["cuda_peak_mb"] is None, r
    for stage in STAGES:  # a stage's peak includes what it started with
        assert rows[stage]["peak_rss_mb"] >= rows[stage]["rss_start_mb"] > 0
    per_1k = rows["training: per 1k steps"]
    assert per_1k["extrapolated"] and per_1k["steps_timed"] == 18 and "EXTRAPOLATED" in per_1k["note"]
    assert rows["training"]["final_loss"] < rows["training"]["initial_loss"]
    assert rows["contributions"]["contributions_mb"] > 0 and rows["contributions"]["entries"] > 0
    assert rows["instances"]["instances"] >= 1 and rows["instances"]["masks"] >= 6
    # the planted fields find the objects: better than the answer "every Gaussian" for each prompt
    capture = scale_capture(20_000, 6, 128, 96)
    share = np.mean([(capture.object_ids == k).mean() for k in range(capture.num_objects)])
    assert rows["query"]["mean_iou"] > share and rows["query"]["query_median_s"] > 0
    assert report["peak_rss_mb"] >= max(r["peak_rss_mb"] for r in report["stages"]) - 1
    assert report["under_budget"] is True and report["budget_gb"] == 16


def test_scale_bench_budget_verdict_and_stage_subset(tmp_path, capsys):
    out = tmp_path / "scale.json"
    argv = ["scale", "--gaussians", "5000", "--views", "2", "--width", "64", "--height", "48", "--steps", "3"]
    assert (
        bench.main([*argv, "--devices", "cpu", "--stages", "contributions", "--budget-gb", "0.01", "--json", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    assert [r["stage"] for r in report["stages"]] == ["setup", "contributions"]
    assert report["under_budget"] is False and "OVER the 0.01 GB budget" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--steps 1", "--gaussians 0", "--stages nope"])
def test_scale_bench_refuses_bad_flags(flag, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["scale", *flag.split(), "--devices", "cpu"])
    assert e.value.code == 2
    assert flag.split()[0] in capsys.readouterr().err


def test_query_needs_fields():
    with pytest.raises(ValueError, match="needs fields"):
        ScaleBench(devices=("cpu",))._query(None, None, None, None, {}, None, {})


def test_rss_sampler_sees_a_transient_allocation():
    sampler = RssSampler(interval=0.001)
    sampler.start()
    try:
        base = sampler.peak_mb()
        # an anonymous mapping, touched, then unmapped: its pages surely leave (a freed numpy block
        # may stay with the allocator once glibc's mmap threshold has grown in a long test process)
        block = mmap.mmap(-1, 64 * 2**20)
        for page in range(0, len(block), mmap.PAGESIZE):  # touch every page, no 64 MB temporary
            block[page] = 1
        deadline = time.monotonic() + 30
        while sampler.sampled_peak_mb() < base + 50:  # held until the sampler thread has seen it
            assert time.monotonic() < deadline, "the sampler thread never saw the allocation"
            time.sleep(0.001)
        block.close()
        assert sampler.peak_mb() >= base + 50
        sampler.reset()
        assert sampler.peak_mb() < base + 50
    finally:
        sampler.stop()
