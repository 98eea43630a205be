"""CF, the CLIP filter: the confidence it computes, the images it keeps and what it records."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.special import softmax

from genbench.datasets import get_dataset
from genbench.generation import select_images
from genbench.strategies.clip_filter import default_threshold, load_clip_filter
from genbench.strategies.selection import filter_rules, select_passing

DIGITS = get_dataset("digits")


@pytest.fixture(scope="module")
def clip_filter():
    return load_clip_filter("tiny-clip", None, list(DIGITS.classnames), list(DIGITS.templates))


def test_confidence_is_the_softmax_probability_of_the_own_class(clip_filter):
    images = DIGITS.loader("test", None, 32).images[:6]
    labels = np.array([0, 1, 2, 3, 4, 9])
    got = clip_filter.confidence(images, labels)
    # independently: open_clip's own encoders, template prompts averaged per class, scipy's softmax
    model, bundle = clip_filter.bundle.model, clip_filter.bundle
    with torch.no_grad():
        img = model.encode_image(torch.stack([bundle.preprocess(Image.fromarray(x)) for x in images])).double()
        img = img / img.norm(dim=1, keepdim=True)
        protos = []
        for name in DIGITS.classnames:
            t = model.encode_text(bundle.tokenizer([tpl.format(c=name) for tpl in DIGITS.templates])).double()
            t = (t / t.norm(dim=1, keepdim=True)).mean(0)
            protos.append(t / t.norm())
        logits = model.logit_scale.exp().double() * img @ torch.stack(protos).T
    expected = softmax(logits.numpy(), axis=1)[np.arange(6), labels]
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert got.shape == (6,) and np.all((got > 0) & (got < 1))


def test_default_threshold_is_chance_level():
    assert default_threshold(10) == pytest.approx(0.1) and default_threshold(4) == 0.25


def _cands(confidences):
    return [{"key": f"k{i}", "index": i, "cf_confidence": c} for i, c in enumerate(confidences)]


def cf_only(threshold):
    return [filter_rules(threshold)["CF"]]


def test_select_keeps_the_first_passing_candidates_in_index_order():
    kept, dropped = select_passing(_cands([0.05, 0.30, 0.20, 0.90, 0.15]), wanted=2, rules=cf_only(0.1), fill=True)
    assert [(r["key"], r["filter_status"]) for r in kept] == [("k1", "passed"), ("k2", "passed")]
    assert [(r["key"], r["filter_status"]) for r in dropped] == [("k0", "below_threshold"), ("k3", "surplus"), ("k4", "surplus")]
    assert dropped[0]["cf_confidence"] == 0.05


def test_select_fills_a_short_class_with_its_most_confident_others():
    cands = _cands([0.05, 0.08, 0.30, 0.09, 0.01])
    kept, dropped = select_passing(cands, wanted=3, rules=cf_only(0.1), fill=True)
    assert [(r["key"], r["filter_status"]) for r in kept] == [("k1", "filled"), ("k2", "passed"), ("k3", "filled")]
    assert {r["key"] for r in dropped} == {"k0", "k4"} and all(r["filter_status"] == "below_threshold" for r in dropped)
    short, dropped = select_passing(cands, wanted=3, rules=cf_only(0.1), fill=False)
    assert [r["key"] for r in short] == ["k2"] and len(dropped) == 4


def test_threshold_is_strict_as_in_he_et_al():
    kept, dropped = select_passing(_cands([0.1, 0.1000001]), wanted=2, rules=cf_only(0.1), fill=False)
    assert [r["key"] for r in kept] == ["k1"] and dropped[0]["filter_status"] == "below_threshold"


def test_select_images_filters_only_filtered_strategies():
    rows = []
    for strategy in ("ST", "ST+CF"):
        for cls in (0, 1):
            for i in range(3):
                row = {"key": f"{strategy}-{cls}-{i}", "strategy": strategy, "class_index": cls, "index": i}
                if strategy == "ST+CF":
                    row["cf_confidence"] = [0.5, 0.05, 0.6][i] if cls == 0 else [0.01, 0.02, 0.03][i]
                rows.append(row)
    kept, dropped = select_images(rows, images_per_class=2, threshold=0.1, fill=False)
    assert [r["key"] for r in kept] == [r["key"] for r in rows[:6]] + ["ST+CF-0-0", "ST+CF-0-2"]
    assert {r["key"]: r["filter_status"] for r in dropped} == {
        "ST+CF-0-1": "below_threshold", "ST+CF-1-0": "below_threshold", "ST+CF-1-1": "below_threshold", "ST+CF-1-2": "below_threshold"}
    kept, _ = select_images(rows, images_per_class=2, threshold=0.1, fill=True)
    assert [r["key"] for r in kept][-4:] == ["ST+CF-0-0", "ST+CF-0-2", "ST+CF-1-1", "ST+CF-1-2"]
