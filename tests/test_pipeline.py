"""End to end: `dvc repro` of the whole pipeline in a fresh copy of the project (fewer images
than the embedded default, same code paths), then the outputs' content checked stage by stage."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import copy_project, write_params
from genbench import storage
from genbench.features import load_features

RUNS = ["bootstrap", "pool", "index", "prepare@digits", "retrieve@digits", "invert@digits", "generate@digits", "embed@digits",
        "cler@digits", "probe@digits", "quality@digits", "shots@digits", "cost", "report"]


def _env(root: Path) -> dict:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "GENBENCH_PIPELINE_ID"):
        env.pop(key, None)
    return env


def _run(cmd: list[str], root: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("kit"))
    write_params(root, miniature=True)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    _run(["git", "init", "-q"], root)
    _run(git + ["add", "-A"], root)
    _run(git + ["commit", "-qm", "test checkout"], root)
    _run([str(Path(sys.executable).with_name("dvc")), "repro"], root)
    return root


def test_dag_order(project):
    dot = _run([str(Path(sys.executable).with_name("dvc")), "dag", "--dot"], project).stdout
    edges = {tuple(part.strip().strip('"') for part in line.strip().rstrip(";").split("->")) for line in dot.splitlines() if "->" in line}
    for edge in [("prepare@digits", "generate@digits"), ("generate@digits", "embed@digits"), ("embed@digits", "cler@digits"),
                 ("embed@digits", "probe@digits"), ("embed@digits", "quality@digits"), ("quality@digits", "cost"), ("cler@digits", "cost"), ("probe@digits", "cost"), ("cost", "report")]:
        assert edge in edges, (edge, edges)


def test_prepared_sets(project):
    meta = json.loads((project / "data/digits/prepared/meta.json").read_text())
    assert meta["name"] == "digits" and len(meta["classnames"]) == 10 and meta["metric"] == "accuracy"
    test = storage.read_manifest(project / "data/digits/prepared/test")
    original = storage.read_manifest(project / "data/digits/prepared/original")
    assert len(test) == 540
    assert original["class_index"].value_counts().to_dict() == {c: 4 for c in range(10)}
    assert original["split"].eq("original").all() and test["split"].eq("test").all()


def test_generated_manifest(project):
    manifest = storage.read_manifest(project / "data/digits/generated")
    assert len(manifest) == 2 * 10 * 4 and manifest["key"].is_unique
    assert set(manifest["strategy"]) == {"ST", "DT"}
    st = manifest[manifest["strategy"] == "ST"]
    assert all(p == f"a photo of {c}" for p, c in zip(st["prompt"], st["class_name"]))
    for column in ["seed", "generator", "revision", "weights_sha256", "sha256", "negative_prompt", "class_name"]:
        assert column in manifest.columns
    images, _ = storage.load_image_set(project / "data/digits/generated")  # checks every sha256
    assert images.shape == (80, 32, 32, 3)
    assert (project / "plots/digits/samples.png").stat().st_size > 1000


def test_cler_matches_an_independent_computation(project):
    cler = json.loads((project / "metrics/digits/cler.json").read_text())
    test, test_y, _ = load_features(project / "data/digits/features/test.safetensors")
    orig, orig_y, _ = load_features(project / "data/digits/features/original.safetensors")
    text, _, _ = load_features(project / "data/digits/features/text.safetensors")
    assert test.shape[0] == 540 and orig.shape[0] == 40 and text.shape[0] == 10
    test, orig, text = (x.astype(np.float64) for x in (test, orig, text))
    orig = orig / np.linalg.norm(orig, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    protos = np.stack([orig[orig_y == c].mean(0) for c in range(10)])
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    expected = 100 * np.mean((test @ protos.T).argmax(1) == test_y)
    assert cler["sets"]["original"]["cler"] == pytest.approx(expected)
    assert cler["zero_shot"] == pytest.approx(100 * np.mean((test @ text.T).argmax(1) == test_y))
    assert set(cler["sets"]) == {"generated", "generated/ST", "generated/DT", "retrieved", "original"}


def test_probe_and_cost(project):
    probe = json.loads((project / "metrics/digits/probe.json").read_text())
    assert probe["protocol"] == "clean"
    assert all(0 <= s["score"] <= 100 and s["l2"] > 0 for s in probe["sets"].values())
    cost = json.loads((project / "metrics/cost.json").read_text())
    gen = json.loads((project / "meter/datasets/digits/generate.json").read_text())["priced"]
    assert gen["items"] == 80 and gen["wall_s"] > 0
    assert gen["usd_total"] == pytest.approx(gen["wall_s"] / 3600 * gen["usd_per_hour"])
    assert cost["usd_per_image"]["generated"] == pytest.approx(gen["usd_total"] / 80)
    assert cost["usd_per_image"]["original"] == pytest.approx(0.012)
    meters = sorted((project / "meter/datasets/digits").glob("*.json")) + [
        project / f"meter/pipeline/{s}.json" for s in ("bootstrap", "pool", "index")]
    ledger = pd.read_csv(project / "reports/ledger.csv")
    assert len(ledger) == len(meters) and set(ledger["sku"]) == {"Standard_E32ads_v5"}
    by_stage = ledger.set_index("stage")
    retrieved = by_stage.loc[["index", "retrieve"], "usd_total"].sum() / by_stage.loc["retrieve", "items"]
    assert cost["usd_per_image"]["retrieved"] == pytest.approx(retrieved)
    assert pd.isna(by_stage.loc["invert", "data_type"])  # no TI strategy in this run: not charged to generated images


def test_report_shows_this_runs_numbers(project):
    report = (project / "reports/report.md").read_text()
    cler = json.loads((project / "metrics/digits/cler.json").read_text())
    probe = json.loads((project / "metrics/digits/probe.json").read_text())
    assert f"{cler['sets']['generated']['cler']:.2f}" in report
    assert f"{probe['sets']['original']['score']:.2f}" in report
    assert "paper-2023" in report and "not run" not in report
    assert (project / "reports/figures/digits-scores.png").stat().st_size > 1000


def test_mlflow_parent_with_a_child_per_stage(project):
    db = sqlite3.connect(project / "mlflow.db")
    parents = db.execute("select run_uuid from runs where run_uuid in (select run_uuid from tags where key='genbench.kind' and value='pipeline')").fetchall()
    assert len(parents) == 1
    children = db.execute("select r.run_uuid, r.name, r.status from runs r join tags t on t.run_uuid=r.run_uuid "
                          "where t.key='mlflow.parentRunId' and t.value=?", parents[0]).fetchall()
    assert sorted(name for _, name, _ in children) == sorted(RUNS)
    assert {status for _, _, status in children} == {"FINISHED"}
    for run_id, name, _ in children:
        keys = {k for (k,) in db.execute("select key from latest_metrics where run_uuid=?", (run_id,))}
        assert {"usd_total", "wall_s", "cpu_s", "gpu_s", "items"} <= keys, (name, keys)
        tags = dict(db.execute("select key, value from tags where run_uuid=?", (run_id,)).fetchall())
        assert tags["dvc_stage"] == name.split("@")[0] and len(tags["params_hash"]) == 16 and tags["git_commit"] != "unknown"
    artifacts = project / "mlartifacts"
    assert artifacts.exists() or any(project.glob("mlruns/**/samples.png"))


def test_second_repro_reruns_nothing(project):
    start = time.perf_counter()
    out = _run([str(Path(sys.executable).with_name("dvc")), "repro"], project).stdout
    elapsed = time.perf_counter() - start
    assert "Running stage" not in out, out
    print(f"no-op dvc repro took {elapsed:.1f} s")
