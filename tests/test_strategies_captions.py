"""CiP: captions of the k-shot real images and the prompts made from them."""

import json

import pandas as pd
import pytest

from genbench.datasets import get_dataset
from genbench.generation import PlanInputs, plan_jobs
from genbench.prompts import parse_strategy
from genbench.strategies.captions import build_tiny_blip2, caption_images, load_captioner
from genbench.strategies.sources import TextModels, build_sources

DIGITS = get_dataset("digits")


@pytest.fixture(scope="module")
def originals():
    """Two real training images per class with a manifest, as prepare writes them."""
    train = DIGITS.loader("train", None, 32)
    idx = [i for c in range(10) for i in (train.labels == c).nonzero()[0][:2]]
    rows = [{"key": f"digits-original-{n:06d}", "class_index": int(train.labels[i]), "sha256": f"{i:064d}"} for n, i in enumerate(idx)]
    return train.images[idx], pd.DataFrame(rows)


@pytest.fixture(scope="module")
def blip2():
    return build_tiny_blip2(seed=0)


def test_captions_depend_on_the_image_not_on_the_batch(blip2, originals):
    images = originals[0][:6]
    captions = caption_images(blip2, images, max_new_tokens=8)
    assert captions == caption_images(blip2, images, max_new_tokens=8, batch_size=1)
    assert len(set(captions)) > 1 and all(captions)


def test_the_real_loading_code_reads_a_saved_captioner(blip2, originals, tmp_path):
    blip2.model.save_pretrained(tmp_path / "blip2")
    blip2.processor.save_pretrained(tmp_path / "blip2")
    loaded = load_captioner(str(tmp_path / "blip2"))  # AutoProcessor + AutoModelForImageTextToText
    assert type(loaded.model).__name__ == "Blip2ForConditionalGeneration"
    images = originals[0][:4]
    assert caption_images(loaded, images, max_new_tokens=8) == caption_images(blip2, images, max_new_tokens=8)


def test_cip_prompts_pair_each_image_with_a_real_images_caption(blip2, originals, tmp_path):
    images, manifest = originals
    cfg = TextModels(captioner="tiny-blip2", caption_max_new_tokens=8)
    sources, provenance = build_sources([parse_strategy("CiP")], DIGITS, cfg, originals=originals, cache=tmp_path / "t.json")
    expected = dict(zip(manifest["key"], caption_images(blip2, images, max_new_tokens=8, batch_size=3)))
    assert provenance["captions"]["model"] == "tiny-blip2"
    jobs = plan_jobs(DIGITS, ["CiP"], 3, global_seed=0, inputs=PlanInputs(sources=sources))
    for job in jobs:
        real = manifest[manifest.class_index == job.class_index]["key"].tolist()
        assert job.caption_source == real[job.index % 2]
        assert job.prompt == f"a photo of {job.class_name}, {expected[job.caption_source]}"
    stored = json.loads((tmp_path / "t.json").read_text())["captions"]["by_class"]["0"]
    assert stored == [[k, expected[k]] for k in manifest[manifest.class_index == 0]["key"]]


def test_cached_captions_follow_the_real_images(originals, tmp_path):
    images, manifest = originals
    cfg = TextModels(captioner="tiny-blip2", caption_max_new_tokens=8)
    first, _ = build_sources([parse_strategy("CiP")], DIGITS, cfg, originals=originals, cache=tmp_path / "t.json")
    other = manifest.copy()
    other.loc[0, "sha256"] = "f" * 64  # a different real image under the same key
    changed = (images[::-1].copy(), other)
    second, _ = build_sources([parse_strategy("CiP")], DIGITS, cfg, originals=changed, cache=tmp_path / "t.json")
    assert first.captions != second.captions
