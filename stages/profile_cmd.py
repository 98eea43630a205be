"""`genbench profile`: switch params.yaml between the shipped profiles (profiles/*.yaml).

A profile is a complete params file. `genbench profile use paper` replaces params.yaml with
profiles/paper.yaml (atomically); params.yaml is tracked by git, so `git diff params.yaml` shows
what changed and `genbench profile use embedded` switches back.
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from genbench import storage
from genbench.errors import GenBenchError

PROFILES = Path("profiles")


def available() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PROFILES.glob("*.yaml"))}


@click.group("profile")
def command() -> None:
    """List the shipped params profiles, or switch params.yaml to one."""


@command.command("list")
def list_profiles() -> None:
    """Print each profile with its datasets."""
    for name, path in available().items():
        params = yaml.safe_load(path.read_text()) or {}
        datasets = params.get("datasets", [])
        click.echo(f"{name:10s} {len(datasets):3d} datasets  {path}")


@command.command("use")
@click.argument("name")
@click.option("--params", "params_file", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def use(name: str, params_file: str) -> None:
    """Replace params.yaml with profiles/NAME.yaml."""
    profiles = available()
    if name not in profiles:
        raise GenBenchError(f"unknown profile {name!r}; shipped profiles: {', '.join(profiles) or 'none (run from the project root)'}")
    storage.atomic_write_text(params_file, profiles[name].read_text())
    click.echo(f"{params_file} now holds profile '{name}' ({profiles[name]}); run `dvc repro`")
