"""The tracking store under load: eight real `genbench` stage processes, plus a Ray driver and its
workers, logging at once to the SQLite default and to an `mlflow server` on PostgreSQL, and the
faults a team meets there.

Each writer runs `genbench cler --dataset digits` in its own copy of one finished tiny project
(built once from scratch), all logging to one store; beside them `genbench embed --executor ray`
encodes a copy's image sets on RAY_WORKERS Ray workers of a local cluster. What every writer
logged is compared with the run the same stage logged alone while the project was built: the
same metric and param keys, the same artifacts, each metric once, every run FINISHED, no run
twice, and each writer's cost meter naming its own run. The Ray writer's cost ledger has one row
per Ray worker that ran (counted by Ray) and its rows' images add up to the image sets' manifests.
"""

from __future__ import annotations

import csv
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

from conftest import genbench_cmd
from servers import mlflow_server, postgres  # noqa: F401  (fixtures)
from tiny_project import DATASET, finished, invoke  # noqa: F401  (finished: a fixture)

WRITERS = 8
RAY_WORKERS = 2
STAGE = ["cler", "--dataset", DATASET]
RAY_STAGE = ["embed", "--dataset", DATASET, "--executor", "ray"]
STAGE_TIMEOUT_S = 240
METERS = {"cler": Path("meter/datasets/digits/cler.json"), "embed": Path("meter/datasets/digits/embed.json")}
EMBEDDED_SETS = ("prepared/test", "prepared/original", "generated")  # what embed encodes in the tiny project


