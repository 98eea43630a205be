"""Options shared by the stage commands, defined once."""

from __future__ import annotations

import click

from genbench.errors import GenBenchError
from stages.frame.params import Field, read_params_file, validate_section

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


IMAGE_FOLDER_SCHEMA = {
    "root": Field(str),
    "classnames": Field((list, type(None)), None),
    "templates": Field((list, type(None)), None),
    "metric": Field(str, "accuracy"),
}


def register_params_datasets(all_params: dict) -> list[str]:
    """Register the user's own image-folder datasets declared in params.yaml under
    `image_folders: {NAME: {root: DIR, classnames: [...], templates: [...], metric: accuracy}}`
    (DIR/<split>/<class name>/*.png); returns their names."""
    from genbench.datasets import register_image_folder

    folders = all_params.get("image_folders") or {}
    if not isinstance(folders, dict):
        raise GenBenchError(f"params key 'image_folders' = {folders!r} must map dataset names to {{root: DIR, ...}}")
    for name, raw in folders.items():
        entry = validate_section(raw, f"image_folders.{name}", IMAGE_FOLDER_SCHEMA)
        register_image_folder(name, entry["root"], entry["classnames"], entry["templates"], entry["metric"])
    return list(folders)


def resolve_dataset(params_file: str, dataset: str | None) -> str:
    """The dataset a per-dataset stage runs on: --dataset, or the single entry of params 'datasets'
    (after registering the params' own image-folder datasets)."""
    all_params = read_params_file(params_file)
    register_params_datasets(all_params)
    names = pipeline_datasets(all_params)
    if dataset is None:
        if len(names) != 1:
            raise GenBenchError(f"params 'datasets' lists {len(names)} datasets; pass --dataset NAME (one of {', '.join(names)})")
        return names[0]
    from genbench.datasets import get_dataset

    try:
        get_dataset(dataset)
    except GenBenchError:
        raise GenBenchError(f"--dataset {dataset!r} is not a known dataset; params 'datasets' lists {', '.join(names)} "
                            "(`genbench datasets` shows every known one)") from None
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
