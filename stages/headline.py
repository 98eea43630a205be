"""Stage `headline`: a dataset's headline numbers (genbench/headline.py) as DVC's metrics,
metrics/<dataset>/headline/<source>.json, the files `dvc metrics show` lists."""

from __future__ import annotations

from pathlib import Path

import click

from genbench.headline import write_dataset_headline


@click.command("headline")
@click.option("--dataset", required=True, help="the dataset whose headline to write (an entry of params `datasets`)")
def command(dataset: str) -> None:
    """Write the dataset's headline metrics (metrics/<dataset>/headline/*.json) from its cler,
    probe and quality metrics and metrics/cost.json: the files `dvc metrics show` lists."""
    for path in write_dataset_headline(Path("."), dataset):
        click.echo(f"headline: {path}")
