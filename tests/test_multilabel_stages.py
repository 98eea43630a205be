"""VOC 2007 end to end as a multi-label dataset, and Hateful Memes as a ROC AUC one: prepare reads a
tiny copy in the dataset's own on-disk layout, then generate (tiny-sd), embed (tiny-clip), cler,
probe and quality run in process. Every score in the stages' JSON is recomputed here from the
saved feature files with numpy, scipy and scikit-learn (scipy's softmax for the published ranking
scores, precision_recall_curve for 11-point mAP, roc_auc_score, LogisticRegression), not with the
kit's metric code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve, roc_auc_score

from conftest import write_params
from genbench import quality as quality_metrics
from genbench import storage
from genbench.features import load_features
from stages.frame.cli import cli
from test_datasets_labelmaps import write_memes
from voc2007_layout import write_voc2007

STAGES = ("prepare", "generate", "embed", "cler", "probe", "quality", "shots")
FAST = {
    "prepare": {"shots": 2},
    "generate": {"strategies": ["ST", "DT"], "steps": 2, "batch_size": 8, "shard_size": 16},
    "embed": {"device": "cpu"},
    "cler": {"timing_repeats": 1},
    "quality": {"device": "cpu", "timing_repeats": 1, "timing_warmup": 0},
}


def sklearn_eleven_point_map(scores: np.ndarray, multi_hot: np.ndarray) -> float:
    """PASCAL VOC 2007 11-point mAP (percent) from scikit-learn's precision-recall curve, without
    the curve's closing (recall 0, precision 1) point, which is no threshold (VOCevalcls.m has none)."""
    aps = []
    for c in np.flatnonzero(multi_hot.sum(axis=0) > 0):
        precision, recall, _ = precision_recall_curve(multi_hot[:, c], scores[:, c])
        precision, recall = precision[:-1], recall[:-1]
        aps.append(np.mean([precision[recall >= t].max() if np.any(recall >= t) else 0.0
                            for t in np.linspace(0, 1, 11)]))
    return 100.0 * float(np.mean(aps))


def unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def prototype_logits(train: np.ndarray, members: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Cosine logits of test rows against per-class means of the member rows (members (N, C) 0/1)."""
    sums = members.T.astype(np.float64) @ unit(train)
    return unit(test) @ unit(sums / members.sum(axis=0)[:, None]).T


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return labels if labels.ndim == 2 else np.eye(classes, dtype=np.int64)[labels]


def run_stages(root: Path, dataset: str, data_root: Path, monkeypatch, images_per_class: int = 1) -> dict:
    """Run every stage for `dataset` in `root`; returns what the quality stage's timed probe got."""
    overrides = {**FAST, "datasets": [dataset], "prepare": {**FAST["prepare"], "data_root": str(data_root)},
                 "generate": {**FAST["generate"], "images_per_class": images_per_class}}
    write_params(root, overrides)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("GENBENCH_SYSTEM_METRICS", "0")
    timed_probe = {}
    real_probe = quality_metrics.linear_probe

    def recording_probe(train_feats, train_labels, test_feats, test_labels, **kwargs):
        timed_probe.update(train_labels=np.asarray(train_labels), test_labels=np.asarray(test_labels), **kwargs)
        return real_probe(train_feats, train_labels, test_feats, test_labels, **kwargs)

    monkeypatch.setattr(quality_metrics, "linear_probe", recording_probe)
    for stage in STAGES:
        result = CliRunner().invoke(cli, stage.split())
        assert result.exit_code == 0, f"{stage}: {result.output}"
    return timed_probe


def read_json(root: Path, dataset: str, name: str) -> dict:
    return json.loads((root / "metrics" / dataset / f"{name}.json").read_text())


def features(root: Path, dataset: str, name: str):
    feats, labels, _ = load_features(root / "data" / dataset / "features" / f"{name}.safetensors")
    return feats, labels


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    expected = write_voc2007(root / "raw")
    with pytest.MonkeyPatch.context() as mp:
        timed_probe = run_stages(root, "voc-2007", root / "raw", mp)
    return root, expected, timed_probe


def test_voc_manifests_and_features_keep_the_label_vectors(voc):
    root, expected, _ = voc
    prepared = root / "data" / "voc-2007" / "prepared"
    test_manifest = storage.read_manifest(prepared / "test")
    assert [list(v) for v in test_manifest["labels"]] == [np.flatnonzero(r).tolist() for r in expected["test"]]
    assert test_manifest["class_index"].tolist() == [int(np.flatnonzero(r)[0]) for r in expected["test"]]
    original = storage.read_manifest(prepared / "original")
    assert original["class_index"].tolist() == np.repeat(np.arange(20), 2).tolist()  # the class drawn for
    source_rows = expected["train"][original["source_index"].to_numpy()]
    assert [list(v) for v in original["labels"]] == [np.flatnonzero(r).tolist() for r in source_rows]
    assert all(row[c] == 1 for row, c in zip(source_rows, original["class_index"]))
    assert original["source_index"].is_unique

    _, test_labels = features(root, "voc-2007", "test")
    _, original_labels = features(root, "voc-2007", "original")
    _, generated_labels = features(root, "voc-2007", "generated")
    assert np.array_equal(test_labels, expected["test"]) and np.array_equal(original_labels, source_rows)
    generated = storage.read_manifest(root / "data" / "voc-2007" / "generated")
    assert generated_labels.ndim == 1 and generated_labels.tolist() == generated["class_index"].tolist()


def test_voc_cler_is_11_point_map_on_multi_label_targets(voc):
    root, _, _ = voc
    result = read_json(root, "voc-2007", "cler")
    assert result["metric"] == "map_11point"
    test_feats, test_labels = features(root, "voc-2007", "test")
    text_feats, _ = features(root, "voc-2007", "text")
    zero_shot_logits = unit(test_feats) @ unit(text_feats).T  # ranked by softmax(100 x cosines), as released
    assert result["zero_shot"] == pytest.approx(
        sklearn_eleven_point_map(log_softmax(100 * zero_shot_logits, axis=1), test_labels), abs=1e-6)
    gen_feats, gen_labels = features(root, "voc-2007", "generated")
    strategies = storage.read_manifest(root / "data" / "voc-2007" / "generated")["strategy"].to_numpy()
    sets = {"generated": (gen_feats, gen_labels), "original": features(root, "voc-2007", "original")}
    sets.update({f"generated/{s}": (gen_feats[strategies == s], gen_labels[strategies == s]) for s in ("ST", "DT")})
    assert set(result["sets"]) == set(sets)
    for name, (feats, labels) in sets.items():
        logits = prototype_logits(feats, one_hot(labels, 20), test_feats)
        scores = result["sets"][name]
        assert scores["cler"] == pytest.approx(
            sklearn_eleven_point_map(log_softmax(logits, axis=1), test_labels), abs=1e-6), name
        ensemble = (softmax(logits, axis=1) + softmax(100 * zero_shot_logits, axis=1)) / 2
        assert scores["cler_ensemble"] == pytest.approx(sklearn_eleven_point_map(ensemble, test_labels), abs=1e-6)
        predicted = (unit(feats) @ unit(text_feats).T).argmax(axis=1)
        agreement = 100 * np.mean(one_hot(labels, 20)[np.arange(len(feats)), predicted] == 1)
        assert scores["label_agreement"] == pytest.approx(agreement)


def test_voc_probe_is_one_vs_rest_scored_with_11_point_map(voc):
    root, _, _ = voc
    result = read_json(root, "voc-2007", "probe")
    assert result["metric"] == "map_11point"
    test_feats, test_labels = features(root, "voc-2007", "test")
    for name, (feats, labels) in {"original": features(root, "voc-2007", "original"),
                                  "generated": features(root, "voc-2007", "generated")}.items():
        out = result["sets"][name]
        targets = one_hot(labels, 20)
        scores = np.column_stack([
            LogisticRegression(C=out["sklearn_C"], tol=1e-10, max_iter=10000).fit(unit(feats), targets[:, c])
            .decision_function(unit(test_feats)) for c in range(20)
        ])
        assert out["score"] == pytest.approx(sklearn_eleven_point_map(scores, test_labels), abs=0.5), name


def test_voc_shot_curves_are_11_point_map(voc):
    root, _, _ = voc
    sources = read_json(root, "voc-2007", "shots")["sources"]
    assert [p["shots"] for p in sources["original"]] == [1, 2]  # drawn by the class each image was drawn for
    assert [p["shots"] for p in sources["generated"]] == [1, 2]  # one image per class and strategy
    test_feats, test_labels = features(root, "voc-2007", "test")
    for name in ("generated", "original"):
        feats, labels = features(root, "voc-2007", name)
        logits = prototype_logits(feats, one_hot(labels, 20), test_feats)
        whole = sklearn_eleven_point_map(log_softmax(logits, axis=1), test_labels)
        assert sources[name][-1]["draws"] == 1 and sources[name][-1]["cler"] == pytest.approx(whole, abs=1e-6), name


def test_voc_quality_times_a_multi_label_probe(voc):
    root, _, timed_probe = voc
    assert timed_probe["metric"] == "map_11point"
    assert timed_probe["train_labels"].shape[1] == 20 and timed_probe["test_labels"].shape[1] == 20
    assert np.all(timed_probe["train_labels"].sum(axis=1) == 1)  # generated images: one-hot, their prompt's class
    assert read_json(root, "voc-2007", "quality")["seconds"]["probe"][0] > 0


@pytest.fixture(scope="module")
def memes(tmp_path_factory):
    root = tmp_path_factory.mktemp("memes")
    rng = np.random.default_rng(3)
    write_memes(root / "raw", "train.jsonl", [(100 + i, i % 2) for i in range(8)])
    write_memes(root / "raw", "dev_seen.jsonl", [(200 + i, int(v)) for i, v in enumerate(rng.integers(0, 2, 24))])
    with pytest.MonkeyPatch.context() as mp:
        timed_probe = run_stages(root, "hateful-memes", root / "raw", mp, images_per_class=3)
    return root, timed_probe


def test_hateful_memes_is_scored_with_roc_auc_of_class_1(memes):
    root, timed_probe = memes
    test_feats, test_labels = features(root, "hateful-memes", "test")
    assert test_labels.ndim == 1 and set(test_labels.tolist()) == {0, 1}
    cler_json, probe_json = read_json(root, "hateful-memes", "cler"), read_json(root, "hateful-memes", "probe")
    assert cler_json["metric"] == probe_json["metric"] == timed_probe["metric"] == "roc_auc"
    text_feats, _ = features(root, "hateful-memes", "text")
    zero_shot_logits = unit(test_feats) @ unit(text_feats).T
    assert cler_json["zero_shot"] == pytest.approx(100 * roc_auc_score(test_labels == 1, zero_shot_logits[:, 1]
                                                                       - zero_shot_logits[:, 0]))
    for name in ("generated", "original"):
        feats, labels = features(root, "hateful-memes", name)
        logits = prototype_logits(feats, one_hot(labels, 2), test_feats)
        auc = 100 * roc_auc_score(test_labels == 1, logits[:, 1] - logits[:, 0])
        assert cler_json["sets"][name]["cler"] == pytest.approx(auc), name
        # a softmax probe over two classes with penalty l2/2 ||W||^2 is a binary logistic
        # regression on the margin with penalty l2/4 ||w||^2, i.e. scikit-learn's C doubled
        out = probe_json["sets"][name]
        margin = LogisticRegression(C=2 * out["sklearn_C"], tol=1e-10, max_iter=10000).fit(
            unit(feats), labels == 1).decision_function(unit(test_feats))
        assert out["score"] == pytest.approx(100 * roc_auc_score(test_labels == 1, margin), abs=1.0), name
    assert timed_probe["train_labels"].ndim == 1
