"""The generate stage's work outside the stage: its checks (genbench.generation_checks), its plan
(genbench.generation_plan) and the CF threshold and dropped rows of a run (genbench.generation_run)."""

from pathlib import Path

import pandas as pd
import pytest

from genbench import storage
from genbench.datasets import get_dataset
from genbench.errors import GenBenchError
from genbench.generation import GenerationSettings, plan_jobs, shard_plan_hash, shards_of
from genbench.generation_checks import (
    check_real_filter,
    check_strategy_inputs,
    check_values,
    dataset_path,
    parse_shard,
)
from genbench.generation_plan import GenerationPaths, model_label, plan_generation, shard_extra, strategy_fields
from genbench.generation_run import cf_threshold, write_dropped
from genbench.storage import DROPPED
from genbench.prompts import parse_strategy
from stages.generate import SCHEMA
from stages.frame.params import validate_section

DIGITS = get_dataset("digits")


def section(**overrides) -> dict:
    return validate_section(overrides, "generate", SCHEMA)


def test_parse_shard_reads_i_of_n_and_refuses_the_rest():
    assert parse_shard(None) is None
    assert parse_shard("0/1") == (0, 1) and parse_shard("3/4") == (3, 4)
    with pytest.raises(GenBenchError, match="must look like i/n"):
        parse_shard("two")
    for bad in ("4/4", "-1/2", "0/0"):
        with pytest.raises(GenBenchError, match="need 0 <= i < n"):
            parse_shard(bad)


def test_check_values_returns_the_strategies_and_names_each_bad_key():
    assert [s.name for s in check_values(section(strategies=["ST", "DT+NP"]))] == ["ST", "DT+NP"]
    with pytest.raises(GenBenchError, match="'generate.strategies' is empty"):
        check_values(section(strategies=[]))
    with pytest.raises(GenBenchError, match="lists a strategy twice"):
        check_values(section(strategies=["ST", "DT", "ST"]))
    with pytest.raises(GenBenchError, match=r"'generate.height' = 30 must be a multiple of 8 .*e\.g\. 32"):
        check_values(section(height=30))
    with pytest.raises(GenBenchError, match=r"'generate.width' = 3 must be a multiple of 8 .*e\.g\. 8"):
        check_values(section(width=3))
    with pytest.raises(GenBenchError, match="'generate.shard_size' = 10 must be a multiple of generate.batch_size = 4"):
        check_values(section(shard_size=10, batch_size=4))
    with pytest.raises(GenBenchError, match="'generate.st_template'"):
        check_values(section(st_template="a photo"))


def test_real_filter_needs_originals_of_every_class_and_enough_of_them(tmp_path):
    with pytest.raises(GenBenchError, match="does not exist; run the prepare stage first"):
        check_real_filter(section(), tmp_path, ["zero", "one"])
    storage.write_manifest(tmp_path, [{"key": f"k{i}", "class_index": c} for i, c in enumerate([0, 0, 1])])
    check_real_filter(section(rf_neighbours=3), tmp_path, ["zero", "one"])
    with pytest.raises(GenBenchError, match="none of class 'two'"):
        check_real_filter(section(), tmp_path, ["zero", "one", "two"])
    with pytest.raises(GenBenchError, match="'generate.rf_neighbours' = 4 exceeds the 3 k-shot originals"):
        check_real_filter(section(rf_neighbours=4), tmp_path, ["zero", "one"])


def test_ra_and_ti_inputs_must_exist_where_a_strategy_reads_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert dataset_path("data/{dataset}/retrieved", "digits") == Path("data/digits/retrieved")
    p = section(strategies=["ST+RA", "ST+TI"])
    strategies = [parse_strategy(s) for s in p["strategies"]]
    with pytest.raises(GenBenchError, match=r"strategy RA reads params key 'generate.ra_images' .* data/digits/retrieved does not exist"):
        check_strategy_inputs(p, strategies, "digits")
    (tmp_path / "data/digits/retrieved").mkdir(parents=True)
    with pytest.raises(GenBenchError, match="strategy TI reads params key 'generate.ti_embeddings'"):
        check_strategy_inputs(p, strategies, "digits")
    check_strategy_inputs(p, strategies[:1], "digits")
    check_strategy_inputs(p, [parse_strategy("DT")], "elsewhere")  # no RA, no TI: nothing is read


def test_cf_threshold_defaults_to_chance_level():
    assert cf_threshold(None, 10) == pytest.approx(0.1)
    assert cf_threshold(None, 4) == 0.25
    assert cf_threshold(0.3, 4) == 0.3
    assert cf_threshold(0.0, 4) == 0.0  # a threshold of 0 is a threshold, not "none given"


