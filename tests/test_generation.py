import numpy as np
import pytest

from genbench import storage
from genbench.datasets import get_dataset
from genbench.errors import GenBenchError
from genbench.generation import GenerationSettings, generate_images, plan_jobs, run_shards, select_shards, shard_plan_hash, shards_of
from genbench.generators import load_pipeline, weights_sha256

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
