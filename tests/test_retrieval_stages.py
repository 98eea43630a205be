"""The pool, index, retrieve and invert stages end to end on digits, in a temporary
project: outputs are checked for content, MTS against a brute-force recomputation."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from safetensors import safe_open

from conftest import write_params
from genbench import storage
from genbench.errors import GenBenchError
from stages import invert, prepare, retrieve, pool, index

OVERRIDES = {
    "pool": {"per_class": 8},
    "retrieve": {"top_k": 8, "shots": 4},
    "invert": {"steps": 1, "batch_size": 1, "eval_draws": 1, "original_shots": 2},
}


def invoke(command, *args):
    result = CliRunner().invoke(command, ["--params", "params.yaml", *args], catch_exceptions=True)
    return result


def run_ok(command, *args):
    result = invoke(command, *args)
    if result.exception is not None:
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrieval-project")
    write_params(root, OVERRIDES)
    old_cwd, old_uri = Path.cwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(root)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    try:
        run_ok(prepare.command)
        run_ok(pool.command)
        run_ok(index.command)
        run_ok(retrieve.command)
        run_ok(invert.command)
        yield root
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri


def meter(root, *parts):
    return json.loads(root.joinpath("meter", *parts).read_text())


def test_pool_and_index(project):
    info = json.loads((project / "data/pool/pool.json").read_text())
    assert info["items"] == 88 and info["composition"]["distractor"] == 8
    meta = json.loads((project / "data/index/meta.json").read_text())
    assert meta["kind"] == "flat" and meta["count"] == 88 and meta["model"]["name"] == "tiny-clip"
    captions = pd.read_parquet(project / "data/index/captions.parquet")
    pool = pd.concat([pd.read_parquet(p) for p in sorted((project / "data/pool").glob("*.parquet"))])
    assert list(captions["id"]) == list(pool["id"]) and list(captions["caption"]) == list(pool["caption"])
    priced = meter(project, "pipeline", "index.json")["priced"]
    assert priced["stage"] == "index" and priced["data_type"] == "retrieved" and priced["items"] == 88


def test_retrieved_set_and_its_manifest(project):
    images, manifest = storage.load_image_set(project / "data/digits/retrieved")
    assert images.shape == (40, 32, 32, 3)
    assert manifest.groupby("class_index").size().tolist() == [4] * 10
    for _, group in manifest.groupby("class_index"):
        assert (np.diff(group["similarity"]) <= 1e-9).all() and (np.diff(group["rank"]) > 0).all()
        assert group["pool_id"].is_unique
    pool = pd.concat([pd.read_parquet(p) for p in sorted((project / "data/pool").glob("*.parquet"))]).set_index("id")
    assert (pool.loc[manifest["pool_id"], "caption"].to_numpy() == manifest["caption"].to_numpy()).all()
    assert manifest["query"].iloc[0] == " | ".join(t.format(c="0") for t in json.loads((project / "data/digits/prepared/meta.json").read_text())["templates"])
    priced = meter(project, "datasets", "digits", "retrieve.json")["priced"]
    assert priced["data_type"] == "retrieved" and priced["items"] == 40


def test_mts_matches_a_brute_force_recomputation(project):
    from genbench.clip_models import load_clip
    from genbench.features import encode_texts

    metrics = json.loads((project / "metrics/digits/retrieve.json").read_text())
    pool = pd.concat([pd.read_parquet(p, columns=["id", "caption", "label"]) for p in sorted((project / "data/pool").glob("*.parquet"))])
    bundle = load_clip("tiny-clip", seed=0)
    captions = encode_texts(bundle, list(pool["caption"])).astype(np.float64)
    expected = {}
    for digit in range(10):
        query = encode_texts(bundle, [str(digit)])[0].astype(np.float64)
        expected[str(digit)] = float(np.sort(captions @ query)[::-1][:10].mean())  # retrieve.mts_top_k: 10 (top_k is 8)
    assert metrics["mts_per_class"] == pytest.approx(expected, abs=1e-5)
    assert metrics["mts"] == pytest.approx(np.mean(list(expected.values())), abs=1e-5)
    assert metrics["images"] == 40 and metrics["images_per_class"] == {str(d): 4 for d in range(10)}
    manifest = storage.read_manifest(project / "data/digits/retrieved")
    labels = pool.set_index("id")["label"]
    assert metrics["label_precision"] == pytest.approx(float((labels[manifest["pool_id"]].to_numpy() == manifest["class_index"].to_numpy()).mean()))


def test_inversion_outputs_load_and_record_the_filter(project):
    from genbench.clip_models import load_clip
    from genbench.features import encode_texts

    root = project / "data/digits/inversion"
    for source in ("original", "retrieved"):
        tokens = json.loads((root / source / "tokens.json").read_text())
        assert [e["token"] for e in tokens["tokens"]] == [f"<|digits {d}|>" for d in range(10)]
        with safe_open(str(root / source / "class-0007.safetensors"), framework="np") as fh:
            assert list(fh.keys()) == ["<|digits 7|>"] and fh.get_tensor("<|digits 7|>").shape == (1, 32)
        losses = pd.read_parquet(root / source / "losses.parquet")
        assert len(losses) == 10 * 1
    original = pd.read_parquet(root / "original/references.parquet")
    assert len(original) == 20 and original["kept"].all()
    refs = pd.read_parquet(root / "retrieved/references.parquet")
    assert len(refs) == 40 and {"caption", "similarity", "kept", "reason", "pool_id"} <= set(refs.columns)
    above = refs["similarity"] >= 0.8
    assert (refs["kept"] >= above).all() and (refs.loc[refs["kept"] & ~above, "reason"].str.startswith("fallback")).all()
    assert (refs.groupby("class_index")["kept"].sum() >= 1).all()
    bundle = load_clip("tiny-clip", seed=0)
    a, b = encode_texts(bundle, [refs["caption"].iloc[0], refs["class_name"].iloc[0]]).astype(np.float64)
    assert refs["similarity"].iloc[0] == pytest.approx(float(a @ b), abs=1e-5)
    summary = json.loads((project / "metrics/digits/invert.json").read_text())
    assert summary["sources"]["retrieved"]["references_kept"] == int(refs["kept"].sum())
    assert summary["sources"]["original"]["references_per_class"] == {str(d): 2 for d in range(10)}
    priced = meter(project, "datasets", "digits", "invert.json")["priced"]
    assert priced["data_type"] == "generated" and priced["items"] == 20


@pytest.mark.parametrize("command, section, values, message", [
    (retrieve.command, "retrieve", {"shots": 9, "top_k": 8}, "exceeds retrieve.top_k"),
    (retrieve.command, "retrieve", {"backend": "remote", "query": "per_template"}, "needs retrieve.url"),
    (retrieve.command, "retrieve", {"query": "max"}, "'retrieve.query' = 'max' must be one of"),
    (index.command, "index", {"kind": "lsh"}, "'index.kind' = 'lsh' must be one of"),
    (index.command, "index", {"pool": "no/such/pool"}, "'index.pool' = 'no/such/pool' does not exist"),
    (pool.command, "pool", {"wrong_fraction": 1.5}, "'pool.wrong_fraction' = 1.5 must lie between 0 and 1"),
    (invert.command, "invert", {"references": ["synthetic"]}, "'invert.references' = ['synthetic']"),
])
def test_bad_params_are_named_before_anything_runs(tmp_path, monkeypatch, command, section, values, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    write_params(tmp_path, {section: values})
    result = invoke(command)
    assert isinstance(result.exception, GenBenchError) and message in str(result.exception)
    assert not (tmp_path / "data").exists() and not (tmp_path / "meter").exists()
