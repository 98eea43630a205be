"""The frontier's points as work (genbench.frontier_points): the grid check, the finished rows,
the summary and the values of each point's MLflow run, worked by hand."""

import json

import pytest

from genbench.errors import GenBenchError
from genbench.frontier import GRID_KEYS, point_id, row_key
from genbench.frontier_points import (
    ROW_PARAMS,
    PointRows,
    check_grid,
    point_run_values,
    row_context,
    summarise_rows,
    summary_metrics,
    write_summary,
)
from stages.frame.params import validate_section
from stages.generate import SCHEMA

GENERATE = validate_section({}, "generate", SCHEMA)


def row(settings: dict, cler: float, usd: float, **extra) -> dict:
    return {"id": point_id(settings), "settings": settings, "images": 20, "seconds": 1.0, "usd_per_image": usd, "cler": cler,
            "cler_ci": [cler - 1, cler + 1], "cler_ensemble": cler + 0.5, "probe": 50.0, "label_agreement": None,
            "ledger_rows": [{"stage": "generate"}], **extra}


def test_a_grid_point_that_breaks_the_generate_checks_is_named():
    check_grid([{"steps": 5}, {"height": 64}], GENERATE)
    with pytest.raises(GenBenchError, match=r"frontier grid point 'steps=5 height=30': params key 'generate.height' = 30"):
        check_grid([{"steps": 10}, {"steps": 5, "height": 30}], GENERATE)


def test_row_context_keeps_only_what_a_row_depends_on():
    sections = {"generate": {"steps": 20}, "embed": {"model": "tiny-clip"}, "cler": {"ranking": "softmax", "timing_repeats": 3},
                "probe": {"seed": 0}, "frontier": {"bootstrap_draws": 10, "confidence": 0.9, "seed": 1, "keep_images": True,
                                                    "grid": "g.yaml", "cpu_threads": None, "datasets": []}}
    context = row_context(sections, {"snapshot": "paper-2023", "sku": None}, 4)
    assert context == {"generate": {"steps": 20}, "embed": {"model": "tiny-clip"}, "cler": {"ranking": "softmax"},
                       "probe": {"seed": 0}, "frontier": {"bootstrap_draws": 10, "confidence": 0.9, "seed": 1},
                       "pricing": {"snapshot": "paper-2023", "sku": None}, "cpu_threads": 4}
    assert ROW_PARAMS == ("bootstrap_draws", "confidence", "seed")


def test_point_rows_are_saved_under_their_key_and_read_back_in_grid_order(tmp_path):
    points = [{"steps": 5}, {"steps": 10}, {"steps": 20}]
    store = PointRows.open(tmp_path / "points", {"generate": {"seed": 0}})
    assert store.pending(points) == points
    store.save(points[2], {"id": "c"})
    store.save(points[0], {"id": "a"})
    assert (tmp_path / "points" / f"{row_key(points[0], {'generate': {'seed': 0}})}.json").is_file()
    assert store.pending(points) == [points[1]]
    assert store.rows([points[2], points[0]]) == [{"id": "c"}, {"id": "a"}]
    assert PointRows.open(tmp_path / "points", {"generate": {"seed": 1}}).pending(points) == points


def test_summary_marks_the_pareto_front_and_the_default_setting():
    rows = [row({"steps": 5}, 60.0, 0.001), row({"steps": 20}, 70.0, 0.004), row({"steps": 50}, 65.0, 0.010)]
    refs = {"zero_shot": 55.0, "original_cler": 80.0}
    summary = summarise_rows(rows, {**GENERATE, "steps": 20}, refs)
    assert [p["pareto"] for p in summary["points"]] == [True, True, False]
    assert summary["pareto"] == [rows[0]["id"], rows[1]["id"]]
    assert summary["default"] == rows[1]["id"]
    assert all("ledger_rows" not in p for p in summary["points"])
    assert summary["zero_shot"] == 55.0 and summary["original_cler"] == 80.0
    # within 1 and 2 points of the best (70): only steps=20; within 5: steps=50 costs more than steps=20
    assert [t["id"] for t in summary["table"]] == [rows[1]["id"]] * 3
    assert summary["table"][1]["usd_per_1000_images"] == pytest.approx(4.0)
    assert summary_metrics(summary, 2) == {"points": 3, "points_computed": 2, "pareto_points": 2, "best_cler": 70.0,
                                           "within2_usd_per_1000": pytest.approx(4.0)}
    assert summarise_rows(rows, {**GENERATE, "steps": 30}, refs)["default"] is None


def test_write_summary_writes_the_json_figure_and_table(tmp_path):
    rows = [row({"steps": 5}, 60.0, 0.001), row({"steps": 20}, 70.0, 0.004)]
    refs = {"zero_shot": 55.0, "original_cler": 80.0}
    summary = write_summary(rows, {**GENERATE, "steps": 5}, refs, tmp_path / "frontier.json", tmp_path, "title")
    assert json.loads((tmp_path / "frontier.json").read_text()) == json.loads(json.dumps(summary))
    assert (tmp_path / "frontier.png").stat().st_size > 0
    table = (tmp_path / "frontier.md").read_text()
    assert "| (the default setting) | steps=5 | 60.00 | 1 |" in table


def test_a_point_run_logs_its_scores_and_every_grid_setting():
    r = row({"steps": 5, "scheduler": "ddim"}, 60.0, 0.001)
    metrics, params = point_run_values(r, GENERATE)
    assert metrics == {"cler": 60.0, "cler_ensemble": 60.5, "probe": 50.0, "usd_per_image": 0.001, "seconds": 1.0,
                       "images": 20.0, "cler_ci_low": 59.0, "cler_ci_high": 61.0}  # label_agreement None: not logged
    assert set(params) == set(GRID_KEYS)
    assert params["steps"] == "5" and params["scheduler"] == "ddim" and params["guidance_scale"] == str(GENERATE["guidance_scale"])
