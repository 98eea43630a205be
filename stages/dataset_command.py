"""The click command shared by per-dataset stages that take no options of their own."""

from __future__ import annotations

from typing import Callable

import click

from stages.inputs import DatasetPaths
from stages.options import dataset_option, params_option, resolve_dataset
from stages.params import Field
from stages.runner import StageResult, run_stage


def dataset_stage_command(stage: str, schema: dict[str, Field], work: Callable[[dict, DatasetPaths], StageResult],
                          summary: str, check: Callable[[dict], None] | None = None) -> click.Command:
    """`genbench STAGE [--params FILE] [--dataset NAME]`: validates the params section `stage`
    against `schema` (and `check`), then runs `work(params, DatasetPaths(NAME))` metered and
    tracked by `run_stage`. `summary` is the command's help."""

    @click.command(stage, help=summary)
    @params_option
    @dataset_option
    def command(params_file: str, dataset: str | None) -> None:
        name = resolve_dataset(params_file, dataset)
        run_stage(stage, params_file, schema, lambda p: work(p, DatasetPaths(name)), check, dataset=name)

    return command
