import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from genbench.errors import GenBenchError
from genbench.metrics import evaluate
from genbench.probe import fit_logistic, linear_probe, stratified_split

CLASSES, DIMS = 8, 32


def _blobs(rows, seed, spread=0.3):
    """Overlapping Gaussian classes, balanced, L2-normalised (what the probe fits on)."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).normal(size=(CLASSES, DIMS))
    labels = rng.permutation(np.arange(rows) % CLASSES)
    feats = spread * centers[labels] + rng.normal(size=(rows, DIMS))
    return feats / np.linalg.norm(feats, axis=1, keepdims=True), labels


TRAIN = _blobs(400, seed=1)
TEST = _blobs(1000, seed=2)


@pytest.mark.parametrize("l2", [1e-2, 1e-4])
def test_matches_sklearn_at_the_same_l2(l2):
    (x, y), (x_test, y_test) = TRAIN, TEST
    result = linear_probe(x, y, x_test, y_test, l2_grid=[l2])
    reference = LogisticRegression(C=1 / (len(x) * l2), max_iter=10000, tol=1e-10).fit(x, y)
    assert result["sklearn_C"] == pytest.approx(reference.C)
    assert abs(result["score"] - 100 * np.mean(reference.predict(x_test) == y_test)) <= 0.5
    weight, bias, _ = fit_logistic(torch.tensor(x), torch.tensor(y), l2=l2, num_classes=CLASSES)
    probabilities = torch.softmax(torch.tensor(x_test) @ weight.T + bias, dim=1).numpy()
    np.testing.assert_allclose(probabilities, reference.predict_proba(x_test), atol=1e-3)


def test_multi_label_probe_matches_one_binary_sklearn_fit_per_class():
    (x, y), (x_test, y_test) = TRAIN, TEST
    l2 = 1e-3
    multi_hot, test_multi_hot = np.eye(CLASSES)[y], np.eye(CLASSES)[y_test]
    multi_hot[::3, 0] = 1  # overlapping labels
    result = linear_probe(x, multi_hot, x_test, test_multi_hot, metric="map_11point", l2_grid=[l2])
    binary = LogisticRegression(C=1 / (len(x) * l2), max_iter=10000, tol=1e-10)
    reference_scores = np.column_stack(
        [binary.fit(x, multi_hot[:, c]).decision_function(x_test) for c in range(CLASSES)]
    )
    assert abs(result["score"] - evaluate("map_11point", reference_scores, test_multi_hot)) <= 0.5


def test_probe_never_sees_the_test_set():
    (x, y), (x_test, y_test) = TRAIN, TEST
    rng = np.random.default_rng(3)
    honest = linear_probe(x, y, x_test, y_test)
    scrambled = linear_probe(x, y, rng.normal(size=x_test.shape), rng.permutation(y_test))
    for key in ("l2", "val_score", "val_loss", "grid_scores", "n_train", "n_val"):
        assert scrambled[key] == honest[key]
    assert scrambled["score"] != honest["score"]
    assert honest["selects_on_test"] is False and honest["protocol"] == "clean"


def test_l2_on_test_protocol_does_select_on_test_and_says_so():
    (x, y), (x_test, y_test) = TRAIN, TEST
    result = linear_probe(x, y, x_test, y_test, protocol="l2-on-test")
    scrambled = linear_probe(x, y, x_test, np.random.default_rng(4).permutation(y_test), protocol="l2-on-test")
    assert result["selects_on_test"] is True and scrambled["selects_on_test"] is True
    assert result["protocol"] == "l2-on-test" and result["val_score"] is None
    assert result["score"] == max(result["grid_scores"])
    assert result["grid_scores"] != scrambled["grid_scores"]


def test_the_former_elevater_name_is_refused_with_its_new_name():
    # the mode chose L2 on the test set, which ELEVATER's toolkit does not do: renamed for what it does
    (x, y), (x_test, y_test) = TRAIN, TEST
    with pytest.raises(GenBenchError, match="'elevater' is now 'l2-on-test'"):
        linear_probe(x, y, x_test, y_test, protocol="elevater")


def test_clean_choice_is_a_good_setting_and_deterministic():
    (x, y), (x_test, y_test) = TRAIN, TEST
    first = linear_probe(x, y, x_test, y_test, seed=5)
    assert first == linear_probe(x, y, x_test, y_test, seed=5)
    # the grid spans useless extremes; validation must steer away from the strongest penalty
    assert first["grid_scores"][0] < first["val_score"]
    assert first["l2"] < first["l2_grid"][0]
    best_on_test = linear_probe(x, y, x_test, y_test, protocol="l2-on-test")["score"]
    assert best_on_test - 5 <= first["score"] <= best_on_test
    assert first["converged"] and first["n_train"] + first["n_val"] == len(x)


def test_accepts_torch_and_unnormalised_features():
    (x, y), (x_test, y_test) = TRAIN, TEST
    scaled = linear_probe(torch.tensor(3 * x), torch.tensor(y), torch.tensor(7 * x_test), torch.tensor(y_test),
                          l2_grid=[1e-3])
    plain = linear_probe(x, y, x_test, y_test, l2_grid=[1e-3])
    assert scaled["score"] == pytest.approx(plain["score"])
    assert isinstance(scaled["score"], float)


def test_stratified_split_keeps_every_class_in_both_parts():
    labels = np.repeat(np.arange(4), [10, 5, 2, 1])
    train, val = stratified_split(labels, 0.2, seed=0)
    assert sorted(np.r_[train, val]) == list(range(len(labels)))
    assert np.bincount(labels[val], minlength=4).tolist() == [2, 1, 1, 0]
    assert np.array_equal(val, stratified_split(labels, 0.2, seed=0)[1])
    assert not np.array_equal(val, stratified_split(labels, 0.2, seed=1)[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"protocol": "best"}, "unknown probe protocol 'best'"),
        ({"metric": "top5"}, "unknown metric 'top5'"),
        ({"l2_grid": [0.1, -1]}, "l2_grid"),
        ({"val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_bad_arguments(kwargs, match):
    (x, y), (x_test, y_test) = TRAIN, TEST
    with pytest.raises(GenBenchError, match=match):
        linear_probe(x, y, x_test, y_test, **kwargs)


def test_no_validation_rows_is_explained():
    with pytest.raises(GenBenchError, match="at least 2 training rows"):
        linear_probe(np.eye(3), [0, 1, 2], np.eye(3), [0, 1, 2])


def test_dimension_mismatch():
    (x, y), (x_test, y_test) = TRAIN, TEST
    with pytest.raises(GenBenchError, match="test_feats have 31 dims but train_feats have 32"):
        linear_probe(x, y, x_test[:, :31], y_test)
