"""The generate stage with every strategy at once, on a two-class slice of digits: what each
strategy put in the manifest, what CF dropped, reruns and sharded runs."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

from cost.ledger import LedgerRow, bill_by_data_type
from genbench import storage
from genbench.datasets import get_dataset
from genbench.prompts import QUALITY_NEGATIVES, RESTRICTIVE_PHRASES
from genbench.strategies.textual_inversion import embeddings_sha256
from stages import generate

STRATEGIES = ["DT+NP+RD", "LE+CF", "CiP+RG", "ST+TI", "DT+RA"]
PER_CLASS = 2
THRESHOLD = 0.5
SETTINGS = {
    "strategies": STRATEGIES, "images_per_class": PER_CLASS, "steps": 2, "batch_size": 2, "shard_size": 4,
    "le_model": "tiny-t5", "le_sentences": 3, "le_max_new_tokens": 6, "cip_model": "tiny-blip2", "cip_max_new_tokens": 6,
    "cf_model": "tiny-clip", "cf_pretrained": None, "cf_threshold": THRESHOLD, "cf_oversample": 1.0, "cf_fill": True,
    "rg_strength": 0.7, "ra_strength": 0.9, "ra_images": "refs/{dataset}", "ti_embeddings": "ti/{dataset}",
}


def make_project(root: Path, **overrides) -> Path:
    """data/digits/prepared (classes 0 and 1, two originals each), RA images, TI embeddings, params."""
    meta = {**get_dataset("digits").metadata(), "classnames": ["0", "1"]}
    prepared = root / "data" / "digits" / "prepared"
    storage.atomic_write_json(prepared / "meta.json", meta)
    train = get_dataset("digits").loader("train", None, 32)
    idx = [i for c in (0, 1) for i in np.flatnonzero(train.labels == c)[:2]]
    rows = [{"key": f"digits-original-{n:06d}", "class_index": int(train.labels[i]), "class_name": str(train.labels[i])}
            for n, i in enumerate(idx)]
    storage.write_image_set(prepared / "original", train.images[idx], rows)
    for c in (0, 1):
        (root / "refs" / "digits" / str(c)).mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), 60 + 120 * c, np.uint8)).save(root / "refs" / "digits" / str(c) / "r.png")
    (root / "ti" / "digits").mkdir(parents=True)
    for c in (0, 1):
        save_file({f"<|digits {c}|>": torch.full((1, 32), 0.1 * (c + 1))}, str(root / "ti" / "digits" / f"class-{c:04d}.safetensors"))
    params = {"profile": "embedded", "datasets": ["digits"], "generate": {**SETTINGS, **overrides}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def run(root: Path, monkeypatch, *args) -> str:
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    result = CliRunner().invoke(generate.command, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def outputs(root: Path):
    out = root / "data" / "digits" / "generated"
    dropped = pd.read_parquet(out / "dropped.parquet") if (out / "dropped.parquet").exists() else None
    return storage.read_manifest(out), dropped, json.loads((out / "strategy-texts.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("stage"))
    with pytest.MonkeyPatch.context() as mp:
        output = run(root, mp)
    manifest, dropped, texts = outputs(root)
    meter = json.loads((root / "meter" / "datasets" / "digits" / "generate.json").read_text())
    return {"root": root, "output": output, "manifest": manifest, "dropped": dropped, "texts": texts, "meter": meter}


def rows_of(project, strategy):
    m = project["manifest"]
    return m[m.strategy == strategy]


def test_every_strategy_keeps_n_images_per_class(project):
    counts = project["manifest"].groupby(["strategy", "class_index"]).size()
    assert set(counts.index.get_level_values(0)) == set(STRATEGIES) and set(counts) == {PER_CLASS}
    assert project["manifest"]["key"].is_unique


def test_dt_np_rd_prompts_and_negatives(project):
    for _, row in rows_of(project, "DT+NP+RD").iterrows():
        assert row.prompt.endswith(", ".join(RESTRICTIVE_PHRASES)) and row.class_name in row.prompt
        other = str(1 - row.class_index)
        assert row.negative_prompt == ", ".join([other, *QUALITY_NEGATIVES])


def test_le_prompts_are_the_cached_sentences(project):
    sentences = project["texts"]["sentences"]
    assert sentences["model"] == "tiny-t5"
    for _, row in rows_of(project, "LE+CF").iterrows():
        assert row.prompt in sentences["by_class"][str(row.class_index)] and row.text_model == "tiny-t5"


def test_cip_rg_prompts_use_the_caption_of_the_image_they_start_from(project):
    captions = {k: c for per in project["texts"]["captions"]["by_class"].values() for k, c in per}
    originals = storage.read_manifest(project["root"] / "data" / "digits" / "prepared" / "original")
    sha = dict(zip(originals["key"], originals["sha256"]))
    for _, row in rows_of(project, "CiP+RG").iterrows():
        own = originals[originals.class_index == row.class_index]["key"].tolist()
        assert row.caption_source == row.init_image == own[row["index"] % 2]
        assert row.prompt == f"a photo of {row.class_name}, {captions[row.caption_source]}"
        assert row.init_sha256 == sha[row.init_image] and row.strength == 0.7 and row.text_model == "tiny-blip2"


def test_cf_keeps_passing_images_and_records_the_dropped(project):
    kept, dropped = rows_of(project, "LE+CF"), project["dropped"]
    assert len(kept) + len(dropped) == 2 * PER_CLASS * 2  # oversample 1.0: twice the candidates
    assert set(dropped["strategy"]) == {"LE+CF"} and dropped["cf_confidence"].notna().all()
    assert (kept[kept.filter_status == "passed"].cf_confidence > THRESHOLD).all()
    assert (dropped[dropped.filter_status == "below_threshold"].cf_confidence <= THRESHOLD).all()
    for cls in (0, 1):
        k, d = kept[kept.class_index == cls], dropped[dropped.class_index == cls]
        filled = k[k.filter_status == "filled"]
        if len(filled):  # filled with the most confident of the failing candidates
            assert filled.cf_confidence.min() >= d.cf_confidence.max()
    others = project["manifest"][project["manifest"].strategy != "LE+CF"]
    assert set(kept.filter_model) == {"tiny-clip|None"} and others.cf_confidence.isna().all()
    assert "dropped by CF" in project["output"]


def test_usd_per_image_counts_the_kept_images_and_charges_them_the_dropped(project):
    # 5 strategies x 2 classes x 2 kept = 20 images delivered; LE+CF made 2 x 4 candidates, so 24 were made
    priced = project["meter"]["priced"]
    assert len(project["manifest"]) == 20 and len(project["dropped"]) == 4
    assert priced["items"] == 20 and priced["usd_total"] > 0
    assert priced["usd_per_image"] == pytest.approx(priced["usd_total"] / 20)
    bill = bill_by_data_type([LedgerRow.from_dict(priced)])
    assert bill["generated"]["images"] == 20 and bill["generated"]["usd_per_image"] == pytest.approx(priced["usd_total"] / 20)


def test_ti_prompts_and_embeddings_hash(project):
    ti = rows_of(project, "ST+TI")
    assert set(ti.prompt) == {"<|digits 0|>", "<|digits 1|>"}  # ST is the bare name (generate.st_template)
    vectors = {f"<|digits {c}|>": torch.full((1, 32), 0.1 * (c + 1)) for c in (0, 1)}
    assert set(ti.ti_embeddings_sha256) == {embeddings_sha256(vectors)}


def test_ra_starts_from_the_retrieved_images(project):
    ra = rows_of(project, "DT+RA")
    assert list(ra.init_image) == ["0/r.png", "0/r.png", "1/r.png", "1/r.png"] and set(ra.strength) == {0.9}


def test_manifest_records_the_generator(project):
    m = project["manifest"]
    assert set(m.generator) == {"tiny-sd"} and m.weights_sha256.str.len().eq(64).all()
    assert set(m.scheduler) == {"DDIMScheduler"} and set(m.height) == {32} and set(m.batch_size) == {2}


def test_rerun_makes_nothing_and_a_new_threshold_only_reselects(project, monkeypatch, tmp_path):
    root = project["root"]
    assert "(0 made now" in run(root, monkeypatch)
    again, _, _ = outputs(root)
    pd.testing.assert_frame_equal(again, project["manifest"])
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["generate"]["cf_threshold"] = 0.0
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        assert "(0 made now" in run(root, monkeypatch)
        manifest, dropped, _ = outputs(root)
        cf = manifest[manifest.strategy == "LE+CF"]
        assert set(cf["index"]) == {0, 1} and set(cf.filter_status) == {"passed"} and set(dropped.filter_status) == {"surplus"}
    finally:
        params["generate"]["cf_threshold"] = THRESHOLD
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        run(root, monkeypatch)


def test_three_shards_give_the_same_images_as_one_run(project, monkeypatch, tmp_path):
    root = make_project(tmp_path)
    for part in range(3):
        assert re.search(r"shard part \d/3: \d+ images made", run(root, monkeypatch, "--shard", f"{part}/3"))
    assert "(0 made now" in run(root, monkeypatch)
    manifest, dropped, _ = outputs(root)
    ref = project["manifest"]
    assert dict(zip(manifest.key, manifest.sha256)) == dict(zip(ref.key, ref.sha256))
    assert sorted(dropped.key) == sorted(project["dropped"].key)


def test_missing_ra_images_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    root = make_project(tmp_path, ra_images="nowhere/{dataset}")
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    result = CliRunner().invoke(generate.command, [])
    assert "nowhere/digits does not exist" in str(result.exception)
    assert not (root / "data" / "digits" / "generated").exists()
