"""`genbench rehearse`: a dress rehearsal of a profile, offline, that changes sizes only.

1. A workdir holding a fresh copy of the project's pipeline files, committed to its own git
   repository, with params.yaml = the profile + the size overlay (profiles/overlays/rehearsal.yaml)
   + the chosen datasets.
2. Stand-in models (seeded random weights under the exact ids and revisions the profile names) in a
   scratch Hugging Face cache inside the workdir, and stand-in data in the layouts the datasets'
   sources and `index.pool` read.
3. `genbench profile check`, then `dvc repro` with the hub switched off (HF_HUB_OFFLINE=1,
   TRANSFORMERS_OFFLINE=1): a model the profile names that the rehearsal did not provide fails it.
4. The checks of genbench.rehearsal.checks, each stage's wall time, and the real run's cost
   extrapolated from the rehearsal's ledger (genbench.rehearsal.extrapolate).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click

from genbench.errors import GenBenchError
from genbench.rehearsal import workdir as wd
from genbench.rehearsal.checks import CHECKS, expanded_stages

MARKER = ".genbench-rehearsal"  # a workdir holding this file may be wiped by the next rehearsal
HF_HOME = Path(".genbench/hf-home")  # inside the workdir, git-ignored there
LOG = "rehearsal.log"
FULL_SIZE_KEYS = ("height", "width", "steps", "batch_size", "shard_size", "dtype")  # --full-size-generator: the profile's


@dataclass
class Outcome:
    """What the rehearsal found: printed lines and one text per failed check."""

    workdir: Path
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def bin_dir() -> Path:
    return Path(sys.executable).parent


def tool(name: str) -> list[str]:
    exe = bin_dir() / name
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", {"genbench": "stages.frame.cli", "dvc": "dvc"}[name]]


def offline_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "GIT_")) and k not in ("GENBENCH_PIPELINE_ID", "GENBENCH_PARAMS")}
    env.update({"HF_HOME": str(workdir / HF_HOME), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
                "GENBENCH_STANDIN_DATA": "1",
                "XDG_CACHE_HOME": str(workdir / ".genbench/cache"), "TORCH_HOME": str(workdir / ".genbench/torch"),
                "PATH": f"{bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}"})
    env["PYTHONPATH"] = str(workdir)  # the workdir's copy of the kit runs, as an editable install of it would
    return env


def default_workdir(root: Path, profile: str) -> Path:
    return root / "build" / "rehearsal" / Path(profile).stem


def fresh_workdir(path: Path) -> Path:
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).is_file():
            raise GenBenchError(f"--workdir {str(path)!r} exists and is not a rehearsal workdir; pass an empty or new "
                                "directory")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("written by genbench rehearse; the next rehearsal here deletes this folder\n")
    return path


def rehearsal_params(root: Path, profile: str, datasets: list[str] | None, full_size_generator: bool) -> tuple[dict, dict, dict]:
    """(params of the rehearsal, the profile itself, the overlay's stand-in sizes)."""
    real = wd.read_yaml(wd.resolve_profile(profile, root))
    overlay = wd.read_yaml(root / wd.OVERLAY)
    params = wd.overlay_params(real, overlay, datasets)
    if full_size_generator:
        params["generate"].update({k: real["generate"][k] for k in FULL_SIZE_KEYS if k in real["generate"]})
    return params, real, overlay.get(wd.STANDIN_SECTION, {})


def write_standins(workdir: Path, params: dict, sizes: dict, full_size_generator: bool,
                   write_models: Callable | None = None) -> list[dict]:
    """Stand-in models into the workdir's HF cache, stand-in data into the data root and the pool."""
    from genbench.rehearsal.data import write_standin_dataset, write_standin_pool

    if write_models is None:
        from genbench.rehearsal.models import write_standin_models as write_models
    models = write_models(params, workdir / HF_HOME, seed=sizes.get("seed", 0), full_size_generator=full_size_generator)
    data_root = workdir / params["prepare"]["data_root"]
    for name in params["datasets"]:
        write_standin_dataset(name, data_root, train_per_class=sizes["train_per_class"],
                              test_per_class=sizes["test_per_class"], image_size=sizes["image_size"],
                              seed=sizes.get("seed", 0))
    write_standin_pool(params["datasets"], workdir / params["index"]["pool"], per_class=sizes["pool_per_class"],
                       seed=sizes.get("seed", 0), image_size=sizes["image_size"])
    return models


def standin_line(record: dict) -> str:
    """One stand-in model as printed: id, revision, kind, the params keys naming it, size or why none."""
    what = f"{record.get('id')}@{record.get('revision') or '-'} ({record.get('kind', '?')})"
    keys = ", ".join(record.get("keys") or [])
    if record.get("provided"):
        return f"  {what} for {keys}: {record.get('bytes', 0) / 1e6:.1f} MB"
    return f"  {what} for {keys}: not provided ({record.get('note') or 'no reason given'})"


def profile_check(workdir: Path, env: dict) -> str | None:
    """`genbench profile check params.yaml`'s error text, or None when it passes (or the kit has no such command)."""
    has = subprocess.run(tool("genbench") + ["profile", "check", "--help"], cwd=workdir, env=env, capture_output=True)
    if has.returncode != 0:
        return None
    proc = subprocess.run(tool("genbench") + ["profile", "check", "params.yaml"], cwd=workdir, env=env,
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    problems = [l.removeprefix("error: ") for l in proc.stderr.splitlines() if l.startswith("error:")]
    return "genbench profile check: " + ("; ".join(problems) or proc.stderr.strip()[-300:])


def failure_reason(log: list[str]) -> str:
    """The stage's own `error:` line, else the last line of its traceback, else dvc's last error."""
    ours = [l for l in log if l.startswith("error: ")]
    if ours:
        return ours[-1].removeprefix("error: ")
    exc = [l for l in log if l and not l.startswith((" ", "\t")) and ("Error" in l.split(":")[0] or "Exception" in l)]
    return exc[-1] if exc else (log[-1] if log else "no output")


def dvc_repro(workdir: Path, env: dict, total: int) -> str | None:
    """Run `dvc repro`, a progress bar over its stages; the failure text, or None."""
    from tqdm import tqdm

    log_path = workdir / LOG
    lines: list[str] = []
    running = "?"
    with open(log_path, "w") as log, tqdm(total=total, desc="dvc repro", unit="stage", file=sys.stderr) as bar:
        proc = subprocess.Popen(tool("dvc") + ["repro"], cwd=workdir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            log.flush()
            lines.append(line.rstrip("\n"))
            if line.startswith("Running stage '"):
                running = line.split("'")[1]
                bar.set_postfix_str(running)
                bar.update(1)
        proc.wait()
    if proc.returncode == 0:
        return None
    return f"dvc repro stopped at stage {running}: {failure_reason(lines)} (log: {log_path})"


def rehearse(profile: str, datasets: list[str] | None = None, workdir: Path | None = None, *,
             full_size_generator: bool = False, root: Path | None = None, write_models: Callable | None = None) -> Outcome:
    """Run the rehearsal; see the module docstring. `write_models` replaces the stand-in model writer (tests)."""
    root = (root or Path.cwd()).resolve()
    if not (root / "dvc.yaml").is_file():
        raise GenBenchError(f"{root} has no dvc.yaml; run `genbench rehearse` from the project root")
    params, real, sizes = rehearsal_params(root, profile, datasets, full_size_generator)
    workdir = fresh_workdir((workdir or default_workdir(root, profile)).resolve())
    out = Outcome(workdir)
    wd.copy_project(root, workdir)
    wd.write_params(workdir, params)
    wd.git_commit_all(workdir, f"rehearsal of profile {real.get('profile', profile)}")
    env = offline_env(workdir)
    click.echo(f"rehearsal of {profile}: {len(params['datasets'])} dataset(s) in {workdir}", err=True)
    models = write_standins(workdir, params, sizes, full_size_generator, write_models)
    out.lines.append(f"stand-in models: {len(models)} in {workdir / HF_HOME}")
    out.lines += [standin_line(m) for m in models]
    problem = profile_check(workdir, env)
    if problem:
        out.errors.append(problem)
        return out
    problem = dvc_repro(workdir, env, total=len(expanded_stages(workdir, params)))
    if problem:
        out.errors.append(problem)
        return out
    for check in CHECKS.values():
        result = check(workdir, params)
        out.lines += [f"[{result.name}] {line}" for line in result.lines]
        out.errors += result.errors
    out.lines += cost_extrapolation(workdir, real, params, env, out.errors)
    return out


def estimate(profile: str, datasets: list[str] | None = None, *, overhead_s: float, root: Path | None = None,
             rates: dict | None = None) -> tuple[list[str], float]:
    """The rehearsal's CLIP work counted from its params (genbench.rehearsal.workload) and its time
    at tower rates measured here (or `rates`) plus `overhead_s` per DVC stage; nothing is run."""
    from genbench.rehearsal import workload

    root = (root or Path.cwd()).resolve()
    params, _, sizes = rehearsal_params(root, profile, datasets, False)
    params = {**params, "standin": sizes}
    works = workload.total_work(params, workload.pool_captions(params, sizes),
                                workload.token_length([params["embed"]["model"]]))
    models = sorted({w.model for w in works})
    rates = rates or workload.measure_rates(models)
    stages = len(expanded_stages(root, params))
    lines, total = workload.estimate_lines(works, rates, stages, overhead_s)
    head = [f"ESTIMATE of the rehearsal of {profile} ({len(params['datasets'])} dataset(s)), not a measurement: "
            "CLIP tower work counted from the params, at these rates measured now on this machine:"]
    head += [f"  {m:20s} image {rates[(m, 'image')]:.3f} s/image, text {rates[(m, 'text')] * 1e3:.2f} ms/position"
             for m in models]
    return head + lines, total


def cost_extrapolation(workdir: Path, real: dict, params: dict, env: dict, errors: list[str]) -> list[str]:
    from genbench.rehearsal.extrapolate import extrapolation

    factors, targets, assumptions = extrapolation(real, params)
    snapshot = (real.get("cost") or {}).get("snapshot", "paper-2023")
    cmd = tool("genbench") + ["cost", "estimate", "reports/ledger.csv", "--snapshot", snapshot]
    cmd += [f"--scale={stage}={factor:.6g}" for stage, (factor, _) in factors.items()]
    cmd += [f"--target={k}={v}" for k, v in targets.items()]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        errors.append(f"genbench cost estimate failed: {proc.stderr.strip()[-300:]}")
        return []
    lines = ["EXTRAPOLATION of the real run's cost (not a measurement): " + " ".join(cmd[len(tool('genbench')):])]
    lines += [f"  {l}" for l in proc.stdout.splitlines()]
    lines += ["  assumptions:"] + [f"    - {a}" for a in assumptions]
    return lines
