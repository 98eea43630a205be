"""The tracking store under load: eight real `genbench` stage processes logging at once to the
SQLite default and to an `mlflow server` on PostgreSQL, and the faults a team meets there.

Each writer runs `genbench cler --dataset digits` in its own copy of one finished tiny project
(built once from scratch), all logging to one store. What every writer logged is compared with
the run the same stage logged alone while the project was built: the same metric and param keys,
the same artifacts, each metric once, every run FINISHED, no run twice, and each writer's cost
meter naming its own run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import genbench_cmd, write_params
from servers import mlflow_server, postgres  # noqa: F401  (fixtures)
from test_faults import DATASET, FIXTURE_PARAMS, invoke

WRITERS = 8
STAGE = ["cler", "--dataset", DATASET]
STAGE_TIMEOUT_S = 240
METER = Path("meter/datasets/digits/cler.json")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    write_params(root, FIXTURE_PARAMS)
    for stage in ("prepare", "generate", "embed", "cler"):
        code, out, err = invoke(root, [stage, "--dataset", DATASET])
        assert code == 0, f"{stage}: {out}\n{err}"
    return root


@pytest.fixture(scope="module")
def alone(finished: Path) -> dict:
    """What the cler stage logs when it is the only writer: metric keys, param keys, artifact paths."""
    client = MlflowClient(tracking_uri=f"sqlite:///{finished / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    (run,) = [r for r in client.search_runs(ids) if r.data.tags.get("genbench.stage") == "cler"]
    return {"metrics": set(run.data.metrics), "params": set(run.data.params),
            "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id))}


def copies(finished: Path, folder: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        dest = folder / f"writer{i}"
        shutil.copytree(finished, dest, ignore=shutil.ignore_patterns("mlflow.db*", "mlruns"))
        out.append(dest)
    return out


def stage_env(uri: str, experiment: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": experiment, "GENBENCH_SYSTEM_METRICS": "0",
            "TQDM_DISABLE": "1", "GENBENCH_PIPELINE_ID": "", "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **extra}


def run_stage(root: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*genbench_cmd(), *STAGE], cwd=root, env=env, capture_output=True, text=True,
                          timeout=STAGE_TIMEOUT_S)


def run_all(roots: list[Path], env: dict) -> list[subprocess.CompletedProcess]:
    with ThreadPoolExecutor(len(roots)) as pool:
        return list(pool.map(lambda root: run_stage(root, env), roots))


def stage_runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return [r for r in client.search_runs([exp.experiment_id], max_results=1000)
            if r.data.tags.get("genbench.kind") == "stage"] if exp else []


def assert_nothing_lost(client: MlflowClient, experiment: str, roots: list[Path], alone: dict) -> None:
    runs = stage_runs(client, experiment)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    meter_runs = [json.loads((root / METER).read_text())["run_id"] for root in roots]
    assert len(set(meter_runs)) == len(roots), "two writers' meters name one run"
    assert sorted(r.info.run_id for r in finished) == sorted(meter_runs), "FINISHED runs are not one per writer"
    for run in finished:
        assert set(run.data.metrics) == alone["metrics"]
        assert set(run.data.params) == alone["params"]
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == alone["artifacts"]
        for key in ("usd_total", "wall_s"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 1, f"{key} logged twice on {run.info.run_id}"
    parents = {r.data.tags["mlflow.parentRunId"] for r in finished}
    assert len(parents) == len(roots), "writers share a parent run"
    for parent in parents:
        assert client.get_run(parent).info.status == "FINISHED"


def test_eight_writers_on_one_sqlite_store(finished: Path, alone: dict, tmp_path: Path):
    shared = tmp_path / "shared"
    shared.mkdir()
    uri = f"sqlite:///{shared / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment("load", artifact_location=str(shared / "mlruns"))  # a team's shared store, made once
    roots = copies(finished, tmp_path, WRITERS)
    results = run_all(roots, stage_env(uri, "load", GENBENCH_MLFLOW_LOCK_WAIT_S="120"))
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    assert_nothing_lost(client, "load", roots, alone)
    with sqlite3.connect(shared / "mlflow.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)


def test_eight_writers_on_the_server(finished: Path, alone: dict, mlflow_server, tmp_path: Path):
    roots = copies(finished, tmp_path, WRITERS)
    results = run_all(roots, stage_env(mlflow_server.uri, "load-server"))  # the experiment is created by a race
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    assert_nothing_lost(MlflowClient(tracking_uri=mlflow_server.uri), "load-server", roots, alone)


def wait_for_running(client: MlflowClient, experiment: str, proc: subprocess.Popen, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(r.info.status == "RUNNING" for r in stage_runs(client, experiment)):
            return True
        time.sleep(0.2)
    return False


def test_server_restart_mid_run_loses_nothing(finished: Path, alone: dict, mlflow_server, tmp_path: Path):
    (root,) = copies(finished, tmp_path, 1)
    env = stage_env(mlflow_server.uri, "restart")
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    proc = subprocess.Popen([*genbench_cmd(), *STAGE], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    if not wait_for_running(client, "restart", proc):
        proc.kill()
        pytest.fail(f"the stage opened no run: {proc.communicate()[1][-2000:]}")
    mlflow_server.restart()
    _, err = proc.communicate(timeout=STAGE_TIMEOUT_S)
    if proc.returncode != 0:  # it failed: with one line, then a rerun completes
        assert proc.returncode == 2 and err.strip().splitlines()[-1].startswith("error: "), err[-2000:]
        rerun = run_stage(root, env)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_nothing_lost(client, "restart", [root], alone)
    assert not [r for r in stage_runs(client, "restart") if r.info.status == "RUNNING"]


def test_worker_killed_mid_write_leaves_a_sound_store(finished: Path, alone: dict, tmp_path: Path):
    (root,) = copies(finished, tmp_path, 1)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    for attempt in range(3):  # a stage that ends before the poll sees it running: again, in a fresh experiment
        experiment = f"killed-{attempt}"
        client.create_experiment(experiment, artifact_location=str(tmp_path / "mlruns"))
        env = stage_env(uri, experiment)
        proc = subprocess.Popen([*genbench_cmd(), *STAGE], cwd=root, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if wait_for_running(client, experiment, proc):
            break
        proc.wait()
    else:
        raise AssertionError("the stage was never seen running in three starts")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = run_stage(root, env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    statuses = sorted(r.info.status for r in stage_runs(client, experiment))
    assert statuses in (["FINISHED"], ["FINISHED", "KILLED"]), statuses  # the kill may land after the run ended
    assert_nothing_lost(client, experiment, [root], alone)
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
