"""Figures 2, 3 as published, 7, 9, 12-14 (genbench.figures): their data functions on hand-worked
inputs, the shots sweep's probe and original pool, and the report listing every figure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from genbench import storage
from genbench.figures.correlation import five_shot_points
from genbench.figures.grids import cell_rows, shown_classes, ti_plan, tiles_for
from genbench.figures.groups import cost_label, group_curves
from genbench.figures.improvement import best_strategy, improvement_rows, source_means
from genbench.probe import linear_probe
from genbench.tables.shots import cler_by_shots, subset


# ---- Figure 2 ----

DATASETS = {
    "a": {"group": "Common", "zero_shot": 80.0, "probe": {"generated": 84.0, "generated/ST": 81.0, "generated/DT": 83.0,
                                                          "original": 90.0}},
    "b": {"group": "Rare", "zero_shot": 40.0, "probe": {"generated/ST": 60.0, "generated/LE": 55.0, "retrieved": 50.0,
                                                        "original": 70.0}},
    "c": {"group": "Fine-grained", "zero_shot": 70.0, "probe": {"generated/ST": 65.0}},
    "d": {"group": "Common", "zero_shot": 50.0, "probe": {"original": 60.0}},  # no per-strategy set: left out
}


def test_best_strategy_ignores_the_pooled_set_and_breaks_ties_by_name():
    assert best_strategy(DATASETS["a"]["probe"]) == ("DT", 83.0)  # the pooled 84.0 is no strategy
    assert best_strategy({"generated/ZZ": 5.0, "generated/AA": 5.0}) == ("AA", 5.0)
    assert best_strategy({"original": 1.0}) is None


def test_improvement_rows_are_sorted_by_probe_minus_zero_shot():
    rows = improvement_rows(DATASETS)
    # b: 60 - 40 = +20, a: 83 - 80 = +3, c: 65 - 70 = -5; d has no generated strategy
    assert [(r["dataset"], r["strategy"], r["improvement"]) for r in rows] == [("b", "ST", 20.0), ("a", "DT", 3.0),
                                                                             ("c", "ST", -5.0)]


def test_source_means_average_each_source_over_the_datasets_that_have_it():
    means = source_means(DATASETS)
    assert means["zero-shot"] == {"mean": (80 + 40 + 70 + 50) / 4, "datasets": 4}
    assert means["generated"] == {"mean": (83 + 60 + 65) / 3, "datasets": 3}
    assert means["retrieved"] == {"mean": 50.0, "datasets": 1}
    assert means["original"] == {"mean": (90 + 70 + 60) / 3, "datasets": 3}


# ---- Figure 3 as published ----

def _pts(*triples):
    return [{"shots": k, "cler": c, "probe": p} for k, c, p in triples]


SHOTS = {
    "x": {"group": "Common", "classes": 10, "sources": {"original": _pts((1, 50, None), (2, 60, 62.0), (4, 70, 74.0)),
                                                        "generated": _pts((2, 55, 58.0))}},
    "y": {"group": "Common", "classes": 100, "sources": {"original": _pts((2, 40, 42.0)),
                                                         "retrieved": _pts((2, 30, 33.0), (5, 35, 37.0))}},
    "z": {"group": "Rare", "classes": 2, "sources": {"original": _pts((2, 80, 90.0), (5, 85, 95.0)),
                                                     "generated/ST": _pts((2, 1, 1.0))}},
}
PRICES = {"original": 0.012, "generated": 1e-4, "retrieved": None}


def test_group_curves_average_probe_per_group_and_add_up_what_the_images_cost():
    curves = group_curves(SHOTS, PRICES)
    assert list(curves) == ["Common", "Rare"]
    common = curves["Common"]
    # 2 shots: x 62 and y 42 -> 52; cost 2*10*0.012 + 2*100*0.012 = 0.24 + 2.4 = 2.64
    assert common["original"][0]["shots"] == 2 and common["original"][0]["probe"] == pytest.approx(52.0)
    assert common["original"][0]["datasets"] == 2 and common["original"][0]["usd"] == pytest.approx(2.64)
    assert common["original"][1] == {"shots": 4, "probe": 74.0, "datasets": 1, "usd": pytest.approx(4 * 10 * 0.012)}
    assert common["generated"] == [{"shots": 2, "probe": 58.0, "datasets": 1, "usd": pytest.approx(2 * 10 * 1e-4)}]
    assert [p["usd"] for p in common["retrieved"]] == [None, None]  # unpriced data type
    assert [p["probe"] for p in curves["Rare"]["original"]] == [90.0, 95.0]
    assert "generated/ST" not in curves["Rare"]  # one line per data type's pooled set


def test_cost_labels():
    assert cost_label(2.64) == "$2.64"
    assert cost_label(0.0001234) == "$0.000123"
    assert cost_label(12345.6) == "$12,346"
    assert cost_label(None) == "unpriced"


# ---- Figure 9 ----

def test_five_shot_points_take_original_and_retrieved_at_five_shots_with_both_scores():
    points = five_shot_points(SHOTS)
    assert points == [{"dataset": "y", "source": "retrieved", "cler": 35, "probe": 37.0},
                      {"dataset": "z", "source": "original", "cler": 85, "probe": 95.0}]


# ---- Figures 7, 12, 13, 14 ----

def test_ti_plan_pairs_direct_sampling_with_the_ti_strategy_of_the_runs_reference():
    plan = ti_plan(["ST", "DT", "DT+TI"], "original")
    assert [(label, s) for label, s, _ in plan] == [("direct sampling", "DT"), ("TI on original", "DT+TI"),
                                                    ("TI on retrieved", None)]
    assert "inversion/retrieved" in plan[2][2]
    retrieved = ti_plan(["CE+TI", "ST"], "retrieval")
    assert [(label, s) for label, s, _ in retrieved] == [("direct sampling", "ST"), ("TI on original", None),
                                                         ("TI on retrieved", "CE+TI")]
    none = ti_plan(["ST", "DT"], "original")
    assert none[0][1] == "ST" and none[1][1] is None and "no +TI strategy" in none[1][2]


def test_cell_rows_take_each_classes_first_images_of_the_strategy_in_class_order():
    manifest = pd.DataFrame({"key": list("abcdefgh"), "class_index": [0, 0, 0, 1, 1, 2, 0, 1],
                             "strategy": ["ST"] * 6 + ["DT", "DT"]})
    assert list(cell_rows(manifest, "ST", [1, 0], 2)["key"]) == ["d", "e", "a", "b"]
    assert list(cell_rows(manifest, "DT", [0, 1, 2], 2)["key"]) == ["g", "h"]
    assert shown_classes(4, 10) == [0, 1, 2, 3]
    assert shown_classes(100, 3) == [0, 50, 99]  # round(49.5) = 50 (half to even)


def test_tiles_put_a_cells_images_side_by_side_and_pad_with_white():
    images = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (10, 20, 30)])
    rows = pd.DataFrame({"class_index": [0, 0, 2]})
    tiles = tiles_for(images, rows, [0, 1, 2], 2)
    assert tiles[0].shape == (2, 4, 3) and (tiles[0][:, :2] == 10).all() and (tiles[0][:, 2:] == 20).all()
    assert tiles[1] is None
    assert (tiles[2][:, :2] == 30).all() and (tiles[2][:, 2:] == 255).all()


# ---- the shots sweep's probe ----

def test_cler_by_shots_probe_is_the_mean_over_draws_of_the_probe_of_each_drawn_subset():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)) * 3
    labels = np.repeat(np.arange(3), 8)
    feats = centres[labels] + rng.normal(size=(24, 6))
    test_y = np.repeat(np.arange(3), 5)
    test = centres[test_y] + rng.normal(size=(15, 6))
    points = cler_by_shots(feats, labels, test, test_y, num_classes=3, shots=[1, 4], draws=2, seed=3, probe=True)
    assert points[0]["probe"] is None and points[0]["probe_std"] is None  # 1 shot: no validation split
    scores = []
    for draw in range(2):
        rng = np.random.default_rng([3, draw, 4])  # the sweep's seeding: (seed, draw, shots), classes in order
        idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), 4, replace=False) for c in range(3)]))
        assert np.array_equal(idx, subset(labels, 4, np.random.default_rng([3, draw, 4]), 3))
        scores.append(linear_probe(feats[idx], labels[idx], test, test_y, seed=3, num_classes=3)["score"])
    assert points[1]["probe"] == pytest.approx(np.mean(scores)) and points[1]["probe_std"] == pytest.approx(np.std(scores))
    assert "probe" not in cler_by_shots(feats, labels, test, test_y, num_classes=3, shots=[4])[0]


# ---- the report lists every figure ----

FIGURE_KEYS = ("Figure 2:", "Figure 3 (as published)", "Figure 7:", "Figure 9:", "Figure 12:", "Figure 13:", "Figure 14:")


def _generated_set(root):
    rows, images = [], []
    for s, strategy in enumerate(("ST", "DT")):
        for c in range(10):
            for i in range(2):
                rows.append({"key": f"digits-{strategy}-c{c:04d}-{i:05d}", "class_index": c, "class_name": str(c),
                             "strategy": strategy})
                images.append(np.full((8, 8, 3), 15 * c + 100 * s, np.uint8))
    storage.write_image_set(root / "data" / "digits" / "generated", np.stack(images), rows)
    meta = {"name": "digits", "group": "Embedded", "classnames": [str(c) for c in range(10)], "templates": ["{}"],
            "metric": "accuracy"}
    (root / "data" / "digits" / "prepared").mkdir(parents=True)
    (root / "data" / "digits" / "prepared" / "meta.json").write_text(json.dumps(meta))


def _index(root, monkeypatch):
    from stages.report import command
    from tests.test_report_stage import _environment

    _environment(monkeypatch, root, f"sqlite:///{root / 'mlflow.db'}")
    result = CliRunner().invoke(command, [])
    assert result.exit_code == 0, (result.output, result.exception)
    return (root / "reports" / "index.md").read_text()


def _figure_lines(index):
    return {key: next(line for line in index.splitlines() if line.startswith(f"| {key}")) for key in FIGURE_KEYS}


def test_the_report_lists_every_figure_drawn_or_saying_why_not(tmp_path, monkeypatch):
    from tests.test_report_stage import write_run

    root = write_run(tmp_path)
    shots = json.loads((root / "metrics" / "digits" / "shots.json").read_text())
    for source in ("original", "retrieved"):
        shots["sources"][source] = [{"shots": 5, "cler": 70.0, "cler_std": 0.0, "draws": 3, "probe": 72.0,
                                     "probe_std": 1.0}, {"shots": 16, "cler": 80.0, "cler_std": 0.0, "draws": 1,
                                                         "probe": 85.0, "probe_std": 0.0}]
    (root / "metrics" / "digits" / "shots.json").write_text(json.dumps(shots))
    _generated_set(root)
    lines = _figure_lines(_index(root, monkeypatch))
    for key in ("Figure 2:", "Figure 3 (as published)", "Figure 7:", "Figure 9:", "Figure 14:"):
        link = lines[key].split("](")[1].split(")")[0]
        assert (root / "reports" / link).stat().st_size > 3000, key
    assert "not run: the run has 1 dataset(s)" in lines["Figure 12:"] and "dataset 3" in lines["Figure 13:"]


def test_figures_without_their_data_say_what_they_need(tmp_path, monkeypatch):
    from tests.test_report_stage import write_run

    root = write_run(tmp_path)  # shots.json without probe scores, no generated images
    lines = _figure_lines(_index(root, monkeypatch))
    assert "figures/figure2_improvement.png" in lines["Figure 2:"]
    assert "not run: needs" in lines["Figure 3 (as published)"] and "shots.probe" in lines["Figure 3 (as published)"]
    assert "not run: needs" in lines["Figure 9:"] and "not run: needs data/digits/generated" in lines["Figure 7:"]
    assert "not run: needs data/digits/generated" in lines["Figure 14:"]


# ---- the original pool (prepare.pool_shots) ----

def test_the_shots_sweep_draws_the_original_curve_from_the_pool_when_embed_encoded_one(tmp_path, monkeypatch):
    from genbench.features import save_features
    from stages.frame.paths import DatasetPaths
    from stages.shots import shots_work

    monkeypatch.chdir(tmp_path)
    paths = DatasetPaths("digits")
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(2, 4)) * 0.7  # overlapping classes: scores below 100

    def feats(per_class):
        labels = np.repeat(np.arange(2), per_class)
        return centres[labels] + rng.normal(size=(len(labels), 4)), labels

    sets = {"test": feats(6), "original": feats(3), "original_pool": feats(8), "generated": feats(4)}
    for name, (f, y) in sets.items():
        save_features(paths.features / f"{name}.safetensors", f, y, {"set": name})
    for directory, name in ((paths.prepared / "original", "original"), (paths.prepared / "original_pool", "original_pool"),
                            (paths.generated, "generated")):
        y = sets[name][1]
        storage.write_image_set(directory, np.zeros((len(y), 2, 2, 3), np.uint8),
                                [{"key": f"{name}-{i}", "class_index": int(c), "strategy": "ST"} for i, c in enumerate(y)])
    (paths.prepared / "meta.json").write_text(json.dumps({"name": "digits", "group": "Embedded", "classnames": ["0", "1"],
                                                          "templates": ["{}"], "metric": "accuracy", "shots": 3}))
    shots_work({"counts": [2, 8], "draws": 2, "seed": 0, "probe": True}, paths)
    out = json.loads((paths.metrics / "shots.json").read_text())
    pool_f, pool_y = sets["original_pool"]
    test_f, test_y = sets["test"]
    expected = cler_by_shots(pool_f, pool_y, test_f, test_y, num_classes=2, shots=[2, 8], draws=2, seed=0, probe=True)
    assert [p["shots"] for p in out["sources"]["original"]] == [2, 8]  # past the 3-shot original set
    assert out["sources"]["original"] == expected and expected[-1]["cler"] < 100
    assert expected[:1] != cler_by_shots(*sets["original"], test_f, test_y, num_classes=2, shots=[2], draws=2, probe=True)
    assert "probe" not in out["sources"]["generated/ST"][0] and "probe" in out["sources"]["generated"][0]


def test_prepare_writes_the_pool_as_an_independent_k_shot_draw(tmp_path, monkeypatch):
    from genbench.datasets import get_dataset
    from genbench.kshot import kshot_indices
    from stages.frame.paths import DatasetPaths
    from stages.prepare import SCHEMA, work

    monkeypatch.chdir(tmp_path)
    p = {key: field.default for key, field in SCHEMA.items()} | {"shots": 2, "pool_shots": 6, "test_per_class": 1}
    work(p, DatasetPaths("digits"))
    pool = storage.read_manifest(tmp_path / "data" / "digits" / "prepared" / "original_pool", ("source_index",))
    ds = get_dataset("digits")
    labels = ds.open_split("train", tmp_path / "data" / "raw", 32).labels
    assert list(pool["source_index"]) == list(kshot_indices(labels, 10, 6, 0, ds.classnames))
    assert np.bincount(pool["class_index"], minlength=10).tolist() == [6] * 10
    assert len(storage.read_manifest(tmp_path / "data" / "digits" / "prepared" / "original")) == 20
