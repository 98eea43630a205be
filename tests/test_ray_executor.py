"""The Ray executor on a local 2-CPU Ray cluster: the same shards and manifest as the local
executor, also when workers are killed in the middle; the same features for embedding; retries."""

import os
import shutil
from dataclasses import replace
import socket
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from cost.meter import Meter  # noqa: E402
from genbench import storage  # noqa: E402
from genbench.datasets import get_dataset  # noqa: E402
from genbench.errors import GenBenchError  # noqa: E402
from genbench.executors import EMBED_EXECUTORS, EXECUTORS, EmbeddingWorker, ExecutorOptions, GenerationWorker, load_generator  # noqa: E402
from genbench.executors.on_ray import ACTOR_PREFIX, placement, run_pool  # noqa: E402
from genbench.generation import GenerationSettings, PlanInputs, plan_jobs, shard_plan_hash, shards_of  # noqa: E402
from genbench.strategies.guidance import ReferenceImage  # noqa: E402

DIGITS = get_dataset("digits")
SETTINGS = GenerationSettings(height=32, width=32, steps=3, guidance_scale=4.0, batch_size=2)
STRATEGIES = ["ST+NP", "ST+CF", "ST+RG"]


def small_plan():
    """12 jobs of the digits plan (classes 0-3 of ST+NP, ST+CF, ST+RG), 6 shards of 2, with the
    random reference images RG starts from: negative prompts, CLIP-filter rows and image-to-image
    inputs all cross to the workers."""
    rng = np.random.default_rng(0)
    refs = {c: [ReferenceImage(f"ref-{c}", f"sha-{c}", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))] for c in range(10)}
    inputs = PlanInputs(references={"RG": refs}, strengths={"RG": 0.75})
    jobs = [j for j in plan_jobs(DIGITS, STRATEGIES, 1, global_seed=0, inputs=inputs) if j.class_index < 4]
    return shards_of(jobs, 2), {r.key: r.image for rs in refs.values() for r in rs}


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small plan made by the local executor (with its manifest written)."""
    worker = GenerationWorker("tiny-sd", SETTINGS, filter_model="tiny-clip", classnames=tuple(DIGITS.classnames),
                              templates=tuple(DIGITS.templates), cpu_threads=1, filtered_strategies=frozenset({"ST+CF"}))
    identity = load_generator(worker).identity
    worker = replace(worker, expected=identity)
    gid = {"generator": "tiny-sd", "weights_sha256": identity["weights_sha256"]}
    shards, init_images = small_plan()
    hashes = [shard_plan_hash(s, gid, SETTINGS) for s in shards]
    out = tmp_path_factory.mktemp("local")
    run = EXECUTORS["local"](out, shards, list(range(len(shards))), worker, gid, hashes, init_images=init_images, progress=False)
    storage.write_manifest(out, run.rows)
    return worker, gid, shards, hashes, init_images, out, run


def kill_workers_once():
    """An on_shard_done callback that kills every generation worker when the first shard is in:
    the one that reported it, and the other one in the middle of its shard."""
    killed = []

    def callback(index, rows):
        if killed:
            return
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["name"].startswith(f"{ACTOR_PREFIX}-generate-"):
                ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]), no_restart=True)
                killed.append(entry["name"])

    return callback


def shard_files(directory):
    """Shard files, leaving out temporaries a killed writer may leave (the stage's remove_stale deletes them)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("shard-"))


def test_ray_generation_survives_killed_workers_and_matches_local(cluster, reference, tmp_path):
    worker, gid, shards, hashes, init_images, local_dir, local = reference
    for ext in ("tar", "done"):  # one shard already complete: a worker must skip it, not redo it
        shutil.copy(local_dir / f"shard-00005.{ext}", tmp_path / f"shard-00005.{ext}")
    run = EXECUTORS["ray"](tmp_path, shards, list(range(len(shards))), worker, gid, hashes, init_images=init_images,
                           progress=False, options=ExecutorOptions(max_retries=2, meter=Meter), on_shard_done=kill_workers_once())
    assert run.failures >= 1 and run.workers == 2  # the kill hit: a worker's shard failed and was retried

    assert run.rows == local.rows  # same keys, sha256, CF confidences, rows, in shard order
    assert [list(r) for r in run.rows] == [list(r) for r in local.rows]  # and the same column order
    keys = [r["key"] for r in run.rows]
    assert len(keys) == len(set(keys)) == 12
    for i in range(len(shards)):
        name = storage.shard_name(i)
        assert (tmp_path / f"{name}.tar").read_bytes() == (local_dir / f"{name}.tar").read_bytes()
        assert storage.completed_shard_rows(tmp_path, i, hashes[i]) is not None
    assert shard_files(tmp_path) == shard_files(local_dir)

    assert run.made <= 10  # shard 5 was already there
    assert {r["hostname"] for r in run.readings} == {socket.gethostname()}
    assert all(r["worker"].startswith(socket.gethostname() + "/cpu") and r["vcpus"] == 1 for r in run.readings)
    assert sum(r["items"] for r in run.readings) == run.made
    assert not [e for e in ray.util.list_named_actors(all_namespaces=True) if e["name"].startswith(ACTOR_PREFIX)]


def test_ray_embedding_matches_local(cluster, reference, tmp_path):
    local_dir = reference[-2]
    rng = np.random.default_rng(1)
    frame = storage.write_image_set(tmp_path / "other", rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8),
                                    [{"key": f"o{i}", "class_index": i} for i in range(5)], shard_size=2)
    storage.write_manifest(tmp_path / "other", frame.drop(index=2).to_dict("records"))  # o2 left out of the set
    sets = {"generated": local_dir, "other": tmp_path / "other"}
    worker = EmbeddingWorker("tiny-clip", batch_size=4, cpu_threads=1)
    here = EMBED_EXECUTORS["local"](sets, worker, progress=False)
    there = EMBED_EXECUTORS["ray"](sets, worker, progress=False, options=ExecutorOptions(meter=Meter))
    for name in sets:
        assert np.array_equal(here.sets[name].features, there.sets[name].features)
        assert list(there.sets[name].manifest["key"]) == list(storage.read_manifest(sets[name])["key"])
    assert there.sets["generated"].features.shape == (12, 64)
    assert there.sets["other"].features.shape == (4, 64)
    assert sum(r["items"] for r in there.readings) == 16  # o2 is not encoded


