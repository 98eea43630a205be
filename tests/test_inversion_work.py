"""The invert stage's work outside the stage: its reference sets and caption filter
(genbench.inversion_references) and its per-class training of every source
(genbench.inversion_training)."""

import json

import numpy as np
import pandas as pd
import pytest

from genbench import storage
from genbench.inversion import TOKENS_FILE, embedding_file, placeholder_token
from genbench.inversion_references import ORIGINAL_COLUMNS, original_references, retrieved_references
from genbench.inversion_training import class_seed, invert_sources, summarise
from genbench.seeding import image_seed
from stages.frame.params import validate_section
from stages.invert import SCHEMA

NAMES = ["zero", "one", "two"]


def section(**overrides) -> dict:
    return validate_section({"device": "cpu", **overrides}, "invert", SCHEMA)


def image_set(directory, per_class: int, extra: dict | None = None):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (per_class * len(NAMES), 32, 32, 3), dtype=np.uint8)
    rows = [{"key": f"k{i:03d}", "class_index": i % len(NAMES), "class_name": NAMES[i % len(NAMES)],
             **{k: f"{v} {i}" if isinstance(v, str) else v for k, v in (extra or {}).items()}} for i in range(len(images))]
    storage.write_image_set(directory, images, rows)
    return images


def test_original_references_are_the_first_shots_of_each_class(tmp_path):
    images = image_set(tmp_path, per_class=3)
    refs, rows = original_references(tmp_path, 2)
    assert sorted(refs) == [0, 1, 2]
    for c in range(3):  # images are laid out class 0, 1, 2, 0, 1, 2, ...
        np.testing.assert_array_equal(refs[c], images[[c, c + 3]])
    assert list(rows.columns) == ORIGINAL_COLUMNS and len(rows) == 6
    assert rows["kept"].all() and set(rows["reason"]) == {"original (human-labelled)"} and rows["source"].eq("original").all()


@pytest.fixture(scope="module")
def retrieved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retrieved")
    return folder, image_set(folder, per_class=3, extra={"pool_id": 7, "caption": "a photo"})


def test_the_caption_filter_keeps_what_reaches_the_threshold_class_by_class(retrieved):
    folder, images = retrieved
    refs, rows = retrieved_references(folder, section(filter_threshold=-1.0), "cpu")
    for c in range(3):
        np.testing.assert_array_equal(refs[c], images[[c, c + 3, c + 6]])
    assert rows["kept"].all() and len(rows) == 9
    assert rows["caption"].tolist() == rows["pool_caption"].tolist()  # pool-caption: the pool's own captions
    assert set(rows["similarity_model"]) == {"clip-text"} and set(rows["threshold"]) == {-1.0}


def test_too_few_above_the_threshold_keeps_the_best_min_references(retrieved):
    folder, images = retrieved
    refs, rows = retrieved_references(folder, section(filter_threshold=2.0, min_references=1), "cpu")
    for c, group in rows.groupby("class_index"):
        best = group["similarity"].idxmax()
        assert group["kept"].tolist() == [i == best for i in group.index]
        assert group.loc[best, "reason"] == "fallback: too few above threshold"
        np.testing.assert_array_equal(refs[c], images[[int(group.loc[best, "key"][1:])]])
    none = retrieved_references(folder, section(filter_threshold=2.0, min_references=0), "cpu")[0]
    assert all(len(v) == 0 for v in none.values())


def test_class_seed_is_the_image_seed_of_the_class_and_source():
    assert class_seed(3, "digits", 1, "original") == image_seed(3, "digits", 1, "invert/original", 0) % 2 ** 31
    seeds = {class_seed(0, "digits", c, s) for c in range(3) for s in ("original", "retrieved")}
    assert len(seeds) == 6 and all(0 <= s < 2 ** 31 for s in seeds)


def test_summary_of_a_source_by_hand():
    entries = [{"class_name": "zero", "references": 2, "eval_loss_before": 1.0, "eval_loss_after": 0.5, "seconds": 1.5},
               {"class_name": "two", "references": 1, "eval_loss_before": 3.0, "eval_loss_after": 1.5, "seconds": 0.5}]
    references = pd.DataFrame({"kept": [True, True, False, True]})
    assert summarise(entries, references) == {
        "classes_trained": 2, "references_per_class": {"zero": 2, "two": 1},
        "eval_loss_before": {"zero": 1.0, "two": 3.0}, "eval_loss_after": {"zero": 0.5, "two": 1.5},
        "mean_eval_loss_before": 2.0, "mean_eval_loss_after": 1.0, "references_considered": 4, "references_kept": 3,
        "seconds": 2.0}
    empty = summarise([], pd.DataFrame({"kept": [False]}))
    assert empty["mean_eval_loss_before"] is None and empty["classes_trained"] == 0 and empty["references_kept"] == 0


def test_every_class_with_references_is_trained_and_written_per_source(tmp_path, retrieved):
    folder, images = retrieved
    spec = {"name": "digits", "classnames": NAMES, "templates": ["a photo of {c}."]}
    p = section(steps=2, batch_size=2, eval_draws=1, resolution=32)
    empty = images[:0]
    rows = pd.DataFrame({"key": ["a", "b", "c"], "kept": [True, True, False]})
    gathered = {"original": ({0: images[:2], 1: empty, 2: images[2:3]}, rows), "retrieved": ({1: images[3:4]}, rows)}
    summary = invert_sources(p, spec, gathered, tmp_path / "inversion", "cpu")
    original, again = tmp_path / "inversion" / "original", tmp_path / "inversion" / "retrieved"
    assert sorted(f.name for f in original.glob("class-*")) == [embedding_file(0), embedding_file(2)]
    assert sorted(f.name for f in again.glob("class-*")) == [embedding_file(1)]
    tokens = json.loads((original / TOKENS_FILE).read_text())
    assert [e["token"] for e in tokens["tokens"]] == [placeholder_token("digits", "zero"), placeholder_token("digits", "two")]
    assert [e["references"] for e in tokens["tokens"]] == [2, 1]
    assert tokens["text_encoder_sha256"] == json.loads((again / TOKENS_FILE).read_text())["text_encoder_sha256"]
    losses = pd.read_parquet(original / "losses.parquet")
    assert losses[["class_index", "step"]].values.tolist() == [[0, 0], [0, 1], [2, 0], [2, 1]]
    assert pd.read_parquet(original / "references.parquet")["key"].tolist() == ["a", "b", "c"]
    assert list(summary["sources"]) == ["original", "retrieved"] and summary["prediction_type"] == "epsilon"
    assert summary["sources"]["original"]["classes_trained"] == 2 and summary["sources"]["retrieved"]["references_kept"] == 2
    assert {k: summary[k] for k in ("dataset", "model", "steps", "batch_size", "resolution")} == {
        "dataset": "digits", "model": "tiny-sd", "steps": 2, "batch_size": 2, "resolution": 32}
