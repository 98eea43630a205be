"""Races between processes that share one MLflow store: several processes opening a SQLite store
that does not exist yet, and a writer closing abandoned runs while their owner finishes them."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from stages.frame.run_states import PROCESS_TAG, close_abandoned, process_id

ROOT = Path(__file__).resolve().parents[1]
OPENERS = 4
KIND_TAG = "genbench.kind"
GONE = f"{socket.gethostname()}:1:1"  # pid 1 did not start at second 1: a process of this host that is gone

# Each opener imports everything first, says it is ready, and opens the store when told to: the
# slow imports would otherwise spread the openings apart.
OPENER = """
import sys, time
from pathlib import Path
import mlflow.store.tracking.sqlalchemy_store, mlflow.tracking
from stages.frame.mlflow_store import GuardedClient, experiment_id
folder = Path(sys.argv[2])
(folder / f"ready-{sys.argv[3]}").touch()
while not (folder / "go").exists():
    time.sleep(0.01)
print(experiment_id(GuardedClient(sys.argv[1]), "race", {}))
"""


def test_processes_opening_a_missing_sqlite_store_at_once_all_succeed(tmp_path: Path):
    db = tmp_path / "mlflow.db"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, f"sqlite:///{db}", str(barrier), str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(OPENERS)]
    deadline = time.monotonic() + 120
    while len(list(barrier.glob("ready-*"))) < OPENERS and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    (barrier / "go").touch()
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err[-3000:]
    assert len({out.strip() for _, out, _ in results}) == 1, "the openers disagree on the experiment"
    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
        assert conn.execute("select count(*) from experiments where name = 'race'").fetchone() == (1,)


def test_mlflow_telemetry_is_off_unless_asked_for():
    """Its thread races the stage's for os.environ (stages/frame/mlflow_store.py); outside pytest and CI,
    where MLflow would turn it on."""
    code = ("import stages.frame.mlflow_store, mlflow; from mlflow.telemetry.client import get_telemetry_client; "
            "print(get_telemetry_client() is None)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "CI", "MLFLOW_DISABLE_TELEMETRY")}
    out = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr[-2000:]


class FinishedAfterSearch:
    """A client whose first search for runs is followed at once by `then()`: what another process
    does between a writer's search and its next call."""

    def __init__(self, client: MlflowClient, then):
        self.client, self.then, self.searched = client, then, False

    def search_runs(self, *args, **kwargs):
        found = self.client.search_runs(*args, **kwargs)
        if not self.searched:
            self.searched = True
            self.then()
        return found

    def __getattr__(self, name):
        return getattr(self.client, name)


def abandoned_pair(client: MlflowClient, experiment: str) -> tuple[str, str]:
    """A pipeline run and its stage run, RUNNING, both opened by a process that is gone."""
    parent = client.create_run(experiment, tags={KIND_TAG: "pipeline", PROCESS_TAG: GONE}).info.run_id
    child = client.create_run(experiment, tags={KIND_TAG: "stage", PROCESS_TAG: GONE, "mlflow.parentRunId": parent}).info.run_id
    return parent, child


def status(client: MlflowClient, run_id: str) -> str:
    return client.get_run(run_id).info.status


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One SQLite store for the module's experiments (a new store costs seconds to migrate)."""
    folder = tmp_path_factory.mktemp("store")
    MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder


def experiment_in(store: Path, name: str) -> tuple[MlflowClient, str]:
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    return client, client.create_experiment(name, artifact_location=str(store / "mlruns"))


def test_close_abandoned_leaves_runs_their_owner_finished_after_the_search(store: Path):
    client, experiment = experiment_in(store, "abandoned")
    parent, child = abandoned_pair(client, experiment)

    def owner_finishes():
        client.set_terminated(child, "FINISHED")
        client.set_terminated(parent, "FINISHED")

    assert close_abandoned(FinishedAfterSearch(client, owner_finishes), experiment, KIND_TAG) == []
    assert (status(client, parent), status(client, child)) == ("FINISHED", "FINISHED")

    parent, child = abandoned_pair(client, experiment)  # really abandoned: closed
    assert sorted(close_abandoned(client, experiment, KIND_TAG)) == sorted([parent, child])
    assert (status(client, parent), status(client, child)) == ("KILLED", "KILLED")


def test_close_abandoned_leaves_a_pipeline_run_a_new_stage_joined_after_the_search(store: Path):
    client, experiment = experiment_in(store, "rejoined")
    parent, child = abandoned_pair(client, experiment)
    joined = []

    def next_stage_joins():  # the pipeline's next stage, in this live process, opens its run under the parent
        joined.append(client.create_run(experiment, tags={KIND_TAG: "stage", PROCESS_TAG: process_id(),
                                                          "mlflow.parentRunId": parent}).info.run_id)

    assert close_abandoned(FinishedAfterSearch(client, next_stage_joins), experiment, KIND_TAG) == [child]
    assert (status(client, parent), status(client, child), status(client, joined[0])) == ("RUNNING", "KILLED", "RUNNING")
