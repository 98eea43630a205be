"""`genbench rehearse PROFILE`: a dress rehearsal of a profile, offline, on stand-in models and
data, that changes sizes only (docs/rehearsal.md; the logic is genbench.rehearsal.run)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("rehearse")
@click.argument("profile")
@click.option("--datasets", default=None, metavar="A,B,...",
              help="Rehearse these datasets of the profile (comma-separated); default: all of them.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the rehearsal runs (wiped first if an earlier rehearsal left it); default: "
                   "build/rehearsal/PROFILE.")
@click.option("--full-size-generator", is_flag=True,
              help="For a GPU box: the generator stand-in takes the real architecture (random weights) and "
                   "generate runs at the profile's own resolution, steps, batch size and dtype.")
@click.option("--estimate", "estimate_only", is_flag=True,
              help="Print the CLIP work the rehearsal would do (images and text positions per stage, model and tower) "
                   "and its time at tower rates measured now; run nothing.")
@click.option("--stage-overhead", type=click.FloatRange(min=0), default=20.0, show_default=True, metavar="SECONDS",
              help="With --estimate: seconds per DVC stage besides the CLIP towers (start-up, the other models).")
def command(profile: str, datasets: str | None, workdir: Path | None, full_size_generator: bool, estimate_only: bool,
            stage_overhead: float) -> None:
    """Rehearse PROFILE (a name in profiles/ or a params file) end to end, offline.

    Writes a workdir with the project's pipeline, params.yaml = PROFILE + the size overlay
    profiles/overlays/rehearsal.yaml (+ --datasets), stand-in models under the exact ids the profile
    names (HF_HOME in the workdir) and stand-in data in each source's layout, then runs
    `genbench profile check` and `dvc repro` with the hub off. It prints every check (stages ran,
    table and figure cells filled, metrics per dataset), each stage's wall time and the real run's
    cost extrapolated with `genbench cost estimate`. Exit 0 when all checks hold; else one
    `error:` line per failed check and exit 2.
    """
    from genbench.rehearsal.run import estimate, rehearse

    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    if estimate_only:
        for line in estimate(profile, names, overhead_s=stage_overhead)[0]:
            click.echo(line)
        return
    outcome = rehearse(profile, names, workdir, full_size_generator=full_size_generator)
    for line in outcome.lines:
        click.echo(line)
    for error in outcome.errors:
        click.echo(f"error: {error}", err=True)
    if outcome.errors:
        sys.exit(2)
    click.echo(f"rehearsal passed: {outcome.workdir}")
