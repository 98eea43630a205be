"""CE/LE: sentences from the word-to-sentence model, how they become prompts, and their cache."""

import json

import numpy as np
import pytest

from genbench.datasets import get_dataset
from genbench.errors import GenBenchError
from genbench.generation import PlanInputs, plan_jobs
from genbench.prompts import parse_strategy
from genbench.strategies import sources as sources_mod
from genbench.strategies.enhance import DEFAULT_ENHANCER, build_tiny_t5, enhance_classnames, load_enhancer
from genbench.strategies.sources import TextModels, build_sources
from genbench.strategies.word_tokenizer import word_vocabulary

DIGITS = get_dataset("digits")


@pytest.fixture(scope="module")
def t5():
    return build_tiny_t5(seed=0)


def test_sentences_are_distinct_deterministic_and_per_class(t5):
    first = enhance_classnames(t5, ["3", "airplane"], 4, seed=0, max_new_tokens=8)
    assert [len(s) for s in first] == [4, 4]
    assert all(len(set(s)) == 4 and all(x.strip() for x in s) for s in first)
    assert enhance_classnames(t5, ["3", "airplane"], 4, seed=0, max_new_tokens=8) == first
    assert enhance_classnames(t5, ["airplane"], 4, seed=0, max_new_tokens=8) == [first[1]]  # independent of other classes
    assert enhance_classnames(t5, ["3", "airplane"], 4, seed=1, max_new_tokens=8) != first
    vocab = set(word_vocabulary())
    assert all(w in vocab for s in first for x in s for w in x.replace(",", " , ").replace(".", " . ").split())


def test_the_real_loading_code_reads_a_saved_model(t5, tmp_path):
    t5.model.save_pretrained(tmp_path / "t5")
    t5.tokenizer.save_pretrained(tmp_path / "t5")
    loaded = load_enhancer(str(tmp_path / "t5"))  # AutoModelForSeq2SeqLM + AutoTokenizer
    assert type(loaded.model).__name__ == "T5ForConditionalGeneration"
    assert enhance_classnames(loaded, ["7"], 3, seed=2, max_new_tokens=8) == enhance_classnames(t5, ["7"], 3, seed=2, max_new_tokens=8)


def test_missing_model_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(GenBenchError) as err:
        load_enhancer(DEFAULT_ENHANCER, revision="0123abc")
    assert DEFAULT_ENHANCER in str(err.value) and "huggingface-cli download" in str(err.value) and "\n" not in str(err.value)


CFG = TextModels(enhancer="tiny-t5", sentences_per_class=3, enhancer_max_new_tokens=8)


def test_le_prompts_are_the_models_sentences(t5, tmp_path):
    strategies = [parse_strategy("LE")]
    sources, provenance = build_sources(strategies, DIGITS, CFG, cache=tmp_path / "texts.json")
    expected = enhance_classnames(build_tiny_t5(0), list(DIGITS.classnames), 3, seed=0, max_new_tokens=8)
    assert {c: list(s) for c, s in sources.sentences.items()} == dict(enumerate(expected))
    assert provenance["sentences"]["model"] == "tiny-t5" and len(provenance["sentences"]["weights_sha256"]) == 64
    jobs = plan_jobs(DIGITS, ["LE"], 6, global_seed=0, inputs=PlanInputs(sources=sources))
    for cls in range(10):
        prompts = [j.prompt for j in jobs if j.class_index == cls]
        assert sorted(prompts) == sorted(expected[cls] * 2)  # each sentence used equally often
    stored = json.loads((tmp_path / "texts.json").read_text())
    assert stored["sentences"]["by_class"]["4"] == expected[4]


def test_cached_sentences_are_reused_and_refreshed_when_settings_change(tmp_path, monkeypatch):
    strategies = [parse_strategy("CE+NP")]
    first, _ = build_sources(strategies, DIGITS, CFG, cache=tmp_path / "texts.json")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although the cache holds the sentences")

    monkeypatch.setattr(sources_mod, "_make_sentences", no_model)
    again, _ = build_sources(strategies, DIGITS, CFG, cache=tmp_path / "texts.json")
    assert again == first
    with pytest.raises(AssertionError, match="the model was loaded"):
        build_sources(strategies, DIGITS, TextModels(enhancer="tiny-t5", sentences_per_class=4), cache=tmp_path / "texts.json")


def test_no_model_is_loaded_without_a_model_backed_strategy(tmp_path, monkeypatch):
    monkeypatch.setattr(sources_mod, "_make_sentences", lambda *a, **k: pytest.fail("loaded"))
    sources, provenance = build_sources([parse_strategy("DT+NP")], DIGITS, CFG, cache=tmp_path / "texts.json")
    assert not sources.sentences and provenance == {} and not (tmp_path / "texts.json").exists()
    assert np.all(np.array([len(j.prompt) for j in plan_jobs(DIGITS, ["DT"], 1, 0)]) > 0)
