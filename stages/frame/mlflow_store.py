"""Reaching the MLflow store without hanging and without tracebacks.

- A tracking server (http/https URI) is probed with a short timeout before any run is opened,
  and MLflow's own HTTP client gets bounded timeouts and retries (`HTTP_DEFAULTS`, used only
  where the user has not set them), so an unreachable server fails in seconds, not minutes.
- A SQLite store locked by another process is waited for: MLflow's own busy timeout (20 s a
  call), then retried until `GENBENCH_MLFLOW_LOCK_WAIT_S` seconds (default 30) have passed; then
  one error naming the processes that hold the file open.
- A SQLite store is opened (created and migrated when new) by one process at a time
  (`store_lock`): MLflow's schema migration fails when several processes run it on one new file.
- Every other store failure (read-only folder, no space, a broken database) is one
  `GenBenchError` line naming the store.
- A SQLite store in a copied or moved project is pointed at the project's own `mlruns/`
  (`relocate_artifacts`).
"""

from __future__ import annotations

import fcntl
import os
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil

from genbench.errors import GenBenchError

# MLflow's usage telemetry is off unless the user turns it on: offline (the kit's usual case) its
# background thread gives up by removing an environment variable while the stage's thread copies
# os.environ, and that store call fails with KeyError '_MLFLOW_TELEMETRY_SESSION_ID'. It is read
# when mlflow is imported, which no module does before this one.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

PROBE_TIMEOUT_S = 5.0
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
LOCK_WAIT_ENV = "GENBENCH_MLFLOW_LOCK_WAIT_S"
LOCK_WAIT_DEFAULT_S = 30.0
LOCK_RETRY_PAUSE_S = 1.0
LOCK_POLL_S = 0.05


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_server(uri: str) -> None:
    """For a tracking server: bound MLflow's HTTP timeouts and check the server answers at all."""
    if not is_http(uri):
        return
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # it answered; MLflow reports what it thinks of the request
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GenBenchError(
            f"MLflow tracking server MLFLOW_TRACKING_URI={uri!r} does not answer within {PROBE_TIMEOUT_S:g} s "
            f"({reason}); start it, or unset MLFLOW_TRACKING_URI to log to sqlite:///mlflow.db") from None


def lock_wait_s() -> float:
    raw = os.environ.get(LOCK_WAIT_ENV, "")
    try:
        return max(0.0, float(raw)) if raw.strip() else LOCK_WAIT_DEFAULT_S
    except ValueError:
        raise GenBenchError(f"{LOCK_WAIT_ENV}={raw!r} must be a number of seconds") from None


def holders(path: Path) -> list[str]:
    """'pid NAME' of the other processes that have `path` open."""
    target, me, found = str(path.resolve()), os.getpid(), []
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.info["pid"] == me:
            continue
        try:
            if any(f.path == target for f in proc.open_files()):
                found.append(f"pid {proc.info['pid']} {proc.info['name']}")
        except (psutil.Error, OSError):
            continue
    return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def describe_failure(uri: str, exc: BaseException) -> str:
    text = str(exc).lower()
    db = sqlite_path(uri)
    if "database is locked" in text and db is not None:
        who = holders(db)
        return (f"MLflow store {db} is locked by another process ({', '.join(who) or 'holder not found'}); still locked "
                f"after MLflow's own wait and {lock_wait_s():g} s of retries ({LOCK_WAIT_ENV}); let it finish or stop it, then rerun")
    if "readonly" in text or "read-only" in text or "permission denied" in text:
        return f"MLflow store {uri} cannot be written ({_first_line(exc)}); make the project folder writable, or point MLFLOW_TRACKING_URI elsewhere"
    if "no space" in text or "disk is full" in text or "database or disk is full" in text:
        return f"MLflow store {uri}: no space left on the device ({_first_line(exc)}); free some space, then rerun"
    return f"MLflow store {uri} failed: {_first_line(exc)}"


# Store failures another writer causes and a retry clears: SQLite's lock, and two writers inserting
# the same tag row at once (the loser's retry finds the row and updates it).
TRANSIENT_FAILURES = ("database is locked", "duplicate key value", "unique constraint failed")


def _transient(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in TRANSIENT_FAILURES)


