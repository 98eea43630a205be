"""genbench.quality on small hand-made inputs: the masks of the generated sources, the metrics per
source against direct calls, Figure 5's timing protocol, the prompt encoding and what quality.json
and MLflow get."""

from __future__ import annotations

import numpy as np
import pytest

from genbench import quality
from genbench.errors import GenBenchError
from genbench.metrics import clip_score, frechet_distance, proxy_a_distance


def test_source_masks_select_the_rows_of_each_generated_source():
    masks = quality.source_masks(np.array(["ST", "DT", "ST"]), ["generated", "generated/ST", "generated/DT", "original"])
    assert list(masks) == ["generated", "generated/ST", "generated/DT"]
    assert masks["generated"].tolist() == [True, True, True]
    assert masks["generated/ST"].tolist() == [True, False, True] and masks["generated/DT"].tolist() == [False, True, False]


def _feats(seed: int, n: int = 24, d: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_source_metrics_equal_the_metrics_called_directly_and_original_has_no_clip_score():
    test, gen, orig = _feats(0), _feats(1), _feats(2)
    texts = _feats(3)
    masks = quality.source_masks(np.array(["ST"] * 12 + ["DT"] * 12), ["generated", "generated/DT"])
    sources = {"generated": (gen, None), "generated/DT": (gen[12:], None), "original": (orig, None)}
    got = quality.source_metrics(sources, test, (gen, texts), masks, seed=3)
    assert got["generated/DT"] == {"images": 12, "fid_clip": frechet_distance(gen[12:], test),
                                   "clip_score": clip_score(gen[12:], texts[12:]),
                                   "pad": proxy_a_distance(gen[12:], test, seed=3)}
    assert got["original"]["clip_score"] is None and got["original"]["images"] == 24
    assert got["generated"]["fid_clip"] == frechet_distance(gen, test)


def test_source_metrics_name_the_source_that_fails():
    with pytest.raises(GenBenchError, match=r"quality of source 'original' \(1 images\) against the test set"):
        quality.source_metrics({"original": (_feats(1, n=1), None)}, _feats(0), (None, None), {}, seed=0)


def test_metric_timings_time_each_metric_repeats_times_after_warmup(monkeypatch):
    calls = []

    def probe(train_feats, train_labels, test_feats, test_labels, **kwargs):
        calls.append(kwargs)
        return {"score": 1.0}

    monkeypatch.setattr(quality, "linear_probe", probe)
    labels = np.repeat(np.arange(3), 8)
    feats, test = _feats(1), _feats(0)
    texts = np.eye(3, 4, dtype=np.float32)
    seconds = quality.metric_timings((feats, labels), (test, labels), texts, (feats, _feats(4)), num_classes=3,
                                     metric="accuracy", seed=5, device="cpu", repeats=2, warmup=1)
    assert list(seconds) == ["cler", "probe", "fid_clip", "clip_score", "pad"]
    assert all(len(v) == 2 and all(s >= 0 for s in v) for v in seconds.values())
    assert calls == [{"metric": "accuracy", "seed": 5, "num_classes": 3, "device": "cpu"}] * 3  # 1 warm-up + 2 timed


def test_prompt_features_encode_each_distinct_prompt_once_and_keep_row_order(monkeypatch):
    encoded = []

    def encode_texts(bundle, texts, device):
        encoded.append(list(texts))
        return np.array([[float(len(t)), float(t.count("a"))] for t in texts], dtype=np.float32)

    monkeypatch.setattr(quality, "encode_texts", encode_texts)
    got = quality.prompt_features(None, ["a cat", "dog", "a cat", "banana"], batch_size=2, device="cpu")
    assert sorted(t for batch in encoded for t in batch) == ["a cat", "banana", "dog"]
    assert [len(b) for b in encoded] == [2, 1]
    np.testing.assert_array_equal(got, [[5, 2], [3, 0], [5, 2], [6, 3]])


def test_score_model_images_encode_the_images_without_backbone_features(tmp_path, monkeypatch):
    images = np.zeros((2, 4, 4, 3), np.uint8)
    monkeypatch.setattr(quality.storage, "load_image_set", lambda folder: (images, None))
    monkeypatch.setattr(quality, "encode_images", lambda bundle, imgs, **kw: np.full((len(imgs), 3), 7.0))
    got = quality.score_model_images(None, "m|None", {"sha256": ["a", "b"]}, tmp_path / "none.safetensors",
                                     tmp_path, batch_size=4, device="cpu")
    np.testing.assert_array_equal(got, np.full((2, 3), 7.0))


def test_the_record_its_summary_and_flat_metrics():
    sources = {"generated": {"images": 4, "fid_clip": 0.5, "clip_score": 30.0, "pad": 1.25},
               "generated/DT+TI": {"images": 2, "fid_clip": 0.25, "clip_score": 31.0, "pad": 1.0},
               "original": {"images": 3, "fid_clip": 0.125, "clip_score": None, "pad": 0.5}}
    seconds = {"cler": [0.001, 0.003], "probe": [0.2, 0.6]}
    record = quality.quality_record("digits", feature_model="tiny-clip|None", clip_score_text="prompt",
                                    clip_score_model="tiny-clip|None", sources=sources, timing={"repeats": 2},
                                    seconds=seconds, seconds_encode_prompts=0.5)
    assert record["clip_score_definition"] == quality.CLIP_SCORE_DEFINITIONS["prompt"]
    assert record["reference"] == "test" and record["sources"] is sources and record["timing"] == {"repeats": 2}
    assert quality.summary_line(record) == ("generated FID(CLIP features) 0.5  CLIP score 30.00  PAD 1.250; "
                                            "probe/CLER time 200x")
    assert quality.flat_metrics(record) == pytest.approx({
        "fid_clip.generated": 0.5, "clip_score.generated": 30.0, "pad.generated": 1.25,
        "fid_clip.generated.DT+TI": 0.25, "clip_score.generated.DT+TI": 31.0, "pad.generated.DT+TI": 1.0,
        "fid_clip.original": 0.125, "pad.original": 0.5,
        "seconds.cler": 0.002, "seconds.probe": 0.4, "seconds.encode_prompts": 0.5})
