"""The frame every stage runs in: validate params, track, meter, price, record.

`run_stage` refuses unknown top-level sections and a `profile` that names no profile
(stages.frame.profile_rules), reads the stage's own params section (plus `profile` for the MLflow
experiment and `cost.snapshot` / `cost.sku` to price the reading), lets the stage check its inputs and
checks the SKU and that the project, meter and MLflow folders take writes before anything is written
or any run is opened, then opens the MLflow child run, meters the work, prices the meter reading
with the named price snapshot and writes it to `meter/datasets/<dataset>/<stage>.json` (or
`meter/pipeline/<stage>.json` for pipeline-wide stages) for the cost stage.
"""

from __future__ import annotations

import tempfile
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from genbench import storage
from genbench.errors import GenBenchError
from stages.frame.mlflow_store import sqlite_path
from stages.frame.params import Field, params_hash, read_params_file, validate_section
from stages.frame.paths import METER_PIPELINE, DatasetPaths

PRICING_SCHEMA = {
    "snapshot": Field(str, "paper-2023"),
    "sku": Field((str, type(None)), None),
}


@dataclass
class StageResult:
    """What a stage's work returns: metrics to log, files to attach, images it produced and the
    data type they count towards in the cost ledger (generated, original, retrieved or None), and
    the readings of the distributed workers that made them (genbench.executors; one per worker).
    With worker readings, the workers' rows carry the items and this process's row is the
    driver's own time (items 0)."""

    metrics: dict = field(default_factory=dict)
    artifacts: list[Path] = field(default_factory=list)
    items: int = 0
    data_type: str | None = None
    tags: dict = field(default_factory=dict)
    worker_readings: list[dict] = field(default_factory=list)


_TRACKER: ContextVar = ContextVar("genbench_stage_tracker", default=None)


def current_tracker():
    """The `stages.frame.tracking.StageTracker` of the stage whose work is running (None outside
    `run_stage`): a stage's work opens nested runs under it (e.g. the frontier's points)."""
    return _TRACKER.get()


def log_nested_run(run_name: str, kind: str, tags: dict, metrics: dict[str, float], params: dict[str, str]) -> None:
    """A finished MLflow run nested under the running stage's run (StageTracker.log_nested_run), e.g.
    one frontier point; nothing outside `run_stage`."""
    tracker = current_tracker()
    if tracker is not None:
        tracker.log_nested_run(run_name, kind, tags, metrics, params)


def price_readings(reading, worker_readings: list[dict], snapshot, sku: str | None, data_type: str | None) -> tuple[dict, list[dict]]:
    """A stage's own meter reading and its workers' readings (genbench.executors; each keeps its
    'worker' label) priced as ledger rows (cost.ledger.price_reading) for the cost stage."""
    from cost.ledger import price_reading
    from cost.meter import Reading

    own = price_reading(reading, snapshot, override_sku=sku, data_type=data_type).to_dict()
    workers = [{**price_reading(Reading.from_dict(r), snapshot, override_sku=sku, data_type=data_type).to_dict(),
                "worker": r["worker"]} for r in worker_readings]
    return own, workers


def metered_rows(stage: str, work: Callable[[], tuple], snapshot, sku: str | None, data_type: str | None) -> tuple:
    """`work() -> (result, items, worker readings)` metered and priced as `run_stage` meters and
    prices a stage (e.g. one step of a frontier point); (result, [its own ledger row, its workers' rows])."""
    from cost.meter import Meter

    with Meter(stage) as meter:
        result, items, readings = work()
        meter.add_items(0 if readings else items)
    own, workers = price_readings(meter.reading, readings, snapshot, sku, data_type)
    return result, [own, *workers]


def pricing_params(all_params: dict) -> dict:
    raw = all_params.get("cost") or {}
    if not isinstance(raw, dict):
        raise GenBenchError(f"params 'cost' = {raw!r} must be a mapping, e.g. {{snapshot: paper-2023, sku: null}}")
    return validate_section({k: raw[k] for k in PRICING_SCHEMA if k in raw}, "cost", PRICING_SCHEMA)


def check_writable(directory: Path, what: str) -> None:
    """Create `directory` if needed and prove a file can be written in it; else one GenBenchError."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise GenBenchError(f"{what} {str(directory)!r} is not writable ({exc.strerror}); make it writable, or work "
                            "in a writable copy of the project") from None


def check_environment(meter_path: Path) -> None:
    """Before a run opens: the project folder, the meter folder and the MLflow store's folder take writes."""
    from stages.frame.tracking import tracking_uri

    check_writable(Path.cwd(), "the project folder")
    check_writable(meter_path.parent, "the meter folder")
    store = sqlite_path(tracking_uri())
    if store is not None:
        check_writable(store.parent, "the MLflow store's folder")


def run_stage(
    stage: str,
    params_file: str | Path,
    schema: dict[str, Field],
    work: Callable[[dict], StageResult],
    check: Callable[[dict], None] | None = None,
    *,
    dataset: str | None = None,
) -> StageResult:
    from cost.hardware import choose_sku, detect_hardware
    from cost.meter import Meter
    from cost.prices import load_snapshot

    from stages.frame.profile_rules import name_problems  # imported here: it imports every stage module
    from stages.frame.tracking import StageTracker

    all_params = read_params_file(params_file)
    problems = name_problems(all_params, params_file)
    if problems:
        raise GenBenchError(problems[0])
    params = validate_section(all_params.get(stage), stage, schema)
    profile = all_params.get("profile", "embedded")
    pricing = pricing_params(all_params)
    snapshot = load_snapshot(pricing["snapshot"])
    if pricing["sku"]:
        choose_sku(detect_hardware(), snapshot, override=pricing["sku"])
    if check is not None:
        check(params)

    meter_path = DatasetPaths(dataset).meter(stage) if dataset else METER_PIPELINE / f"{stage}.json"
    check_environment(meter_path)
    run_name = f"{stage}@{dataset}" if dataset else stage
    tags = {"params_hash": params_hash(params), "dataset": dataset or "all"}
    with StageTracker(stage, profile, params, run_name=run_name, tags=tags, params_file=params_file) as tracker:
        token = _TRACKER.set(tracker)
        try:
            with Meter(stage) as meter:
                result = work(params)
                meter.add_items(0 if result.worker_readings else result.items)
        finally:
            _TRACKER.reset(token)
        row, workers = price_readings(meter.reading, result.worker_readings, snapshot, pricing["sku"], result.data_type)
        storage.atomic_write_json(
            meter_path,
            {"stage": stage, "dataset": dataset, "run_id": tracker.run_id, "reading": meter.reading.to_dict(), "priced": row,
             "workers": workers, "tags": result.tags},
        )
        usd_total = row["usd_total"] + sum(w["usd_total"] for w in workers)
        cost_metrics = {
            "usd_total": usd_total,
            "usd_per_image": usd_total / result.items if result.items else None,
            "wall_s": meter.reading.wall_s,
            "cpu_s": meter.reading.cpu_s + sum(w["cpu_s"] for w in workers),
            "gpu_s": meter.reading.gpu_s + sum(w["gpu_s"] for w in workers),
            "items": result.items,
        }
        tracker.log_metrics({**result.metrics, **{k: v for k, v in cost_metrics.items() if v is not None}})
        tracker.set_tags({**result.tags, "price_snapshot": row.get("snapshot", pricing["snapshot"]), "sku": row.get("sku")})
        for artifact in result.artifacts:
            tracker.log_artifact(artifact)
    return result
