"""Options shared by the stage commands, defined once."""

from __future__ import annotations

import click

from genbench.errors import GenBenchError
from stages.params import read_params_file

params_option = click.option(
    "--params",
    "params_file",
    default="params.yaml",
    show_default=True,
    envvar="GENBENCH_PARAMS",
    type=click.Path(dir_okay=False),
    help="Params file to read the stage's section from.",
)

dataset_option = click.option(
    "--dataset",
    "dataset",
    default=None,
    metavar="NAME",
    help="Dataset to run on (one of params 'datasets'; may be left out when it lists one).",
)


def pipeline_datasets(all_params: dict) -> list[str]:
    names = all_params.get("datasets")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise GenBenchError(f"params key 'datasets' = {names!r} must be a non-empty list of dataset names, e.g. [digits]")
    if len(set(names)) != len(names):
        raise GenBenchError(f"params key 'datasets' lists a dataset twice: {names!r}")
    return names


def resolve_dataset(params_file: str, dataset: str | None) -> str:
    """The dataset a per-dataset stage runs on: --dataset, or the single entry of params 'datasets'."""
    names = pipeline_datasets(read_params_file(params_file))
    if dataset is None:
        if len(names) != 1:
            raise GenBenchError(f"params 'datasets' lists {len(names)} datasets; pass --dataset NAME (one of {', '.join(names)})")
        return names[0]
    return dataset

executor_option = click.option(
    "--executor",
    "executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    envvar="GENBENCH_EXECUTOR",
    help="local: this process; ray: the GPUs (or CPUs) of a Ray cluster, one model per worker, whole shards per task.",
)

address_option = click.option(
    "--address",
    "address",
    default=None,
    metavar="A",
    envvar="RAY_ADDRESS",
    help="Ray cluster to join with --executor ray ('auto', HOST:6379, ray://HOST:10001); default: start one here.",
)