def test_dropped_rows_are_written_and_no_drops_leave_no_file(tmp_path):
    write_dropped(tmp_path, [{"key": "a", "filter_status": "surplus"}, {"key": "b", "filter_status": "below_threshold"}])
    assert pd.read_parquet(tmp_path / DROPPED)["key"].tolist() == ["a", "b"]
    write_dropped(tmp_path, [])
    assert not (tmp_path / DROPPED).exists()


def test_strategy_fields_name_the_models_behind_each_strategy():
    texts = {"sentences": {"model": "tiny-t5", "revision": "abc"}, "captions": {"model": "tiny-blip2", "revision": None}}
    ident = {"inversion_sha256": "ti", "filter_name": "tiny-clip", "filter_weights_sha256": "cf", "rf_originals_sha256": "rf"}
    assert model_label({"model": "m", "revision": "r"}) == "m@r" and model_label({"model": "m"}) == "m"
    assert strategy_fields(parse_strategy("DT"), texts, ident, 3) == {}
    assert strategy_fields(parse_strategy("LE"), texts, ident, 3) == {"text_model": "tiny-t5@abc"}
    assert strategy_fields(parse_strategy("CiP+TI"), texts, ident, 3) == {"text_model": "tiny-blip2", "ti_embeddings_sha256": "ti"}
    assert strategy_fields(parse_strategy("DT+CF+RF"), texts, ident, 3) == {
        "filter_model": "tiny-clip", "filter_weights_sha256": "cf", "rf_originals_sha256": "rf", "rf_neighbours": 3}


def test_shard_extra_merges_the_fields_of_the_strategies_in_a_shard():
    class Job:
        def __init__(self, strategy):
            self.strategy = strategy

    fields = {"DT": {}, "LE": {"text_model": "t5"}, "DT+CF": {"filter_model": "clip"}}
    assert shard_extra([Job("DT"), Job("DT")], fields) is None
    assert shard_extra([Job("DT"), Job("LE"), Job("DT+CF")], fields) == {"text_model": "t5", "filter_model": "clip"}


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    p = section(strategies=["ST", "DT"], images_per_class=3, batch_size=2, shard_size=4, steps=2, device="cpu")
    where = GenerationPaths("digits", root / "generated", root / "original", root / "samples.png")
    return p, plan_generation(p, DIGITS, where)


def test_the_plan_lists_every_image_and_hashes_each_shard(plan):
    p, got = plan
    settings = GenerationSettings(32, 32, 2, 5.0, 2)
    jobs = plan_jobs(DIGITS, ["ST", "DT"], 3, 0)
    assert got.settings == settings and got.jobs == jobs
    assert len(jobs) == 2 * DIGITS.num_classes * 3 and got.shards == shards_of(jobs, 4) and len(got.shards) == 15
    assert got.hashes == [shard_plan_hash(s, got.generator_id, settings, None) for s in got.shards]
    assert len(set(got.hashes)) == len(got.hashes)
    assert got.generator_id["generator"] == "tiny-sd" and len(got.generator_id["weights_sha256"]) == 64
    assert got.row_extra == {**{k: got.generator_id[k] for k in ("generator", "revision", "weights_sha256", "scheduler", "dtype",
                                                                 "attention")},
                             "resolved_revision": got.row_extra["resolved_revision"], "height": 32, "width": 32, "steps": 2,
                             "guidance_scale": 5.0}
    assert not got.filtered and got.init_images == {}
    assert got.worker.filter_model is None and got.worker.inversion_path is None and got.worker.real_filter_set is None
    assert got.worker.expected["weights_sha256"] == got.generator_id["weights_sha256"]


def test_the_same_section_plans_the_same_shards_and_other_settings_others(plan, tmp_path):
    p, got = plan
    where = GenerationPaths("digits", tmp_path / "generated", tmp_path / "original", tmp_path / "samples.png")
    assert plan_generation(p, DIGITS, where).hashes == got.hashes
    other = plan_generation({**p, "steps": 3}, DIGITS, where)
    assert other.jobs == got.jobs and not set(other.hashes) & set(got.hashes)


def test_cip_without_originals_says_to_run_prepare(tmp_path):
    p = section(strategies=["CiP"], device="cpu")
    where = GenerationPaths("digits", tmp_path / "generated", tmp_path / "original", tmp_path / "samples.png")
    with pytest.raises(GenBenchError, match=r"original not found; run the prepare stage first \(dvc repro prepare@digits\)"):
        plan_generation(p, DIGITS, where)
