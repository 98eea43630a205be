"""The finetune stage: the fine-tuning loop (genbench.finetune) and the stage end to end."""

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from genbench.clip_models import load_clip
from genbench.features import encode_images
from genbench.finetune import FinetuneSettings, finetune_encoder, kshot_indices
from tests.conftest import run_genbench, write_params


def _digits_like(seed: int, per_class: int, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class sets a bright band's row: learnable, not separable by chance."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    images = rng.integers(0, 60, size=(len(labels), 32, 32, 3), dtype=np.uint8)
    for i, c in enumerate(labels):
        images[i, 4 + 9 * c: 10 + 9 * c] = 230
    return images, labels


@pytest.fixture(scope="module")
def tiny():
    return load_clip("tiny-clip", seed=0)


def test_fine_tuning_reduces_the_training_loss_and_is_deterministic_per_seed(tiny):
    train, labels = _digits_like(0, 5)
    test, test_labels = _digits_like(1, 4)
    settings = FinetuneSettings(epochs=4, batch_size=8, learning_rate=1e-3, head_learning_rate=1e-2, seed=3)
    first = finetune_encoder(tiny, train, labels, test, test_labels, num_classes=3, metric="accuracy", settings=settings)
    again = finetune_encoder(tiny, train, labels, test, test_labels, num_classes=3, metric="accuracy", settings=settings)
    assert first["train_loss"][-1] < 0.5 * first["train_loss"][0]
    assert first == again
    other = finetune_encoder(tiny, train, labels, test, test_labels, num_classes=3, metric="accuracy",
                             settings=FinetuneSettings(epochs=4, batch_size=8, learning_rate=1e-3, head_learning_rate=1e-2, seed=4))
    assert other["train_loss"] != first["train_loss"]


def test_the_bundle_is_left_untouched(tiny):
    train, labels = _digits_like(0, 5)
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    finetune_encoder(tiny, train, labels, train, labels, num_classes=3, metric="accuracy",
                     settings=FinetuneSettings(epochs=2, batch_size=8, learning_rate=1e-2))
    assert all(torch.equal(before[k], v) for k, v in tiny.model.state_dict().items())


def test_zero_epochs_is_the_linear_probe_sklearn_fits_on_the_same_features(tiny):
    train, labels = _digits_like(0, 5)
    test, test_labels = _digits_like(1, 6)
    l2 = 1e-2
    out = finetune_encoder(tiny, train, labels, test, test_labels, num_classes=3, metric="accuracy",
                           settings=FinetuneSettings(epochs=0, head_l2=l2))
    feats = encode_images(tiny, train, progress=False).astype(np.float64)
    test_feats = encode_images(tiny, test, progress=False).astype(np.float64)
    norm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    clf = LogisticRegression(C=1.0 / (len(feats) * l2), tol=1e-10, max_iter=10000).fit(norm(feats), labels)
    expected = 100.0 * np.mean(clf.predict(norm(test_feats)) == test_labels)
    assert out["score"] == out["head_only_score"] == pytest.approx(expected)
    assert out["sklearn_C"] == pytest.approx(1.0 / (len(feats) * l2))
    assert len(out["train_loss"]) == 1
    # the head's training loss is sklearn's data term at its optimum
    probs = clf.predict_proba(norm(feats))
    assert out["train_loss"][0] == pytest.approx(-np.mean(np.log(probs[np.arange(len(labels)), labels])), rel=1e-3)


def test_kshot_indices_draw_at_most_k_per_class_by_seed():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    picked = kshot_indices(labels, 2, seed=0)
    assert np.bincount(labels[picked]).tolist() == [2, 2, 2]
    assert picked.tolist() == kshot_indices(labels, 2, seed=0).tolist()
    assert len(set(picked.tolist())) == len(picked)


def test_the_stage_end_to_end_writes_a_score_per_set(tmp_path):
    write_params(tmp_path, {"finetune": {"model": "tiny-clip", "epochs": 1, "shots": 2, "sets": ["generated", "original"]}})
    for stage in ("prepare", "generate", "finetune"):
        run_genbench([stage, "--dataset", "digits"], tmp_path)
    result = json.loads((tmp_path / "metrics/digits/finetune.json").read_text())
    assert result["metric"] == "accuracy" and set(result["sets"]) == {"generated", "original"}
    for name, s in result["sets"].items():
        assert s["images"] == 2 * 10 and len(s["train_loss"]) == 2 and 0 <= s["score"] <= 100


def test_a_bad_set_name_is_one_line_error_with_exit_2(tmp_path):
    write_params(tmp_path, {"finetune": {"model": "tiny-clip", "sets": ["generatd"]}})
    proc = run_genbench(["finetune", "--dataset", "digits"], tmp_path, check=False)
    assert proc.returncode == 2 and "finetune.sets" in proc.stderr and not (tmp_path / "metrics/digits/finetune.json").exists()


def test_backbone_scores_match_nearest_prototype_and_sklearn_by_hand():
    from genbench.backbones import backbone_scores

    rng = np.random.default_rng(0)
    centres = np.eye(3, 8)
    labels = np.repeat(np.arange(3), 6)
    feats = centres[labels] + 0.4 * rng.standard_normal((18, 8))
    test_labels = np.repeat(np.arange(3), 5)
    test = centres[test_labels] + 0.6 * rng.standard_normal((15, 8))
    out = backbone_scores({"generated": (feats, labels)}, (test, test_labels), centres, num_classes=3, metric="accuracy")
    norm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    protos = norm(np.stack([norm(feats)[labels == c].mean(0) for c in range(3)]))
    expected_cler = 100.0 * np.mean(np.argmax(norm(test) @ protos.T, axis=1) == test_labels)
    s = out["sets"]["generated"]
    assert s["cler"] == pytest.approx(expected_cler) and s["images"] == 18
    assert 0 <= s["probe"] <= 100


def test_figure10_pairs_each_fine_tuned_set_with_its_cler_and_figure11_needs_two_backbones(tmp_path):
    from genbench.figures.backbones_figure import ONE_BACKBONE, draw_figure11, figure11_points
    from genbench.figures.finetune_figure import draw_figure10, figure10_points

    cler = {"sets": {"generated": {"cler": 80.0}, "original": {"cler": 90.0}}}
    tuned = {"sets": {"generated": {"score": 85.0}, "original": {"score": 95.0}}}
    probe = {"sets": {"generated": {"score": 82.0}}}
    results = {"digits": {"cler": cler, "finetune": tuned, "probe": probe, "backbones": None}}
    assert figure10_points(results) == [{"x": 80.0, "y": 85.0, "label": "digits: generated"},
                                        {"x": 90.0, "y": 95.0, "label": "digits: original"}]
    assert draw_figure10(results, tmp_path / "f10.png") is None and (tmp_path / "f10.png").is_file()
    assert draw_figure11(results, "ViT-B-32|openai", tmp_path / "f11.png") == ONE_BACKBONE
    results["digits"]["backbones"] = {"backbones": {"RN50|openai": {"sets": {"generated": {"cler": 70.0, "probe": 75.0}}}}}
    assert figure11_points(results, "ViT-B-32|openai") == {
        "ViT-B-32|openai": [{"x": 80.0, "y": 82.0, "label": "digits: generated"}],
        "RN50|openai": [{"x": 70.0, "y": 75.0, "label": "digits: generated"}]}
    assert draw_figure11(results, "ViT-B-32|openai", tmp_path / "f11.png") is None
