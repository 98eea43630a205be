"""The local executor, worker specs and per-worker readings (no Ray needed)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from genbench import storage
from genbench.datasets import get_dataset
from genbench.errors import GenBenchError
from genbench.executors import (
    EMBED_EXECUTORS,
    EXECUTORS,
    EmbeddingWorker,
    ExecutorOptions,
    GenerationWorker,
    ShardMaker,
    load_encoder,
    load_generator,
)
from genbench.executors.metering import combine_readings, metered, readings_by_worker
from genbench.executors.workers import torch_threads
from genbench.features import encode_images
from genbench.generation import GenerationSettings, ImageMaker, PlanInputs, plan_jobs, run_shards, shard_plan_hash, shards_of
from genbench.generators import configure_pipeline, load_pipeline
from genbench.strategies.clip_filter import load_clip_filter
from genbench.strategies.guidance import ReferenceImage

DIGITS = get_dataset("digits")
SETTINGS = GenerationSettings(height=32, width=32, steps=3, guidance_scale=4.0, batch_size=2)
STRATEGIES = ["ST+NP", "ST+CF", "ST+RG"]
FIELDS = {"ST+CF": {"filter_model": "tiny-clip|None"}}


def small_plan():
    """12 jobs of the digits plan (classes 0-3 of ST+NP, ST+CF, ST+RG), 6 shards of 2, with the
    random reference images RG starts from."""
    rng = np.random.default_rng(0)
    refs = {c: [ReferenceImage(f"ref-{c}", f"sha-{c}", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))] for c in range(10)}
    inputs = PlanInputs(references={"RG": refs}, strengths={"RG": 0.75})
    jobs = [j for j in plan_jobs(DIGITS, STRATEGIES, 1, global_seed=0, inputs=inputs) if j.class_index < 4]
    init_images = {r.key: r.image for rs in refs.values() for r in rs}
    return shards_of(jobs, 2), init_images


def worker_spec(**overrides):
    spec = dict(model="tiny-sd", settings=SETTINGS, filter_model="tiny-clip", classnames=tuple(DIGITS.classnames),
                templates=tuple(DIGITS.templates), cpu_threads=1, strategy_fields=FIELDS, filtered_strategies=frozenset({"ST+CF"}))
    return GenerationWorker(**{**spec, **overrides})


@pytest.fixture(scope="module")
def plan():
    worker = worker_spec()
    loaded = load_generator(worker)
    gid = {"generator": "tiny-sd", "weights_sha256": loaded.identity["weights_sha256"]}
    shards, init_images = small_plan()
    return worker, loaded, gid, shards, [shard_plan_hash(s, gid, SETTINGS) for s in shards], init_images


def test_registries_name_both_executors():
    assert set(EXECUTORS) == set(EMBED_EXECUTORS) == {"local", "ray"}


def stage_path(out_dir, shards, gid, hashes, init_images):
    """What stages/generate.py did before executors: its own pipeline, ImageMaker, CLIP filter and
    row fields, through genbench.generation.run_shards; all with one torch thread, the spec's
    count, which the executors set around loading and every call (the CLIP filter's text
    prototypes, made on loading, round differently with another thread count)."""
    with torch_threads(1):
        return _stage_path(out_dir, shards, gid, hashes, init_images)


def _stage_path(out_dir, shards, gid, hashes, init_images):
    pipe = load_pipeline("tiny-sd", seed=0, image_size=32)
    configure_pipeline(pipe)
    cf = load_clip_filter("tiny-clip", None, list(DIGITS.classnames), list(DIGITS.templates))
    maker = ImageMaker(pipe, SETTINGS, init_images=init_images)

    def row_fields(jobs, images):
        rows = [{"batch_size": maker.batch_size_of[j.key], **FIELDS.get(j.strategy, {})} for j in jobs]
        filtered = [i for i, j in enumerate(jobs) if j.strategy == "ST+CF"]
        if filtered:
            conf = cf.confidence(np.stack([images[i] for i in filtered]), [jobs[i].class_index for i in filtered])
            for i, c in zip(filtered, conf):
                rows[i]["cf_confidence"] = float(c)
        return rows

    return run_shards(out_dir, shards, list(range(len(shards))), maker, gid, hashes, progress=False, row_fields=row_fields)[0]


def test_local_executor_writes_what_the_stage_wrote(plan, tmp_path):
    worker, loaded, gid, shards, hashes, init_images = plan
    expected = stage_path(tmp_path / "ref", shards, gid, hashes, init_images)
    run = EXECUTORS["local"](tmp_path / "out", shards, list(range(len(shards))), worker, gid, hashes,
                             init_images=init_images, progress=False)
    assert run.made == 12 and run.readings == [] and run.oom_events == []
    assert run.rows == expected
    assert {r["strategy"] for r in run.rows if "cf_confidence" in r} == {"ST+CF"}
    assert all(r["batch_size"] == 2 for r in run.rows) and any(r["init_image"] for r in run.rows)
    for i in range(len(shards)):
        name = f"{storage.shard_name(i)}.tar"
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    again = EXECUTORS["local"](tmp_path / "out", shards, list(range(len(shards))), worker, gid, hashes,
                               init_images=init_images, progress=False)
    assert again.made == 0 and again.rows == run.rows


def test_local_executor_resumes_only_missing_shards(plan, tmp_path):
    worker, _, gid, shards, hashes, init_images = plan
    first = EXECUTORS["local"](tmp_path, shards, [0, 1, 2], worker, gid, hashes, init_images=init_images, progress=False)
    (tmp_path / "shard-00001.done").unlink()
    done = []
    run = EXECUTORS["local"](tmp_path, shards, [0, 1, 2], worker, gid, hashes, init_images=init_images, progress=False,
                             on_shard_done=lambda i, rows: done.append(i))
    assert run.made == 2 and done == [1]
    assert [r["key"] for r in run.rows] == [j.key for s in shards[:3] for j in s]
    assert [list(r) for r in run.rows] == [list(r) for r in first.rows]  # read-back rows keep the fresh key order


def test_spec_thread_count_is_applied_and_restored(plan):
    worker, loaded, _, shards, _, _ = plan
    seen = []
    pipe = loaded.pipe

    class Spy:
        def __getattr__(self, name):
            return getattr(pipe, name)

        def __call__(self, *args, **kwargs):
            seen.append(torch.get_num_threads())
            return pipe(*args, **kwargs)

    maker = ShardMaker(worker)
    maker.images.pipe = Spy()
    before = torch.get_num_threads()
    maker.make_images(shards[0])
    assert seen == [1] and torch.get_num_threads() == before


def test_loaded_once_per_process_and_identity_checked(plan):
    worker, loaded, _, _, _, _ = plan
    assert load_generator(replace(worker, expected=loaded.identity, strategy_fields={})) is loaded
    assert loaded.identity["filter_name"] == "tiny-clip|None" and len(loaded.identity["filter_weights_sha256"]) == 64
    with pytest.raises(GenBenchError, match="weights_sha256 .* same model files"):
        load_generator(replace(worker, expected={**loaded.identity, "weights_sha256": "0" * 64}))


def test_bad_thread_count_and_options_are_user_errors():
    with pytest.raises(GenBenchError, match="cpu_threads"):
        load_generator(worker_spec(cpu_threads=0))
    with pytest.raises(GenBenchError, match="workers"):
        ExecutorOptions(workers=0)
    with pytest.raises(GenBenchError, match="max_retries"):
        ExecutorOptions(max_retries=-1)


def test_local_embedding_matches_whole_set_encoding(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    rows = [{"key": f"k{i:02d}", "class_index": i % 3} for i in range(7)]
    frame = storage.write_image_set(tmp_path / "set", images, rows, shard_size=3)
    storage.write_manifest(tmp_path / "set", frame.drop(index=4).to_dict("records"))  # k04 stays in its shard, as CF leaves it
    frame.iloc[[4]].to_parquet(tmp_path / "set" / storage.DROPPED, index=False)  # and lists it as dropped, as CF does
    worker = EmbeddingWorker("tiny-clip", batch_size=2, cpu_threads=1)
    run = EMBED_EXECUTORS["local"]({"set": tmp_path / "set"}, worker, progress=False)
    got = run.sets["set"]
    assert list(got.manifest["key"]) == [r["key"] for i, r in enumerate(rows) if i != 4] and got.features.shape == (6, 64)
    # independent path: the set decoded and encoded in one call (the embed stage before executors)
    whole = encode_images(load_encoder(worker).bundle, storage.load_image_set(tmp_path / "set")[0], batch_size=6, progress=False)
    np.testing.assert_allclose(got.features, whole, atol=1e-5)


def _block(worker, wall, cpu, items, started, gpus=(), vcpus=4):
    return {"stage": "generate", "started_at": started, "wall_s": wall, "cpu_s": cpu, "vcpus": vcpus,
            "cpu_utilisation": cpu / (wall * vcpus), "peak_rss_mb": 100.0 + items, "items": items,
            "hostname": worker.split("/")[0], "gpus": list(gpus), "gpu_s": sum(g["gpu_s"] for g in gpus),
            "gpu_energy_j": None, "worker": worker}


def test_worker_blocks_add_up_by_hand():
    g1 = {"index": 0, "name": "NVIDIA A100", "gpu_s": 3.0, "util_mean": 75.0, "mem_peak_mb": 900.0,
          "energy_j": 400.0, "energy_source": "counter", "power_mean_w": 100.0, "samples": 9}
    g2 = {**g1, "gpu_s": 5.0, "mem_peak_mb": 1200.0, "energy_j": 800.0, "samples": 11}
    blocks = [
        _block("n1/gpu0", 4.0, 2.0, 0, "2026-01-01T00:00:01", [g1]),
        _block("n2/gpu0", 1.0, 1.0, 2, "2026-01-01T00:00:00"),
        _block("n1/gpu0", 6.0, 3.0, 8, "2026-01-01T00:00:05", [g2]),
    ]
    n1, n2 = readings_by_worker(blocks)
    assert n1["worker"] == "n1/gpu0" and n2["worker"] == "n2/gpu0"
    # n1: wall 4+6 = 10 s, cpu 5 s on 4 vCPUs -> 5/(10*4) = 0.125; GPU busy 3+5 = 8 s of 10 -> 80 %
    assert (n1["wall_s"], n1["cpu_s"], n1["items"], n1["started_at"]) == (10.0, 5.0, 8, "2026-01-01T00:00:01")
    assert n1["cpu_utilisation"] == pytest.approx(0.125)
    assert n1["peak_rss_mb"] == 108.0
    [gpu] = n1["gpus"]
    assert gpu["gpu_s"] == 8.0 and gpu["util_mean"] == pytest.approx(80.0) and gpu["mem_peak_mb"] == 1200.0
    assert gpu["energy_j"] == 1200.0 and gpu["power_mean_w"] == pytest.approx(120.0) and gpu["samples"] == 20
    assert n1["gpu_s"] == 8.0 and n1["gpu_energy_j"] == 1200.0
    assert n2["gpus"] == [] and n2["gpu_energy_j"] is None and n2["items"] == 2


def test_combined_reading_prices_through_the_cost_ledger():
    from cost.ledger import price_reading
    from cost.meter import Reading
    from cost.prices import load_snapshot

    reading = combine_readings([_block("n2/cpu0", 1800.0, 1800.0, 10, "t0", vcpus=2),
                                _block("n2/cpu0", 1800.0, 1800.0, 30, "t1", vcpus=2)])
    row = price_reading(Reading.from_dict(reading), load_snapshot("paper-2023"))
    assert row.billed_hours == pytest.approx(1.0) and row.items == 40 and row.hostname == "n2"
    assert row.usd_per_image == pytest.approx(row.usd_per_hour / 40)


def test_metered_labels_the_reading_and_sets_the_worker_vcpus():
    from cost.meter import Meter

    result, reading = metered(Meter, "generate", lambda: ("done", 3), "host/cpu1", vcpus=2)
    assert result == "done" and reading["worker"] == "host/cpu1" and reading["items"] == 3 and reading["vcpus"] == 2
    assert metered(None, "generate", lambda: ("done", 3), "host/cpu1") == ("done", None)
