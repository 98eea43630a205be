"""A DVC experiment runs its own commit's code.

`dvc exp run --temp` and `dvc queue` run each experiment in a temporary copy of the project inside
DVC's own folder (DVC_ROOT names the project itself), and DVC hashes the copy's code as the
stages' deps. An editable install (`make install`) imports the kit from the project folder
instead, so a queued experiment would run whatever the workspace holds when its turn comes.
`own_code_argv` gives the command that runs the copy's code: the same `genbench` arguments under
`python -m stages.frame.cli` in the copy, with the copy first on PYTHONPATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

IMPORTED_ROOT = Path(__file__).resolve().parents[2]  # the project folder this code was imported from


def experiment_copy(cwd: Path | None = None, env: dict[str, str] | None = None) -> Path | None:
    """The experiment's copy of the project when this process runs in one whose code is not the
    code imported here (DVC_ROOT set to another folder, the copy holding stages/frame/cli.py), else None."""
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).resolve()
    dvc_root = env.get("DVC_ROOT")
    if not dvc_root or Path(dvc_root).resolve() == cwd or not (cwd / "stages" / "frame" / "cli.py").is_file():
        return None
    return None if IMPORTED_ROOT == cwd else cwd


def own_code_argv(copy: Path, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that rerun `genbench argv[1:]` on the code of `copy`."""
    path = os.pathsep.join([str(copy), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return [sys.executable, "-m", "stages.frame.cli", *argv[1:]], {**os.environ, "PYTHONPATH": path}
