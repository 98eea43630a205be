"""Analysis across datasets and sources and the Figure 4 / Figure 5 PNGs (genbench.figures:
metric_vs_probe, evaluation_time). Correlations are checked against scipy.stats, timing
summaries against numpy and scipy.stats.sem."""


import numpy as np
import pytest
from PIL import Image
from scipy import stats

from genbench import storage
from genbench.errors import GenBenchError
from genbench.figures.evaluation_time import figure5_evaluation_time, gather_timings, time_ratio, timing_summary
from genbench.figures.metric_vs_probe import figure4_metric_vs_probe, gather_rows, metric_probe_correlations

# (dataset, source, cler, clip_score, fid_clip, probe)
HAND_ROWS = [
    ("cars", "generated/ST", 40.0, 25.1, 1.9, 45.0),
    ("cars", "generated/DT", 52.0, 26.3, 2.4, 50.5),
    ("pets", "generated/ST", 71.0, 27.0, 1.1, 74.0),
    ("pets", "generated/DT", 69.0, 24.2, 1.6, 77.5),
    ("flowers", "generated/ST", 60.0, 28.8, 0.9, 58.0),
    ("flowers", "generated/DT", 63.5, 23.9, 2.9, 64.0),
]
ROWS = [dict(zip(("dataset", "source", "cler", "clip_score", "fid_clip", "probe"), r)) for r in HAND_ROWS]


