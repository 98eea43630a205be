"""The rehearsal's working copy of the project: the pipeline files a fresh clone has, committed
to a git repository of its own, with params.yaml = profile + size overlay + chosen datasets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from genbench.errors import GenBenchError

OVERLAY = Path("profiles/overlays/rehearsal.yaml")
STANDIN_SECTION = "standin"  # the overlay's stand-in data sizes; not a params section


def project_files(root: Path) -> list[str]:
    """Tracked files plus untracked ones git does not ignore (what a fresh clone would have)."""
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                          capture_output=True, text=True)
    names = [n for n in proc.stdout.split("\0") if n] if proc.returncode == 0 else []
    if not names:  # not a git checkout: the source tree
        names = [str(p.relative_to(root)) for p in root.rglob("*")
                 if p.is_file() and not {".venv", ".git", "build"} & set(p.relative_to(root).parts)]
    return names


def copy_project(root: Path, dest: Path) -> Path:
    """Copy the project at `root` into `dest` as a fresh clone would have it."""
    for name in project_files(root):
        src = root / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def git_commit_all(root: Path, message: str) -> None:
    """`git init` (when needed) and commit everything in `root` (DVC and the report read the commit)."""
    git = ["git", "-c", "user.name=genbench-rehearsal", "-c", "user.email=rehearsal@genbench.invalid"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    for cmd in (["git", "init", "-q"], git + ["add", "-A"], git + ["commit", "-qm", message, "--allow-empty"]):
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise GenBenchError(f"{' '.join(cmd)} failed in {root}: {proc.stderr.strip() or proc.stdout.strip()}")


def resolve_profile(profile: str, root: Path) -> Path:
    """A profile name (profiles/NAME.yaml) or a params file path."""
    by_name = root / "profiles" / f"{profile}.yaml"
    if by_name.is_file():
        return by_name
    if Path(profile).is_file():
        return Path(profile)
    shipped = ", ".join(p.stem for p in sorted((root / "profiles").glob("*.yaml")))
    raise GenBenchError(f"profile {profile!r} is neither a shipped profile ({shipped}) nor a params file")


def read_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise GenBenchError(f"{path} must hold a mapping of sections")
    return data


def overlay_params(profile: dict, overlay: dict, datasets: list[str] | None) -> dict:
    """The profile with each overlay section's keys replaced, and `datasets` when given. An
    overlay key the profile's section lacks is an error: the overlay resizes, it adds nothing."""
    params = {k: (dict(v) if isinstance(v, dict) else v) for k, v in profile.items()}
    for section, values in overlay.items():
        if section == STANDIN_SECTION:
            continue
        if not isinstance(values, dict) or not isinstance(params.get(section), dict):
            raise GenBenchError(f"overlay section {section!r} must resize a mapping section of the profile")
        unknown = sorted(set(values) - set(params[section]))
        if unknown:
            raise GenBenchError(f"overlay key '{section}.{unknown[0]}' is not in the profile; the overlay only resizes "
                                "keys the profile sets")
        params[section].update(values)
    if datasets:
        unknown = [d for d in datasets if d not in profile.get("datasets", [])]
        if unknown:
            raise GenBenchError(f"--datasets names {', '.join(unknown)}, not in the profile's datasets "
                                f"({', '.join(profile.get('datasets', []))})")
        params["datasets"] = list(datasets)
    return params


def write_params(workdir: Path, params: dict) -> Path:
    path = workdir / "params.yaml"
    path.write_text("# Written by `genbench rehearse`: the profile with the size overlay "
                    f"({OVERLAY}) and the rehearsed datasets.\n" + yaml.safe_dump(params, sort_keys=False))
    return path
