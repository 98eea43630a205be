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


# command name -> "module:attribute" of its click command, imported only when that command runs
# (so `genbench prepare` does not load torch, which the model stages need)
COMMANDS = {
    "bootstrap": "stages.bootstrap:command", "prepare": "stages.prepare:command", "generate": "stages.generate:command",
    "embed": "stages.embed:command", "cler": "stages.cler:command", "probe": "stages.probe:command", "tune": "stages.tune:command",
    "finetune": "stages.finetune:command",
    "quality": "stages.quality:command", "index": "stages.index:command",
    "retrieve": "stages.retrieve:command", "invert": "stages.invert:command", "cost": "stages.cost:command",
    "report": "stages.report:command", "shots": "stages.shots:command", "datasets": "stages.commands.datasets:command", "profile": "stages.commands.profile:command",
    "runs": "stages.commands.runs:command", "pool": "stages.pool:command", "prices": "cost.cli:prices_group",
    "rehearse": "stages.commands.rehearse:command", "headline": "stages.headline:command", "frontier": "stages.frontier:command",
}


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
    `error: ...` and exits with status 2; SIGINT/SIGTERM as one line and status 128 + signal.
    Loads each subcommand's module only when that subcommand is asked for (`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, name: str):
        if name not in self.commands and name in COMMANDS:
            import importlib

            module, attr = COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return self.commands.get(name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DataFileError as exc:
            from stages.frame.paths import rebuild_advice

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
    pool, index, retrieve, invert, generate, embed, cler, probe, tune, finetune, quality, cost and report. Each reads its own section of
    params.yaml; per-dataset stages take --dataset.
    """


def main() -> None:
    from stages.frame.experiment_code import experiment_copy, own_code_argv

    copy = experiment_copy()
    if copy is not None:
        argv, env = own_code_argv(copy, sys.argv)
        os.execve(argv[0], argv, env)
    cli(prog_name="genbench")


if __name__ == "__main__":
    main()