@pytest.mark.parametrize("metric, column", [("cler", 2), ("clip_score", 3), ("fid_clip", 4)])
def test_correlations_match_scipy(metric, column):
    x = [r[column] for r in HAND_ROWS]
    y = [r[5] for r in HAND_ROWS]
    got = metric_probe_correlations(ROWS)[metric]
    assert got["n"] == 6 and got["reason"] is None
    assert got["pearson"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert got["pearson_p"] == pytest.approx(stats.pearsonr(x, y).pvalue, abs=1e-12)
    assert got["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert got["spearman_p"] == pytest.approx(stats.spearmanr(x, y).pvalue, abs=1e-12)


def test_hand_worked_perfect_rank_correlation():
    rows = [{"cler": c, "clip_score": None, "fid_clip": -c, "probe": p} for c, p in [(1, 10), (2, 11), (3, 30), (4, 31)]]
    got = metric_probe_correlations(rows)
    assert got["cler"]["spearman"] == pytest.approx(1.0) and got["fid_clip"]["spearman"] == pytest.approx(-1.0)
    # Pearson by hand: x - mean = (-1.5, -0.5, 0.5, 1.5), y - mean = (-10.5, -9.5, 9.5, 10.5)
    hand = (1.5 * 10.5 * 2 + 0.5 * 9.5 * 2) / np.sqrt((1.5**2 * 2 + 0.5**2 * 2) * (10.5**2 * 2 + 9.5**2 * 2))
    assert got["cler"]["pearson"] == pytest.approx(hand)


def test_too_few_points_give_none_and_a_reason():
    got = metric_probe_correlations(ROWS[:2])
    for metric in ("cler", "clip_score", "fid_clip"):
        assert got[metric]["n"] == 2
        assert got[metric]["pearson"] is None and got[metric]["spearman"] is None
        assert "at least 3" in got[metric]["reason"]


def test_missing_values_are_left_out_per_metric():
    rows = ROWS[:3] + [{"dataset": "pets", "source": "original", "cler": 90.0, "clip_score": None, "fid_clip": 0.5, "probe": 91.0}]
    got = metric_probe_correlations(rows)
    assert got["cler"]["n"] == 4 and got["clip_score"]["n"] == 3
    x = [r["clip_score"] for r in ROWS[:3]]
    assert got["clip_score"]["pearson"] == pytest.approx(stats.pearsonr(x, [r["probe"] for r in ROWS[:3]]).statistic)


def test_constant_series_gives_a_reason():
    rows = [{**r, "clip_score": 25.0} for r in ROWS]
    got = metric_probe_correlations(rows)
    assert got["clip_score"]["pearson"] is None and "constant" in got["clip_score"]["reason"]
    assert got["cler"]["reason"] is None


def write_dataset(metrics_dir, name, sets, *, protocol="clean"):
    """cler/probe/quality.json for `sets` = {source: (cler, probe, clip_score, fid, pad)}."""
    storage.atomic_write_json(metrics_dir / name / "cler.json", {
        "metric": "accuracy", "zero_shot": 10.0,
        "sets": {s: {"cler": v[0], "cler_ensemble": v[0] + 1, "images": 8} for s, v in sets.items()}})
    storage.atomic_write_json(metrics_dir / name / "probe.json", {
        "metric": "accuracy", "protocol": protocol,
        "sets": {s: {"score": v[1], "selects_on_test": protocol == "l2-on-test"} for s, v in sets.items()}})
    storage.atomic_write_json(metrics_dir / name / "quality.json", {
        "sources": {s: {"clip_score": v[2], "fid_clip": v[3], "pad": v[4], "images": 8} for s, v in sets.items()},
        "seconds": {"cler": [0.001, 0.002], "probe": [0.5, 0.7], "fid_clip": [0.01, 0.02]}})


@pytest.fixture
def metrics_dir(tmp_path):
    root = tmp_path / "metrics"
    write_dataset(root, "cars", {"generated": (46, 48, 25.0, 2.0, 1.9), "generated/ST": (40, 45, 24.0, 1.9, 1.8),
                                 "generated/DT": (52, 50.5, 26.0, 2.4, 1.9), "original": (80, 85, None, 0.3, 0.2)})
    write_dataset(root, "pets", {"generated": (70, 75, 27.0, 1.3, 1.5), "generated/ST": (71, 74, 27.5, 1.1, 1.4),
                                 "generated/DT": (69, 77.5, 26.5, 1.6, 1.6), "original": (88, 90, None, 0.2, 0.1)})
    return root


def test_gather_rows_default_is_one_row_per_strategy(metrics_dir):
    rows = gather_rows(metrics_dir, ["cars", "pets"])
    assert sorted((r["dataset"], r["source"]) for r in rows) == [
        ("cars", "generated/DT"), ("cars", "generated/ST"), ("pets", "generated/DT"), ("pets", "generated/ST")]
    pets_dt = next(r for r in rows if (r["dataset"], r["source"]) == ("pets", "generated/DT"))
    assert (pets_dt["cler"], pets_dt["probe"], pets_dt["clip_score"], pets_dt["fid_clip"], pets_dt["pad"]) == (69, 77.5, 26.5, 1.6, 1.6)
    assert pets_dt["cler_ensemble"] == 70 and pets_dt["metric"] == "accuracy" and pets_dt["probe_protocol"] == "clean"


def test_gather_rows_selections(metrics_dir):
    assert [r["source"] for r in gather_rows(metrics_dir, ["cars"], sources="generated")] == ["generated"]
    everything = gather_rows(metrics_dir, ["cars"], sources="all")
    assert len(everything) == 4
    assert {r["source"]: r["clip_score"] for r in everything}["original"] is None
    with pytest.raises(GenBenchError, match="unknown source selection 'some'"):
        gather_rows(metrics_dir, ["cars"], sources="some")


def test_gather_rows_missing_file_names_the_stage(metrics_dir):
    (metrics_dir / "pets" / "quality.json").unlink()
    with pytest.raises(GenBenchError, match=r"quality.json not found; run the quality stage first \(dvc repro quality@pets\)"):
        gather_rows(metrics_dir, ["cars", "pets"])


def test_l2_on_test_probe_is_flagged(tmp_path):
    write_dataset(tmp_path, "cars", {"generated/ST": (1, 2, 3, 4, 5), "generated/DT": (2, 3, 4, 5, 6), "generated/X": (3, 5, 4, 1, 6)},
                  protocol="l2-on-test")
    got = metric_probe_correlations(gather_rows(tmp_path, ["cars"]))
    assert got["cler"]["probe_selects_on_test"] is True


def test_timing_summary_matches_numpy_and_scipy(metrics_dir):
    summary = timing_summary(gather_timings(metrics_dir, ["cars", "pets"]))
    probe = [0.5, 0.7, 0.5, 0.7]
    assert sorted(summary) == ["cler", "fid_clip", "probe"]
    assert summary["probe"]["mean"] == pytest.approx(np.mean(probe))
    assert summary["probe"]["std"] == pytest.approx(np.std(probe, ddof=1))
    assert summary["probe"]["sem"] == pytest.approx(stats.sem(probe))
    assert summary["probe"]["n"] == 4 and summary["probe"]["datasets"] == 2
    assert summary["probe"]["per_dataset"] == {"cars": pytest.approx(0.6), "pets": pytest.approx(0.6)}
    assert time_ratio(summary) == pytest.approx(0.6 / 0.0015)
    assert time_ratio(summary, "pad", "cler") is None


def test_timing_summary_one_repeat_and_bad_values():
    one = timing_summary({"cars": {"cler": [0.25]}})["cler"]
    assert one["std"] == 0 and one["sem"] == 0 and one["mean"] == 0.25
    with pytest.raises(GenBenchError, match="'cler' on 'cars'"):
        timing_summary({"cars": {"cler": [-1.0]}})


def _png_size(path):
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def test_figure4_png(tmp_path):
    path = tmp_path / "figures" / "figure4.png"
    drawn = figure4_metric_vs_probe(ROWS, path)
    width, height = _png_size(path)
    assert width > 600 and height > 200 and path.stat().st_size > 10_000
    assert drawn == metric_probe_correlations(ROWS)
    assert not list(path.parent.glob("*.tmp"))


def test_figure4_with_too_few_points_still_draws(tmp_path):
    path = tmp_path / "figure4.png"
    drawn = figure4_metric_vs_probe(ROWS[:2], path)
    assert drawn["cler"]["reason"] is not None and _png_size(path)[0] > 600
    with pytest.raises(GenBenchError, match="at least one"):
        figure4_metric_vs_probe([], tmp_path / "empty.png")


def test_figure5_png(tmp_path, metrics_dir):
    path = tmp_path / "figure5.png"
    figure5_evaluation_time(timing_summary(gather_timings(metrics_dir, ["cars", "pets"])), path)
    assert _png_size(path)[0] > 300 and path.stat().st_size > 5_000
    with pytest.raises(GenBenchError, match="at least one metric"):
        figure5_evaluation_time({}, tmp_path / "empty.png")
