"""DVC experiments end to end: a real `dvc exp run --temp` on a copy of the project keeps its
headline metrics (dvc exp show --json) and lands its MLflow runs in the project's own mlflow.db (the width of `dvc metrics show`:
tests/test_headline.py)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import copy_project, write_params
from test_dvc_faults import TINY, dvc

HEADLINE = "metrics/digits/headline/generated.json"
EXPERIMENT_PARAMS = {**TINY, "generate": {**TINY["generate"], "images_per_class": 2}}  # the probe needs 2 per class


def _experiment(entries: list, name: str) -> dict | None:
    """The `dvc exp show --json` entry named `name` (baselines and their experiments)."""
    for entry in entries:
        for candidate in [entry, *[rev for exp in entry.get("experiments") or [] for rev in exp.get("revs", [])]]:
            if candidate.get("name") == name:
                return candidate
    return None


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("kit"))
    write_params(root, EXPERIMENT_PARAMS)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for cmd in (["git", "init", "-q"], git + ["add", "-A"], git + ["commit", "-qm", "test checkout"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    return root


@pytest.mark.slow  # 7-13 min measured on the shared 2-core machine: every stage up to headline@digits
def test_temp_experiment_keeps_headline_and_tracks_into_the_root_store(committed: Path):
    proc = dvc(committed, "exp", "run", "--temp", "-S", "generate.guidance_scale=3.0", "-n", "g3", "headline@digits")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shown = dvc(committed, "exp", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    g3 = _experiment(json.loads(shown.stdout), "g3")
    assert g3 is not None, shown.stdout[:2000]
    cler = g3["data"]["metrics"][HEADLINE]["data"]["cler"]
    assert isinstance(cler, float) and 0.0 <= cler <= 100.0
    assert g3["data"]["params"]["params.yaml"]["data"]["generate"]["guidance_scale"] == 3.0

    with sqlite3.connect(committed / "mlflow.db") as db:
        parents = db.execute("select r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid "
                             "where t.key = 'genbench.kind' and t.value = 'pipeline' and r.name = 'g3'").fetchall()
        assert len(parents) == 1
        (parent,) = parents[0]
        tags = dict(db.execute("select key, value from tags where run_uuid = ?", (parent,)).fetchall())
        logged = db.execute("select value from latest_metrics where run_uuid = ? and key = 'digits/cler/cler.generated'",
                            (parent,)).fetchone()
    assert tags["dvc_exp_name"] == "g3"
    assert tags["dvc_exp_param.generate.guidance_scale"] == "3.0"
    assert logged is not None and logged[0] == pytest.approx(cler)
    assert not list((committed / ".dvc" / "tmp").rglob("mlflow.db"))
