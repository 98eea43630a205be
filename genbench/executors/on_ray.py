"""The Ray executor: shards spread over the GPUs (or CPUs) of a Ray cluster.

Each worker is a Ray actor holding one GPU (`num_gpus=1`; on a cluster without GPUs,
`num_cpus=cpu_threads`). It loads its model once, on the first shard it must make, and takes whole
shards, one at a time: a generation worker writes the shard files itself
(`genbench.storage.write_shard`, skipping a shard that is already complete) and returns only the
shard's manifest rows; an encoding worker reads a shard file and returns its keys and features.
The driver hands the next shard to whichever worker is free. When a worker dies or fails, its
shard goes back to the queue and a fresh worker takes its place, up to `max_retries` more tries
per shard; shard writes are atomic, so a retried shard is never duplicated or half written.
An error the user must fix (a `GenBenchError`, e.g. weights that differ between nodes) stops the
run at once. Workers that find the queue empty are released, so their GPUs go to replacements.

Every node must see the output directory at the same absolute path (shared storage: NFS, or an
object store mounted with a FUSE driver); the driver checks that each shard a worker reports is
visible to it.
"""

from __future__ import annotations

import socket
import uuid
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
from tqdm.auto import tqdm

from genbench import storage
from genbench.errors import GenBenchError
from genbench.executors.local import assemble, shard_tasks
from genbench.executors.metering import metered, readings_by_worker
from genbench.executors.runs import EmbedRun, EncodedSet, ExecutorOptions, ShardRun
from genbench.executors.workers import (
    EmbeddingWorker,
    GenerationWorker,
    ShardMaker,
    encode_shard,
    init_images_of,
    load_encoder,
    make_shard,
)
from genbench.generation import ImageJob, canonical_row

ACTOR_PREFIX = "genbench"


def import_ray():
    try:
        import ray
    except ImportError:
        raise GenBenchError("executor 'ray' needs the ray package: pip install 'ray>=2.40' (or use --executor local)") from None
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Ray, connected: reuse this process's connection, else connect to `address` (None: start a
    local instance) and disconnect at the end."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise GenBenchError(f"cannot connect to the Ray cluster at {address!r}: {str(exc).splitlines()[0][:200]}; "
                            "start one with `ray start --head` or leave --address out to run one on this machine") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class Placement:
    """Where workers go: how many, the Ray resources of each, the device they compute on."""

    slots: int
    resources: dict
    device: str
    vcpus: int | None


