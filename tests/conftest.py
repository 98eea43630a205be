import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Small settings for the end-to-end runs: the same code paths as the embedded default, fewer images.
FAST_PARAMS = {
    "bootstrap": {"clip_steps": 20, "vae_steps": 10, "unet_steps": 20},
    "prepare": {"shots": 4, "pool_shots": None},
    "generate": {"images_per_class": 4, "steps": 4, "batch_size": 8, "shard_size": 16},
    "cler": {"timing_repeats": 1},
    "pool": {"per_class": 10},
    "retrieve": {"top_k": 8, "shots": 4},
    "invert": {"steps": 1, "batch_size": 1, "eval_draws": 1, "original_shots": 2},
}


# The built-in seeded tiny models, for tests that run stages without the bootstrap stage's miniature.
BUILTIN_MODELS = {
    "generate": {"model": "tiny-sd", "cf_model": "tiny-clip"},
    "invert": {"model": "tiny-sd", "filter_clip_model": "tiny-clip"},
    "embed": {"model": "tiny-clip"},
    "quality": {"model": "tiny-clip"},
    "index": {"model": "tiny-clip"},
}


def genbench_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("genbench")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "stages.frame.cli"]


def write_params(directory: Path, overrides: dict | None = None, *, miniature: bool = False) -> Path:
    """params.yaml with fast settings; the built-in tiny models unless `miniature` (then the
    bootstrap stage must run first, as `dvc repro` does)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    layers = [FAST_PARAMS] if miniature else [FAST_PARAMS, BUILTIN_MODELS]
    merged: dict = {}
    for layer in [*layers, overrides or {}]:
        for section, values in layer.items():
            merged[section] = {**merged.get(section, {}), **values} if isinstance(values, dict) else values
    for section, values in merged.items():
        if isinstance(values, dict):
            params.setdefault(section, {}).update(values)
        else:
            params[section] = values
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_genbench(args: list[str], cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", "TQDM_DISABLE": "1"}
    env.pop("GENBENCH_PIPELINE_ID", None)
    proc = subprocess.run(genbench_cmd() + args, cwd=cwd, env=env, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"genbench {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_params(tmp_path)
    return tmp_path


def copy_project(dest: Path) -> Path:
    """The project as a fresh clone would have it (genbench.rehearsal.workdir.copy_project)."""
    from genbench.rehearsal.workdir import copy_project as copy

    return copy(ROOT, dest)
