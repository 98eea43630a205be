"""RF as a generate strategy part: selection by hand (ties, fill, with CF), the worker's own share
against an independent nearest-neighbour vote, and the stage end to end (kept and dropped rows,
resume, what remakes shards, cost per kept image, refusal without originals)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image
from sklearn.neighbors import NearestNeighbors

from genbench import storage
from genbench.datasets import get_dataset
from genbench.executors import GenerationWorker, ShardMaker
from genbench.generation import GenerationSettings, plan_jobs, select_images
from genbench.strategies.real_filter import own_share, real_filter_mask, references_sha256
from genbench.strategies.selection import filter_rules, select_passing
from stages import generate

DIGITS = get_dataset("digits")
RF = [filter_rules(0.1)["RF"]]


def _cands(shares, confidences=None):
    rows = [{"key": f"k{i}", "index": i, "rf_own_share": s} for i, s in enumerate(shares)]
    for row, c in zip(rows, confidences or []):
        row["cf_confidence"] = c
    return rows


def _status(rows):
    return [(r["key"], r["filter_status"]) for r in rows]


def test_rf_keeps_the_first_candidates_with_half_or_more_own_neighbours():
    kept, dropped = select_passing(_cands([0.0, 0.5, 1.0, 0.0, 1.0]), wanted=2, rules=RF, fill=False)
    assert _status(kept) == [("k1", "passed"), ("k2", "passed")]  # a tie (one of two neighbours) is kept
    assert _status(dropped) == [("k0", "real_filter"), ("k3", "real_filter"), ("k4", "surplus")]


def test_rf_fill_takes_the_highest_own_share_then_index():
    shares = [0.0, 1 / 3, 1.0, 0.0, 1 / 3]  # three neighbours: only k2 has a majority
    kept, dropped = select_passing(_cands(shares), wanted=3, rules=RF, fill=True)
    assert _status(kept) == [("k1", "filled"), ("k2", "passed"), ("k4", "filled")]
    assert _status(dropped) == [("k0", "real_filter"), ("k3", "real_filter")]
    short, _ = select_passing(_cands(shares), wanted=3, rules=RF, fill=False)
    assert _status(short) == [("k2", "passed")]


def test_cf_and_rf_keep_candidates_passing_both_and_name_every_failed_filter():
    rules = [r for p, r in filter_rules(0.1).items() if p in ("CF", "RF")]
    cands = _cands([0.0, 1.0, 0.0, 1.0, 0.5, 1.0], [0.9, 0.05, 0.05, 0.5, 0.6, 0.7])
    kept, dropped = select_passing(cands, wanted=2, rules=rules, fill=False)
    assert _status(kept) == [("k3", "passed"), ("k4", "passed")]
    assert _status(dropped) == [("k0", "real_filter"), ("k1", "below_threshold"), ("k2", "real_filter+below_threshold"),
                                ("k5", "surplus")]
    # filling: one filter failed beats two; then own share (k1: 1.0) before confidence (k0: 0.9)
    kept, _ = select_passing(cands, wanted=5, rules=rules, fill=True)
    assert _status(kept) == [("k0", "filled"), ("k1", "filled"), ("k3", "passed"), ("k4", "passed"), ("k5", "passed")]
    kept, _ = select_passing(cands, wanted=4, rules=rules, fill=True)
    assert [k for k, _ in _status(kept)] == ["k1", "k3", "k4", "k5"]


def test_select_images_applies_each_strategys_own_filters():
    rows = []
    for strategy in ("ST", "ST+RF", "ST+CF+RF"):
        for i, (share, conf) in enumerate([(0.0, 0.9), (1.0, 0.05), (1.0, 0.9)]):
            row = {"key": f"{strategy}-{i}", "strategy": strategy, "class_index": 0, "index": i}
            if strategy != "ST":
                row.update(rf_own_share=share, cf_confidence=conf)  # ST+RF's rows ignore the confidence
            rows.append(row)
    kept, dropped = select_images(rows, images_per_class=1, threshold=0.1, fill=False)
    assert [r["key"] for r in kept] == ["ST-0", "ST-1", "ST-2", "ST+RF-1", "ST+CF+RF-2"]
    assert {r["key"]: r["filter_status"] for r in dropped} == {
        "ST+RF-0": "real_filter", "ST+RF-2": "surplus", "ST+CF+RF-0": "real_filter", "ST+CF+RF-1": "below_threshold"}


def test_own_share_by_hand():
    real = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    real_labels = np.array([0, 1, 1, 0])
    gen = np.array([[1.0, 0.02], [0.05, 1.0]])  # nearest: 0, 1, 3, 2 and 2, 3, 1, 0
    np.testing.assert_allclose(own_share(gen, [0, 1], real, real_labels, neighbours=1), [1.0, 1.0])
    np.testing.assert_allclose(own_share(gen, [0, 1], real, real_labels, neighbours=2), [0.5, 0.5])
    np.testing.assert_allclose(own_share(gen, [0, 1], real, real_labels, neighbours=3), [2 / 3, 2 / 3])
    np.testing.assert_array_equal(real_filter_mask(gen, [1, 0], real, real_labels, neighbours=3), [False, False])


def test_own_share_with_label_vectors_by_hand():
    """VOC-2007-style label vectors: a neighbour counts as own when it shares a class."""
    real = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    real_sets = np.array([[1, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0]])
    gen = np.array([[1.0, 0.02], [0.05, 1.0]])  # nearest: 0, 1, 3, 2 and 2, 3, 1, 0
    gen_sets = np.array([[0, 0, 1], [1, 1, 0]])
    # image 0 {2}: real 0 {0,2} shares, real 1 {1} not, real 3 {0} not; image 1 {0,1}: real 2 {1,2}, real 3 {0}, real 1 {1} all share
    np.testing.assert_allclose(own_share(gen, gen_sets, real, real_sets, neighbours=1), [1.0, 1.0])
    np.testing.assert_allclose(own_share(gen, gen_sets, real, real_sets, neighbours=3), [1 / 3, 1.0])
    np.testing.assert_array_equal(real_filter_mask(gen, gen_sets, real, real_sets, neighbours=3), [False, True])
    one_hot = np.eye(2, dtype=int)
    np.testing.assert_allclose(own_share(gen, one_hot[[0, 1]], real, one_hot[[0, 1, 1, 0]], neighbours=3),
                               own_share(gen, [0, 1], real, [0, 1, 1, 0], neighbours=3))
    np.testing.assert_allclose(own_share(gen, [2, 0], real, real_sets, neighbours=3), [1 / 3, 1 / 3])


def _write_originals(directory: Path, per_class: int, classes=range(10)) -> pd.DataFrame:
    train = DIGITS.loader("train", None, 32)
    idx = [i for c in classes for i in np.flatnonzero(train.labels == c)[:per_class]]
    rows = [{"key": f"digits-original-{n:06d}", "class_index": int(train.labels[i]), "class_name": str(train.labels[i])}
            for n, i in enumerate(idx)]
    return storage.write_image_set(directory, train.images[idx], rows)


def _clip_features(bundle, images) -> np.ndarray:
    """Normalised image features straight from open_clip's encoder (not the kit's encode path)."""
    with torch.no_grad():
        feats = bundle.model.encode_image(torch.stack([bundle.preprocess(Image.fromarray(x)) for x in images])).double()
    return (feats / feats.norm(dim=1, keepdim=True)).numpy()


def test_worker_own_share_is_an_independent_nearest_neighbour_vote(tmp_path):
    originals = _write_originals(tmp_path / "original", per_class=3)
    settings = GenerationSettings(height=32, width=32, steps=2, guidance_scale=4.0, batch_size=2)
    worker = GenerationWorker("tiny-sd", settings, filter_model="tiny-clip", classnames=tuple(DIGITS.classnames),
                              templates=tuple(DIGITS.templates), cpu_threads=1, real_filter_set=str(tmp_path / "original"),
                              filtered_strategies=frozenset({"ST+CF+RF"}), real_filtered_strategies=frozenset({"ST+RF", "ST+CF+RF"}),
                              rf_neighbours=3)
    maker = ShardMaker(worker)
    assert maker.loaded.identity["rf_originals_sha256"] == references_sha256(originals)
    jobs = plan_jobs(DIGITS, ["ST+RF", "ST+CF+RF"], 2, global_seed=0)  # 20 + 20 jobs, class-major
    test = DIGITS.loader("test", None, 32)
    images = list(test.images[: len(jobs)])  # real digits, labelled by the jobs' classes: some agree, most do not
    maker.images.batch_size_of.update({j.key: 2 for j in jobs})
    rows = maker.row_fields(jobs, images)
    got = np.array([r["rf_own_share"] for r in rows])
    labels = np.array([j.class_index for j in jobs])

    bundle = maker.loaded.clip_filter.bundle
    gen, real = _clip_features(bundle, np.stack(images)), _clip_features(bundle, storage.load_image_set(tmp_path / "original")[0])
    real_labels = originals["class_index"].to_numpy()
    _, nearest = NearestNeighbors(n_neighbors=3, metric="cosine").fit(real).kneighbors(gen)
    expected = (real_labels[nearest] == labels[:, None]).mean(axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_array_equal(got >= 0.5, real_filter_mask(gen, labels, real, real_labels, neighbours=3))
    assert 0 < (got >= 0.5).sum() < len(got) and len(set(got)) > 2
    cf = [i for i, j in enumerate(jobs) if j.strategy == "ST+CF+RF"]
    assert all("cf_confidence" not in rows[i] for i in range(len(jobs)) if i not in cf)
    np.testing.assert_allclose([rows[i]["cf_confidence"] for i in cf],
                               maker.loaded.clip_filter.confidence(np.stack([images[i] for i in cf]), labels[cf]), rtol=1e-12)


CLASSES = 3
PER_CLASS = 2


def _project(root: Path, originals: int = CLASSES, **overrides) -> Path:
    """A digits project of CLASSES classes, two k-shot originals each of the first `originals`."""
    meta = {**DIGITS.metadata(), "classnames": [str(c) for c in range(CLASSES)]}
    storage.atomic_write_json(root / "data" / "digits" / "prepared" / "meta.json", meta)
    if originals:
        _write_originals(root / "data" / "digits" / "prepared" / "original", per_class=2, classes=range(originals))
    settings = {"model": "tiny-sd", "strategies": ["ST+RF"], "images_per_class": PER_CLASS, "steps": 2, "batch_size": 2,
                "shard_size": 4, "cf_model": "tiny-clip", "cf_pretrained": None, "cf_oversample": 1.0, "cf_fill": True,
                "rf_neighbours": 1, **overrides}
    (root / "params.yaml").write_text(yaml.safe_dump({"profile": "embedded", "datasets": ["digits"], "generate": settings}))
    return root


def _run(root: Path, monkeypatch):
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    return CliRunner().invoke(generate.command, [])


def _outputs(root: Path):
    out = root / "data" / "digits" / "generated"
    return storage.read_manifest(out), pd.read_parquet(out / storage.DROPPED)


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    root = _project(tmp_path_factory.mktemp("rf"))
    with pytest.MonkeyPatch.context() as mp:
        result = _run(root, mp)
    assert result.exit_code == 0, (result.output, result.exception)
    manifest, dropped = _outputs(root)
    meter = json.loads((root / "meter" / "datasets" / "digits" / "generate.json").read_text())
    return {"root": root, "output": result.output, "manifest": manifest, "dropped": dropped, "meter": meter}


def test_stage_keeps_n_per_class_and_records_why_the_rest_were_dropped(stage):
    kept, dropped = stage["manifest"], stage["dropped"]
    assert kept.groupby("class_index").size().to_dict() == {c: PER_CLASS for c in range(CLASSES)}
    assert len(kept) + len(dropped) == CLASSES * PER_CLASS * 2  # cf_oversample 1.0: twice the candidates
    assert set(dropped.filter_status) <= {"real_filter", "surplus"} and "real_filter" in set(dropped.filter_status)
    assert (dropped[dropped.filter_status == "real_filter"].rf_own_share < 0.5).all()
    assert (kept[kept.filter_status == "passed"].rf_own_share >= 0.5).all()
    for cls in range(CLASSES):  # the first passing candidates in index order, filled only when short
        k, d = kept[kept.class_index == cls], dropped[dropped.class_index == cls]
        passing = sorted(pd.concat([k, d]).query("rf_own_share >= 0.5")["index"])
        assert sorted(k[k.filter_status == "passed"]["index"]) == passing[:PER_CLASS]
        assert (k.filter_status == "filled").sum() == max(0, PER_CLASS - len(passing))
    originals = storage.read_manifest(stage["root"] / "data" / "digits" / "prepared" / "original", ("class_index",))
    assert set(kept.rf_originals_sha256) == {references_sha256(originals)} and set(kept.rf_neighbours) == {1}
    assert "cf_confidence" not in kept.columns and "dropped by CF/RF" in stage["output"]


def test_cost_per_image_counts_the_kept_images(stage):
    priced = stage["meter"]["priced"]
    assert priced["items"] == len(stage["manifest"]) == CLASSES * PER_CLASS
    assert priced["usd_per_image"] == pytest.approx(priced["usd_total"] / len(stage["manifest"]))


def test_rerun_makes_nothing_and_new_neighbours_remake_the_shards(stage, monkeypatch):
    root = stage["root"]
    again = _run(root, monkeypatch)
    assert again.exit_code == 0 and "(0 made now" in again.output
    pd.testing.assert_frame_equal(_outputs(root)[0], stage["manifest"])
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["generate"]["rf_neighbours"] = 3
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        changed = _run(root, monkeypatch)
        assert changed.exit_code == 0 and f"({CLASSES * PER_CLASS * 2} made now" in changed.output
        manifest, dropped = _outputs(root)
        assert set(manifest.rf_neighbours) == {3} and set(pd.concat([manifest, dropped]).rf_own_share) <= {0, 1 / 3, 2 / 3, 1}
        sha = dict(zip(stage["manifest"].key, stage["manifest"].sha256))
        assert all(sha[k] == s for k, s in zip(manifest.key, manifest.sha256) if k in sha)  # same pixels, new verdicts
    finally:
        params["generate"]["rf_neighbours"] = 1
        (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_rf_without_originals_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    root = _project(tmp_path, originals=0)
    result = _run(root, monkeypatch)
    assert "RF compares with the k-shot originals" in str(result.exception)
    assert not (root / "data" / "digits" / "generated").exists()


def test_originals_lacking_a_class_are_refused(tmp_path, monkeypatch):
    root = _project(tmp_path, originals=CLASSES - 1)
    result = _run(root, monkeypatch)
    assert f"has none of class '{CLASSES - 1}'" in str(result.exception)
    assert not (root / "data" / "digits" / "generated").exists()


def test_more_neighbours_than_originals_is_refused(tmp_path, monkeypatch):
    root = _project(tmp_path, rf_neighbours=7)
    result = _run(root, monkeypatch)
    assert "'generate.rf_neighbours' = 7 exceeds the 6 k-shot originals" in str(result.exception)
