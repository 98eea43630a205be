"""MLflow run states that tell the truth after a crash or a signal.

- Every stage run carries `PROCESS_TAG` = `HOST:PID:START` of the process that opened it.
- SIGTERM raises `Interrupted` in the stage (SIGINT raises KeyboardInterrupt already), so the
  tracker closes its child and parent runs as KILLED.
- A run left RUNNING by a SIGKILL (or a power cut) is closed as KILLED by the next stage that
  opens a run in the same experiment: a stage run whose process is gone from this host, and a
  pipeline run none of whose RUNNING stage runs is alive. Runs of other hosts are left alone.
"""

from __future__ import annotations

import signal
import socket
from contextlib import contextmanager
from typing import Iterator

import psutil

from genbench.errors import Interrupted

PROCESS_TAG = "genbench.process"


def process_id(proc: psutil.Process | None = None) -> str:
    proc = proc or psutil.Process()
    return f"{socket.gethostname()}:{proc.pid}:{int(proc.create_time())}"


def process_alive(ident: str | None) -> bool:
    """Whether the process named by a PROCESS_TAG value still runs; True for other hosts."""
    if not ident:
        return False
    host, _, rest = ident.partition(":")
    if host != socket.gethostname():
        return True
    pid, _, start = rest.partition(":")
    try:
        return int(psutil.Process(int(pid)).create_time()) == int(start)
    except (psutil.Error, ValueError):
        return False


def close_abandoned(client, experiment_id: str, kind_tag: str) -> list[str]:
    """Close as KILLED the kit's RUNNING runs whose process is gone (a pipeline run: no live stage
    and its opener gone); returns their run ids."""
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    ours = [r for r in running if r.data.tags.get(kind_tag) in ("stage", "pipeline")]
    stages = [r for r in ours if r.data.tags.get(kind_tag) == "stage"]
    closed = [r.info.run_id for r in stages if not process_alive(r.data.tags.get(PROCESS_TAG))]
    live_parents = {r.data.tags.get("mlflow.parentRunId") for r in stages if r.info.run_id not in closed}
    closed += [r.info.run_id for r in ours if r.data.tags.get(kind_tag) == "pipeline" and r.info.run_id not in live_parents
               and not (r.data.tags.get(PROCESS_TAG) and process_alive(r.data.tags[PROCESS_TAG]))]  # its opener may be about to add a child
    for run_id in closed:
        client.set_terminated(run_id, status="KILLED")
    return closed


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM raises `Interrupted` (in the main thread; elsewhere a no-op)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
