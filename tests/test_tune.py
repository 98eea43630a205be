"""He et al.'s classifier tuning (genbench/tune.py), Real Filtering and the `tune` stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genbench import storage
from genbench.features import save_features
from genbench.metrics import zero_shot
from genbench.strategies.real_filter import real_filter_mask
from genbench.tune import clip_soft_targets, soft_cross_entropy, tune_head, tune_scores, zero_shot_head
from tests.conftest import run_genbench, write_params


def _clusters(rng, n_per_class, centres, noise=0.6):
    labels = np.repeat(np.arange(len(centres)), n_per_class)
    return (centres[labels] + noise * rng.standard_normal((len(labels), centres.shape[1]))).astype(np.float32), labels


def test_soft_cross_entropy_matches_torch_cross_entropy_with_probability_targets():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.standard_normal((7, 4)))
    targets = torch.softmax(torch.tensor(rng.standard_normal((7, 4))), dim=1)
    assert soft_cross_entropy(logits, targets).item() == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-12)


def test_sce_targets_by_hand():
    text = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    feats = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # class-0 CLIP scores: 1, 1/sqrt(2), 0
    targets = clip_soft_targets(feats, np.array([0, 0, 0]), text)
    np.testing.assert_allclose(targets[:, 0], [1.0, (2 ** -0.5) / 1.0, 0.0])
    np.testing.assert_allclose(targets[:, 1], (1 - targets[:, 0]) / 2)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)


def test_zero_tuning_steps_give_the_zero_shot_score_and_weights():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3, 8))
    text = centres + 0.8 * rng.standard_normal((3, 8))
    gen, gen_labels = _clusters(rng, 20, centres)
    test, test_labels = _clusters(rng, 30, centres)
    w0 = zero_shot_head(text)
    np.testing.assert_allclose(w0, text / np.linalg.norm(text, axis=1, keepdims=True))
    np.testing.assert_array_equal(tune_head(w0, gen, np.eye(3)[gen_labels], steps=0, lr=0.1), w0)
    for metric in ("accuracy", "map_11point"):
        scores = tune_scores(gen, gen_labels, test, test_labels, text, metric=metric, ranking="softmax", steps=0, lr=0.1)
        expected = zero_shot(test, test_labels, text, metric=metric)
        assert scores["zero_shot"] == pytest.approx(expected) and scores["ce"] == pytest.approx(expected)
        assert scores["sce"] == pytest.approx(expected)


def test_ce_tuning_moves_the_head_towards_the_generated_classes():
    rng = np.random.default_rng(2)
    centres = 3 * rng.standard_normal((3, 8))
    text = centres[[1, 2, 0]]  # a zero-shot classifier that names every class wrongly
    gen, gen_labels = _clusters(rng, 30, centres)
    test, test_labels = _clusters(rng, 30, centres)
    scores = tune_scores(gen, gen_labels, test, test_labels, text, metric="accuracy", ranking="softmax", steps=200, lr=0.05)
    assert scores["zero_shot"] < 40 and scores["ce"] > 90


def test_real_filter_by_hand():
    real = np.array([[1.0, 0.0], [0.0, 1.0]])
    real_labels = np.array([0, 1])
    gen = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [5.0, 1.0]])
    gen_labels = np.array([0, 0, 1, 1])  # 2nd: nearest real is class 1; 4th: nearest real is class 0
    np.testing.assert_array_equal(real_filter_mask(gen, gen_labels, real, real_labels), [True, False, True, False])
    three = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])  # neighbours 2: one vote each way is kept
    np.testing.assert_array_equal(
        real_filter_mask(np.array([[0.7, 0.7]]), np.array([1]), three, np.array([0, 1, 1]), neighbours=3), [True])
    np.testing.assert_array_equal(
        real_filter_mask(np.array([[1.0, 0.05]]), np.array([1]), three, np.array([0, 0, 1]), neighbours=3), [False])


def _write_dataset(root, rng):
    data = root / "data" / "digits"
    centres = 2 * rng.standard_normal((10, 16))
    text = centres + 0.5 * rng.standard_normal((10, 16))
    sets = {"generated": _clusters(rng, 8, centres), "original": _clusters(rng, 4, centres), "test": _clusters(rng, 10, centres)}
    for name, (feats, labels) in sets.items():
        save_features(data / "features" / f"{name}.safetensors", feats, labels, {})
    save_features(data / "features" / "text.safetensors", text.astype(np.float32), np.arange(10), {})
    labels = sets["generated"][1]
    storage.write_manifest(data / "generated", [{"key": f"k{i}", "class_index": int(c), "strategy": "ST"} for i, c in enumerate(labels)])
    meta = {"classnames": [str(c) for c in range(10)], "metric": "accuracy", "task": "multiclass", "name": "digits", "templates": ["{c}"]}
    (data / "prepared").mkdir(parents=True)
    (data / "prepared" / "meta.json").write_text(json.dumps(meta))
    return sets, text


def test_tune_stage_end_to_end(tmp_path):
    sets, text = _write_dataset(tmp_path, np.random.default_rng(3))
    write_params(tmp_path, {"tune": {"steps": 50}})
    run_genbench(["tune", "--dataset", "digits"], tmp_path)
    result = json.loads((tmp_path / "metrics" / "digits" / "tune.json").read_text())
    gen, gen_labels = sets["generated"]
    mask = real_filter_mask(gen, gen_labels, *sets["original"])
    expected = tune_scores(gen[mask], gen_labels[mask], *sets["test"], text, metric="accuracy", ranking="softmax", steps=50, lr=1e-3)
    assert result["images"] == len(gen) and result["images_kept"] == int(mask.sum())
    for key in ("zero_shot", "ce", "sce"):
        assert result[key] == pytest.approx(expected[key])
    assert result["zero_shot"] == pytest.approx(zero_shot(*sets["test"], text))


def test_tune_stage_refuses_a_bad_step_count(tmp_path):
    _write_dataset(tmp_path, np.random.default_rng(4))
    write_params(tmp_path, {"tune": {"steps": -1}})
    proc = run_genbench(["tune", "--dataset", "digits"], tmp_path, check=False)
    assert proc.returncode == 2 and "steps" in proc.stderr and not (tmp_path / "metrics" / "digits" / "tune.json").exists()


def test_he_table1_puts_the_run_beside_the_published_rows():
    from genbench.tables.he_table1 import he_table1
    from genbench.tables.reference import read_reference
    from tests.conftest import ROOT

    published = read_reference(ROOT / "reports" / "reference", "he2023_table1")
    table = he_table1(published, {"digits": {"zero_shot": 80.0, "ce": 85.0, "sce": 82.0}})
    cifar = [r.cells for r in table.rows if r.cells[0] == "CIFAR-10"]
    assert cifar[0][3:] == [70.31, None, 80.06] and cifar[2][3:] == [None, None, None]
    assert table.rows[-1].cells == ["digits (kit only)", "-", "reproduced (run's CLIP)", 80.0, 85.0, 82.0]
    assert table.reproduced_cells() == (3, 3 * (len(published) - 1 + 1))
