"""A copy of the kit as its own git checkout on the tiny pipeline, and real `dvc` commands in it
(tests/test_dvc_faults.py, tests/test_dvc_experiments.py, tests/test_headline.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import copy_project, write_params
from genbench.rehearsal.workdir import git_commit_all

DVC = str(Path(sys.executable).with_name("dvc"))
TINY = {
    "datasets": ["digits"],
    "models": {"train": [], "deps": "models/README.md"},  # the built-in tiny models: no bootstrap stage
    "prepare": {"shots": 2},
    "generate": {"strategies": ["ST"], "images_per_class": 1, "steps": 2, "batch_size": 2, "shard_size": 4},
    "finetune": {"model": "tiny-clip"},  # embed's built-in model (conftest BUILTIN_MODELS leaves finetune on the miniature)
}
TINY_PROBED = {**TINY, "generate": {**TINY["generate"], "images_per_class": 2}}  # the probe needs 2 per class


def dvc_env() -> dict[str, str]:
    """The environment DVC runs in: the venv's bin first on PATH (DVC runs each stage as
    `genbench ...` and a queue worker as `dvc ...`), no tracking overrides, no system metrics."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1",
           "GENBENCH_SYSTEM_METRICS": "0"}
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "GENBENCH_PIPELINE_ID"):
        env.pop(key, None)
    return env


def dvc(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`dvc ARGS` in `root`, in `dvc_env()` updated with `env`."""
    return subprocess.run([DVC, *args], cwd=root, env={**dvc_env(), **(env or {})}, capture_output=True, text=True)


def checkout(dest: Path, params: dict) -> Path:
    """The kit as a fresh clone has it in `dest`, params.yaml = the test settings + `params`, committed."""
    root = copy_project(dest)
    write_params(root, params)
    git_commit_all(root, "test checkout")
    return root


def baseline(dest: Path, params: dict, *targets: str) -> Path:
    """A user's baseline commit in `dest`: a fresh checkout on `params` where `dvc repro TARGETS`
    (all stages when none) ran, committed with its dvc.lock, headline metrics and report tables."""
    root = checkout(dest, params)
    proc = dvc(root, "repro", *targets)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    git_commit_all(root, "baseline")
    return root
