import numpy as np
import pytest
import torch

from genbench import storage
from genbench.datasets import get_dataset
from genbench.errors import GenBenchError
from genbench.generation import (
    GenerationSettings,
    ImageMaker,
    PlanInputs,
    generate_images,
    plan_jobs,
    run_shards,
    select_shards,
    shard_plan_hash,
    shards_of,
)
from genbench.generators import (
    compile_denoiser,
    denoiser_name,
    load_pipeline,
    resolved_revision,
    set_scheduler,
    supports_negative_prompt,
    weights_sha256,
)

DIGITS = get_dataset("digits")


@pytest.fixture(scope="module")
def pipe():
    p = load_pipeline("tiny-sd", seed=0, image_size=32)
    p.set_progress_bar_config(disable=True)
    return p


def _settings(batch_size):
    return GenerationSettings(height=32, width=32, steps=3, guidance_scale=4.0, batch_size=batch_size)


def test_plan_is_deterministic_and_complete():
    jobs = plan_jobs(DIGITS, ["ST", "DT"], 3, global_seed=0)
    assert len(jobs) == 2 * 10 * 3
    assert len({j.key for j in jobs}) == len(jobs)
    assert jobs == plan_jobs(DIGITS, ["ST", "DT"], 3, global_seed=0)
    assert {j.class_index for j in jobs} == set(range(10))


def test_images_do_not_depend_on_batch_size_beyond_rounding(pipe):
    # Each image has its own generator, so a batch size changes only the floating-point rounding of
    # batched kernels: at most one grey level. Shards are cut on the batch grid, so sharding and
    # worker count change nothing at all (next tests).
    jobs = plan_jobs(DIGITS, ["ST"], 1, global_seed=0)[:5]
    one = generate_images(pipe, jobs, _settings(1))
    five = generate_images(pipe, jobs, _settings(5))
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(one, five)) <= 1
    assert not np.array_equal(one[0], one[1])  # different seeds, different images


def test_same_params_give_byte_identical_images(pipe):
    jobs = plan_jobs(DIGITS, ["DT"], 1, global_seed=0)[:4]
    first = generate_images(pipe, jobs, _settings(2))
    again = generate_images(pipe, jobs, _settings(2))
    assert all(storage.encode_png(a) == storage.encode_png(b) for a, b in zip(first, again))


def _run(pipe, out, shard_size, parts):
    jobs = plan_jobs(DIGITS, ["ST"], 1, global_seed=0)[:6]
    shards = shards_of(jobs, shard_size)
    gid = {"generator": "tiny-sd", "weights_sha256": weights_sha256(pipe)}
    hashes = [shard_plan_hash(s, gid, _settings(2)) for s in shards]
    rows = []
    for part in range(parts):
        got, _ = run_shards(out, shards, select_shards(len(shards), part, parts),
                            lambda js: generate_images(pipe, js, _settings(2)), gid, hashes, progress=False)
        rows += got
    return {r["key"]: r["sha256"] for r in rows}


def test_one_shard_or_three_give_the_same_images(pipe, tmp_path):
    single = _run(pipe, tmp_path / "a", shard_size=6, parts=1)
    split = _run(pipe, tmp_path / "b", shard_size=2, parts=3)
    assert single == split and len(single) == 6


def test_complete_shards_are_skipped(pipe, tmp_path):
    jobs = plan_jobs(DIGITS, ["ST"], 1, global_seed=0)[:4]
    shards = shards_of(jobs, 2)
    calls = []

    def make(js):
        calls.append(len(js))
        return generate_images(pipe, js, _settings(2))

    run_shards(tmp_path, shards, [0, 1], make, {}, ["h0", "h1"], progress=False)
    (tmp_path / "shard-00001.done").unlink()
    _, made = run_shards(tmp_path, shards, [0, 1], make, {}, ["h0", "h1"], progress=False)
    assert made == 2 and calls == [2, 2, 2]


def test_save_pretrained_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "tiny", safe_serialization=True)
    assert list((tmp_path / "tiny" / "unet").glob("*.safetensors"))
    loaded = load_pipeline(str(tmp_path / "tiny"))
    assert weights_sha256(loaded) == weights_sha256(pipe)
    loaded.set_progress_bar_config(disable=True)
    jobs = plan_jobs(DIGITS, ["ST"], 1, global_seed=0)[:2]
    assert all(np.array_equal(a, b) for a, b in zip(generate_images(pipe, jobs, _settings(2)), generate_images(loaded, jobs, _settings(2))))


def test_missing_model_error_says_what_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(GenBenchError) as err:
        load_pipeline("example-org/no-such-model", revision="abc123")
    msg = str(err.value)
    assert "example-org/no-such-model" in msg and "HF_HOME" in msg and "huggingface-cli download" in msg
    assert "\n" not in msg


def test_tokenizer_matches_open_clip(tmp_path):
    from open_clip.tokenizer import SimpleTokenizer

    from genbench.generators.tokenizer import load_clip_tokenizer, write_clip_tokenizer_files

    tok = load_clip_tokenizer(write_clip_tokenizer_files(tmp_path))
    ref = SimpleTokenizer()
    for text in ["a photo of the digit 3.", "A black and white photo of a 737-400, a type of aircraft!", "((sharp focus)), café"]:
        assert tok(text)["input_ids"] == [49406, *ref.encode(text), 49407]
    assert len(tok) == 49408


