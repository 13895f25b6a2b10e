"""``ovseg-bench`` (``python -m benchmarks``) smoke runs: every bench runs small and reports what it measured."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import cli as bench
from benchmarks.process_memory import current_rss_mb


def test_bench_render_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["render", "--sizes", "3000", "--resolutions", "64x48", "--frames", "2", "--torch-frames", "1"]
    argv += ["--no-memory", "--no-garden"]
    argv += ["--feature-cases", "2000@48x32x8"]
    assert bench.main([*argv, "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = [r for r in result["render"] if r["scene"] == "synthetic-3k"]
    # one row per backend that runs here (fvdb only with CUDA), each for the one size and resolution asked
    assert {r["backend"] for r in rows} >= {"cpu", "torch"}
    assert all(r["num_gaussians"] == 3000 and r["resolution"] == "64x48" for r in rows)
    for r in result["render"]:
        assert r["frames_timed"] == (1 if r["backend"] == "torch" else 2)
        assert r["fps"] == pytest.approx(1 / r["seconds_per_frame"])
    assert result["machine"]["cpu_count"] >= 1 and "memory" not in result
    # the feature case: cpu only (the torch reference is timed on RGB), with its per-stage profile
    feature_rows = [r for r in result["render"] if r["features"] == 8]
    assert [r["backend"] for r in feature_rows] == ["cpu"]
    assert set(feature_rows[0]["stages_ms"]) >= {"project", "composite"}
    assert [r["resolution"] for r in result["cpu_vs_torch"]] == ["64x48"]
    # the printed table has one line per synthetic-3k row
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| synthetic-3k")]
    assert len(table) == len(rows)


def test_bench_view_smoke_orbits_the_demo_and_a_large_capture(tmp_path, capsys):
    out = tmp_path / "view.json"
    argv = ["view", "--repeats", "1", "--orbit-frames", "2", "--memory-prompts", "0", "--browser-repeats", "0"]
    argv += ["--large-gaussians", "3000", "--width", "64", "--height", "48", "--output", str(out)]
    argv += ["--stream-seconds", "0"]  # the network streams have their own smoke test
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["resolution"] == "64x48" and result["orbit_fps_rgb"] > 0 and result["orbit_fps_relevancy"] > 0
    large = result["large_orbit"]
    assert large["gaussians"] == 3000 and large["orbit_fps_rgb"] > 0 and large["orbit_fps_selection"] > 0
    assert "orbit on 3,000 Gaussians" in capsys.readouterr().out


def test_bench_memory_probe_reports_the_childs_own_peak():
    # Linux carries getrusage's ru_maxrss across exec: a probe started by a large parent read the
    # parent's RSS as its own peak. 1 GiB of touched ballast here must not show up in the child.
    ballast = np.ones(2**30 // 8)
    parent_rss = current_rss_mb()
    result = bench.measure_peak_rss(5000, 64, 48)
    assert 10 < result["peak_rss_mb"] < parent_rss - 512, (result, parent_rss)
    del ballast


def test_bench_train_and_query_smoke(tmp_path):
    assert (
        bench.main(
            [
                "train",
                "--points-per-object",
                "60",
                "--backdrop",
                "300",
                "--width",
                "32",
                "--height",
                "24",
                "--steps",
                "3",
                "--output",
                str(tmp_path / "train.json"),
            ]
        )
        == 0
    )
    train = json.loads((tmp_path / "train.json").read_text())
    assert train["steps"] == 3 and train["views"] == 24 and train["resolution"] == "32x24"
    assert train["scene_gaussians"] == 5 * 60 + 300
    # both methods start from the same seeded fields on the same views, and the speedup is their ratio
    assert train["sparse_initial_loss"] == pytest.approx(train["dense_initial_loss"], rel=1e-3)
    assert train["speedup"] > 0 and train["final_loss_rel_diff"] < 0.05  # the sparse path trains as the dense one
    assert train["sparse_final_loss"] < train["sparse_initial_loss"]  # 3 steps already lower the loss
    assert (
        bench.main(["query", "--num-gaussians", "5000", "--repeats", "3", "--output", str(tmp_path / "query.json")])
        == 0
    )
    query = json.loads((tmp_path / "query.json").read_text())
    assert query["num_gaussians"] == 5000 and query["min_ms"] <= query["median_ms"]
    entries = {name: row["entries_per_gaussian"] for name, row in query["layouts"].items()}
    assert entries == {"registered": 16, "top4": 4, "lifted": 4} and "target_met" in query
