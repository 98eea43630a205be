"""A generate run killed with SIGKILL at a random point and started again ends with the same
manifest as an uninterrupted run: same images (sha256), no duplicates, no temporaries left,
every shard intact."""

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd

from conftest import genbench_cmd, run_genbench, write_params
from genbench import storage

OVERRIDES = {
    "prepare": {"shots": 2},
    "generate": {"strategies": ["ST", "DT+NP"], "images_per_class": 2, "steps": 2, "batch_size": 2, "shard_size": 2},
}
PER_SHARD = 2
SHARDS = 2 * 10 * 2 // PER_SHARD


def _env(cwd: Path) -> dict:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", "TQDM_DISABLE": "1"}
    env.pop("GENBENCH_PIPELINE_ID", None)
    return env


def _kill_after_some_shards(cwd: Path, rng: random.Random) -> int:
    """Start `genbench generate`, SIGKILL it once a random number of shards (at least one) are
    done plus a random fraction of a second; return how many were done at the kill."""
    target = rng.randint(1, SHARDS - 4)
    out = cwd / "data" / "digits" / "generated"
    proc = subprocess.Popen(genbench_cmd() + ["generate"], cwd=cwd, env=_env(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("*.done"))) < target:
            assert proc.poll() is None, f"generate ended before the kill: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no shard finished in time"
            time.sleep(0.02)
        # a random fraction of a second more, cut short before the last shard so the kill falls mid-run
        pause_until = time.monotonic() + rng.uniform(0, 0.3)
        while time.monotonic() < pause_until and len(list(out.glob("*.done"))) < SHARDS - 1:
            time.sleep(0.01)
        done = len(list(out.glob("*.done")))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    return done


def test_sigkill_and_restart_give_the_uninterrupted_manifest(tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for root in (whole, killed):
        root.mkdir()
        write_params(root, OVERRIDES)
    run_genbench(["prepare"], whole)
    shutil.copytree(whole / "data", killed / "data")
    shutil.copy2(whole / "mlflow.db", killed / "mlflow.db")  # spares the second run MLflow's table creation
    run_genbench(["generate"], whole)

    done_at_kill = _kill_after_some_shards(killed, rng)
    assert 1 <= done_at_kill < SHARDS, f"seed {seed}"
    run_genbench(["generate"], killed)

    out = killed / "data" / "digits" / "generated"
    expected = storage.read_manifest(whole / "data" / "digits" / "generated")
    got = storage.read_manifest(out)
    pd.testing.assert_frame_equal(got, expected, obj=f"manifest after a kill at {done_at_kill} shards (seed {seed})")
    assert got["key"].is_unique and len(got) == SHARDS * PER_SHARD
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == [], f"seed {seed}"
    assert sorted(p.name for p in out.glob("shard-*")) == sorted(f"shard-{i:05d}.{x}" for i in range(SHARDS) for x in ("done", "tar"))
    by_shard = got.groupby("shard")["key"].apply(list).to_dict()
    for shard, keys in by_shard.items():
        sidecar = (out / shard).with_suffix(".done")
        assert storage.sha256_file(out / shard) == json.loads(sidecar.read_text())["tar_sha256"]
        assert [row["key"] for row, _ in storage.iter_shard(out / shard)] == sorted(keys)  # iter_shard checks each sha256
