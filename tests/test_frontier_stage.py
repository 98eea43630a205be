"""The frontier stage on a finished tiny run (prepare, generate, embed, cler, cost on the built-in
tiny models): its default point scores what the cler stage scores, its USD per image is the
ledger's price path worked by hand, and a SIGKILL mid-grid loses no finished point."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, genbench_cmd, write_params
from test_faults import invoke

DATASET = "digits"
GENERATE = {"strategies": ["ST"], "images_per_class": 2, "steps": 2, "batch_size": 2, "shard_size": 4}
PARAMS = {
    "datasets": [DATASET],
    "prepare": {"shots": 2},
    "generate": GENERATE,
    "cler": {"timing_repeats": 1},
    "frontier": {"grid": "grid.yaml", "bootstrap_draws": 20},
}
# the params' own generate setting, and a cheaper one
GRID = {"points": [{"steps": 2, "images_per_class": 2}, {"steps": 1, "images_per_class": 2}]}
POINTS = Path("data") / DATASET / "frontier" / "points"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("frontier")
    write_params(root, PARAMS)
    (root / "grid.yaml").write_text(yaml.safe_dump(GRID))
    for stage in (["prepare"], ["generate"], ["embed"], ["cler"], ["cost"], ["frontier"]):
        code, out, err = invoke(root, [*stage, "--dataset", DATASET] if stage != ["cost"] else stage)
        assert code == 0, f"{stage}: {out}\n{err}"
    return root


def _frontier(root: Path) -> dict:
    return json.loads((root / "metrics" / DATASET / "frontier.json").read_text())


def _default_row(root: Path) -> dict:
    data = _frontier(root)
    assert data["default"] is not None
    return next(r for r in data["points"] if r["id"] == data["default"])


def test_default_point_scores_what_the_cler_stage_scores(finished):
    params = yaml.safe_load((finished / "params.yaml").read_text())["generate"]
    row = _default_row(finished)
    assert all(params[k] == v for k, v in row["settings"].items())
    generated = json.loads((finished / "metrics" / DATASET / "cler.json").read_text())["sets"]["generated"]
    assert row["images"] == generated["images"] == 20
    assert row["cler"] == pytest.approx(generated["cler"], abs=1e-9)
    assert row["cler_ensemble"] == pytest.approx(generated["cler_ensemble"], abs=1e-9)
    assert row["label_agreement"] == pytest.approx(generated["label_agreement"], abs=1e-9)
    assert row["cler_ci"][0] <= row["cler"] <= row["cler_ci"][1]


def _snapshot_usd_per_hour(vcpus: int) -> float:
    """The CPU SKU's spot price in the paper-2023 snapshot file, scaled to `vcpus` (read here from the YAML)."""
    snap = yaml.safe_load((ROOT / "cost" / "snapshots" / "paper-2023.yaml").read_text())
    cpu = [r for r in snap["rows"] if r["pricing"] == "spot" and not r["gpus"]]
    assert len(cpu) == 1
    return cpu[0]["usd_per_hour"] * vcpus / cpu[0]["vcpus"]


def test_usd_per_image_is_the_ledgers_price_path_by_hand(finished):
    import csv

    ledger = list(csv.DictReader((finished / "reports" / "ledger.csv").open()))
    stage_row = next(r for r in ledger if r["stage"] == "generate")
    row = _default_row(finished)
    stored = next(json.loads(p.read_text()) for p in (finished / POINTS).glob("*.json")
                  if json.loads(p.read_text())["id"] == row["id"])
    generated = [r for r in stored["ledger_rows"] if r["data_type"] == "generated"]
    assert generated and {r["stage"] for r in generated} == {"generate"}
    for r in generated:  # priced exactly as the cost ledger prices the generate stage
        for key in ("sku", "usd_per_hour", "usd_per_hour_basis", "snapshot", "pricing"):
            assert str(r[key]) == stage_row[key], key
        assert r["usd_per_hour"] == pytest.approx(_snapshot_usd_per_hour(r["vcpus"]), rel=1e-12)
    images = sum(r["items"] for r in generated)
    assert images == int(stage_row["items"]) == row["images"]
    expected = sum(r["wall_s"] / 3600.0 * _snapshot_usd_per_hour(r["vcpus"]) for r in generated) / images
    assert row["usd_per_image"] == pytest.approx(expected, rel=1e-9)
    # the embedding and scoring of a point evaluate it; they are not charged to its images
    assert all(r["data_type"] is None for r in stored["ledger_rows"] if r["stage"] != "generate")


def _stats(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in folder.glob("*.json")}


def test_sigkill_then_rerun_recomputes_no_finished_point(finished, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(finished, root)
    shutil.rmtree(root / "data" / DATASET / "frontier")
    (root / "metrics" / DATASET / "frontier.json").unlink()
    # a cheap first point, then points slow enough that the kill lands while one is being made
    grid = {"points": [{"steps": 1}, {"steps": 40}, {"steps": 41}, {"steps": 42}]}
    (root / "grid.yaml").write_text(yaml.safe_dump(grid))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "GENBENCH_SYSTEM_METRICS": "0",
           "TQDM_DISABLE": "1", "GENBENCH_PIPELINE_ID": ""}
    proc = subprocess.Popen(genbench_cmd() + ["frontier", "--dataset", DATASET], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    folder = root / POINTS
    deadline = time.monotonic() + 300
    while not list(folder.glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"frontier ended before the kill: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = _stats(folder)
    assert 1 <= len(before) < len(grid["points"]), sorted(before)
    assert not (root / "metrics" / DATASET / "frontier.json").exists()

    rerun = subprocess.run(genbench_cmd() + ["frontier", "--dataset", DATASET], cwd=root, env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = _stats(folder)
    assert len(after) == len(grid["points"])
    for name, stat in before.items():  # the same file, never rewritten
        assert after[name] == stat, name
    rows = _frontier(root)["points"]
    assert sorted(r["settings"]["steps"] for r in rows) == [1, 40, 41, 42]
    assert len({r["id"] for r in rows}) == len(rows)
