"""Stage `cost`: the ledger of every stage run (wall, CPU and GPU seconds, items, hardware, price
used) and the USD per image of each data type."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cost.cli import audit_command, estimate_command
from cost.ledger import LedgerRow, usd_per_image_by_data_type, write_ledger
from cost.prices import load_snapshot
from genbench import storage
from genbench.errors import DataFileError
from genbench.headline import summary
from stages.frame.options import params_option
from stages.frame.paths import METER_DATASETS, METER_PIPELINE, METRICS, REPORTS
from stages.frame.runner import PRICING_SCHEMA, StageResult, run_stage

OUT = METRICS / "cost.json"
SUMMARY = METRICS / "summary.json"  # the pipeline-wide headline (genbench/headline.py), a DVC metric
LEDGER = REPORTS / "ledger.csv"
SCHEMA = PRICING_SCHEMA


PIPELINE_STAGES_PRICED = ("bootstrap", "pool", "index")


def uses_inversion(record: dict) -> bool:
    """Whether a generate run used textual-inversion tokens (a strategy with the TI part)."""
    return any("TI" in s.split("+") for s in record.get("tags", {}).get("strategies", "").split(","))


def read_record(path: Path) -> dict:
    """One stage's meter file; DataFileError when it is not a priced reading."""
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFileError(path, f"is corrupt ({type(exc).__name__})") from None
    if not isinstance(record, dict) or not {"stage", "dataset", "priced"} <= set(record) or not isinstance(record["priced"], dict):
        raise DataFileError(path, "is corrupt: it lacks stage, dataset or priced")
    return record


def read_rows() -> list[dict]:
    """The priced meter readings of every per-dataset stage run and of the pipeline-wide stages
    that acquire data (the index build, amortised over retrieved images), in a stable order: each
    stage's own row, then one row per distributed worker (genbench.executors), naming its node.

    Textual inversion is amortised onto a dataset's generated images only when that dataset's
    generate run used its tokens; otherwise its row is kept with no data type (listed, not charged).
    """
    paths = sorted(METER_DATASETS.glob("*/*.json"))
    paths += [METER_PIPELINE / f"{stage}.json" for stage in PIPELINE_STAGES_PRICED if (METER_PIPELINE / f"{stage}.json").is_file()]
    records = [read_record(path) for path in paths]
    ti_used = {r["dataset"] for r in records if r["stage"] == "generate" and uses_inversion(r)}
    rows = []
    for record in records:
        charged = record["stage"] != "invert" or record["dataset"] in ti_used
        for row in [record["priced"], *record.get("workers", [])]:
            rows.append(row if charged else {**row, "data_type": None})
    return rows


def work(p: dict, rows: list[dict]) -> StageResult:
    """`rows` are read_rows()' result, read before the run opens. 'original' is priced at the
    snapshot's human-labelling price; a snapshot without one leaves it unpriced."""
    ledger = [LedgerRow.from_dict(r) for r in rows]
    human_usd = load_snapshot(p["snapshot"]).human_labelling_usd_per_image
    by_type = usd_per_image_by_data_type(ledger, human_usd_per_image=human_usd)
    write_ledger(ledger, LEDGER)
    result = {"usd_per_image": by_type, "usd_total": sum(r["usd_total"] or 0.0 for r in rows),
              "snapshot": rows[0]["snapshot"] if rows else p["snapshot"], "stages": [r["stage"] for r in rows]}
    storage.atomic_write_json(OUT, result)
    storage.atomic_write_json(SUMMARY, summary(result))
    click.echo("cost: " + "  ".join(f"{k} {v:.3g} USD/image" for k, v in by_type.items() if v is not None) + f" -> {OUT}")
    return StageResult(metrics={f"usd_per_image.{k}": v for k, v in by_type.items() if v is not None}, artifacts=[LEDGER, OUT, SUMMARY])


@click.group("cost", invoke_without_command=True)
@params_option
@click.pass_context
def command(ctx: click.Context, params_file: str) -> None:
    """Turn the stages' meter readings into USD per image per data type (params: cost.*).

    Without a subcommand this is the pipeline stage; `estimate` extrapolates a ledger to a target
    and `audit` rechecks a published cost table.
    """
    if ctx.invoked_subcommand is None:
        read: dict = {}
        run_stage("cost", params_file, SCHEMA, lambda p: work(p, read["rows"]), lambda p: read.update(rows=read_rows()))


command.add_command(estimate_command)
command.add_command(audit_command)
