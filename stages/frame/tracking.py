"""MLflow tracking: one parent run per pipeline execution, one child run per stage.

The tracking URI is `MLFLOW_TRACKING_URI`, or `sqlite:///mlflow.db` in the project root: DVC's
`DVC_ROOT` (which `dvc exp run --temp` and `dvc queue` set to the real project, not the temporary
copy DVC runs them in), else the working directory. A DVC experiment's parent run is
named after it (`DVC_EXP_NAME`) and tagged with each param it changed against its baseline
commit (`DVC_EXP_BASELINE_REV`) as `dvc_exp_param.<key>`. The experiment is `MLFLOW_EXPERIMENT_NAME` or
`genbench-<profile>`.

A pipeline execution is one `dvc repro` / `dvc exp run` process: stages find it by walking up
their process ancestry to the `dvc` process and key the parent run by its pid and start time,
so every stage of one `dvc repro` lands under the same parent. `GENBENCH_PIPELINE_ID` overrides
the key (for schedulers that launch stages separately); a stage run by hand gets a parent of
its own.

What a run carries so it can be traced to the exact code, settings and data:
- tags on the parent and on every child: `git_commit`, `dvc_lock_sha256` (of dvc.lock when the
  run started; "absent" before the first `dvc repro`), `params_file_sha256` (the whole params
  file); on children also `params_hash` (the stage's own section) and `price_snapshot`;
- the parent also collects, under consistent names, every stage's params as `<stage>.<key>` and
  its metrics as `<dataset>/<stage>/<metric>` (per-dataset stages) or `<stage>/<metric>`
  (pipeline-wide), so the MLflow UI compares two pipeline runs on one page;
- MLflow system metrics (`system/...`: CPU, memory, disk, network, GPU through NVML where present)
  are sampled on each child run every MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL seconds (default
  here 2); GENBENCH_SYSTEM_METRICS=0 turns them off.

Reaching the store is bounded and every store failure is one error line (stages/frame/mlflow_store.py);
SIGTERM/SIGINT close the runs as KILLED and runs a SIGKILL left RUNNING are closed as KILLED by
the next stage (stages/frame/run_states.py). A project copied or moved with its `mlflow.db` and
`mlruns/` keeps its artifacts: the next stage points the store at the new folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import time
from pathlib import Path

import psutil

from genbench.errors import Interrupted
from genbench.headline import headline_metrics
from stages.frame.mlflow_store import (EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, HEADLINE_VIEW, SHARED_VIEW_TAG, GuardedClient,
                                 dataset_inputs, experiment_id, guarded, headline_view, relocate_artifacts, sqlite_path)
from stages.frame.run_states import PROCESS_TAG, close_abandoned, process_id, sigterm_raises

PIPELINE_TAG = "genbench.pipeline_key"
STAGE_TAG = "genbench.stage"
KIND_TAG = "genbench.kind"
DATASET_TAG = "dataset"
SYSTEM_METRICS_INTERVAL_S = 2.0
EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
HEADLINE_PREFIX = "headline/"  # the parent's copy of genbench/headline.py's numbers: headline/digits/cler/generated


def project_root() -> Path:
    """The project folder whose mlflow.db is the default store: DVC_ROOT under DVC, else the cwd."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd())


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


EXP_PARAM_TAG = "dvc_exp_param."


def changed_params(baseline_rev: str, params_file: str | Path = "params.yaml") -> dict[str, str]:
    """{key: new value} for every param of `params_file` that differs from its content at git
    commit `baseline_rev` (what `dvc exp run -S` changed); {} when the baseline cannot be read."""
    import yaml

    try:
        out = subprocess.run(["git", "show", f"{baseline_rev}:{Path(params_file).as_posix()}"],
                             capture_output=True, text=True, timeout=30)
        before = _flatten(yaml.safe_load(out.stdout) or {}) if out.returncode == 0 else None
        now = _flatten(yaml.safe_load(Path(params_file).read_text()) or {})
    except (OSError, subprocess.SubprocessError, yaml.YAMLError):
        return {}
    if before is None:
        return {}
    return {k: str(v) for k, v in now.items() if k not in before or before[k] != v}


def parent_run_name(profile: str, commit: str) -> str:
    """The parent run's name: the DVC experiment's (`DVC_EXP_NAME`), else `<profile> <short commit>`."""
    return os.environ.get("DVC_EXP_NAME") or f"{profile} {commit[:7]}"


