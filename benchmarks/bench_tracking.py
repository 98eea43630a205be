"""Tracking throughput: runs logged per second and tracking time per run, SQLite against an
`mlflow server` on PostgreSQL, at 1, 4 and 8 concurrent writer processes.

Each writer process logs RUNS runs shaped like a stage's (a parent and a child, the stage's
params, metrics and tags, one small artifact) through the kit's guarded client. The overhead is
the mean tracking time per stage run as a share of a stage's wall time (`--stage-wall-s`, default
8 s: pass the wall time of the stage you care about). Each configuration is measured `--repeats`
times by the same writer processes, each time in a fresh experiment (SQLite: one file per writer
count); the medians are printed, with the 1-minute load average as each repeat starts (min-max).

    python benchmarks/bench_tracking.py [--runs 10] [--writers 1 4 8] [--repeats 3] [--stage-wall-s 8.0] [--stores sqlite server]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PARAMS = {f"param_{i}": str(i) for i in range(12)}
METRICS = {f"cler.generated.m{i}": float(i) for i in range(20)}


def log_runs(uri: str, experiments: list[str], runs: int, artifact: str, barrier, results) -> None:
    """For each experiment in turn, once every writer is ready: log `runs` stage-shaped runs to it
    and put (experiment index, start, end, 1-minute load average at the start) on `results`."""
    os.environ.setdefault("GENBENCH_MLFLOW_LOCK_WAIT_S", "300")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from mlflow.entities import Metric, Param

    from stages.frame.mlflow_store import GuardedClient, experiment_id

    client = GuardedClient(uri)
    for index, experiment in enumerate(experiments):
        exp = experiment_id(client, experiment, {})
        barrier.wait()
        start, load = time.time(), os.getloadavg()[0]
        for _ in range(runs):
            parent = client.create_run(exp, tags={"genbench.kind": "pipeline"}).info.run_id
            child = client.create_run(exp, tags={"genbench.kind": "stage", "mlflow.parentRunId": parent}).info.run_id
            now = int(time.time() * 1000)
            client.log_batch(child, params=[Param(k, v) for k, v in PARAMS.items()],
                             metrics=[Metric(k, v, now, 0) for k, v in METRICS.items()])
            client.log_artifact(child, artifact)
            client.set_terminated(child, "FINISHED")
            client.set_terminated(parent, "FINISHED")
        results.put((index, start, time.time(), load))
        barrier.wait()  # the next repeat starts when every writer has finished this one


def measure(uri: str, experiment: str, writers: int, runs: int, artifact: str, repeats: int) -> list[tuple[float, float, float]]:
    """Per repeat (a fresh experiment each): (runs logged per second across all writers, mean
    seconds of tracking per run, load average at its start). Each writer is its own process,
    kept for every repeat; all start each repeat together (a barrier), and process start-up and
    imports are not counted."""
    from stages.frame.mlflow_store import GuardedClient, experiment_id

    experiments = [f"{experiment}-{r}" for r in range(repeats)]
    client = GuardedClient(uri)  # a new store's schema is made first: its migration is not logging
    for name in experiments:
        experiment_id(client, name, {})
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(writers, timeout=1800), ctx.Queue()
    procs = [ctx.Process(target=log_runs, args=(uri, experiments, runs, artifact, barrier, results), daemon=True)
             for _ in range(writers)]
    for proc in procs:
        proc.start()
    spans = [results.get(timeout=3600) for _ in range(writers * repeats)]
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"a writer exited {proc.exitcode}")
    out = []
    for r in range(repeats):
        mine = [s for s in spans if s[0] == r]
        wall = max(end for _, _, end, _ in mine) - min(start for _, start, _, _ in mine)
        out.append((writers * runs / wall, sum(end - start for _, start, end, _ in mine) / (writers * runs),
                    max(load for *_, load in mine)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs each writer logs")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--stage-wall-s", type=float, default=8.0, help="a stage's wall time, for the overhead share")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each configuration (medians printed)")
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "server"], default=["sqlite", "server"])
    args = parser.parse_args()

    from servers import MlflowServer, start_postgres

    tmp = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    artifact = tmp / "cler.json"
    artifact.write_text('{"cler": 1.0}\n')
    stores = {"sqlite": lambda n: f"sqlite:///{tmp / f'sqlite-{n}.db'}"} if "sqlite" in args.stores else {}
    server = pg = None
    try:
        if "server" in args.stores:
            pg = start_postgres()
            server = MlflowServer(pg.uri, tmp / "artifacts", tmp / "server.log")
            server.start()
            stores["server+postgres"] = lambda n: server.uri
        print(f"{os.cpu_count()} CPUs; {args.runs} runs a writer; medians of {args.repeats}")
        print(f"{'store':16} {'writers':>7} {'runs/s':>8} {'s/run':>7} {'overhead':>9} {'load avg':>11}")
        for name, uri_for in stores.items():
            for n in args.writers:
                measured = measure(uri_for(n), f"bench-{n}", n, args.runs, str(artifact), args.repeats)
                rates, per_runs, loads = zip(*measured)
                rate, per_run = statistics.median(rates), statistics.median(per_runs)
                print(f"{name:16} {n:7d} {rate:8.2f} {per_run:7.3f} {per_run / args.stage_wall_s:9.1%} "
                      f"{min(loads):5.1f}-{max(loads):<5.1f}", flush=True)
    finally:
        if server is not None:
            server.stop()
        if pg is not None:
            pg.pg_ctl("-m", "fast", "stop")
            shutil.rmtree(pg.data.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
