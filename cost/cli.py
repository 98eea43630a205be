"""Click commands of the cost layer, for the `genbench` group to register:

    genbench prices list | show NAME | refresh --region R [--out DIR]
    genbench cost estimate LEDGER --classes 2548 --shots 500
    genbench cost audit reports/reference/genbench_table5_cost.csv

`prices_group` is a group; `estimate_command` and `audit_command` are commands (`cost_group`
holds both). A `CostError` prints as `error: <message>` and exits with status 2.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from pathlib import Path

import click

from cost.azure import REFRESH_DEADLINE_S
from cost.errors import CostError, StaleSnapshotWarning
from cost.prices import SNAPSHOT_DIR, list_snapshots, load_snapshot


def reports_cost_errors(func):
    """Print CostError as one line and exit 2; print stale-snapshot warnings as `warning: ...`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", StaleSnapshotWarning)
            try:
                return func(*args, **kwargs)
            except CostError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(2)
            finally:
                for w in caught:
                    if issubclass(w.category, StaleSnapshotWarning):
                        click.echo(f"warning: {w.message}", err=True)
                    else:
                        warnings.showwarning(w.message, w.category, w.filename, w.lineno)

    return wrapper


@click.group("prices")
def prices_group():
    """Dated price snapshots: list them, show one, refresh one from the Azure Retail Prices API."""


@prices_group.command("list")
@click.option("--dir", "dirs", multiple=True, type=click.Path(file_okay=False),
              help="Also list snapshots in this directory (repeatable).")
@reports_cost_errors
def list_command(dirs):
    """List the price snapshots: name, provider, date, age, regions, rows, file."""
    for snap in list_snapshots(dirs):
        spot = sum(r.pricing == "spot" for r in snap.rows)
        click.echo(f"{snap.name:32s} {snap.provider:6s} {snap.date.isoformat()}  {snap.age_days():5d} days old  "
                   f"{len(snap.rows):5d} rows ({spot} spot)  regions: {', '.join(snap.regions)}  {snap.path}")


@prices_group.command("show")
@click.argument("name")
@click.option("--dir", "dirs", multiple=True, type=click.Path(file_okay=False),
              help="Also look for snapshots in this directory (repeatable).")
@reports_cost_errors
def show_command(name, dirs):
    """Print the rows of snapshot NAME (a name from `prices list` or a YAML path)."""
    snap = load_snapshot(name, search_dirs=dirs)
    click.echo(f"{snap.label()}  source: {snap.source}")
    if snap.human_labelling_usd_per_image is not None:
        click.echo(f"human labelling: {snap.human_labelling_usd_per_image:g} USD/image")
    for r in snap.rows:
        gpus = f"{r.gpus}x {r.gpu_model}" if r.gpus else ("0 GPUs" if r.gpus == 0 else "GPUs ?")
        click.echo(f"  {r.sku:32s} {r.region:12s} {r.pricing:9s} {r.usd_per_hour:10.4f} USD/h  "
                   f"{r.vcpus if r.vcpus is not None else '?':>4} vCPUs  {gpus}")


@prices_group.command("refresh")
@click.option("--region", required=True, help="Azure ARM region name, e.g. eastus or westeurope.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=str(SNAPSHOT_DIR),
              show_default=True, help="Directory to write the dated snapshot into.")
@click.option("--deadline", "deadline_s", type=click.FloatRange(min=0, min_open=True), default=REFRESH_DEADLINE_S,
              show_default=True, help="Seconds all requests may take together (a proxy or API that never answers).")
@reports_cost_errors
def refresh_command(region, out_dir, deadline_s):
    """Query the Azure Retail Prices API for REGION and write a new dated snapshot."""
    from cost.azure import refresh_snapshot

    path = refresh_snapshot(region, out_dir, deadline_s=deadline_s)
    snap = load_snapshot(path)
    spot = sum(r.pricing == "spot" for r in snap.rows)
    click.echo(f"wrote {path}: {len(snap.rows)} rows ({spot} spot) for {region}, dated {snap.date.isoformat()}")


def _targets(target, classes, shots, data_types) -> dict[str, int]:
    targets = {}
    for text in target:
        data_type, sep, count = text.partition("=")
        if not sep or not count.strip().isdigit():
            raise CostError(f"--target {text!r} must read TYPE=COUNT, e.g. generated=819000")
        targets[data_type.strip()] = int(count)
    if classes is not None or shots is not None:
        if classes is None or shots is None or classes <= 0 or shots <= 0:
            raise CostError(f"--classes {classes!r} and --shots {shots!r} must both be given and above 0")
        for data_type in data_types:
            targets.setdefault(data_type, classes * shots)
    if not targets:
        raise CostError("no target given; pass --classes and --shots, or --target TYPE=COUNT")
    return targets


