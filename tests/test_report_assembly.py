"""What the report stage computes from a run's metric files, on hand-worked inputs: the tables'
reproduced cells (genbench.tables.run_tables), what it reads per dataset and the frontier section
(genbench.report), and each figure's data and the figure list (genbench.figures)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from genbench.figures._save import save_csv
from genbench.figures.groups import PUBLISHED_MISSING, shot_sweeps
from genbench.figures.improvement import FIGURE2_MISSING, figure2_inputs
from genbench.figures.report_figures import QUALITY_MISSING, FigureFolders, report_figures
from genbench.figures.scatter import FIGURE6_MISSING, figure6_points
from genbench.figures.shots import figure3_inputs
from genbench.figures.summary import score_values
from genbench.report import dataset_info, frontier_section, read_results
from genbench.tables.run_tables import (cler_by_strategy, images_per_class, section31_prices, ti_reference,
                                        ti_results)

CLER = {"zero_shot": 50.0, "sets": {"generated": {"cler": 60.0, "images": 40},
                                    "generated/DT": {"cler": 58.0, "images": 20},
                                    "generated/DT+TI": {"cler": 66.0, "images": 20},
                                    "original": {"cler": 80.0, "images": 30}}}
PROBE = {"sets": {"generated/DT": {"score": 61.0}, "original": {"score": 85.0}}}
INFO = {"name": "cifar-10", "group": "Common", "classes": 10, "metric": "accuracy", "num_test": 100, "shots": 3}


def _results(**files) -> dict:
    base = {"info": INFO, "cler": None, "probe": None, "shots": None, "quality": None, "retrieve": None,
            "tune": None, "finetune": None, "backbones": None}
    return {"cifar-10": {**base, **files}}


# ---- tables ----

def test_cler_by_strategy_and_images_per_class_read_the_generated_strategy_sets():
    results = _results(cler=CLER)
    assert cler_by_strategy(results) == {"DT": {"cifar-10": 58.0}, "DT+TI": {"cifar-10": 66.0}}
    assert images_per_class(results) == {"cifar-10": 2}  # the first generated/<strategy> set: 20 images / 10 classes
    assert images_per_class(_results(cler={"sets": {"generated": {"images": 40}}})) == {}


@pytest.mark.parametrize(("path", "reference"), [
    ("data/{dataset}/inversion/original", "original"),
    ("data/{dataset}/inversion/retrieved", "retrieval"),
    ("data/{dataset}/inversion/retrieved/tokens.safetensors", "retrieval"),
    ("original", "original"),
    ("ti/{dataset}", "ti/{dataset}"),  # names no invert source: the path itself
    ("data/my_retrieval_tokens", "data/my_retrieval_tokens"),  # a word in a name is not a source folder
])
def test_ti_reference_is_the_invert_source_the_path_names(path, reference):
    assert ti_reference(path) == reference


def test_ti_results_put_ti_strategies_under_their_reference_and_the_plain_strategy_under_none():
    assert ti_results(_results(cler=CLER), "retrieval") == {("retrieval", "2"): {"cifar-10": 66.0},
                                                            ("none", "2"): {"cifar-10": 58.0}}
    unequal = {"sets": {"generated/DT": {"cler": 58.0, "images": 40}, "generated/DT+TI": {"cler": 66.0, "images": 20}}}
    assert ti_results(_results(cler=unequal), "original") == {("original", "2"): {"cifar-10": 66.0}}
    assert ti_results(_results(cler=None), "original") == {}


def test_section31_prices_take_the_printed_the_audited_and_this_runs_generated_price():
    published = [{"data_type": "generative", "usd_per_image": "0.001"}, {"data_type": "original", "usd_per_image": "0.02"}]
    audit = [{"data_type": "original", "recomputed_usd_per_image": 0.5},
             {"data_type": "generative", "recomputed_usd_per_image": 0.003}]
    run_rows = [{"data_type": "original", "usd_per_image": 0.012}, {"data_type": "generated", "usd_per_image": 0.0},
                {"data_type": "generated", "usd_per_image": 0.0004}]
    assert section31_prices(published, audit, run_rows, 0.012) == [(0.001, 0.02), (0.003, 0.02), (0.0004, 0.012)]
    no_human = [published[0], {"data_type": "original", "usd_per_image": ""}]
    assert section31_prices(no_human, audit, None, 0.012) == [(0.001, 0.012), (0.003, 0.012), None]


# ---- what the report reads ----

def test_dataset_info_from_shots_then_meta_then_the_registry():
    shots = {"dataset": {"name": "x", "classes": 3}}
    assert dataset_info("digits", shots, {"classnames": ["a"]}) == {"name": "x", "classes": 3}
    meta = {"name": "digits", "group": "Embedded", "metric": "accuracy", "num_test": 9, "shots": 2,
            "classnames": ["a", "b", "c"], "templates": ["{}"]}
    assert dataset_info("digits", None, meta) == {"name": "digits", "group": "Embedded", "metric": "accuracy",
                                                  "num_test": 9, "shots": 2, "classes": 3}
    assert dataset_info("cifar-10", None, None) == {"name": "cifar-10", "group": "Common", "metric": "accuracy",
                                                    "num_test": None, "shots": None, "classes": 10}


def test_read_results_reads_each_metric_file_or_none(tmp_path):
    folder = SimpleNamespace(metrics=tmp_path / "metrics", prepared=tmp_path / "prepared")
    folder.metrics.mkdir()
    (folder.metrics / "cler.json").write_text(json.dumps(CLER))
    got = read_results({"cifar-10": folder})["cifar-10"]
    assert got["cler"] == CLER and got["probe"] is None and got["backbones"] is None
    assert got["info"]["classes"] == 10 and list(got) == ["info", "cler", "probe", "shots", "quality", "retrieve",
                                                          "tune", "finetune", "backbones"]


def test_frontier_section_draws_the_frontier_and_lists_the_cheapest_settings(tmp_path):
    point = {"id": "p1", "cler": 70.0, "cler_ci": [68.0, 72.0], "usd_per_image": 2e-6,
             "settings": {"steps": 10}}
    data = {"points": [point, {**point, "id": "p2", "cler": 72.0, "usd_per_image": 4e-6, "settings": {"steps": 20}}],
            "default": "p2", "zero_shot": 50.0, "original_cler": 80.0,
            "table": [{"within": 1.0, "setting": "steps=20", "cler": 72.0, "usd_per_1000_images": 0.004}]}
    text = frontier_section("digits", data, tmp_path / "f.png", "figures/f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
    assert text.startswith("## Cost-quality frontier: digits\n\n![frontier digits](figures/f.png)\n\n")
    assert "(2 settings, 95 % bootstrap intervals in metrics/digits/frontier.json)" in text
    assert "| 1 points | steps=20 | 72.00 | 0.004 |" in text and "| (the default setting) | steps=20 | 72.00 | 0.004 |" in text


# ---- figures ----

def test_figure_inputs_from_the_results():
    shots = {"dataset": {"group": "Common", "classes": 10, "metric": "accuracy"},
             "sources": {"generated/DT": [{"shots": 2, "cler": 55.0, "cler_std": 1.0}],
                         "retrieved": [{"shots": 1, "cler": 40.0, "cler_std": 0.5}]}}
    results = _results(cler=CLER, probe=PROBE, shots=shots, retrieve={"mts": 0.25})
    assert figure2_inputs(results) == {"cifar-10": {"group": "Common", "zero_shot": 50.0,
                                                    "probe": {"generated/DT": 61.0, "original": 85.0}}}
    assert shot_sweeps(results) == {"cifar-10": {"group": "Common", "classes": 10, "sources": shots["sources"]}}
    panels, rows = figure3_inputs(results, {"generated": 0.5, "retrieved": None})
    assert panels == [{"dataset": "cifar-10", "metric": "accuracy", "classes": 10, "zero_shot": 50.0,
                       "sources": shots["sources"]}]
    assert rows == [["cifar-10", "generated/DT", "generated", 2, 55.0, 1.0, 10.0],  # 2 shots x 10 classes x 0.5 USD
                    ["cifar-10", "retrieved", "retrieved", 1, 40.0, 0.5, ""]]
    assert figure6_points(results) == [{"x": 0.25, "y": 10.0, "label": "cifar-10"}]
    assert score_values(CLER, PROBE) == {"zero-shot": 50.0, "CLER generated": 60.0, "CLER generated/DT": 58.0,
                                         "CLER generated/DT+TI": 66.0, "CLER original": 80.0,
                                         "probe generated/DT": 61.0, "probe original": 85.0}
    assert list(score_values(CLER, None)) == ["zero-shot", "CLER generated", "CLER generated/DT",
                                              "CLER generated/DT+TI", "CLER original"]


def test_save_csv_writes_the_header_and_rows(tmp_path):
    save_csv(tmp_path / "d.csv", ["a", "b"], [[1, ""], ["x", 2.5]])
    with open(tmp_path / "d.csv", newline="") as fh:
        assert list(csv.reader(fh)) == [["a", "b"], ["1", ""], ["x", "2.5"]]


def test_report_figures_without_data_say_what_each_needs_in_index_order(tmp_path):
    folder = SimpleNamespace(generated=tmp_path / "generated", read_meta=lambda: pytest.fail("no meta needed"))
    out = FigureFolders(tmp_path / "figures", tmp_path / "tables", tmp_path / "metrics")
    entries = report_figures(_results(), ["cifar-10"], {"cifar-10": folder}, out, usd_per_image={}, price_label="p",
                             ti_reference="original", primary_model="m")
    assert [e.key for e in entries] == ["figure3", "figure4", "figure5", "figure6", "figure2", "figure3_published",
                                        "figure7", "figure9", "figure12", "figure13", "figure14", "figure10", "figure11"]
    assert all(e.path is None and e.reason for e in entries)
    reasons = {e.key: e.reason for e in entries}
    assert reasons["figure4"] == reasons["figure5"] == QUALITY_MISSING
    assert reasons["figure2"] == FIGURE2_MISSING and reasons["figure6"] == FIGURE6_MISSING
    assert reasons["figure3_published"] == PUBLISHED_MISSING and reasons["figure7"] == "needs data/cifar-10/generated"
    assert not Path(tmp_path / "tables").exists()
