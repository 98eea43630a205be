"""CLER on 2-D features whose answers are worked out by hand with angles.

Image prototypes point at 0 deg (class 0) and 90 deg (class 1); text prototypes at 60 deg and
190 deg. Test points at 88 deg (label 0), 200 deg (label 1) and 50 deg (label 1).

cosines              88 deg           200 deg           50 deg
CLER  (0, 90)        .035 < .999 ->1  -.94 < -.34 ->1   .643 < .766 ->1
zero-shot (60, 190)  .883 > -.21 ->0  -.77 < .985 ->1   .985 > -.77 ->0
mean of the two      .459 > .407 ->0  -.85 < .32  ->1   .814 > -.00 ->0
proto-sum (30, 140)  .530 < .616 ->1  -.98 < .50  ->1   .940 > .000 ->0

so CLER 2/3, zero-shot 2/3, cler_ensemble 2/3, cler_ensemble_protosum 1/3 (correct: 1, 2; 1, 2;
1, 2; 2).
"""

import numpy as np
import pytest
import torch
from scipy.special import softmax as scipy_softmax
from sklearn.metrics import precision_recall_curve, roc_auc_score

from genbench.errors import GenBenchError
from genbench.metrics import class_prototypes, cler, evaluate, zero_shot
from genbench.metrics.evaluation import ranking_scores


def _at(degrees, length=1.0):
    radians = np.deg2rad(np.atleast_1d(degrees))
    return length * np.c_[np.cos(radians), np.sin(radians)]


# Unequal lengths: only normalising each image before the mean puts the prototypes at 0 and 90 deg
# (the raw mean of class 0 points at about 9 deg, of class 1 at about 106 deg).
GEN_FEATS = np.vstack([_at(-20, 2.0), _at(20, 5.0), _at(60, 1.0), _at(120, 3.0)])
GEN_LABELS = np.array([0, 0, 1, 1])
TEXT_FEATS = np.vstack([_at(60, 3.0), _at(190, 0.5)])
TEST_FEATS = np.vstack([_at(88, 2.0), _at(200, 0.3), _at(50, 7.0)])
TEST_LABELS = np.array([0, 1, 1])


def test_prototypes_normalise_each_image_before_the_mean():
    prototypes = class_prototypes(GEN_FEATS, GEN_LABELS, num_classes=2)
    np.testing.assert_allclose(prototypes, [[1.0, 0.0], [0.0, 1.0]], atol=1e-12)


def test_cler_and_its_ensembles_hand_worked():
    result = cler(GEN_FEATS, GEN_LABELS, TEST_FEATS, TEST_LABELS, num_classes=2, text_feats=TEXT_FEATS)
    assert result == pytest.approx(
        {"cler": 200 / 3, "zero_shot": 200 / 3, "cler_ensemble": 200 / 3, "cler_ensemble_protosum": 100 / 3}
    )
    assert all(isinstance(v, float) for v in result.values())


def test_cler_without_text_has_only_the_cler_key_and_takes_torch():
    result = cler(torch.tensor(GEN_FEATS), torch.tensor(GEN_LABELS), torch.tensor(TEST_FEATS),
                  torch.tensor(TEST_LABELS), num_classes=2)
    assert result == pytest.approx({"cler": 200 / 3})


def test_zero_shot_hand_worked():
    assert zero_shot(TEST_FEATS, TEST_LABELS, TEXT_FEATS, metric="accuracy") == pytest.approx(200 / 3)


def test_cler_with_map_11point_on_raw_cosines_passes_multi_hot_labels_through():
    # class 0 column ranks 50 (neg), 88 (pos), 200 (neg): AP 1/2.
    # class 1 column ranks 88 (neg), 50 (pos), 200 (pos): precision 2/3 at recall 1: AP 2/3.
    multi_hot = np.array([[1, 0], [0, 1], [0, 1]])
    result = cler(GEN_FEATS, GEN_LABELS, TEST_FEATS, multi_hot, num_classes=2, metric="map_11point", ranking="cosine")
    assert result["cler"] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)


def test_cler_map_11point_ranks_softmax_scores_by_default():
    # With two classes the softmax of column 0 is sigmoid(c0 - c1): each image's own level cancels.
    # margins c0 - c1: 88 deg .035 - .999 = -.96; 200 deg -.94 + .34 = -.60; 50 deg .643 - .766 = -.12
    # class 0 column ranks 50 (neg), 200 (neg), 88 (pos): AP 1/3 (raw cosines gave 1/2).
    # class 1 column ranks 88 (neg), 200 (pos), 50 (pos): AP 2/3.
    multi_hot = np.array([[1, 0], [0, 1], [0, 1]])
    result = cler(GEN_FEATS, GEN_LABELS, TEST_FEATS, multi_hot, num_classes=2, metric="map_11point")
    assert result["cler"] == pytest.approx(100 * (1 / 3 + 2 / 3) / 2)


