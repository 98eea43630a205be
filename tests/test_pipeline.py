"""End to end: `dvc repro` of the embedded default exactly as committed (params.yaml, the
miniature models trained by the bootstrap stage) in a fresh copy of the project, then the
outputs' content checked stage by stage and the miniature's science checked against the
orderings the paper reports (original >= generated > chance)."""

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
import yaml

from conftest import copy_project
from genbench import storage
from genbench.features import load_features

RUNS = ["bootstrap", "pool", "index", "prepare@digits", "retrieve@digits", "invert@digits", "generate@digits", "embed@digits",
        "cler@digits", "probe@digits", "tune@digits", "finetune@digits", "quality@digits", "shots@digits", "frontier@digits",
        "cost", "report"]
CLASSES, CHANCE = 10, 10.0  # digits: ten classes, chance accuracy 10 %


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
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    _run(["git", "init", "-q"], root)
    _run(git + ["add", "-A"], root)
    _run(git + ["commit", "-qm", "test checkout"], root)
    _run([str(Path(sys.executable).with_name("dvc")), "repro"], root)
    return root


@pytest.fixture(scope="module")
def params(project) -> dict:
    return yaml.safe_load((project / "params.yaml").read_text())


def _generated_count(params: dict) -> int:
    return len(params["generate"]["strategies"]) * CLASSES * params["generate"]["images_per_class"]


def test_dag_order(project):
    dot = _run([str(Path(sys.executable).with_name("dvc")), "dag", "--dot"], project).stdout
    edges = {tuple(part.strip().strip('"') for part in line.strip().rstrip(";").split("->")) for line in dot.splitlines() if "->" in line}
    for edge in [("prepare@digits", "generate@digits"), ("generate@digits", "embed@digits"), ("embed@digits", "cler@digits"),
                 ("embed@digits", "probe@digits"), ("embed@digits", "quality@digits"), ("quality@digits", "cost"), ("cler@digits", "cost"), ("probe@digits", "cost"), ("cost", "report")]:
        assert edge in edges, (edge, edges)


def test_prepared_sets(project, params):
    meta = json.loads((project / "data/digits/prepared/meta.json").read_text())
    assert meta["name"] == "digits" and len(meta["classnames"]) == 10 and meta["metric"] == "accuracy"
    test = storage.read_manifest(project / "data/digits/prepared/test")
    original = storage.read_manifest(project / "data/digits/prepared/original")
    assert len(test) == 540
    assert original["class_index"].value_counts().to_dict() == {c: params["prepare"]["shots"] for c in range(10)}
    assert original["split"].eq("original").all() and test["split"].eq("test").all()


def test_generated_manifest(project, params):
    manifest = storage.read_manifest(project / "data/digits/generated")
    assert len(manifest) == _generated_count(params) and manifest["key"].is_unique
    assert set(manifest["strategy"]) == {"ST", "DT"}
    st = manifest[manifest["strategy"] == "ST"]
    assert all(p == c for p, c in zip(st["prompt"], st["class_name"]))  # Table 6: ST is the class name
    for column in ["seed", "generator", "revision", "weights_sha256", "sha256", "negative_prompt", "class_name"]:
        assert column in manifest.columns
    images, _ = storage.load_image_set(project / "data/digits/generated")  # checks every sha256
    assert images.shape == (_generated_count(params), 32, 32, 3)
    assert (project / "plots/digits/samples.png").stat().st_size > 1000