def placement(ray, device: str, cpu_threads: int, workers: int | None, tasks: int) -> Placement:
    """One worker per GPU of the cluster unless `device` is 'cpu' or it has none; then one per
    `cpu_threads` CPUs; at most `workers` and never more than there are tasks."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if device != "cpu" and gpus:
        slots, res, on, vcpus = gpus, {"num_gpus": 1}, "cuda", None
    elif device.startswith("cuda"):
        raise GenBenchError(f"device {device!r} asked for, but the Ray cluster has no GPU; use 'auto' or 'cpu'")
    else:
        largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        if largest < cpu_threads:
            raise GenBenchError(f"cpu_threads = {cpu_threads} but the largest node of the Ray cluster has {largest:g} CPUs; "
                                "lower the thread count")
        slots, res, on, vcpus = int(resources.get("CPU", 0) // cpu_threads), {"num_cpus": cpu_threads}, "cpu", cpu_threads
    return Placement(max(1, min(slots, workers or slots, tasks)), res, on, vcpus)


def worker_label(slot: int) -> str:
    """'<host>/gpu<id>' for a GPU worker (the GPU Ray gave it), '<host>/cpu<slot>' otherwise."""
    import ray

    gpus = ray.get_gpu_ids()
    return f"{socket.gethostname()}/gpu{','.join(str(g) for g in gpus)}" if gpus else f"{socket.gethostname()}/cpu{slot}"


class GenerationActor:
    """Makes whole generation shards with one pipeline, loaded on the first shard it must make."""

    def __init__(self, worker: GenerationWorker, slot: int, meter: Callable | None, vcpus: int | None):
        self.worker, self.meter, self.vcpus = worker, meter, vcpus
        self.label = worker_label(slot)
        self.maker: ShardMaker | None = None
        self.oom_reported = 0

    def make(self, out_dir: str, index: int, jobs: list[ImageJob], row_extra: dict, plan_hash: str,
             init_images: dict[str, np.ndarray]) -> dict:
        result = {"index": index, "rows": None, "made": 0, "readings": [], "oom_events": [], "host": socket.gethostname()}
        result["rows"] = storage.completed_shard_rows(out_dir, index, plan_hash)
        if result["rows"] is not None:
            return result
        if self.maker is None:
            self.maker, reading = metered(self.meter, "generate", lambda: (ShardMaker(self.worker), 0), self.label, self.vcpus)
            result["readings"].append(reading)

        def shard():
            rows, made = make_shard(out_dir, index, jobs, self.maker, row_extra, plan_hash, init_images)
            return (rows, made), made

        (result["rows"], result["made"]), reading = metered(self.meter, "generate", shard, self.label, self.vcpus)
        result["readings"] = [r for r in [*result["readings"], reading] if r]
        result["oom_events"] = self.maker.oom_events[self.oom_reported:]
        self.oom_reported = len(self.maker.oom_events)
        return result


class EncodingActor:
    """Encodes whole shard files with one CLIP model, loaded on the first shard."""

    def __init__(self, worker: EmbeddingWorker, slot: int, meter: Callable | None, vcpus: int | None):
        self.worker, self.meter, self.vcpus = worker, meter, vcpus
        self.label = worker_label(slot)
        self.loaded = None

    def encode(self, path: str, keys: tuple[str, ...]) -> dict:
        if not Path(path).is_file():
            raise GenBenchError(f"shard {path} is not visible on {socket.gethostname()}; mount the project's data on "
                                "every node at the same path (shared storage)")
        readings = []
        if self.loaded is None:
            self.loaded, reading = metered(self.meter, "embed", lambda: (load_encoder(self.worker), 0), self.label, self.vcpus)
            readings.append(reading)

        def shard():
            found, feats = encode_shard(self.loaded.encode_pngs, path, keys)
            return (found, feats), len(found)

        (found, feats), reading = metered(self.meter, "embed", shard, self.label, self.vcpus)
        readings.append(reading)
        return {"keys": found, "features": feats, "readings": [r for r in readings if r]}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "cause", None) or exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


def run_pool(ray, spawn: Callable[[int], Any], submit: Callable[[Any, Any], Any], tasks: list, slots: int,
             max_retries: int, on_result: Callable[[Any, Any], None], describe: Callable[[Any], str]) -> int:
    """Run `tasks` on `slots` actors, one task per actor at a time; return how many attempts failed.

    A task whose actor died or raised is queued again and the actor replaced, up to `max_retries`
    more tries per task; a GenBenchError raised by a task is the user's to fix and is raised here.
    """
    from ray.exceptions import RayError, RayTaskError

    queue, attempts, actors, running = deque(tasks), Counter(), {}, {}
    failures = 0

    def release(slot: int) -> None:
        try:
            ray.kill(actors.pop(slot), no_restart=True)
        except Exception:  # already dead or its node gone: nothing left to release
            pass

    def feed(slot: int) -> None:
        if queue:
            task = queue.popleft()
            running[submit(actors[slot], task)] = (slot, task)
        else:
            release(slot)

    try:
        for slot in range(min(slots, len(queue))):
            actors[slot] = spawn(slot)
            feed(slot)
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            slot, task = running.pop(ref)
            try:
                result = ray.get(ref)
            except RayError as exc:
                if isinstance(exc, RayTaskError) and isinstance(exc.cause, GenBenchError):
                    raise exc.cause from None
                failures += 1
                attempts[task] += 1
                if attempts[task] > max_retries:
                    raise GenBenchError(f"{describe(task)} failed {attempts[task]} times (last: {_first_line(exc)}); "
                                        "see the Ray worker logs, or raise max_retries") from exc
                queue.appendleft(task)
                release(slot)
                actors[slot] = spawn(slot)
                feed(slot)
                continue
            on_result(task, result)
            feed(slot)
    finally:
        for slot in list(actors):
            release(slot)
    return failures


def _spawner(ray, actor_class: type, kind: str, placement: Placement, spec: Any, options: ExecutorOptions) -> Callable[[int], Any]:
    remote = ray.remote(actor_class)
    token = uuid.uuid4().hex[:8]
    incarnations = Counter()

    def spawn(slot: int):
        incarnations[slot] += 1
        name = f"{ACTOR_PREFIX}-{kind}-{token}-{slot}-{incarnations[slot]}"
        return remote.options(name=name, **placement.resources).remote(spec, slot, options.meter, placement.vcpus)

    return spawn


def generate_on_ray(out_dir: str | Path, shards: list[list[ImageJob]], indices: list[int], worker: GenerationWorker,
                    row_extra: dict, plan_hashes: list[str], *, init_images: Mapping[str, np.ndarray] | None = None,
                    options: ExecutorOptions = ExecutorOptions(), progress: bool = True,
                    on_shard_done: Callable[[int, list[dict]], None] | None = None) -> ShardRun:
    """Make the shards in `indices` on a Ray cluster; the same rows and files as `generate_local`.
    Each shard's task carries only the reference images its jobs start from."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict] = {}
    with ray_session(options.address) as ray, \
            tqdm(total=sum(len(shards[i]) for i in indices), desc="generate", unit="img", disable=not progress) as bar:
        where = placement(ray, worker.device, worker.cpu_threads, options.workers, len(indices))
        spec = replace(worker, device=where.device)

        def on_result(index: int, result: dict) -> None:
            results[index] = result
            bar.update(len(shards[index]))
            if result["made"] and on_shard_done:
                on_shard_done(index, result["rows"])

        failures = run_pool(
            ray, _spawner(ray, GenerationActor, "generate", where, spec, options),
            lambda actor, i: actor.make.remote(str(out_dir), i, shards[i], row_extra, plan_hashes[i],
                                               init_images_of(shards[i], init_images)),
            list(indices), where.slots, options.max_retries, on_result, lambda i: f"generation shard {i}",
        )
    for i in indices:
        if not (out_dir / f"{storage.shard_name(i)}.done").is_file():
            raise GenBenchError(f"shard {i} was written on {results[i]['host']} but is not visible here in {out_dir}; "
                                "mount shared storage at the same path on every node")
    readings = readings_by_worker([r for i in indices for r in results[i]["readings"]])
    return ShardRun(rows=[canonical_row(row) for i in indices for row in results[i]["rows"]],
                    made=sum(results[i]["made"] for i in indices),
                    oom_events=[e for i in indices for e in results[i]["oom_events"]], readings=readings,
                    failures=failures, workers=where.slots)