def _sklearn_eleven_point(scores, labels):
    aps = []
    for c in range(labels.shape[1]):
        precision, recall, _ = precision_recall_curve(labels[:, c], scores[:, c])
        precision, recall = precision[:-1], recall[:-1]  # drop sklearn's (recall 0, precision 1) end point
        aps.append(np.mean([precision[recall >= k / 10].max() for k in range(11)]))
    return 100 * np.mean(aps)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ranking_metrics_match_sklearn_on_scipy_softmax_scores():
    # Five classes. Per-image offsets: each test image leans by its own amount towards a direction
    # every prototype shares, which lifts or lowers all its cosines together. The text prototypes
    # share that direction closely, so 100 x cosines spread by a few units and float64 softmax
    # probabilities stay distinct (checked below): scipy's softmax is a fair reference.
    rng = np.random.default_rng(0)
    gen, gen_labels = rng.normal(size=(60, 8)), np.repeat(np.arange(5), 12)
    gen[np.arange(60), gen_labels] += 2.0
    gen += 1.5
    text = np.ones((5, 8)) + 0.15 * rng.normal(size=(5, 8)) + 0.15 * np.eye(5, 8)
    test_labels = rng.integers(0, 5, size=80)
    level = rng.uniform(0, 3, size=(80, 1))
    test = level * np.ones((80, 8)) + 0.3 * rng.normal(size=(80, 8)) + 0.5 * np.eye(5, 8)[test_labels]
    multi_hot = np.eye(5, dtype=int)[test_labels]
    protos = _unit(np.stack([_unit(gen)[gen_labels == c].mean(axis=0) for c in range(5)]))
    cler_cos, zs_cos = _unit(test) @ protos.T, _unit(test) @ _unit(text).T
    assert all(len(np.unique(column)) == 80 for column in scipy_softmax(100 * zs_cos, axis=1).T)
    soft = cler(gen, gen_labels, test, multi_hot, num_classes=5, text_feats=text, metric="map_11point")
    raw = cler(gen, gen_labels, test, multi_hot, num_classes=5, text_feats=text, metric="map_11point", ranking="cosine")
    assert soft["cler"] == pytest.approx(_sklearn_eleven_point(scipy_softmax(cler_cos, axis=1), multi_hot))
    assert soft["zero_shot"] == pytest.approx(_sklearn_eleven_point(scipy_softmax(100 * zs_cos, axis=1), multi_hot))
    ensemble = (scipy_softmax(cler_cos, axis=1) + scipy_softmax(100 * zs_cos, axis=1)) / 2
    assert soft["cler_ensemble"] == pytest.approx(_sklearn_eleven_point(ensemble, multi_hot))
    assert raw["cler"] == pytest.approx(_sklearn_eleven_point(cler_cos, multi_hot))
    assert raw["zero_shot"] == pytest.approx(_sklearn_eleven_point(zs_cos, multi_hot))
    assert soft["cler"] - raw["cler"] > 5 and soft["zero_shot"] - raw["zero_shot"] > 5  # 69.6 vs 60.9, 42.7 vs 36.8
    assert zero_shot(test, multi_hot, text, metric="map_11point") == pytest.approx(soft["zero_shot"])
    # temperature matters with more than two classes: 100 for zero-shot is not 1
    assert soft["zero_shot"] != pytest.approx(_sklearn_eleven_point(scipy_softmax(zs_cos, axis=1), multi_hot))
    # arg-max metrics are the same under either ranking
    assert cler(gen, gen_labels, test, test_labels, num_classes=5, text_feats=text) == pytest.approx(
        cler(gen, gen_labels, test, test_labels, num_classes=5, text_feats=text, ranking="cosine"))


def test_roc_auc_matches_sklearn_on_the_softmax_positive_column():
    rng = np.random.default_rng(4)
    gen, gen_labels = rng.normal(size=(20, 6)), np.repeat([0, 1], 10)
    gen[:, 0] += 1.5 * (1 - gen_labels)
    text = rng.normal(size=(2, 6))
    test_labels = rng.integers(0, 2, size=50)
    test = rng.normal(size=(50, 6)) + 1.0 * np.eye(2, 6)[test_labels]
    protos = _unit(np.stack([_unit(gen)[gen_labels == c].mean(axis=0) for c in range(2)]))
    result = cler(gen, gen_labels, test, test_labels, num_classes=2, text_feats=text, metric="roc_auc")
    expected = 100 * roc_auc_score(test_labels, scipy_softmax(_unit(test) @ protos.T, axis=1)[:, 1])
    assert result["cler"] == pytest.approx(expected)
    # the softmax's positive column is a monotone function of the cosine margin c1 - c0, so its
    # exact AUC is the margin's; float64 probabilities at temperature 100 would tie confident rows
    zs_cos = _unit(test) @ _unit(text).T
    assert result["zero_shot"] == pytest.approx(100 * roc_auc_score(test_labels, zs_cos[:, 1] - zs_cos[:, 0]))
    assert len(np.unique(scipy_softmax(100 * zs_cos, axis=1)[:, 1])) < len(test_labels)  # the ties avoided