def _scales(scale) -> dict[str, float]:
    factors = {}
    for text in scale:
        stage, sep, factor = text.partition("=")
        try:
            factors[stage.strip()] = float(factor)
        except ValueError:
            sep = ""
        if not sep or not stage.strip():
            raise CostError(f"--scale {text!r} must read STAGE=FACTOR, e.g. generate=3.5")
    return factors


@click.command("estimate")
@click.argument("ledger", type=click.Path(dir_okay=False))
@click.option("--target", multiple=True, help="TYPE=COUNT images to price, e.g. generated=819000 (repeatable).")
@click.option("--classes", type=int, help="Classes to cover (with --shots: classes x shots images per data type).")
@click.option("--shots", type=int, help="Images per class.")
@click.option("--snapshot", "snapshot_name", default="paper-2023", show_default=True,
              help="Snapshot whose human-labelling price prices the 'original' data type.")
@click.option("--human-usd-per-image", type=float, help="Human-labelling price per image (overrides the snapshot's).")
@click.option("--scale", multiple=True,
              help="STAGE=FACTOR: price that stage's measured work per image x FACTOR, e.g. generate=3.5 (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON.")
@reports_cost_errors
def estimate_command(ledger, target, classes, shots, snapshot_name, human_usd_per_image, scale, as_json):
    """Extrapolate the USD per image measured in LEDGER (.jsonl/.csv) to a target image count.

    With --scale, the named stages' time, energy and USD are first multiplied by their factors
    (a run at larger sizes, cost taken as linear in the factor)."""
    from cost.ledger import bill_by_data_type, estimate, read_ledger, scale_stages

    rows = scale_stages(read_ledger(ledger), _scales(scale))
    if human_usd_per_image is None:
        human_usd_per_image = load_snapshot(snapshot_name).human_labelling_usd_per_image
    measured = [k for k, v in bill_by_data_type(rows, human_usd_per_image=human_usd_per_image).items()
                if v["usd_per_image"] is not None]
    result = estimate(rows, _targets(target, classes, shots, measured), human_usd_per_image=human_usd_per_image)
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    scaled = "".join(f", {stage} x{factor:.4g}" for stage, factor in _scales(scale).items())
    click.echo(f"estimate from {ledger} ({len(rows)} stage runs{scaled})")
    click.echo(f"{'data type':12s} {'images':>12s} {'USD/image':>11s} {'USD total':>12s}  basis")
    for data_type, e in result.items():
        click.echo(f"{data_type:12s} {e['images']:12,d} {e['usd_per_image']:11.3e} {e['usd_total']:12,.2f}  {e['basis']}")


@click.command("audit")
@click.argument("table", type=click.Path(dir_okay=False),
                default=str(Path("reports") / "reference" / "genbench_table5_cost.csv"))
@click.option("--tolerance", type=float, default=0.05, show_default=True,
              help="Relative difference above which a printed USD per image is flagged.")
@click.option("--images", type=int, default=1638 * 500, show_default=True,
              help="Images of the Section 3.1 comparison (1,638 Common-concept classes x 500 shots).")
@reports_cost_errors
def audit_command(table, tolerance, images):
    """Recompute the paper's Table 5 (USD/h x hours per 1K / 1000) and flag rows that do not multiply out."""
    from cost.audit import audit_cost_table, section31_comparison

    rows = audit_cost_table(table, tolerance=tolerance)
    for row in rows:
        click.echo(f"{'FLAG' if row.flagged else 'ok  '} {row.data_type:11s} {row.note}")
    by_type = {r.data_type: r.printed_usd_per_image for r in rows}
    generated = next((v for k, v in by_type.items() if k.startswith("gener")), 2.54e-4)
    human = next((v for k, v in by_type.items() if k == "original"), None)
    cmp = section31_comparison(images, generated_usd_per_image=generated, human_usd_per_image=human)
    click.echo(f"Section 3.1: {images:,d} images x {generated:.2e} = {cmp['generated_usd']:,.0f} USD generated; "
               f"x {cmp['human_usd_per_image']:.2e} = {cmp['human_usd']:,.0f} USD human-labelled")
    if any(r.flagged for r in rows):
        click.echo(f"{sum(r.flagged for r in rows)} row(s) flagged")


@click.group("cost")
def cost_group():
    """Cost accounting: extrapolate a measured ledger, audit the paper's cost table."""


cost_group.add_command(estimate_command)
cost_group.add_command(audit_command)
