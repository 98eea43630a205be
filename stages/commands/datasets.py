"""`genbench datasets`: the registered datasets as a table, and `genbench datasets show NAME` for
one dataset's classes and prompt templates. Not a pipeline stage: it reads no params and logs
nothing."""

from __future__ import annotations

from pathlib import Path

import click

from genbench.datasets import DATASETS, DatasetSpec, get_dataset
from stages.frame.options import register_params_datasets
from stages.frame.params import read_params_file

DEFAULT_DATA_ROOT = "data/raw"
COLUMNS = ("name", "group", "classes", "metric", "source", "local")


def local_status(spec: DatasetSpec, root: Path) -> str:
    """'yes (<kind>)' when a copy is present under `root`, 'no' otherwise; built-in data is 'yes'."""
    available = getattr(spec.loader, "available", None)
    if available is None:
        return "yes (embedded)"
    source = available(root)
    return f"yes ({source.kind})" if source is not None else "no"


def table_rows(root: Path) -> list[tuple[str, ...]]:
    return [
        (spec.name, spec.group, str(spec.num_classes), spec.metric, spec.source, local_status(spec, root))
        for spec in DATASETS.values()
    ]


def format_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [COLUMNS, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def describe(spec: DatasetSpec) -> str:
    lines = [
        f"name:      {spec.name}",
        f"aliases:   {', '.join(spec.aliases) or '-'}",
        f"group:     {spec.group}",
        f"task:      {spec.task}",
        f"metric:    {spec.metric}",
        f"source:    {spec.source}",
    ]
    if "paper_num_classes" in spec.extra:
        lines.append(f"paper:     {spec.extra['paper_name']}, {spec.extra['paper_num_classes']} categories, "
                     f"{spec.extra['paper_validation_size']} validation images (Table 4)")
    if spec.notes:
        lines.append(f"notes:     {spec.notes}")
    lines.append(f"classes ({spec.num_classes}):")
    lines += [f"  {i:>4}  {name}" for i, name in enumerate(spec.classnames)]
    lines.append(f"templates ({len(spec.templates)}):")
    lines += [f"  {t}" for t in spec.templates]
    return "\n".join(lines)


@click.group("datasets", invoke_without_command=True)
@click.option("--data-root", default=DEFAULT_DATA_ROOT, show_default=True, envvar="GENBENCH_DATA_ROOT",
              type=click.Path(file_okay=False, path_type=Path),
              help="Where local copies of the datasets are looked for.")
@click.option("--params", "params_file", default="params.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="Params file whose `image_folders` (your own datasets) are listed too, when it exists.")
@click.pass_context
def command(ctx: click.Context, data_root: Path, params_file: str) -> None:
    """List the datasets: name, group, classes, metric, source, whether a local copy exists."""
    if Path(params_file).is_file():
        register_params_datasets(read_params_file(params_file))
    ctx.obj = {"data_root": data_root}
    if ctx.invoked_subcommand is None:
        click.echo(format_table(table_rows(data_root)))


@command.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Print one dataset's metadata, class names and prompt templates."""
    click.echo(describe(get_dataset(name)))
