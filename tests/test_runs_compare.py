"""`genbench runs compare` on two pipeline runs fabricated in a temporary SQLite store."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from genbench.errors import GenBenchError
from stages.commands.runs import command, format_comparison, resolve_run

EXPERIMENT = "genbench-embedded"


def _pipeline(client, exp_id, name, params, children):
    from mlflow.entities import Metric, Param

    parent = client.create_run(exp_id, run_name=name, tags={"genbench.kind": "pipeline", "git_commit": "abc123def4567"})
    client.log_batch(parent.info.run_id, params=[Param(k, v) for k, v in params.items()])
    for child_name, metrics in children.items():
        stage = child_name.split("@")[0]
        child = client.create_run(exp_id, run_name=child_name,
                                  tags={"mlflow.parentRunId": parent.info.run_id, "genbench.stage": stage})
        client.log_batch(child.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
        client.set_terminated(child.info.run_id)
    client.set_terminated(parent.info.run_id)
    return parent.info.run_id


@pytest.fixture
def store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT)
    a = _pipeline(client, exp_id, "strategy-ST", {"generate.strategies": "['ST']", "generate.steps": "20"}, {
        "cler@digits": {"cler.generated": 40.0, "zero_shot": 30.0, "system/cpu_utilization_percentage": 50.0},
        "probe@digits": {"probe.generated": 60.0},
        "cost": {"usd_per_image.generated": 2.0e-6},
        "prepare@digits": {"num_test": 540.0},
    })
    b = _pipeline(client, exp_id, "strategy-DT", {"generate.strategies": "['DT']", "generate.steps": "20"}, {
        "cler@digits": {"cler.generated": 45.5, "zero_shot": 30.0, "system/cpu_utilization_percentage": 70.0},
        "probe@digits": {"probe.generated": 58.0},
        "cost": {"usd_per_image.generated": 3.0e-6},
    })
    return {"uri": uri, "client": client, "exp_id": exp_id, "a": a, "b": b}


def _invoke(store, *args):
    return CliRunner().invoke(command, ["compare", *args, "--tracking-uri", store["uri"], "--experiment", EXPERIMENT])


def test_compare_by_name_prints_differing_params_and_metrics_with_deltas(store):
    result = _invoke(store, "strategy-ST", "strategy-DT")
    assert result.exit_code == 0, result.output
    out = result.output
    lines = out.splitlines()
    strat = next(line for line in lines if "generate.strategies" in line)
    assert "A: ['ST']" in strat and "B: ['DT']" in strat
    assert not any("generate.steps" in line for line in lines)  # equal params are left out
    cler = next(line for line in lines if line.strip().startswith("cler.generated"))
    assert cler.split()[1:] == ["40", "45.5", "+5.5"]
    probe = next(line for line in lines if line.strip().startswith("probe.generated"))
    assert probe.split()[1:] == ["60", "58", "-2"]
    usd = next(line for line in lines if line.strip().startswith("usd_per_image.generated"))
    assert usd.split()[1:] == ["2e-06", "3e-06", "+1e-06"]
    assert "prepare@digits  (only in A)" in out
    assert "system/cpu_utilization_percentage" not in out  # system metrics only with --all
    assert out.index("cler@digits") < out.index("cost") < out.index("probe@digits")


def test_compare_by_id_and_id_prefix_and_all(store):
    result = _invoke(store, store["a"], store["b"][:10], "--all")
    assert result.exit_code == 0, result.output
    assert "generate.steps" in result.output and "system/cpu_utilization_percentage" in result.output
    assert f"id {store['a']}" in result.output and f"id {store['b']}" in result.output


def test_unknown_run_and_experiment_are_named(store):
    with pytest.raises(GenBenchError, match="no pipeline run 'nope'.*strategy-DT"):
        resolve_run(store["client"], store["exp_id"], "nope")
    result = CliRunner().invoke(command, ["compare", "a", "b", "--tracking-uri", store["uri"], "--experiment", "other"])
    assert isinstance(result.exception, GenBenchError) and "no MLflow experiment 'other'" in str(result.exception)


def test_missing_store_is_an_error_not_a_new_database(tmp_path):
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    result = CliRunner().invoke(command, ["compare", "a", "b", "--tracking-uri", uri])
    assert isinstance(result.exception, GenBenchError) and "no MLflow store" in str(result.exception)
    assert not (tmp_path / "absent.db").exists()


def test_params_fall_back_to_the_childrens_for_runs_without_parent_params(store):
    from mlflow.entities import Param

    client = store["client"]
    old = client.create_run(store["exp_id"], run_name="old", tags={"genbench.kind": "pipeline"})
    child = client.create_run(store["exp_id"], run_name="generate@digits",
                              tags={"mlflow.parentRunId": old.info.run_id, "genbench.stage": "generate"})
    client.log_batch(child.info.run_id, params=[Param("strategies", "['ST', 'DT']")])
    a = resolve_run(client, store["exp_id"], "old")
    b = resolve_run(client, store["exp_id"], "strategy-DT")
    text = format_comparison(a, b)
    assert "generate.strategies  A: ['ST', 'DT']  B: ['DT']" in text


def test_compare_dvc_experiments_by_name(store):
    client = store["client"]
    for run_id, exp_name in ((store["a"], "st-exp"), (store["b"], "dt-exp")):
        client.set_tag(run_id, "dvc_exp_name", exp_name)
    result = _invoke(store, "--exp", "st-exp", "--exp", "dt-exp")
    assert result.exit_code == 0, result.output
    cler = next(line for line in result.output.splitlines() if line.strip().startswith("cler.generated"))
    assert cler.split()[1:] == ["40", "45.5", "+5.5"]
    mixed = _invoke(store, "--exp", "dt-exp", "strategy-ST")
    assert mixed.exit_code == 0, mixed.output
    assert next(line for line in mixed.output.splitlines() if line.strip().startswith("cler.generated")).split()[1:] == ["45.5", "40", "-5.5"]


def test_unknown_dvc_experiment_and_wrong_count_are_errors(store):
    unknown = _invoke(store, "--exp", "nope", "strategy-ST")
    assert unknown.exit_code != 0 and "'nope'" in str(unknown.exception or unknown.output)
    one = _invoke(store, "--exp", "nope")
    assert one.exit_code != 0 and "two runs" in str(one.exception or one.output)
