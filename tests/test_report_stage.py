"""The report stage on a run's metric files (written here in the pipeline's schemas): the tables'
reproduced cells equal the metric files, the published ones the reference CSVs, the index links
everything it names, and what the pipeline has not produced reads 'not run'."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from cost.ledger import LedgerRow, write_ledger
from stages.report import command

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "reports" / "reference"

CLER = {
    "metric": "accuracy", "zero_shot": 62.5,
    "sets": {"generated": {"cler": 71.25, "cler_ensemble": 72.0, "cler_ensemble_protosum": 71.0, "images": 320},
             "generated/ST": {"cler": 69.5, "cler_ensemble": 70.0, "cler_ensemble_protosum": 70.0, "images": 160},
             "generated/DT": {"cler": 73.0, "cler_ensemble": 74.0, "cler_ensemble_protosum": 73.5, "images": 160},
             "original": {"cler": 88.75, "cler_ensemble": 86.0, "cler_ensemble_protosum": 85.0, "images": 160}},
    "seconds": {"zero_shot": 0.001, "generated": 0.002},
}
PROBE = {"metric": "accuracy", "protocol": "clean",
         "sets": {name: {"score": score, "l2": 1e-3, "images": CLER["sets"][name]["images"]}
                  for name, score in (("generated", 55.5), ("generated/ST", 50.0), ("generated/DT", 57.0),
                                      ("original", 93.25))}}
SHOTS = {"dataset": {"name": "digits", "group": "Embedded", "metric": "accuracy", "num_test": 540, "shots": 16,
                     "classes": 10},
         "draws": 3, "seed": 0,
         "sources": {"generated": [{"shots": 1, "cler": 40.0, "cler_std": 3.0, "draws": 3},
                                   {"shots": 32, "cler": 71.25, "cler_std": 0.0, "draws": 1}],
                     "original": [{"shots": 1, "cler": 60.0, "cler_std": 5.0, "draws": 3},
                                  {"shots": 16, "cler": 88.75, "cler_std": 0.0, "draws": 1}]}}
GENERATE_ROW = dict(stage="generate", data_type="generated", items=320, wall_s=64.0, cpu_s=120.0, gpu_s=0.0,
                    gpu_energy_j=None, gpu_util_mean=None, vcpus=2, gpu_count=0, gpu_model=None,
                    billed_hours=64.0 / 3600, sku="Standard_E32ads_v5", provider="Azure", pricing="spot",
                    region="unspecified", usd_per_hour=0.013125, usd_per_hour_basis="E32ads v5 spot x 2/32 vCPUs",
                    usd_total=64.0 / 3600 * 0.013125, usd_per_image=64.0 / 3600 * 0.013125 / 320,
                    snapshot="paper-2023", snapshot_date="2023-07-25")


def write_run(root: Path) -> Path:
    """A run's outputs as the pipeline writes them: params, metric files, the ledger, a sample grid."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"] = ["digits"]
    params.setdefault("generate", {})["model"] = "tiny-sd"
    params.setdefault("report", {})["reference_dir"] = str(REFERENCE)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    metrics = root / "metrics" / "digits"
    metrics.mkdir(parents=True)
    for name, data in (("cler", CLER), ("probe", PROBE), ("shots", SHOTS)):
        (metrics / f"{name}.json").write_text(json.dumps(data))
    (root / "metrics" / "cost.json").write_text(json.dumps(
        {"usd_per_image": {"generated": GENERATE_ROW["usd_per_image"], "original": 0.012},
         "usd_total": GENERATE_ROW["usd_total"], "snapshot": "paper-2023", "stages": ["generate"]}))
    write_ledger([LedgerRow(**GENERATE_ROW)], root / "reports" / "ledger.csv")
    (root / "plots" / "digits").mkdir(parents=True)
    Image.fromarray(np.full((20, 20, 3), 128, np.uint8)).save(root / "plots" / "digits" / "samples.png")
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow store for the module (creating a SQLite store takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _environment(mp: pytest.MonkeyPatch, root: Path, store: str) -> None:
    mp.chdir(root)
    mp.setenv("MLFLOW_TRACKING_URI", store)
    mp.setenv("GENBENCH_SYSTEM_METRICS", "0")
    mp.setenv("GENBENCH_PIPELINE_ID", f"report-test-{root.name}")


def _run():
    result = CliRunner().invoke(command, [])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory, store):
    """The report built once from the complete run."""
    root = write_run(tmp_path_factory.mktemp("run"))
    with pytest.MonkeyPatch.context() as mp:
        _environment(mp, root, store)
        _run()
    return root