def embed_on_ray(image_sets: Mapping[str, str | Path], worker: EmbeddingWorker, *,
                 options: ExecutorOptions = ExecutorOptions(), progress: bool = True) -> EmbedRun:
    """Encode every shard of each image set on a Ray cluster; the same features as `embed_local`."""
    sets = {name: shard_tasks(Path(directory).resolve()) for name, directory in image_sets.items()}
    tasks = [(name, str(path), keys) for name, (shards, _) in sets.items() for path, keys in shards]
    encoded: dict[str, dict[str, np.ndarray]] = {name: {} for name in sets}
    blocks: list[dict] = []
    with ray_session(options.address) as ray, tqdm(total=len(tasks), desc="embed", unit="shard", disable=not progress) as bar:
        where = placement(ray, worker.device, worker.cpu_threads, options.workers, len(tasks))

        def on_result(task: tuple[str, str, tuple[str, ...]], result: dict) -> None:
            encoded[task[0]].update(zip(result["keys"], result["features"]))
            blocks.extend(result["readings"])
            bar.update(1)

        failures = run_pool(
            ray, _spawner(ray, EncodingActor, "embed", where, replace(worker, device=where.device), options),
            lambda actor, task: actor.encode.remote(task[1], task[2]), tasks, where.slots, options.max_retries, on_result,
            lambda task: f"embedding shard {task[1]}",
        )
    done = {name: EncodedSet(features=assemble(image_sets[name], manifest, encoded[name]), manifest=manifest)
            for name, (_, manifest) in sets.items()}
    return EmbedRun(sets=done, readings=readings_by_worker(blocks), failures=failures, workers=where.slots)