def guarded(uri: str, call: Callable[[], Any]) -> Any:
    """`call()`, retrying a locked store for a bounded time; any store failure as GenBenchError."""
    deadline = time.monotonic() + lock_wait_s()
    while True:
        try:
            return call()
        except GenBenchError:
            raise
        except Exception as exc:
            if _transient(exc) and time.monotonic() < deadline:
                time.sleep(LOCK_RETRY_PAUSE_S)
                continue
            raise GenBenchError(describe_failure(uri, exc)) from None


def experiment_id(client, name: str, tags: dict[str, str]) -> str:
    """The id of experiment `name`, created with `tags` if absent. Writers that start together race
    to create it; the loser finds the winner's."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, tags=tags)
    except GenBenchError:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextmanager
def store_lock(db: Path) -> Iterator[None]:
    """Hold an exclusive lock (flock) on the folder of SQLite store `db` for the block, so that the
    processes opening one store create and migrate its schema one at a time. Waits up to
    `GENBENCH_MLFLOW_LOCK_WAIT_S`; a folder that cannot be locked (a file system without flock)
    is not locked."""
    try:
        fd = os.open(db.parent, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + lock_wait_s()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise GenBenchError(f"MLflow store {db}: another process has held its folder's lock for "
                                        f"{lock_wait_s():g} s ({LOCK_WAIT_ENV}) while opening it; let it finish, then rerun")
                time.sleep(LOCK_POLL_S)
            except OSError:
                break
        yield
    finally:
        os.close(fd)


class GuardedClient:
    """An MlflowClient whose every call goes through `guarded`. A SQLite store is opened (by the
    client and its first call; MLflow migrates a new one then) under `store_lock`."""

    def __init__(self, uri: str):
        from mlflow.tracking import MlflowClient

        check_server(uri)
        self.uri = uri
        db = sqlite_path(uri)
        if db is None:
            self._client = guarded(uri, lambda: MlflowClient(tracking_uri=uri))
            return
        with store_lock(db):
            self._client = guarded(uri, lambda: MlflowClient(tracking_uri=uri))
            guarded(uri, lambda: self._client.search_experiments(max_results=1))

    def __getattr__(self, name: str):
        method = getattr(self._client, name)
        if not callable(method):
            return method
        return lambda *args, **kwargs: guarded(self.uri, lambda: method(*args, **kwargs))


def relocate_artifacts(db: Path) -> list[str]:
    """Keep a copied or moved project's MLflow artifacts with it. MLflow records each experiment's
    artifact folder as an absolute path (`<project>/mlruns/<id>`); where that is not this store's
    own folder, and this store's `mlruns/<id>` exists or the recorded one does not, the experiment
    and its runs are pointed at this store's.
    Returns the ids of the experiments moved."""
    import sqlite3

    if not db.is_file():
        return []
    root = db.resolve().parent
    moved = []
    with sqlite3.connect(db, timeout=PROBE_TIMEOUT_S) as conn:
        try:
            rows = conn.execute("select experiment_id, artifact_location from experiments").fetchall()
        except sqlite3.Error:
            return []
        for exp_id, location in rows:
            here = root / "mlruns" / str(exp_id)
            old = str(location or "").removeprefix("file://")
            suffix = f"/mlruns/{exp_id}"
            if not old.startswith("/") or not old.endswith(suffix) or Path(old) == here:
                continue
            if not here.is_dir() and Path(old).exists():
                continue  # artifacts elsewhere, none here: leave them where they are
            conn.execute("update experiments set artifact_location = ? where experiment_id = ?", (str(here), exp_id))
            conn.execute("update runs set artifact_uri = ? || substr(artifact_uri, ?) where experiment_id = ? and "
                         "substr(artifact_uri, 1, ?) = ?", (str(here), len(old) + 1, exp_id, len(old), old))
            moved.append(str(exp_id))
    return moved


# ---- what the MLflow UI (3.x) reads from the store ----
# The UI's experiment page goes to the runs table for any `mlflow.experimentKind` other than
# genai_development; its runs table starts with Source, Models and Dataset columns. An experiment
# tag `mlflow.sharedViewState.<key>` is a saved view: `#/experiments/<id>/runs?viewStateShareKey=<key>`
# opens with it and the Views menu lists it. MLflow 3.17.2's UI reads the tag's value as a saved-view
# envelope {"name", "createdAt" (ms), "updatedAt", "state"}, where "state" is the view's JSON, or that
# JSON deflated ("deflate;" + base64 of zlib data); failing that, as the bare state (deflated or not).
# From the state it takes the runs table's fields (selectedColumns as `metrics.\`<key>\``, columnOrder,
# columnWidths, ...) but never runsExpanded. MLflow 3.17's UI lets a per-browser workflow type
# (localStorage `mlflow.workflowType`, default "genai", or the URL's `workflowType`) override the
# experiment's kind, so the kit's links carry `workflowType=machine_learning`.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # the UI's "Model training" kind: opens on the runs table
SHARED_VIEW_TAG = "mlflow.sharedViewState."
HEADLINE_VIEW = "genbench-headline"  # the share key of the view whose columns are the headline metrics
HEADLINE_SHARED_PARTS = 4  # headline/<dataset>/<metric>/<source>: deeper keys are per-strategy sources
HEADLINE_VIEW_NAME = "GenBench headline"  # the view's name in the runs page's Views menu
VIEW_COLUMNS = ["attributes.`Dataset`"]  # the attribute columns the headline view keeps
# the runs grid's column ids (MLflow 3.17.2) before the metric columns: the UI applies columnWidths
# only to the columns columnOrder lists, in that order
VIEW_LEADING_COLUMNS = ["0", "attributes.`Run Name`", "runDateAndNestInfo", "attributes.`Dataset`", "duration"]
HEADER_PX_PER_CHAR, HEADER_PAD_PX = 8, 16  # a metric column wide enough for its whole key
MANIFESTS = ("prepared/original", "prepared/test", "generated", "retrieved")  # image sets under data/<dataset>/
DATASET_DIGEST_CHARS = 16


def runs_view_url(experiment_id: str) -> str:
    """The UI path (after the server's address) of the experiment's runs table with the headline columns."""
    return f"#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={HEADLINE_VIEW}"


def headline_view(metric_keys: list[str], now_ms: int | None = None) -> str:
    """The saved-view envelope (JSON) whose runs table shows the experiment-wide `metric_keys` as
    columns after the Dataset column, each wide enough for its name. Per-strategy sources
    (`<dataset>/<metric>/generated/<S>`) are left to the Columns menu: runs of one experiment
    differ in their strategies."""
    import json
    import time

    shared = [k for k in metric_keys if len(k.split("/")) <= HEADLINE_SHARED_PARTS]
    metrics = [f"metrics.`{k}`" for k in shared]
    state = {"selectedColumns": VIEW_COLUMNS + metrics, "columnOrder": VIEW_LEADING_COLUMNS + metrics,
             "columnWidths": {c: HEADER_PX_PER_CHAR * len(k) + HEADER_PAD_PX for c, k in zip(metrics, shared)}}
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    return json.dumps({"name": HEADLINE_VIEW_NAME, "createdAt": stamp, "updatedAt": stamp, "state": json.dumps(state)})


def dataset_inputs(root: Path, dataset: str) -> list:
    """MLflow dataset inputs for the manifests of `dataset`'s image sets under root/data/<dataset>/
    (name `<dataset>/<set>`, digest the first 16 hex of the manifest's sha256, source its path)."""
    import hashlib

    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = []
    for image_set in MANIFESTS:
        path = Path(root) / "data" / dataset / image_set / "manifest.parquet"
        if not path.is_file():
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:DATASET_DIGEST_CHARS]
        rows = _parquet_rows(path)
        source = Path("data") / dataset / image_set / "manifest.parquet"
        profile = f'{{"num_rows": {rows}}}' if rows is not None else None
        inputs.append(DatasetInput(Dataset(name=f"{dataset}/{image_set}", digest=digest, source_type="local",
                                           source=source.as_posix(), profile=profile),
                                   tags=[InputTag("mlflow.data.context", "eval" if image_set == "prepared/test" else "train")]))
    return inputs


def _parquet_rows(path: Path) -> int | None:
    try:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # noqa: BLE001 - the row count is a label; a manifest pyarrow cannot read still gets its digest
        return None
