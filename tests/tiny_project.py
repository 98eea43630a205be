"""One finished tiny project for the tests that spoil or load it: prepare, generate, embed and cler
on digits with the built-in tiny models, each stage run in this process (click's runner) and
logging to the project's own SQLite store."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_params
from stages.frame.cli import cli

DATASET = "digits"
FIXTURE_PARAMS = {
    "datasets": [DATASET],
    "prepare": {"shots": 2},
    "generate": {"strategies": ["ST"], "images_per_class": 1, "steps": 2, "batch_size": 2, "shard_size": 4},
    "cler": {"timing_repeats": 1},
}
STAGES = ("prepare", "generate", "embed", "cler")


def project_env(root: Path) -> dict[str, str]:
    """The environment a stage of `root` runs with: its own store, no system metrics, no pipeline id."""
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "GENBENCH_SYSTEM_METRICS": "0", "TQDM_DISABLE": "1",
            "GENBENCH_PIPELINE_ID": ""}


def invoke(root: Path, args: list[str], env: dict | None = None):
    """`genbench ARGS` in this process with `root` as the working directory: (exit code, stdout, stderr)."""
    old = Path.cwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(cli, args, env={**project_env(root), **(env or {})}, catch_exceptions=True)
    finally:
        os.chdir(old)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("".join(traceback.format_exception(result.exception)))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The finished tiny project, built once per test module."""
    root = tmp_path_factory.mktemp("finished")
    write_params(root, FIXTURE_PARAMS)
    for stage in STAGES:
        code, out, err = invoke(root, [stage, "--dataset", DATASET])
        assert code == 0, f"{stage}: {out}\n{err}"
    return root