class Task:
    """A pool worker for run_pool's own tests: behaviour chosen by the task."""

    def __init__(self, slot):
        self.slot = slot

    def run(self, task):
        kind, marker = task
        first = not os.path.exists(marker)
        open(marker, "a").close()
        if kind == "user":
            raise GenBenchError("params key 'x' = 3 is bad; use 4")
        if kind == "always" or (kind == "flaky" and first):
            raise RuntimeError("transient failure")
        if kind == "die" and first:
            os._exit(1)  # the worker process dies in the middle of its task
        return kind


def _pool(tasks, max_retries):
    remote = ray.remote(num_cpus=1)(Task)
    results = {}
    failures = run_pool(ray, lambda slot: remote.remote(slot), lambda actor, task: actor.run.remote(task), tasks, 2,
                        max_retries, lambda task, result: results.__setitem__(task, result), lambda task: f"task {task[0]}")
    return results, failures


def test_pool_retries_failed_and_dead_workers(cluster, tmp_path):
    tasks = [("ok", str(tmp_path / "a")), ("flaky", str(tmp_path / "b")), ("die", str(tmp_path / "c"))]
    results, failures = _pool(tasks, max_retries=1)
    assert results == {t: t[0] for t in tasks} and failures == 2


def test_pool_gives_up_after_max_retries_and_passes_user_errors_at_once(cluster, tmp_path):
    with pytest.raises(GenBenchError, match="task always failed 2 times .*transient failure"):
        _pool([("always", str(tmp_path / "a"))], max_retries=1)
    with pytest.raises(GenBenchError, match=r"^params key 'x' = 3 is bad; use 4$"):
        _pool([("user", str(tmp_path / "b"))], max_retries=3)


def test_placement_on_a_cpu_cluster(cluster):
    assert placement(ray, "auto", 1, None, 5).slots == 2
    assert placement(ray, "cpu", 2, None, 5).slots == 1
    assert placement(ray, "cpu", 1, 1, 5).slots == 1 and placement(ray, "auto", 1, None, 1).slots == 1
    assert placement(ray, "auto", 1, None, 5).resources == {"num_cpus": 1}
    with pytest.raises(GenBenchError, match="no GPU"):
        placement(ray, "cuda", 1, None, 5)
    with pytest.raises(GenBenchError, match="cpu_threads = 3"):
        placement(ray, "cpu", 3, None, 5)