class OutOfMemoryAbove:
    """A pipeline wrapper that raises the device's out-of-memory error for batches above `limit`."""

    def __init__(self, pipe, limit):
        self.pipe, self.limit, self.calls = pipe, limit, []

    def __call__(self, **kwargs):
        self.calls.append(len(kwargs["prompt"]))
        if len(kwargs["prompt"]) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return self.pipe(**kwargs)


def test_out_of_memory_halves_the_batch_and_records_it(pipe, tmp_path):
    jobs = plan_jobs(DIGITS, ["ST"], 1, global_seed=0)[:8]
    wrapped = OutOfMemoryAbove(pipe, limit=2)
    maker = ImageMaker(wrapped, _settings(8))
    rows, made = run_shards(tmp_path, [jobs], [0], maker, {}, ["h"], progress=False,
                            row_fields=lambda js, imgs: [{"batch_size": maker.batch_size_of[j.key]} for j in js])
    assert wrapped.calls == [8, 4, 2, 2, 2, 2]
    assert maker.oom_events == [{"key": jobs[0].key, "batch_size": 8, "retry_batch_size": 4},
                                {"key": jobs[0].key, "batch_size": 4, "retry_batch_size": 2}]
    assert made == 8 and [r["batch_size"] for r in rows] == [2] * 8
    direct = generate_images(pipe, jobs, _settings(2))  # the same batches of two, made without failures
    shard = dict((row["key"], png) for row, png in storage.iter_shard(tmp_path / "shard-00000.tar"))
    assert [shard[j.key] for j in jobs] == [storage.encode_png(img) for img in direct]


def test_out_of_memory_at_batch_size_one_is_a_user_error(pipe):
    jobs = plan_jobs(DIGITS, ["ST"], 1, global_seed=0)[:2]
    with pytest.raises(GenBenchError, match="out of device memory at batch size 1"):
        ImageMaker(OutOfMemoryAbove(pipe, limit=0), _settings(2))(jobs)


def test_filtered_strategies_plan_oversampled_candidates():
    names = ("ST", "ST+CF", "ST+RF", "ST+CF+RF")
    jobs = plan_jobs(DIGITS, names, 4, global_seed=0, inputs=PlanInputs(filter_oversample=0.5))
    per = {(s, c): sum(1 for j in jobs if j.strategy == s and j.class_index == c) for s in names for c in range(10)}
    assert set(per[("ST", c)] for c in range(10)) == {4}
    assert all(set(per[(s, c)] for c in range(10)) == {6} for s in names[1:])  # one oversampling for CF, RF and both
    cf = [j for j in jobs if j.strategy == "ST+CF" and j.class_index == 0]
    assert [j.key for j in cf] == [f"digits-ST_CF-c0000-{i:05d}" for i in range(6)] and len({j.seed for j in cf}) == 6


def test_scheduler_is_swapped_from_the_model_config(pipe):
    before = pipe.scheduler
    try:
        assert set_scheduler(pipe, "euler") == "EulerDiscreteScheduler"
        assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"
        assert pipe.scheduler.config.beta_schedule == before.config.beta_schedule == "scaled_linear"
        jobs = plan_jobs(DIGITS, ["ST"], 1, global_seed=0)[:2]
        euler = generate_images(pipe, jobs, _settings(2))
        assert all(np.array_equal(a, b) for a, b in zip(euler, generate_images(pipe, jobs, _settings(2))))
        pipe.scheduler = before
        assert not np.array_equal(euler[0], generate_images(pipe, jobs, _settings(2))[0])
    finally:
        pipe.scheduler = before
    with pytest.raises(GenBenchError, match="unknown scheduler 'fastest'"):
        set_scheduler(pipe, "fastest")


def test_negative_prompts_need_a_pipeline_that_takes_them(pipe):
    jobs = plan_jobs(DIGITS, ["ST+NP"], 1, global_seed=0)[:1]
    assert supports_negative_prompt(pipe)
    with pytest.raises(GenBenchError, match="takes no negative prompt"):
        ImageMaker(pipe, _settings(1), negative_prompts=False)(jobs)


def test_compile_wraps_the_denoiser_without_touching_the_weights_hash():
    p = load_pipeline("tiny-sd", seed=0, image_size=32)
    before = weights_sha256(p)
    assert denoiser_name(p) == "unet" and compile_denoiser(p) == "unet"
    assert type(p.unet).__name__ == "OptimizedModule"
    assert before == weights_sha256(load_pipeline("tiny-sd", seed=0, image_size=32))


def test_resolved_revision_reads_the_snapshot_folder():
    class Loaded:
        name_or_path = "/hf/hub/models--org--m/snapshots/" + "ab" * 20

    assert resolved_revision(Loaded()) == "ab" * 20
    Loaded.name_or_path = "tiny-sd"
    assert resolved_revision(Loaded()) is None
