"""Stage `quality`: FID in CLIP feature space, CLIP score and proxy-A distance per source, and the
metric timings, on feature files written directly (no generation or encoding of images). Values
are checked against independent computations (scipy's matrix square root, numpy cosines)."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from scipy import linalg

from genbench import storage
from genbench.clip_models import load_clip
from genbench.errors import GenBenchError
from genbench.features import cache_key, encode_texts, load_features, model_sha256, save_features
from genbench.metrics import proxy_a_distance
from stages import quality

CLASSES = ["zero", "one", "two"]
PER_CLASS = 24  # per strategy: 72 generated rows a strategy, more than the 64 feature dims
TEST_PER_CLASS = 30
REPEATS = 2
TIMED = ("cler", "probe", "fid_clip", "clip_score", "pad")


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def build_inputs(root: Path, *, model_seed: int = 0) -> dict:
    """data/digits/{prepared/meta.json, generated/manifest.parquet, features/*.safetensors} under
    `root`; generated features lie near the CLIP text features of their own prompts."""
    rng = np.random.default_rng(0)
    ds = root / "data" / "digits"
    storage.atomic_write_json(ds / "prepared" / "meta.json", {
        "name": "digits", "classnames": CLASSES, "metric": "accuracy", "templates": ["a photo of the number {c}."],
    })
    rows = []
    for strategy in ("ST", "DT"):
        for cls, name in enumerate(CLASSES):
            for i in range(PER_CLASS):
                prompt = f"a photo of the number {name}" if strategy == "ST" else f"a drawing of {name}, style {i % 5}"
                key = f"{strategy}-{cls}-{i}"
                rows.append({"key": key, "strategy": strategy, "class_index": cls, "class_name": name, "prompt": prompt,
                             "sha256": storage.sha256_bytes(key.encode())})
    storage.write_manifest(ds / "generated", rows)
    bundle = load_clip("tiny-clip", None, seed=model_seed)
    prompt_feats = encode_texts(bundle, [r["prompt"] for r in rows])
    gen = _unit(prompt_feats + 0.4 * rng.normal(size=prompt_feats.shape) / np.sqrt(prompt_feats.shape[1]))
    labels = np.array([r["class_index"] for r in rows])
    key = cache_key("tiny-clip|None", model_sha256(bundle.model), [r["sha256"] for r in rows])
    feats = ds / "features"
    save_features(feats / "generated.safetensors", gen, labels, {"cache_key": key, "model": "tiny-clip|None"})
    centers = rng.normal(size=(len(CLASSES), 64))
    test_labels = np.repeat(np.arange(len(CLASSES)), TEST_PER_CLASS)
    save_features(feats / "test.safetensors", _unit(centers[test_labels] + rng.normal(size=(len(test_labels), 64))), test_labels, {})
    orig_labels = np.repeat(np.arange(len(CLASSES)), 4)
    save_features(feats / "original.safetensors", _unit(centers[orig_labels] + rng.normal(size=(12, 64))), orig_labels, {})
    save_features(feats / "text.safetensors", _unit(rng.normal(size=(len(CLASSES), 64))), np.arange(len(CLASSES)), {})
    class_feats = encode_texts(bundle, [f"a photo of a {r['class_name']}" for r in rows])
    return {"prompt_feats": prompt_feats, "class_feats": class_feats, "strategies": np.array([r["strategy"] for r in rows])}


def write_params(root: Path, **overrides) -> None:
    section = {"timing_repeats": REPEATS, "timing_warmup": 0, "device": "cpu", **overrides}
    (root / "params.yaml").write_text(yaml.safe_dump({"profile": "embedded", "datasets": ["digits"], "quality": section}))


def invoke():
    return CliRunner().invoke(quality.command, [])


def run_quality(tmp_path_factory, **overrides) -> dict:
    root = tmp_path_factory.mktemp("quality")
    built = build_inputs(root)
    write_params(root, **overrides)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        result = invoke()
    assert result.exit_code == 0, (result.output, result.exception)
    out = json.loads((root / "metrics" / "digits" / "quality.json").read_text())
    return {"root": root, "out": out, "output": result.output, **built}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_quality(tmp_path_factory)


@pytest.fixture(scope="module")
def own_prompt_run(tmp_path_factory):
    return run_quality(tmp_path_factory, clip_score_text="prompt")


def features(root: Path, name: str):
    return load_features(root / "data" / "digits" / "features" / f"{name}.safetensors")


def scipy_frechet(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root).real)


def test_sources_and_definitions(run):
    out = run["out"]
    assert set(out["sources"]) == {"generated", "generated/ST", "generated/DT", "original"}
    assert [out["sources"][s]["images"] for s in ("generated", "generated/ST", "generated/DT", "original")] == [144, 72, 72, 12]
    assert "not Inception FID" in out["fid_definition"] and "CLIP" in out["fid_definition"]
    assert out["feature_model"] == "tiny-clip|None" and out["reference"] == "test"


@pytest.mark.parametrize("source, strategy", [("generated", None), ("generated/ST", "ST"), ("generated/DT", "DT")])
def test_fid_of_generated_sources_matches_scipy(run, source, strategy):
    gen, _, _ = features(run["root"], "generated")
    test, _, _ = features(run["root"], "test")
    rows = gen if strategy is None else gen[run["strategies"] == strategy]
    expected = scipy_frechet(rows, test)
    assert run["out"]["sources"][source]["fid_clip"] == pytest.approx(expected, rel=1e-4)


def test_fid_of_sources_differ(run):
    fids = {s: v["fid_clip"] for s, v in run["out"]["sources"].items()}
    assert fids["generated/ST"] != pytest.approx(fids["generated/DT"], rel=1e-3)
    assert all(v > 0 for v in fids.values())


def numpy_clip_score(run, texts, strategy) -> float:
    gen, _, _ = features(run["root"], "generated")
    if strategy is not None:
        gen, texts = gen[run["strategies"] == strategy], texts[run["strategies"] == strategy]
    cos = np.sum(gen * texts, axis=1) / np.linalg.norm(gen, axis=1) / np.linalg.norm(texts, axis=1)
    return float(np.mean(100 * np.clip(cos, 0, None)))


@pytest.mark.parametrize("source, strategy", [("generated", None), ("generated/ST", "ST"), ("generated/DT", "DT")])
def test_clip_score_against_a_photo_of_a_class_by_default(run, source, strategy):
    # the released code's fixed reference text, whatever prompt made the image
    expected = numpy_clip_score(run, run["class_feats"], strategy)
    assert run["out"]["sources"][source]["clip_score"] == pytest.approx(expected, abs=1e-3)
    own = numpy_clip_score(run, run["prompt_feats"], strategy)
    assert abs(expected - own) > 1  # the two reference texts give different scores here
    assert run["out"]["clip_score_text"] == "class" and "a photo of a {class}" in run["out"]["clip_score_definition"]


@pytest.mark.parametrize("source, strategy", [("generated", None), ("generated/ST", "ST"), ("generated/DT", "DT")])
def test_clip_score_against_own_prompts(own_prompt_run, source, strategy):
    run = own_prompt_run
    expected = numpy_clip_score(run, run["prompt_feats"], strategy)
    assert run["out"]["sources"][source]["clip_score"] == pytest.approx(expected, abs=1e-3)
    assert expected > 50  # the features were built near their prompts: a misaligned prompt would score far lower
    assert run["out"]["clip_score_text"] == "prompt"


def test_clip_score_is_null_without_prompts(run):
    assert run["out"]["sources"]["original"]["clip_score"] is None


@pytest.mark.parametrize("source", ["generated/ST", "original"])
def test_pad_matches_direct_call(run, source):
    gen, _, _ = features(run["root"], "generated")
    test, _, _ = features(run["root"], "test")
    feats = features(run["root"], "original")[0] if source == "original" else gen[run["strategies"] == "ST"]
    pad = run["out"]["sources"][source]["pad"]
    assert pad == pytest.approx(proxy_a_distance(feats, test, seed=0))
    assert 0 <= pad <= 2


def test_generated_far_from_test_has_high_pad(run):
    # generated features sit near prompt embeddings, the test set near random centres: separable
    assert run["out"]["sources"]["generated"]["pad"] > 1.5


def test_timings(run):
    out = run["out"]
    assert set(out["seconds"]) == set(TIMED)
    for metric in TIMED:
        assert len(out["seconds"][metric]) == REPEATS and all(s > 0 for s in out["seconds"][metric])
    assert out["timing"] == {"source": "generated", "repeats": REPEATS, "warmup": 0, "device": "cpu"}
    assert out["seconds_encode_prompts"] > 0
    assert np.mean(out["seconds"]["probe"]) > np.mean(out["seconds"]["cler"])


def test_meter_and_mlflow(run):
    from mlflow.tracking import MlflowClient

    meter = json.loads((run["root"] / "meter" / "datasets" / "digits" / "quality.json").read_text())
    assert meter["stage"] == "quality" and meter["dataset"] == "digits"
    client = MlflowClient(tracking_uri=f"sqlite:///{run['root'] / 'mlflow.db'}")
    logged = client.get_run(meter["run_id"]).data.metrics
    assert logged["fid_clip.generated.ST"] == pytest.approx(run["out"]["sources"]["generated/ST"]["fid_clip"])
    assert logged["clip_score.generated"] == pytest.approx(run["out"]["sources"]["generated"]["clip_score"])
    assert logged["seconds.probe"] == pytest.approx(np.mean(run["out"]["seconds"]["probe"]))
    assert "clip_score.original" not in logged


def _bad_run(tmp_path, monkeypatch, **params):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    write_params(tmp_path, **params)
    result = invoke()
    assert isinstance(result.exception, GenBenchError), (result.output, result.exception)
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "mlflow.db").exists()
    return str(result.exception)


def test_other_clip_model_is_refused_before_writing(tmp_path, monkeypatch):
    build_inputs(tmp_path)
    message = _bad_run(tmp_path, monkeypatch, model_seed=1)
    assert "is not the CLIP model that embedded" in message and "embed.model/pretrained/seed" in message


def test_missing_features_name_the_embed_stage(tmp_path, monkeypatch):
    build_inputs(tmp_path)
    (tmp_path / "data" / "digits" / "features" / "test.safetensors").unlink()
    assert "run the embed stage first" in _bad_run(tmp_path, monkeypatch)


def test_bad_device_is_refused(tmp_path, monkeypatch):
    build_inputs(tmp_path)
    assert "'quality.device' = 'tpu'" in _bad_run(tmp_path, monkeypatch, device="tpu")


def test_clip_score_model_encodes_the_generated_images_in_its_own_space(tmp_path, monkeypatch):
    # With quality.clip_score_model set (the paper profile: ViT-B/16), the CLIP score does not use
    # the embedding's cached features: the generated images are encoded by that model. Here the
    # stored features are synthetic, so only the images encoded again give the expected score.
    from genbench.features import encode_images

    built = build_inputs(tmp_path)
    generated = tmp_path / "data" / "digits" / "generated"
    rows = storage.read_manifest(generated).drop(columns=["sha256", "shard"], errors="ignore").to_dict("records")
    images = np.random.default_rng(5).integers(0, 255, size=(len(rows), 32, 32, 3), dtype=np.uint8)
    manifest = storage.write_image_set(generated, images, rows)
    bundle = load_clip("tiny-clip", None, seed=0)
    stored, labels, _ = features(tmp_path, "generated")
    key = cache_key("tiny-clip|None", model_sha256(bundle.model), list(manifest["sha256"]))
    save_features(tmp_path / "data" / "digits" / "features" / "generated.safetensors", stored, labels,
                  {"cache_key": key, "model": "tiny-clip|None"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    write_params(tmp_path, clip_score_model="tiny-clip")
    result = invoke()
    assert result.exit_code == 0, (result.output, result.exception)
    out = json.loads((tmp_path / "metrics" / "digits" / "quality.json").read_text())
    image_feats = encode_images(bundle, images, progress=False).astype(np.float64)
    texts = built["class_feats"].astype(np.float64)
    cos = np.sum(image_feats * texts, axis=1) / np.linalg.norm(image_feats, axis=1) / np.linalg.norm(texts, axis=1)
    assert out["sources"]["generated"]["clip_score"] == pytest.approx(float(np.mean(100 * np.clip(cos, 0, None))), abs=1e-3)
    assert out["clip_score_model"] == "tiny-clip|None"
    stored_cos = np.sum(stored * texts, axis=1) / np.linalg.norm(stored, axis=1) / np.linalg.norm(texts, axis=1)
    assert abs(out["sources"]["generated"]["clip_score"] - float(np.mean(100 * np.clip(stored_cos, 0, None)))) > 1