def params_datasets(params_file: str | Path = "params.yaml") -> list[str]:
    """The `datasets` entry of the params file ([] when it cannot be read)."""
    import yaml

    try:
        return list((yaml.safe_load(Path(params_file).read_text()) or {}).get("datasets") or [])
    except (OSError, yaml.YAMLError):
        return []


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


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, or "absent" when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return "absent"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trace_tags(params_file: str | Path = "params.yaml") -> dict[str, str]:
    """The tags that tie a run to its code, data and settings (see the module docstring)."""
    return {"git_commit": git_commit(), "dvc_lock_sha256": file_sha256("dvc.lock"),
            "params_file_sha256": file_sha256(params_file)}


def parent_metric_name(stage: str, dataset: str | None, key: str) -> str:
    """The name a stage's metric gets on the pipeline's parent run: digits/cler/cler.generated, cost/usd_total."""
    return f"{dataset}/{stage}/{key}" if dataset and dataset != "all" else f"{stage}/{key}"


METRIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :/]")  # MLflow accepts only these characters in a metric name


def metric_name(key: str) -> str:
    """`key` as MLflow accepts it: a strategy such as DT+NP+RD becomes DT_NP_RD in cler.generated.DT_NP_RD."""
    return METRIC_NAME_UNSAFE.sub("_", key)


def system_metrics_enabled() -> bool:
    return os.environ.get("GENBENCH_SYSTEM_METRICS", "1").strip().lower() not in ("0", "false", "no", "off")


