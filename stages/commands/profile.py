"""`genbench profile`: switch params.yaml between the shipped profiles (profiles/*.yaml), and
check a profile before running it.

A profile is a complete params file. `genbench profile use paper` replaces params.yaml with
profiles/paper.yaml (atomically); params.yaml is tracked by git, so `git diff params.yaml` shows
what changed and `genbench profile use embedded` switches back. `genbench profile check paper`
validates every section and the rules between them (stages.frame.profile_rules) without loading a
model or reading data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from genbench import storage
from genbench.errors import GenBenchError
from stages.frame.params import read_params_file
from stages.frame.profile_rules import PROFILES, problems, shipped_profiles


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


def _profile_file(target: str | None) -> Path:
    """NAME (a profile of the project or the kit), a FILE, or params.yaml when neither is given."""
    if target is None or Path(target).is_file():
        return Path(target or "params.yaml")
    profiles = shipped_profiles()
    if target not in profiles:
        raise GenBenchError(f"{target!r} is neither a profile nor a file; shipped profiles: {', '.join(sorted(profiles)) or 'none'}")
    return profiles[target]


@command.command("check")
@click.argument("target", metavar="[NAME|FILE]", required=False)
def check(target: str | None) -> None:
    """Check every section of a profile and the rules between them, loading no model and reading no data.

    NAME is a profile in profiles/, FILE a params file; without either, params.yaml. Prints one
    `error:` line per problem (all of them) and exits 2, or one ok line.
    """
    path = _profile_file(target)
    params = read_params_file(path)
    found = problems(params, path)
    for problem in found:
        click.echo(f"error: {path}: {problem}", err=True)
    if found:
        sys.exit(2)
    datasets, strategies = params.get("datasets") or [], (params.get("generate") or {}).get("strategies") or []
    click.echo(f"{path}: ok (profile {params.get('profile', 'embedded')!r}, {len(datasets)} datasets, "
               f"{len(strategies)} strategies)")