@pytest.fixture
def run_dir(tmp_path, monkeypatch, store):
    _environment(monkeypatch, write_run(tmp_path), store)
    return tmp_path


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_report_builds_every_table_from_the_metric_files(built):
    tables = built / "reports" / "tables"
    for key in ("table1", "table2", "table3", "table4", "table5", "section31", "orientation_digits"):
        for suffix in ("md", "csv", "tex"):
            assert (tables / f"{key}.{suffix}").stat().st_size > 100, (key, suffix)

    t2 = _csv(tables / "table2.csv")
    reproduced = {r["Prompt strategy"]: r for r in t2
                  if r["Model"] == "Stable Diffusion 2.1" and r["Row"] == "reproduced (tiny-sd)"}
    assert float(reproduced["ST"]["digits (kit only)"]) == CLER["sets"]["generated/ST"]["cler"]
    assert float(reproduced["DT"]["digits (kit only)"]) == CLER["sets"]["generated/DT"]["cler"]
    assert reproduced["DT+NP"]["digits (kit only)"] == "not run"
    ref = _csv(REFERENCE / "genbench_table2_cler_20shot.csv")
    for want in ref:
        got = next(r for r in t2 if r["Model"] == want["model"] and r["Prompt strategy"] == want["strategy"]
                   and r["Row"] == "published")
        assert all(float(got[k]) == float(v) for k, v in want.items() if k not in ("model", "strategy"))

    t1 = {r["Data type"]: r for r in _csv(tables / "table1.csv")}
    assert float(t1["generative"]["USD/image (this run)"]) == pytest.approx(64.0 / 3600 * 0.013125 / 320)
    assert float(t1["original"]["USD/image (this run)"]) == 0.012
    t5 = _csv(tables / "table5.csv")
    ours = next(r for r in t5 if r["Data type"] == "generative" and r["Row"] == "this run")
    assert float(ours["Hours/1K images"]) == pytest.approx(64.0 / 3600 * 1000 / 320)
    assert "paper-2023 (Azure, 2023-07-25)" in ours["Audit / basis"]

    mini = {r["Measure (%, test set)"]: r for r in _csv(tables / "orientation_digits.csv")}
    assert float(mini["zero-shot (CLIP text prototypes)"]["Miniature on digits (this run)"]) == CLER["zero_shot"]
    assert float(mini["linear probe original (clean)"]["Miniature on digits (this run)"]) == 93.25
    t4 = {r["Kit name"]: r for r in _csv(tables / "table4.csv")}
    assert t4["digits"]["Test images (this run)"] == "540" and t4["mnist"]["Test images (this run)"] == "not run"

    data = _csv(tables / "figure3_data.csv")
    assert [(r["source"], int(r["shots"]), float(r["cler"])) for r in data] == [
        ("generated", 1, 40.0), ("generated", 32, 71.25), ("original", 1, 60.0), ("original", 16, 88.75)]
    assert float(data[1]["usd"]) == pytest.approx(32 * 10 * GENERATE_ROW["usd_per_image"])
    assert float(data[3]["usd"]) == pytest.approx(16 * 10 * 0.012)


def test_index_names_the_run_and_links_every_table_and_figure(built):
    reports = built / "reports"
    index = (reports / "index.md").read_text()
    assert "profile `embedded`" in index and "paper-2023 (Azure, 2023-07-25)" in index
    links = [part.split(")")[0] for part in index.split("](")[1:]]
    assert len(links) >= 7 * 3 + 1
    for link in links:
        assert (reports / link).is_file(), link
    assert "figures/figure3_shots.png" in links and (reports / "figures" / "figure3_shots.png").stat().st_size > 5000
    assert "Figure 4" in index and "Figure 6" in index
    assert sum("not run: needs" in line for line in index.splitlines() if line.startswith(("| Figure 4", "| Figure 5", "| Figure 6"))) == 3
    assert "Figure 11" in index and "one backbone, so not produced" in index
    assert "Miniature on sklearn digits vs paper on MNIST: not comparable numbers, shown for orientation" in index
    report = (reports / "report.md").read_text()
    assert "71.25" in report and "93.25" in report and "not run" not in report


def test_missing_stage_outputs_read_not_run(run_dir):
    for name in ("cler", "probe", "shots"):
        (run_dir / "metrics" / "digits" / f"{name}.json").unlink()
    (run_dir / "reports" / "ledger.csv").unlink()
    (run_dir / "metrics" / "cost.json").unlink()
    _run()
    tables = run_dir / "reports" / "tables"
    reproduced = [r for r in _csv(tables / "table2.csv") if r["Row"].startswith("reproduced")]
    assert reproduced and all(v == "not run" for r in reproduced for k, v in r.items()
                              if k not in ("Model", "Prompt strategy", "Row"))
    t1 = _csv(tables / "table1.csv")
    assert [r["USD/image (this run)"] for r in t1] == ["not run", "not run", "not run"]
    index = (run_dir / "reports" / "index.md").read_text()
    # Figures 2, 3, 3 as published, 4, 5, 6, 7, 9, 10 and 14 need their inputs (12, 13: one dataset in the run)
    assert "Figure 3" in index and index.count("not run: needs") == 10
    assert not (tables / "orientation_digits.md").exists()


def test_figures_4_and_5_come_from_the_quality_stage_when_it_ran(run_dir):
    quality = {"dataset": "digits", "sources": {s: {"images": 160, "fid_clip": f, "clip_score": c, "pad": 1.5}
                                                for s, f, c in (("generated", 0.05, 23.0), ("generated/ST", 0.06, 22.0),
                                                                ("generated/DT", 0.04, 24.0), ("original", 0.01, None))},
               "seconds": {"cler": [0.001, 0.0012, 0.0011], "probe": [0.5, 0.6, 0.55], "fid_clip": [0.01, 0.012, 0.011],
                           "clip_score": [0.002, 0.002, 0.003], "pad": [0.2, 0.25, 0.22]}}
    (run_dir / "metrics" / "digits" / "quality.json").write_text(json.dumps(quality))
    _run()
    index = (run_dir / "reports" / "index.md").read_text()
    assert "figures/figure4.png" in index and "figures/figure5.png" in index
    assert (run_dir / "reports" / "figures" / "figure5.png").stat().st_size > 5000


def test_a_bad_reference_dir_is_named(run_dir):
    params = yaml.safe_load((run_dir / "params.yaml").read_text())
    params["report"]["reference_dir"] = "nowhere"
    (run_dir / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(command, [])
    assert "report.reference_dir" in str(result.exception) and "nowhere" in str(result.exception)
    assert not (run_dir / "reports" / "index.md").exists()
