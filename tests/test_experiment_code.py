"""A DVC experiment's stages run the code of the experiment's own copy of the project, not the
editable install's (stages/frame/experiment_code.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import ROOT, copy_project, genbench_cmd
from stages.frame.experiment_code import experiment_copy

MARKER = "run from the experiment's own copy"


def test_only_a_dvc_experiment_copy_with_the_kit_counts(tmp_path: Path):
    (tmp_path / "stages" / "frame").mkdir(parents=True)
    (tmp_path / "stages" / "frame" / "cli.py").write_text("")
    assert experiment_copy(tmp_path, {}) is None  # not under DVC
    assert experiment_copy(tmp_path, {"DVC_ROOT": str(tmp_path)}) is None  # dvc repro in the project itself
    assert experiment_copy(tmp_path / "stages", {"DVC_ROOT": str(ROOT)}) is None  # no kit there
    assert experiment_copy(ROOT, {"DVC_ROOT": str(tmp_path)}) is None  # the code imported is that folder's
    assert experiment_copy(tmp_path, {"DVC_ROOT": str(ROOT)}) == tmp_path.resolve()


def test_genbench_in_an_experiment_copy_runs_the_copys_code(tmp_path: Path):
    copy = copy_project(tmp_path / "exp")
    cli = copy / "stages" / "frame" / "cli.py"
    cli.write_text(cli.read_text().replace('"""GenBench Kit: generative data', f'"""{MARKER}. GenBench Kit: generative data'))
    env = {**os.environ, "DVC_ROOT": str(ROOT)}
    shown = subprocess.run(genbench_cmd() + ["--help"], cwd=copy, env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert MARKER in shown.stdout
    plain = subprocess.run(genbench_cmd() + ["--help"], cwd=copy, env={k: v for k, v in env.items() if k != "DVC_ROOT"},
                           capture_output=True, text=True)
    assert MARKER not in plain.stdout
