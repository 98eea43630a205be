"""The click command shared by per-dataset stages that take no options of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click

from stages.frame.options import dataset_option, params_option, resolve_dataset
from stages.frame.params import Field
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult, run_stage


def dataset_stage_command(stage: str, schema: dict[str, Field], work: Callable[[dict, DatasetPaths], StageResult],
                          summary: str, check: Callable[[dict], None] | None = None,
                          requires: Callable[[DatasetPaths, dict], list[Path]] | None = None) -> click.Command:
    """`genbench STAGE [--params FILE] [--dataset NAME]`: validates the params section `stage`
    against `schema` (and `check`), checks the input files `requires(paths, params)` exist, then runs
    `work(params, DatasetPaths(NAME))` metered and tracked by `run_stage`. `summary` is the
    command's help."""

    @click.command(stage, help=summary)
    @params_option
    @dataset_option
    def command(params_file: str, dataset: str | None) -> None:
        name = resolve_dataset(params_file, dataset)
        paths = DatasetPaths(name)

        def checks(p: dict) -> None:
            if check is not None:
                check(p)
            if requires is not None:
                paths.require(*requires(paths, p))

        run_stage(stage, params_file, schema, lambda p: work(p, paths), checks, dataset=name)

    return command