@pytest.fixture(scope="module")
def alone(finished: Path) -> dict:
    """What the cler and embed stages log when each is the only writer: metric keys, param keys, artifact paths."""
    client = MlflowClient(tracking_uri=f"sqlite:///{finished / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    out = {}
    for stage in METERS:
        (run,) = [r for r in client.search_runs(ids) if r.data.tags.get("genbench.stage") == stage]
        out[stage] = {"metrics": set(run.data.metrics), "params": set(run.data.params),
                      "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id))}
    return out


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of RAY_WORKERS CPUs that the Ray writer's driver joins; yields its address."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=RAY_WORKERS, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def embed_actors() -> set[str]:
    """The names of the embedding actors the Ray cluster has run, alive or not (Ray's own record)."""
    from ray._private.state import actors

    return {a["Name"] for a in actors().values() if a.get("Name", "").startswith("genbench-embed-")}


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


def run_stage(root: Path, env: dict, stage: list[str] = STAGE) -> subprocess.CompletedProcess:
    return subprocess.run([*genbench_cmd(), *stage], cwd=root, env=env, capture_output=True, text=True,
                          timeout=STAGE_TIMEOUT_S)


def ray_writer(finished: Path, folder: Path, ray_address: str) -> tuple[Path, list[str], dict]:
    """A copy whose features are gone, so `embed --executor ray` encodes every set on the Ray
    workers: (its folder, the command, the environment it adds). One thread a worker (cpu_threads)."""
    (root,) = copies(finished, folder / "ray", 1)
    for features in (root / "data" / DATASET / "features").glob("*.safetensors"):
        features.unlink()
    return root, RAY_STAGE, {"RAY_ADDRESS": ray_address, "OMP_NUM_THREADS": "1"}


def run_all(roots: list[Path], env: dict, ray: tuple[Path, list[str], dict]) -> list[subprocess.CompletedProcess]:
    """The cler stage in every root and the Ray writer, all at once."""
    with ThreadPoolExecutor(len(roots) + 1) as pool:
        driver = pool.submit(run_stage, ray[0], {**env, **ray[2]}, ray[1])
        return [*pool.map(lambda root: run_stage(root, env), roots), driver.result()]


def stage_runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return [r for r in client.search_runs([exp.experiment_id], max_results=1000)
            if r.data.tags.get("genbench.kind") == "stage"] if exp else []


def assert_nothing_lost(client: MlflowClient, experiment: str, writers: dict[Path, str], alone: dict) -> None:
    """`writers`: each writer's project folder -> the stage it ran."""
    runs = stage_runs(client, experiment)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    meter_runs = {json.loads((root / METERS[stage]).read_text())["run_id"]: stage for root, stage in writers.items()}
    assert len(meter_runs) == len(writers), "two writers' meters name one run"
    assert sorted(r.info.run_id for r in finished) == sorted(meter_runs), "FINISHED runs are not one per writer"
    for run in finished:
        logged = alone[meter_runs[run.info.run_id]]
        assert set(run.data.metrics) == logged["metrics"]
        assert set(run.data.params) == logged["params"]
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == logged["artifacts"]
        for key in ("usd_total", "wall_s"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 1, f"{key} logged twice on {run.info.run_id}"
    parents = {r.data.tags["mlflow.parentRunId"] for r in finished}
    assert len(parents) == len(writers), "writers share a parent run"
    for parent in parents:
        assert client.get_run(parent).info.status == "FINISHED"


def assert_ledger_counts_each_worker_once(root: Path, actors: set[str], env: dict) -> None:
    """The cost stage's ledger in the Ray writer's folder: the embed driver's row (no images) and
    one row per Ray worker that ran, whose images add up to the manifests of the sets encoded."""
    import pandas as pd

    code, out, err = invoke(root, ["cost"], {k: env[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")})
    assert code == 0, f"{out}\n{err}"
    with (root / "reports" / "ledger.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["stage"] == "embed"]
    images = sum(len(pd.read_parquet(root / "data" / DATASET / s / "manifest.parquet")) for s in EMBEDDED_SETS)
    assert len(actors) == RAY_WORKERS, f"Ray ran {sorted(actors)}"
    assert len(rows) == 1 + len(actors), f"{len(rows)} embed rows for {len(actors)} Ray workers"
    items = sorted(int(r["items"]) for r in rows)
    assert items[0] == 0 and all(i > 0 for i in items[1:]), items
    assert sum(items) == images
    workers = json.loads((root / METERS["embed"]).read_text())["workers"]
    assert len({w["worker"] for w in workers}) == len(workers) == len(actors)


def test_eight_writers_on_one_sqlite_store(finished: Path, alone: dict, ray_cluster: str, tmp_path: Path):
    shared = tmp_path / "shared"
    shared.mkdir()
    uri = f"sqlite:///{shared / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment("load", artifact_location=str(shared / "mlruns"))  # a team's shared store, made once
    roots = copies(finished, tmp_path, WRITERS)
    ray = ray_writer(finished, tmp_path, ray_cluster)
    before = embed_actors()
    env = stage_env(uri, "load", GENBENCH_MLFLOW_LOCK_WAIT_S="120")
    results = run_all(roots, env, ray)
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    assert_nothing_lost(client, "load", {**{root: "cler" for root in roots}, ray[0]: "embed"}, alone)
    with sqlite3.connect(shared / "mlflow.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    assert_ledger_counts_each_worker_once(ray[0], embed_actors() - before, env)


def test_eight_writers_on_the_server(finished: Path, alone: dict, ray_cluster: str, mlflow_server, tmp_path: Path):
    roots = copies(finished, tmp_path, WRITERS)
    ray = ray_writer(finished, tmp_path, ray_cluster)
    before = embed_actors()
    env = stage_env(mlflow_server.uri, "load-server")
    results = run_all(roots, env, ray)  # the experiment is created by a race
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    assert_nothing_lost(client, "load-server", {**{root: "cler" for root in roots}, ray[0]: "embed"}, alone)
    assert_ledger_counts_each_worker_once(ray[0], embed_actors() - before, env)


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
    assert_nothing_lost(client, "restart", {root: "cler"}, alone)
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
    assert_nothing_lost(client, experiment, {root: "cler"}, alone)
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
