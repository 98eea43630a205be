"""He et al.'s classifier tuning (genbench/tune.py), Real Filtering and the `tune` stage."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genbench import storage
from genbench.features import save_features
from genbench.metrics import zero_shot
from genbench.strategies.real_filter import real_filter_mask
from genbench.tune import (TuneSettings, score_head, sce_targets, soft_cross_entropy, tune_head, tune_scores, tuned_score,
                           zero_shot_head)
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
    text = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    feats = np.array([[0.51, 0.49, np.sqrt(1 - 0.51 ** 2 - 0.49 ** 2)], [1.0, 1.0, 0.0]])
    # zero-shot logits 100 * cos: (51, 49) and (70.7, 70.7); at T = 2 the teacher is softmax(25.5, 24.5) = (e, 1) / (1 + e)
    # and (1/2, 1/2); half of each target is the label's one-hot.
    targets = sce_targets(feats, np.array([1, 0]), text, soft_weight=0.5, soft_temperature=2.0)
    e = np.e
    np.testing.assert_allclose(targets, [[0.5 * e / (1 + e), 0.5 + 0.5 / (1 + e)], [0.75, 0.25]], rtol=1e-12)
    np.testing.assert_allclose(sce_targets(feats, np.array([1, 0]), text, soft_weight=0.0, soft_temperature=2.0),
                               [[0.0, 1.0], [1.0, 0.0]])


def test_zero_epochs_give_the_zero_shot_score_and_weights():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3, 8))
    text = centres + 0.8 * rng.standard_normal((3, 8))
    gen, gen_labels = _clusters(rng, 20, centres)
    test, test_labels = _clusters(rng, 30, centres)
    weights, bias = zero_shot_head(text)
    np.testing.assert_allclose(weights, 100 * text / np.linalg.norm(text, axis=1, keepdims=True))
    np.testing.assert_array_equal(bias, 0.0)
    assert tune_head((weights, bias), gen, np.eye(3)[gen_labels], TuneSettings(epochs=0))[0] is weights
    for metric in ("accuracy", "map_11point"):
        scores = tune_scores(gen, gen_labels, test, test_labels, text, TuneSettings(epochs=0), metric=metric, ranking="softmax")
        expected = zero_shot(test, test_labels, text, metric=metric)
        assert scores["zero_shot"] == pytest.approx(expected) and scores["ce"] == pytest.approx(expected)
        assert scores["sce"] == pytest.approx(expected)


@pytest.mark.parametrize("classes, soft_weight", [(4, 0.5), (2, 0.1)])
def test_tuning_equals_the_released_loop_written_with_torch_modules(classes, soft_weight):
    """The released ct_zsl.py --freeze-encoder loop, re-written with torch.nn.Linear, torch's AdamW,
    CosineAnnealingLR and F.cross_entropy on probability targets (one batch, so the shuffle cannot
    matter), from a wrong (rolled) zero-shot head."""
    rng = np.random.default_rng(5)
    centres = 2 * rng.standard_normal((classes, 6))
    text = centres[np.roll(np.arange(classes), 1)]
    gen, gen_labels = _clusters(rng, 15, centres, noise=0.3)
    settings = TuneSettings(epochs=12, batch_size=512, lr=2e-3, weight_decay=0.1, soft_weight=soft_weight,
                            soft_temperature=2.0)
    x = torch.from_numpy(gen / np.linalg.norm(gen, axis=1, keepdims=True)).double()
    prototypes = torch.from_numpy(text / np.linalg.norm(text, axis=1, keepdims=True)).double()
    head = torch.nn.Linear(6, classes).double()
    with torch.no_grad():
        head.weight.copy_(100 * prototypes)
        head.bias.zero_()
        teacher = torch.softmax(head(x) / 2.0, dim=1)
    target = (1 - soft_weight) * F.one_hot(torch.from_numpy(gen_labels), classes).double() + soft_weight * teacher
    optimiser = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=0.1, eps=1e-8)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=12, eta_min=0.0)
    for _ in range(12):
        optimiser.zero_grad()
        F.cross_entropy(head(x), target).backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        optimiser.step()
        schedule.step()
    targets = sce_targets(gen, gen_labels, text, soft_weight=soft_weight, soft_temperature=2.0)
    weights, bias = tune_head(zero_shot_head(text), gen, targets, settings)
    np.testing.assert_allclose(weights, head.weight.detach().numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(bias, head.bias.detach().numpy(), rtol=1e-6, atol=1e-8)


def test_mini_batches_follow_the_seed():
    rng = np.random.default_rng(6)
    centres = 2 * rng.standard_normal((3, 6))
    gen, gen_labels = _clusters(rng, 20, centres, noise=1.5)
    head = zero_shot_head(centres)
    run = lambda seed: tune_head(head, gen, np.eye(3)[gen_labels], TuneSettings(epochs=3, batch_size=7, seed=seed))[0]
    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_ce_tuning_moves_the_head_towards_the_generated_classes():
    rng = np.random.default_rng(2)
    centres = 3 * rng.standard_normal((3, 8))
    text = centres[[1, 2, 0]]  # a zero-shot classifier that names every class wrongly
    gen, gen_labels = _clusters(rng, 30, centres)
    test, test_labels = _clusters(rng, 30, centres)
    scores = tune_scores(gen, gen_labels, test, test_labels, text, TuneSettings(epochs=200, lr=0.5), metric="accuracy",
                         ranking="softmax")
    assert scores["zero_shot"] < 40 and scores["ce"] > 90


def test_best_test_epoch_is_the_maximum_of_the_per_epoch_scores():
    rng = np.random.default_rng(7)
    centres = 3 * rng.standard_normal((3, 8))
    text = centres[[1, 2, 0]]
    gen, gen_labels = _clusters(rng, 30, centres)
    test, test_labels = _clusters(rng, 30, centres)
    targets, head = np.eye(3)[gen_labels], zero_shot_head(text)
    per_epoch = []
    settings = TuneSettings(epochs=6, lr=0.3)
    tune_head(head, gen, targets, settings,
              on_epoch=lambda h: per_epoch.append(score_head(h, test, test_labels, metric="accuracy", ranking="softmax")))
    best = tuned_score(head, gen, targets, test, test_labels, replace(settings, select="best_test_epoch"),
                       metric="accuracy", ranking="softmax")
    last = tuned_score(head, gen, targets, test, test_labels, settings, metric="accuracy", ranking="softmax")
    assert len(per_epoch) == 6 and best == max(per_epoch) and last == per_epoch[-1]


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
    write_params(tmp_path, {"tune": {"epochs": 5, "batch_size": 32}})
    run_genbench(["tune", "--dataset", "digits"], tmp_path)
    result = json.loads((tmp_path / "metrics" / "digits" / "tune.json").read_text())
    gen, gen_labels = sets["generated"]
    mask = real_filter_mask(gen, gen_labels, *sets["original"])
    expected = tune_scores(gen[mask], gen_labels[mask], *sets["test"], text, TuneSettings(epochs=5, batch_size=32),
                           metric="accuracy", ranking="softmax")
    assert result["images"] == len(gen) and result["images_kept"] == int(mask.sum())
    for key in ("zero_shot", "ce", "sce"):
        assert result[key] == pytest.approx(expected[key])
    assert result["zero_shot"] == pytest.approx(zero_shot(*sets["test"], text))


def test_tune_stage_refuses_a_bad_epoch_count(tmp_path):
    _write_dataset(tmp_path, np.random.default_rng(4))
    write_params(tmp_path, {"tune": {"epochs": -1}})
    proc = run_genbench(["tune", "--dataset", "digits"], tmp_path, check=False)
    assert proc.returncode == 2 and "tune.epochs" in proc.stderr and not (tmp_path / "metrics" / "digits" / "tune.json").exists()


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
