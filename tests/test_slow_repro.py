"""Slow tier (make test-slow): the full embedded default, `dvc repro` in a fresh clone of HEAD."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_full_embedded_repro_from_a_fresh_clone(tmp_path):
    clone = tmp_path / "kit"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    dvc = str(Path(sys.executable).with_name("dvc"))
    start = time.perf_counter()
    subprocess.run([dvc, "repro"], cwd=clone, env=env, check=True)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = subprocess.run([dvc, "repro"], cwd=clone, env=env, check=True, capture_output=True, text=True)
    second = time.perf_counter() - start
    print(f"dvc repro: {first:.0f} s; no-op repro: {second:.1f} s")
    assert "Running stage" not in again.stdout
    report = (clone / "reports/report.md").read_text()
    assert "digits" in report and "not run" not in report.split("## What each data type cost")[0]
