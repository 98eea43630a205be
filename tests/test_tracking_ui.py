"""What the kit writes for the MLflow UI: the parent run's name, the headline view and the dataset inputs."""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from stages.mlflow_store import dataset_inputs, headline_view
from stages.tracking import parent_run_name


def test_parent_run_is_named_after_the_experiment_else_profile_and_short_commit(monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert parent_run_name("embedded", "0123456789abcdef") == "embedded 0123456"
    monkeypatch.setenv("DVC_EXP_NAME", "g3")
    assert parent_run_name("embedded", "0123456789abcdef") == "g3"


def test_headline_view_selects_the_metric_columns():
    view = json.loads(headline_view(["headline/digits/cler/generated"]))
    assert "metrics.`headline/digits/cler/generated`" in view["selectedColumns"]


def test_dataset_inputs_carry_the_manifests_digest_and_row_count(tmp_path):
    folder = tmp_path / "data" / "digits" / "generated"
    folder.mkdir(parents=True)
    pd.DataFrame({"path": ["a.png", "b.png", "c.png"]}).to_parquet(folder / "manifest.parquet")
    (inp,) = dataset_inputs(tmp_path, "digits")
    assert inp.dataset.name == "digits/generated"
    assert inp.dataset.digest == hashlib.sha256((folder / "manifest.parquet").read_bytes()).hexdigest()[:16]
    assert json.loads(inp.dataset.profile) == {"num_rows": 3}
    assert inp.dataset.source == "data/digits/generated/manifest.parquet"
    assert dataset_inputs(tmp_path, "other") == []
