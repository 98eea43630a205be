"""`genbench`: the kit's command line. Every DVC stage is a subcommand; see `genbench --help`."""

from __future__ import annotations

import sys

import click

from genbench.errors import GenBenchError

USER_ERRORS: tuple[type[Exception], ...] = (GenBenchError,)
try:
    from cost.errors import CostError

    USER_ERRORS += (CostError,)
except ImportError:  # cost/ not installed alongside
    pass


class GenbenchGroup(click.Group):
    """Prints user errors as one line `error: ...` and exits with status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=GenbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genbench-kit")
def cli() -> None:
    """GenBench Kit: generative data for visual recognition, benchmarked and priced.

    The pipeline stages (run in order by `dvc repro`, see dvc.yaml) are bootstrap, prepare,
    pool, retrieve-index, retrieve, invert, generate, embed, cler, probe, quality, cost and report. Each reads its own section of
    params.yaml; per-dataset stages take --dataset.
    """


def _register() -> None:
    from cost.cli import prices_group
    from stages import (bootstrap, cler, cost_stage, datasets_cmd, embed, generate, invert, prepare, probe, profile_cmd,
                        quality, rehearse, report, retrieve, retrieve_index, runs_cmd)

    for module in (bootstrap, prepare, generate, embed, cler, probe, quality, retrieve_index, retrieve, invert, cost_stage,
                   report, datasets_cmd, profile_cmd, runs_cmd, rehearse):
        cli.add_command(module.command)
    cli.add_command(retrieve_index.pool_command)
    cli.add_command(prices_group)


_register()


def main() -> None:
    cli(prog_name="genbench")


if __name__ == "__main__":
    main()
