import numpy as np
import pytest

from genbench.datasets import get_dataset
from genbench.errors import GenBenchError
from genbench.prompts import QUALITY_NEGATIVES, build_prompts, parse_strategy
from genbench.seeding import class_rng, image_seed

DIGITS = get_dataset("digits")


def test_simple_template():
    specs = build_prompts("ST", DIGITS, 3, 2, np.random.default_rng(0))
    assert [s.prompt for s in specs] == ["a photo of 3", "a photo of 3"]
    assert all(s.negative_prompt == "" for s in specs)


def test_defined_templates_cycle_through_dataset_templates():
    specs = build_prompts("DT", DIGITS, 7, len(DIGITS.templates), np.random.default_rng(0))
    assert sorted(s.prompt for s in specs) == sorted(t.format(c="7") for t in DIGITS.templates)


def test_negative_prompts_name_other_classes_only():
    specs = build_prompts("DT+NP", DIGITS, 4, 20, np.random.default_rng(1))
    for s in specs:
        parts = [p.strip() for p in s.negative_prompt.split(",")]
        classes, quality = parts[:5], parts[5:]
        assert len(set(classes)) == 5 and "4" not in classes and set(classes) <= set(DIGITS.classnames)
        assert quality == list(QUALITY_NEGATIVES)
    assert len({s.negative_prompt for s in specs}) > 1  # sampled per image


def test_restrictive_description_adds_emphasis():
    (spec,) = build_prompts("ST+RD", DIGITS, 1, 1, np.random.default_rng(0))
    assert spec.prompt == "a photo of 1., ((sharp focus)), ((highly detailed)), ((hires))"


@pytest.mark.parametrize("bad", ["XX", "DT+YY", ""])
def test_unknown_strategy_names_the_bad_part(bad):
    with pytest.raises(GenBenchError, match="unknown prompt strategy"):
        parse_strategy(bad)


def test_seeds_are_stable_and_distinct():
    a = image_seed(0, "digits", 1, "ST", 0)
    assert a == image_seed(0, "digits", 1, "ST", 0)
    others = {image_seed(0, "digits", 1, "ST", 1), image_seed(0, "digits", 2, "ST", 0), image_seed(0, "digits", 1, "DT", 0),
              image_seed(1, "digits", 1, "ST", 0)}
    assert a not in others and len(others) == 4
    assert class_rng(0, "digits", 1, "ST").integers(1 << 30) == class_rng(0, "digits", 1, "ST").integers(1 << 30)
