"""MLflow organisation: a parent run per pipeline execution named by DVC_EXP_NAME, child runs per
stage, trace tags (git commit, dvc.lock and params file hashes), the parent's rolled-up params and
metrics under consistent names, and MLflow system metrics on the children."""

from __future__ import annotations

import hashlib
import time

import pytest

from stages.frame.tracking import StageTracker, parent_metric_name


@pytest.fixture
def tracked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("GENBENCH_PIPELINE_ID", "pipeline-under-test")
    monkeypatch.setenv("DVC_EXP_NAME", "strategy-DT")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (tmp_path / "params.yaml").write_text("profile: embedded\n")
    return tmp_path


def _client(root):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("genbench-embedded")
    return client, exp.experiment_id


def test_parent_and_children_carry_trace_tags_and_consistent_rolled_up_names(tracked, monkeypatch):
    monkeypatch.setenv("GENBENCH_SYSTEM_METRICS", "0")
    with StageTracker("cler", "embedded", {"timing_repeats": 3}, run_name="cler@digits",
                      tags={"dataset": "digits", "params_hash": "x"}) as t:
        t.log_metrics({"cler": {"generated": 61.5}, "zero_shot": 40.0, "not_a_number": "skip"})
    with StageTracker("cost", "embedded", {"snapshot": "paper-2023"}, run_name="cost", tags={"dataset": "all"}) as t:
        t.log_metrics({"usd_per_image.generated": 2.5e-6})
    with StageTracker("cler", "embedded", {"timing_repeats": 5}, run_name="cler@mnist", tags={"dataset": "mnist"}) as t:
        t.log_metrics({"cler.generated": 20.0})

    client, exp_id = _client(tracked)
    parents = client.search_runs([exp_id], filter_string="tags.`genbench.kind` = 'pipeline'")
    assert len(parents) == 1
    parent = parents[0]
    lock_sha = hashlib.sha256((tracked / "dvc.lock").read_bytes()).hexdigest()
    params_sha = hashlib.sha256((tracked / "params.yaml").read_bytes()).hexdigest()
    assert parent.info.run_name == "strategy-DT" and parent.info.status == "FINISHED"
    assert parent.data.tags["dvc_lock_sha256"] == lock_sha and parent.data.tags["params_file_sha256"] == params_sha
    assert parent.data.tags["dvc_exp_name"] == "strategy-DT" and parent.data.tags["profile"] == "embedded"
    assert parent.data.params == {"cler.timing_repeats": "3", "cost.snapshot": "paper-2023"}  # first value kept
    assert parent.data.metrics == {"digits/cler/cler.generated": 61.5, "digits/cler/zero_shot": 40.0,
                                   "cost/usd_per_image.generated": 2.5e-6, "mnist/cler/cler.generated": 20.0}
    children = client.search_runs([exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_name = {c.info.run_name: c for c in children}
    assert set(by_name) == {"cler@digits", "cost", "cler@mnist"}
    cler = by_name["cler@digits"]
    assert cler.data.metrics == {"cler.generated": 61.5, "zero_shot": 40.0}
    assert cler.data.params == {"timing_repeats": "3"} and by_name["cler@mnist"].data.params == {"timing_repeats": "5"}
    assert cler.data.tags["dvc_lock_sha256"] == lock_sha and cler.data.tags["genbench.kind"] == "stage"
    assert cler.data.tags["params_hash"] == "x" and cler.data.tags["git_commit"]


def test_dvc_lock_absent_is_said_so(tracked, monkeypatch):
    monkeypatch.setenv("GENBENCH_SYSTEM_METRICS", "0")
    (tracked / "dvc.lock").unlink()
    with StageTracker("prepare", "embedded", {}, run_name="prepare@digits", tags={"dataset": "digits"}):
        pass
    client, exp_id = _client(tracked)
    run = client.search_runs([exp_id], filter_string="attributes.run_name = 'prepare@digits'")[0]
    assert run.data.tags["dvc_lock_sha256"] == "absent"


def test_system_metrics_are_sampled_on_the_child_run_and_can_be_turned_off(tracked, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.setenv("GENBENCH_SYSTEM_METRICS", "1")
    with StageTracker("embed", "embedded", {}, run_name="embed@digits", tags={"dataset": "digits"}):
        time.sleep(1.5)
    monkeypatch.setenv("GENBENCH_SYSTEM_METRICS", "0")
    with StageTracker("probe", "embedded", {}, run_name="probe@digits", tags={"dataset": "digits"}):
        time.sleep(0.6)
    client, exp_id = _client(tracked)
    runs = {r.info.run_name: r for r in client.search_runs([exp_id])}
    on = [k for k in runs["embed@digits"].data.metrics if k.startswith("system/")]
    assert "system/cpu_utilization_percentage" in on and "system/system_memory_usage_megabytes" in on
    assert not [k for k in runs["probe@digits"].data.metrics if k.startswith("system/")]
    assert not [k for k in runs["strategy-DT"].data.metrics if k.startswith("system/")]


def test_parent_metric_names():
    assert parent_metric_name("cler", "digits", "cler.generated") == "digits/cler/cler.generated"
    assert parent_metric_name("cost", "all", "usd_per_image.generated") == "cost/usd_per_image.generated"
    assert parent_metric_name("report", None, "tables") == "report/tables"


def test_strategy_names_with_plus_log_as_mlflow_accepts_them(tracked, monkeypatch):
    """The paper profile's DT+NP+RD: MLflow refuses '+' in a metric name (the rehearsal's cler@voc-2007 stopped on it)."""
    monkeypatch.setenv("GENBENCH_SYSTEM_METRICS", "0")
    with StageTracker("cler", "embedded", {"timing_repeats": 1}, run_name="cler@voc-2007", tags={"dataset": "voc-2007"}) as t:
        t.log_metrics({"cler.generated.DT+NP+RD": 12.5, "cler.generated.DT+NP": 11.0})
    client, exp_id = _client(tracked)
    child = client.search_runs([exp_id], filter_string="tags.`genbench.kind` = 'stage'")[0]
    assert child.data.metrics == {"cler.generated.DT_NP_RD": 12.5, "cler.generated.DT_NP": 11.0}