class StageTracker:
    """Opens the stage's child run under the pipeline's parent run; closes both on exit."""

    def __init__(self, stage: str, profile: str, params: dict, *, run_name: str | None = None, tags: dict | None = None,
                 params_file: str | Path = "params.yaml"):
        self.stage = stage
        self.run_name = run_name or stage
        self.uri = tracking_uri()
        store = sqlite_path(self.uri)
        own_store = store is not None and store.resolve().parent == project_root().resolve()
        if own_store:
            guarded(self.uri, lambda: relocate_artifacts(store))
        self.client = GuardedClient(self.uri)
        self.profile = profile
        self.trace = trace_tags(params_file)
        self.params_file = params_file
        name = experiment_name(profile)
        exp = self.client.get_experiment_by_name(name)
        self.experiment_id = experiment_id(self.client, name, EXPERIMENT_TAGS)
        if exp is None:
            if own_store:  # created from a DVC temp copy: its artifacts belong in the project's mlruns/
                guarded(self.uri, lambda: relocate_artifacts(store))
        elif exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # made before the kit tagged it
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        close_abandoned(self.client, self.experiment_id, KIND_TAG)
        self.parent_id = self._parent_run()
        self.params = params
        self.tags = tags or {}
        self.dataset = self.tags.get(DATASET_TAG)
        self.run_id: str | None = None
        self._system_monitor = None

    def _parent_run(self) -> str:
        key = pipeline_key()
        found = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{key}'", max_results=1)
        if found:
            return found[0].info.run_id
        name = parent_run_name(self.profile, self.trace["git_commit"])
        tags = {PIPELINE_TAG: key, KIND_TAG: "pipeline", PROCESS_TAG: process_id(), "profile": self.profile, **self.trace}
        if os.environ.get("DVC_EXP_NAME"):
            tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
        if os.environ.get("DVC_EXP_BASELINE_REV"):
            tags["dvc_exp_baseline_rev"] = os.environ["DVC_EXP_BASELINE_REV"]
            changed = changed_params(os.environ["DVC_EXP_BASELINE_REV"], self.params_file)
            tags.update({f"{EXP_PARAM_TAG}{k}": v[:5000] for k, v in changed.items()})
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        return run.info.run_id

    def __enter__(self) -> "StageTracker":
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.run_name,
            tags={
                "mlflow.parentRunId": self.parent_id,
                STAGE_TAG: self.stage,
                "dvc_stage": self.stage,
                KIND_TAG: "stage",
                PROCESS_TAG: process_id(),
                **self.trace,
                **{k: str(v) for k, v in self.tags.items()},
            },
        )
        self.run_id = run.info.run_id
        flat = {k: str(v)[:6000] for k, v in _flatten(self.params).items()}
        self._log_params(self.run_id, flat)
        self._log_params(self.parent_id, {f"{self.stage}.{k}": v for k, v in flat.items()})
        self.client.update_run(self.parent_id, status="RUNNING")
        self._signals = sigterm_raises()
        self._signals.__enter__()
        self._start_system_metrics()
        return self

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        """Log params a run does not hold yet (MLflow params are write-once; a stage run again under
        the same parent keeps the first value and its child run holds the new one)."""
        from mlflow.entities import Param

        held = self.client.get_run(run_id).data.params
        fresh = [Param(k, v) for k, v in params.items() if k not in held]
        for start in range(0, len(fresh), 100):
            self.client.log_batch(run_id, params=fresh[start : start + 100])

    def _start_system_metrics(self) -> None:
        if not system_metrics_enabled():
            return
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            logging.getLogger("mlflow.system_metrics").setLevel(logging.ERROR)
            self._system_monitor = SystemMetricsMonitor(self.run_id, sampling_interval=SYSTEM_METRICS_INTERVAL_S,
                                                        tracking_uri=self.uri)
            self._system_monitor.start()
        except Exception as exc:  # system metrics are a convenience; a stage never fails for them
            logging.getLogger(__name__).warning("MLflow system metrics are off: %s", exc)
            self._system_monitor = None

    def _stop_system_metrics(self) -> None:
        if self._system_monitor is not None:
            try:
                self._system_monitor.finish()
            except Exception as exc:
                logging.getLogger(__name__).warning("MLflow system metrics did not stop cleanly: %s", exc)
            self._system_monitor = None

    def log_metrics(self, metrics: dict) -> None:
        """Log numeric metrics to the stage's run, and to the parent as <dataset>/<stage>/<key>."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = {metric_name(k): float(v) for k, v in _flatten(metrics).items() if _is_number(v)}
        for run_id, rows in (
            (self.run_id, [Metric(k, v, now, 0) for k, v in values.items()]),
            (self.parent_id, [Metric(parent_metric_name(self.stage, self.dataset, k), v, now, 0) for k, v in values.items()]),
        ):
            for start in range(0, len(rows), 500):
                self.client.log_batch(run_id, metrics=rows[start : start + 500])

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: str | Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def log_nested_run(self, run_name: str, kind: str, tags: dict, metrics: dict[str, float], params: dict[str, str]) -> None:
        """A finished run nested under this stage's run (e.g. one frontier point), tagged with the
        stage, `kind` and the dataset like the stage's run and with `tags`, holding `metrics` and `params`."""
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        run = self.client.create_run(self.experiment_id, run_name=run_name,
                                     tags={"mlflow.parentRunId": self.run_id, STAGE_TAG: self.stage, "dvc_stage": self.stage,
                                           KIND_TAG: kind, DATASET_TAG: self.dataset, **tags})
        self.client.log_batch(run.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                              params=[Param(k, v) for k, v in params.items()])
        self.client.set_terminated(run.info.run_id, status="FINISHED")

    def log_headline(self, root: Path | None = None) -> dict[str, float]:
        """Log the run's headline numbers (genbench/headline.py) on the parent as headline/<key>,
        the datasets' manifests as its dataset inputs (and the stage's on its own run), and point
        the experiment's headline view at those metric columns."""
        from mlflow.entities import Metric

        root = Path(root or Path.cwd())
        datasets = [self.dataset] if self.dataset and self.dataset != "all" else params_datasets(self.params_file)
        headline = {metric_name(HEADLINE_PREFIX + k): v for k, v in headline_metrics(root, datasets).items()}
        now = int(time.time() * 1000)
        if headline:
            self.client.log_batch(self.parent_id, metrics=[Metric(k, v, now, 0) for k, v in headline.items()])
        for name in datasets:
            inputs = dataset_inputs(root, name)
            if inputs:
                self.client.log_inputs(self.parent_id, datasets=inputs)
                self.client.log_inputs(self.run_id, datasets=inputs)
        held = sorted(k for k in self.client.get_run(self.parent_id).data.metrics if k.startswith(HEADLINE_PREFIX))
        if held:
            self.client.set_experiment_tag(self.experiment_id, SHARED_VIEW_TAG + HEADLINE_VIEW, headline_view(held))
        return headline

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.log_headline()
        self._stop_system_metrics()
        self._signals.__exit__(None, None, None)
        stopped = exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, Interrupted))
        status = "FINISHED" if exc_type is None else "KILLED" if stopped else "FAILED"
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