def test_cler_matches_an_independent_computation(project, params):
    cler = json.loads((project / "metrics/digits/cler.json").read_text())
    test, test_y, _ = load_features(project / "data/digits/features/test.safetensors")
    orig, orig_y, _ = load_features(project / "data/digits/features/original.safetensors")
    text, _, _ = load_features(project / "data/digits/features/text.safetensors")
    assert test.shape[0] == 540 and orig.shape[0] == 10 * params["prepare"]["shots"] and text.shape[0] == 10
    test, orig, text = (x.astype(np.float64) for x in (test, orig, text))
    orig = orig / np.linalg.norm(orig, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    protos = np.stack([orig[orig_y == c].mean(0) for c in range(10)])
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    expected = 100 * np.mean((test @ protos.T).argmax(1) == test_y)
    assert cler["sets"]["original"]["cler"] == pytest.approx(expected)
    assert cler["zero_shot"] == pytest.approx(100 * np.mean((test @ text.T).argmax(1) == test_y))
    assert set(cler["sets"]) == {"generated", "generated/ST", "generated/DT", "retrieved", "original"}


def test_probe_and_cost(project, params):
    probe = json.loads((project / "metrics/digits/probe.json").read_text())
    assert probe["protocol"] == "clean"
    assert all(0 <= s["score"] <= 100 and s["l2"] > 0 for s in probe["sets"].values())
    cost = json.loads((project / "metrics/cost.json").read_text())
    gen = json.loads((project / "meter/datasets/digits/generate.json").read_text())["priced"]
    count = _generated_count(params)
    assert gen["items"] == count and gen["wall_s"] > 0
    assert gen["usd_total"] == pytest.approx(gen["wall_s"] / 3600 * gen["usd_per_hour"])
    assert cost["usd_per_image"]["generated"] == pytest.approx(gen["usd_total"] / count)
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


def _scores(project: Path) -> tuple[dict, dict]:
    cler = json.loads((project / "metrics/digits/cler.json").read_text())
    probe = json.loads((project / "metrics/digits/probe.json").read_text())
    return cler, probe


def test_miniature_meets_its_bars(project):
    cler, probe = _scores(project)
    assert cler["zero_shot"] >= 60
    assert cler["sets"]["generated"]["cler"] >= 50
    assert probe["sets"]["original"]["score"] >= 90
    assert probe["sets"]["generated"]["score"] >= CHANCE + 30


def test_original_beats_generated_beats_chance(project):
    cler, probe = _scores(project)
    for kind, scores in (("cler", {k: v["cler"] for k, v in cler["sets"].items()}),
                         ("probe", {k: v["score"] for k, v in probe["sets"].items()})):
        assert scores["original"] >= scores["generated"] > CHANCE, (kind, scores)
        for name in ("generated/ST", "generated/DT", "retrieved"):
            assert scores[name] > CHANCE, (kind, name, scores[name])


def test_a_prompt_for_class_c_is_recognised_as_c(project):
    """Zero-shot CLIP labels the images generated for class c as c at least twice as often as
    chance, for every class; computed here from the feature files, beside the stage's figure."""
    feats, labels, _ = load_features(project / "data/digits/features/generated.safetensors")
    text, _, _ = load_features(project / "data/digits/features/text.safetensors")
    manifest = storage.read_manifest(project / "data/digits/generated")
    assert np.array_equal(labels, manifest["class_index"].to_numpy())
    feats = feats.astype(np.float64) / np.linalg.norm(feats, axis=1, keepdims=True)
    text = text.astype(np.float64) / np.linalg.norm(text, axis=1, keepdims=True)
    predicted = (feats @ text.T).argmax(1)
    per_class = {c: 100 * np.mean(predicted[labels == c] == c) for c in range(CLASSES)}
    assert min(per_class.values()) >= 2 * CHANCE, per_class
    cler, _ = _scores(project)
    assert cler["sets"]["generated"]["label_agreement"] == pytest.approx(100 * np.mean(predicted == labels))


def test_report_sets_the_miniature_beside_mnist(project):
    table = (project / "reports/tables/orientation_digits.md").read_text()
    cler, probe = _scores(project)
    assert "Paper on MNIST" in table and "Miniature on digits (this run)" in table
    assert f"{cler['sets']['generated']['cler']:.2f}" in table
    assert f"{cler['sets']['generated']['label_agreement']:.2f}" in table
    assert f"{probe['sets']['original']['score']:.2f}" in table


def test_second_repro_reruns_nothing(project):
    start = time.perf_counter()
    out = _run([str(Path(sys.executable).with_name("dvc")), "repro"], project).stdout
    elapsed = time.perf_counter() - start
    assert "Running stage" not in out, out
    print(f"no-op dvc repro took {elapsed:.1f} s")
