import re

import numpy as np
import pytest

from genbench.datasets import get_dataset
from genbench.errors import GenBenchError
from genbench.prompts import (
    PHOTO_TEMPLATE,
    QUALITY_NEGATIVES,
    PromptSources,
    Strategy,
    build_prompts,
    check_simple_template,
    parse_strategy,
    placeholder_token,
)
from genbench.seeding import class_rng, image_seed

DIGITS = get_dataset("digits")


def test_simple_template_is_the_bare_class_name():
    # Table 6 of the paper: ST for airplane is "airplane", for British Shorthair "British Shorthair"
    specs = build_prompts("ST", DIGITS, 3, 2, np.random.default_rng(0))
    assert [s.prompt for s in specs] == ["3", "3"]
    assert all(s.negative_prompt == "" for s in specs)
    pets = get_dataset("oxford-pets")
    (spec,) = build_prompts("ST", pets, pets.classnames.index("British Shorthair"), 1, np.random.default_rng(0))
    assert spec.prompt == "British Shorthair"


def test_simple_template_option_keeps_a_photo_of():
    sources = PromptSources(simple_template=PHOTO_TEMPLATE)
    specs = build_prompts("ST", DIGITS, 3, 2, np.random.default_rng(0), sources)
    assert [s.prompt for s in specs] == ["a photo of 3", "a photo of 3"]
    (ti,) = build_prompts("ST+TI", DIGITS, 3, 1, np.random.default_rng(0), sources)
    assert ti.prompt == "a photo of <|digits 3|>"


@pytest.mark.parametrize("bad", ["a photo", "{c} and {c}", "a photo of {}"])
def test_simple_template_needs_one_class_slot(bad):
    with pytest.raises(GenBenchError, match="exactly once"):
        check_simple_template(bad)


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
    assert spec.prompt == "1., ((sharp focus)), ((highly detailed)), ((hires))"


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


SOURCES = PromptSources(
    sentences={3: ("a 3 on a wall", "three birds", "the number 3 in the sky")},
    captions={3: (("digits-original-000006", "a black square"), ("digits-original-000007", "a white line"))},
)


@pytest.mark.parametrize("base", ["CE", "LE"])
def test_enhanced_sentences_are_cycled_in_a_random_order(base):
    specs = build_prompts(base, DIGITS, 3, 7, np.random.default_rng(5), SOURCES)
    prompts = [s.prompt for s in specs]
    sentences = list(SOURCES.sentences[3])
    assert sorted(prompts[:3]) == sorted(sentences)  # each sentence once per cycle
    assert prompts[3:6] == prompts[:3] and prompts[6] == prompts[0]
    assert all(s.negative_prompt == "" and s.caption_source == "" for s in specs)


def test_ce_and_le_are_the_same_strategy_under_two_names():
    ce = build_prompts("CE", DIGITS, 3, 5, np.random.default_rng(1), SOURCES)
    le = build_prompts("LE", DIGITS, 3, 5, np.random.default_rng(1), SOURCES)
    assert ce == le


def test_caption_in_prompt_pairs_image_i_with_real_image_i_mod_k():
    specs = build_prompts("CiP", DIGITS, 3, 5, np.random.default_rng(0), SOURCES)
    black, white = "a photo of 3, a black square", "a photo of 3, a white line"
    assert [s.prompt for s in specs] == [black, white, black, white, black]
    assert [s.caption_source for s in specs] == ["digits-original-000006", "digits-original-000007"] * 2 + ["digits-original-000006"]


def test_model_backed_bases_without_their_texts_say_what_is_missing():
    with pytest.raises(GenBenchError, match="CE/LE needs enhanced sentences for class 4"):
        build_prompts("LE", DIGITS, 4, 1, np.random.default_rng(0), SOURCES)
    with pytest.raises(GenBenchError, match="CiP needs captions of real images for class 3"):
        build_prompts("CiP", DIGITS, 3, 1, np.random.default_rng(0))


def test_textual_inversion_tokens_replace_the_class_name():
    (st,) = build_prompts("ST+TI", DIGITS, 3, 1, np.random.default_rng(0))
    assert st.prompt == "<|digits 3|>" and placeholder_token("digits", "3") == "<|digits 3|>"
    dt = build_prompts("DT+TI", DIGITS, 3, len(DIGITS.templates), np.random.default_rng(0))
    assert sorted(s.prompt for s in dt) == sorted(t.format(c="<|digits 3|>") for t in DIGITS.templates)
    (cip,) = build_prompts("CiP+TI", DIGITS, 3, 1, np.random.default_rng(0), SOURCES)
    assert cip.prompt == "a photo of <|digits 3|>, a black square"


def test_negative_prompts_with_tokens_still_name_the_real_other_classes():
    (spec,) = build_prompts("ST+TI+NP", DIGITS, 3, 1, np.random.default_rng(0))
    classes = [p.strip() for p in spec.negative_prompt.split(",")][:5]
    assert set(classes) <= set(DIGITS.classnames) - {"3"} and "<|" not in spec.negative_prompt


def test_strategy_parts_are_parsed_into_their_roles():
    assert parse_strategy("DT+NP+RD") == Strategy("DT+NP+RD", "DT", ("NP", "RD"))
    assert parse_strategy("LE+CF") == Strategy("LE+CF", "LE", filters=("CF",))
    assert parse_strategy("LE+RF+CF").filters == ("CF", "RF") and parse_strategy("LE+RF+CF").filter == "CF+RF"
    assert parse_strategy("ST+RF").filter == "RF"
    s = parse_strategy("CiP+RG+TI+NP")
    assert (s.base, s.modifiers, s.name_modifier, s.init, s.filter, s.tag) == ("CiP", ("NP",), "TI", "RG", None, "CiP_RG_TI_NP")
    assert parse_strategy("DT+RA").init == "RA"


@pytest.mark.parametrize("bad, message", [
    ("TI", "TI needs a base: ST+TI"),
    ("LE+TI", "TI replaces the class name"),
    ("DT+RG+RA", "RG and RA both choose the starting image"),
    ("DT+NP+NP", "a part is repeated"),
    ("DT+XX", "part 'XX' is not one of"),
])
def test_bad_combinations_are_refused_with_the_reason(bad, message):
    with pytest.raises(GenBenchError, match=re.escape(message)):
        parse_strategy(bad)
