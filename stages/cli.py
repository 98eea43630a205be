"""`genbench`: the kit's command line. Every DVC stage is a subcommand; see `genbench --help`."""

from __future__ import annotations

import errno
import os
import signal
import sys

import click

from genbench.errors import DataFileError, GenBenchError, Interrupted

USER_ERRORS: tuple[type[Exception], ...] = (GenBenchError,)
try:
    from cost.errors import CostError

    USER_ERRORS += (CostError,)
except ImportError:  # cost/ not installed alongside
    pass


# errno of an OSError the user can fix -> what to do; reported as one line, exit status 2.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free some space on that device, then rerun",
    errno.EDQUOT: "free some space (disk quota exceeded), then rerun",
    errno.EROFS: "the file system is read-only; work in a writable copy of the project",
    errno.EACCES: "make it writable (or work in a writable copy of the project), then rerun",
    errno.EPERM: "make it writable (or work in a writable copy of the project), then rerun",
}


def environment_error(exc: OSError) -> str | None:
    """The one-line message for an OSError of the machine (disk full, read-only), else None."""
    advice = ENVIRONMENT_ERRNOS.get(exc.errno)
    if advice is None:
        return None
    where = f" writing {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or os.strerror(exc.errno)}{where}; {advice}"


class GenbenchGroup(click.Group):
    """Prints user errors and faults of the machine (disk full, read-only folder) as one line
    `error: ...` and exits with status 2; SIGINT/SIGTERM as one line and status 128 + signal."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DataFileError as exc:
            from stages.inputs import rebuild_advice

            click.echo(f"error: {exc}; {rebuild_advice(exc)}", err=True)
            sys.exit(2)
        except USER_ERRORS as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            message = environment_error(exc)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            sys.exit(2)
        except (KeyboardInterrupt, Interrupted) as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            click.echo(f"error: stopped by {signal.Signals(signum).name}; open MLflow runs were closed as KILLED, "
                       "finished shards are kept: rerun to resume", err=True)
            sys.exit(128 + signum)


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
                        quality, report, retrieve, retrieve_index, runs_cmd)

    for module in (bootstrap, prepare, generate, embed, cler, probe, quality, retrieve_index, retrieve, invert, cost_stage,
                   report, datasets_cmd, profile_cmd, runs_cmd):
        cli.add_command(module.command)
    cli.add_command(retrieve_index.pool_command)
    cli.add_command(prices_group)


_register()


def main() -> None:
    cli(prog_name="genbench")


if __name__ == "__main__":
    main()
