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
    and its opener gone); returns their run ids. Each is read again after its process was found
    gone (`_still_abandoned`), so a run its process finished just after the search stays FINISHED."""
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    ours = [r for r in running if r.data.tags.get(kind_tag) in ("stage", "pipeline")]
    stages = [r for r in ours if r.data.tags.get(kind_tag) == "stage"]
    dead = [r for r in stages if not process_alive(r.data.tags.get(PROCESS_TAG))]
    dead_ids = {r.info.run_id for r in dead}
    live_parents = {r.data.tags.get("mlflow.parentRunId") for r in stages if r.info.run_id not in dead_ids}
    dead += [r for r in ours if r.data.tags.get(kind_tag) == "pipeline" and r.info.run_id not in live_parents
             and not (r.data.tags.get(PROCESS_TAG) and process_alive(r.data.tags[PROCESS_TAG]))]  # its opener may be about to add a child
    closed = [r.info.run_id for r in dead if _still_abandoned(client, r, kind_tag)]
    for run_id in closed:
        client.set_terminated(run_id, status="KILLED")
    return closed


def _still_abandoned(client, run, kind_tag: str) -> bool:
    """Whether `run`, found RUNNING by a search and then its process gone, is RUNNING when read now.
    A process that is gone writes no more, so this read is its last word; the search may predate
    its final writes (it finished the run, then exited). A pipeline run must also have gained no
    live stage run since the search (a later stage of the same pipeline reopens it)."""
    run_id = run.info.run_id
    if client.get_run(run_id).info.status != "RUNNING":
        return False
    if run.data.tags.get(kind_tag) != "pipeline":
        return True
    children = client.search_runs([run.info.experiment_id], max_results=1000,
                                  filter_string=f"tags.`mlflow.parentRunId` = '{run_id}' and attributes.status = 'RUNNING'")
    return not any(process_alive(c.data.tags.get(PROCESS_TAG)) for c in children)


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