def test_softmax_ranking_keeps_confident_images_apart():
    # margins of .5 and .8 at temperature 100: probabilities 1 - 2e-22 and 1 - 2e-35 both round to 1.0
    logits = np.array([[0.0, 0.5], [0.0, 0.8], [0.0, 0.6], [0.3, 0.0]])
    assert evaluate("roc_auc", ranking_scores("roc_auc", logits, "softmax", 100.0), [0, 1, 1, 0]) == pytest.approx(
        100 * roc_auc_score([0, 1, 1, 0], logits[:, 1] - logits[:, 0]))
    assert evaluate("map_11point", ranking_scores("map_11point", logits, "softmax", 100.0), [[1, 0], [0, 1], [0, 1], [1, 0]]) \
        == pytest.approx(100.0)


def test_unknown_ranking_is_named():
    with pytest.raises(GenBenchError, match="unknown ranking scores 'logit'.*softmax, cosine"):
        cler(GEN_FEATS, GEN_LABELS, TEST_FEATS, TEST_LABELS, num_classes=2, ranking="logit")


def test_class_without_images_is_named():
    with pytest.raises(GenBenchError, match=r"class index\(es\) \[2\] of 3"):
        cler(GEN_FEATS, GEN_LABELS, TEST_FEATS, TEST_LABELS, num_classes=3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"metric": "top5"}, "unknown metric 'top5'"),
        ({"text_feats": np.ones((3, 2))}, r"text_feats must be \(num_classes, dims\)"),
        ({"num_classes": 0}, "positive integer"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = {"num_classes": 2, **kwargs}
    with pytest.raises(GenBenchError, match=match):
        cler(GEN_FEATS, GEN_LABELS, TEST_FEATS, TEST_LABELS, **arguments)


def test_dimension_mismatch_is_named():
    with pytest.raises(GenBenchError, match="test_feats have 3 dims but the prototypes have 2"):
        cler(GEN_FEATS, GEN_LABELS, np.ones((3, 3)), TEST_LABELS, num_classes=2)


def test_multi_hot_prototypes_count_an_image_for_every_class_it_shows():
    # images at 0 deg {class 0}, 90 deg {class 1}, 45 deg {0, 1} (unequal lengths): class 0 is
    # the mean of 0 and 45 deg, i.e. 22.5 deg; class 1 the mean of 90 and 45 deg, 67.5 deg.
    feats = np.vstack([_at(0, 3.0), _at(90, 0.5), _at(45, 2.0)])
    multi_hot = np.array([[1, 0], [0, 1], [1, 1]])
    np.testing.assert_allclose(class_prototypes(feats, multi_hot, num_classes=2), _at([22.5, 67.5]), atol=1e-12)
    # one-hot rows give the same prototypes as the integer labels they encode
    np.testing.assert_allclose(class_prototypes(GEN_FEATS, np.eye(2, dtype=int)[GEN_LABELS], num_classes=2),
                               class_prototypes(GEN_FEATS, GEN_LABELS, num_classes=2), atol=1e-12)
    with pytest.raises(GenBenchError, match=r"class index\(es\) \[1\] of 2"):
        class_prototypes(feats, np.array([[1, 0], [1, 0], [1, 0]]), num_classes=2)


def test_label_agreement_hand_worked():
    from genbench.metrics import label_agreement

    # zero-shot classes of the test points (table above): 88 deg -> 0, 200 deg -> 1, 50 deg -> 0
    assert label_agreement(TEST_FEATS, TEST_LABELS, TEXT_FEATS) == pytest.approx(200 / 3)
    # multi-hot: 88 deg is labelled {1}, 200 deg {0, 1}, 50 deg {0}: hits on the last two
    assert label_agreement(TEST_FEATS, np.array([[0, 1], [1, 1], [1, 0]]), TEXT_FEATS) == pytest.approx(200 / 3)
    assert label_agreement(TEST_FEATS, np.array([[0, 1], [1, 0], [0, 1]]), TEXT_FEATS) == pytest.approx(0.0)
