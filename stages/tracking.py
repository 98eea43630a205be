"""MLflow tracking: one parent run per pipeline execution, one child run per stage.

The tracking URI is `MLFLOW_TRACKING_URI`, or `sqlite:///mlflow.db` in the working directory
(the repository root under `dvc repro`). The experiment is `MLFLOW_EXPERIMENT_NAME` or
`genbench-<profile>`.

A pipeline execution is one `dvc repro` / `dvc exp run` process: stages find it by walking up
their process ancestry to the `dvc` process and key the parent run by its pid and start time,
so every stage of one `dvc repro` lands under the same parent. `GENBENCH_PIPELINE_ID` overrides
the key (for schedulers that launch stages separately); a stage run by hand gets a parent of
its own.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil

PIPELINE_TAG = "genbench.pipeline_key"
STAGE_TAG = "genbench.stage"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def experiment_name(profile: str) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"genbench-{profile}"


def pipeline_key() -> str:
    if os.environ.get("GENBENCH_PIPELINE_ID"):
        return os.environ["GENBENCH_PIPELINE_ID"]
    me = psutil.Process()
    for proc in me.parents():
        try:
            cmd = " ".join(proc.cmdline())
        except (psutil.Error, OSError):
            continue
        if "dvc" in Path(proc.cmdline()[0]).name or " dvc " in f" {cmd} " or "/dvc " in cmd:
            return f"dvc-{proc.pid}-{int(proc.create_time())}"
    return f"standalone-{me.pid}-{int(me.create_time())}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class StageTracker:
    """Opens the stage's child run under the pipeline's parent run; closes both on exit."""

    def __init__(self, stage: str, profile: str, params: dict, *, run_name: str | None = None, tags: dict | None = None):
        from mlflow.tracking import MlflowClient

        self.stage = stage
        self.run_name = run_name or stage
        self.client = MlflowClient(tracking_uri=tracking_uri())
        name = experiment_name(profile)
        exp = self.client.get_experiment_by_name(name)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(name)
        self.parent_id = self._parent_run()
        self.params = params
        self.tags = tags or {}
        self.run_id: str | None = None

    def _parent_run(self) -> str:
        key = pipeline_key()
        found = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{key}'", max_results=1)
        if found:
            return found[0].info.run_id
        name = os.environ.get("DVC_EXP_NAME") or f"pipeline {time.strftime('%Y-%m-%d %H:%M:%S')}"
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={PIPELINE_TAG: key, "git_commit": git_commit(), "genbench.kind": "pipeline"},
        )
        return run.info.run_id

    def __enter__(self) -> "StageTracker":
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=self.run_name,
            tags={
                "mlflow.parentRunId": self.parent_id,
                STAGE_TAG: self.stage,
                "dvc_stage": self.stage,
                "git_commit": git_commit(),
                **self.tags,
            },
        )
        self.run_id = run.info.run_id
        flat = _flatten(self.params)
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in flat.items()])
        self.client.update_run(self.parent_id, status="RUNNING")
        return self

    def log_metrics(self, metrics: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, 0) for k, v in _flatten(metrics).items() if _is_number(v)]
        for start in range(0, len(rows), 500):
            self.client.log_batch(self.run_id, metrics=rows[start : start + 500])

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: str | Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        self.client.set_terminated(self.run_id, status=status)
        self.client.set_terminated(self.parent_id, status=status)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
