"""Faults under real `dvc repro`, on a copy of one finished tiny pipeline run (cler@digits and what
it needs, on the built-in tiny models): a failed stage's metrics come back with `dvc checkout`,
and a SIGKILL of the whole `dvc repro` leaves no MLflow run RUNNING after the next `dvc repro`."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from dvc_project import DVC, TINY, baseline, dvc, dvc_env

CLER = Path("metrics/digits/cler.json")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def runs(root: Path) -> dict[str, str]:
    with sqlite3.connect(root / "mlflow.db") as db:
        return dict(db.execute("select run_uuid, status from runs").fetchall())


def edit_params(root: Path, section: str, **values) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    return baseline(tmp_path_factory.mktemp("kit"), TINY, "cler@digits")


@pytest.fixture
def project(finished: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(finished, dest, symlinks=True)
    return dest


@pytest.mark.parametrize("target", [str(CLER), "cler@digits"], ids=["file", "stage"])
def test_dvc_checkout_brings_back_the_metrics_a_failed_stage_removed(project: Path, target: str):
    before = sha256(project / CLER)
    edit_params(project, "cler", timing_repeats="three")
    failed = dvc(project, "repro", "-s", "cler@digits")
    assert failed.returncode != 0, failed.stdout
    assert "cler.timing_repeats" in failed.stdout + failed.stderr
    assert not (project / CLER).exists()  # DVC removed the stage's outputs before running it
    restored = dvc(project, "checkout", target)
    assert restored.returncode == 0, restored.stderr
    assert sha256(project / CLER) == before


def test_a_sigkilled_dvc_repro_leaves_no_run_running_after_the_next_repro(project: Path):
    edit_params(project, "generate", images_per_class=2, seed=1)  # generate reruns, long enough to kill mid-stage
    before = set(runs(project))
    proc = subprocess.Popen([DVC, "repro", "cler@digits"], cwd=project, env=dvc_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if "RUNNING" in {v for k, v in runs(project).items() if k not in before}:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("dvc repro never opened a run")
    time.sleep(1.0)  # into the stage's work
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "RUNNING" in runs(project).values()  # what the kill left behind

    again = dvc(project, "repro", "cler@digits")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    states = runs(project)
    assert "RUNNING" not in states.values(), states
    assert "KILLED" in {states[k] for k in set(states) - before}
