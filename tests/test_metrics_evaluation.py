import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, precision_recall_curve, roc_auc_score

from genbench.metrics.evaluation import ranking_scores
from genbench.errors import GenBenchError
from genbench.metrics import METRIC_FUNCTIONS, evaluate


def test_registry_matches_dataset_metrics():
    from genbench.datasets.base import METRICS

    assert set(METRIC_FUNCTIONS) == set(METRICS)


def test_accuracy_and_mean_per_class_match_sklearn_on_imbalanced_data():
    rng = np.random.default_rng(0)
    labels = rng.choice(5, size=300, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    scores = rng.normal(size=(300, 5)) + 1.5 * np.eye(5)[labels]
    predictions = scores.argmax(axis=1)
    assert evaluate("accuracy", scores, labels) == pytest.approx(100 * accuracy_score(labels, predictions))
    assert evaluate("mean_per_class", scores, labels) == pytest.approx(
        100 * balanced_accuracy_score(labels, predictions)
    )
    assert evaluate("accuracy", scores, labels) != pytest.approx(evaluate("mean_per_class", scores, labels))


def test_accuracy_hand_worked_and_accepts_torch():
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = torch.tensor([0, 1, 1, 1])
    assert evaluate("accuracy", scores, labels) == pytest.approx(75.0)
    # class 0: 1/1 right, class 1: 2/3 right
    assert evaluate("mean_per_class", scores, labels) == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert isinstance(evaluate("accuracy", scores, labels), float)


def test_map_11point_hand_worked():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.5, 0.35]])
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 1], [0, 1]])
    # class 0 ranks pos, neg, pos, neg, neg: (P, R) = (1, .5), (.5, .5), (2/3, 1), ...
    # recall thresholds 0..0.5 (6 points) reach precision 1, 0.6..1 (5 points) reach 2/3.
    ap0 = (6 * 1 + 5 * 2 / 3) / 11
    # class 1 ranks its two positives first: AP 1.
    assert evaluate("map_11point", scores, labels) == pytest.approx(100 * (ap0 + 1) / 2)


def test_map_11point_ties_count_together():
    # both rows tie: one threshold, precision 1/2 at recall 1 whatever the row order.
    assert evaluate("map_11point", [[0.5], [0.5]], [[1], [0]]) == pytest.approx(50.0)
    assert evaluate("map_11point", [[0.5], [0.5]], [[0], [1]]) == pytest.approx(50.0)


def _sklearn_eleven_point(scores, labels):
    aps = []
    for c in range(labels.shape[1]):
        precision, recall, _ = precision_recall_curve(labels[:, c], scores[:, c])
        precision, recall = precision[:-1], recall[:-1]  # the closing (0, 1) point is no threshold
        aps.append(np.mean([precision[recall >= k / 10].max() for k in range(11)]))
    return 100 * np.mean(aps)


def test_map_11point_top_ranked_negative_has_no_free_point_at_recall_0():
    # ranks neg, pos, neg, pos: (P, R) = (0, 0), (1/2, 1/2), (1/3, 1/2), (1/2, 1); every one of
    # the 11 recall levels reaches precision 1/2 at best (VOCevalcls.m: max(prec(rec >= t))).
    assert evaluate("map_11point", [[0.9], [0.8], [0.7], [0.6]], [[0], [1], [0], [1]]) == pytest.approx(50.0)


def test_map_11point_matches_sklearn_precision_recall_curve_with_ties():
    rng = np.random.default_rng(1)
    labels = (rng.random((200, 6)) < 0.3).astype(int)
    scores = np.round(rng.normal(size=(200, 6)) + labels, 1)  # rounding makes ties
    assert evaluate("map_11point", scores, labels) == pytest.approx(_sklearn_eleven_point(scores, labels))


def test_map_11point_reads_integer_labels_as_one_hot():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    multi_hot = np.array([[1, 0], [0, 1], [0, 1]])
    assert evaluate("map_11point", scores, [0, 1, 1]) == pytest.approx(evaluate("map_11point", scores, multi_hot))


def test_roc_auc_hand_worked_from_two_column_scores():
    # margins scores[:,1]-scores[:,0] = 0.1, 0.4, 0.35, 0.8; positives at 0.35 and 0.8.
    scores = np.array([[0.0, 0.1], [0.1, 0.5], [0.2, 0.55], [0.1, 0.9]])
    labels = np.array([0, 0, 1, 1])
    # pairs (pos, neg): 0.35>0.1 yes, 0.35>0.4 no, 0.8 beats both -> 3/4
    assert evaluate("roc_auc", scores, labels) == pytest.approx(75.0)
    assert evaluate("roc_auc", np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(50.0)


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(size=(300, 2)) + np.c_[1 - labels, labels], 1)
    expected = 100 * roc_auc_score(labels, scores[:, 1] - scores[:, 0])
    assert evaluate("roc_auc", scores, labels) == pytest.approx(expected)


@pytest.mark.parametrize(
    "metric, scores, labels, match",
    [
        ("top5", [[1.0, 0.0]], [0], "unknown metric 'top5'.*accuracy, mean_per_class, map_11point, roc_auc"),
        ("accuracy", [[1.0, 0.0]], [2], "class index 2"),
        ("accuracy", [[1.0, 0.0]], [0, 1], "2 entries"),
        ("accuracy", [[np.nan, 0.0]], [0], "NaN"),
        ("roc_auc", [[1.0, 0.0], [0.0, 1.0]], [1, 1], "both classes"),
        ("roc_auc", [[1.0, 0.0, 0.0]], [1], "binary"),
        ("map_11point", [[1.0, 0.0]], [[0, 0]], "no positive"),
        ("map_11point", [[1.0, 0.0]], [[0, 2]], "0 or 1"),
    ],
)
def test_bad_input_names_the_problem(metric, scores, labels, match):
    with pytest.raises(GenBenchError, match=match):
        evaluate(metric, np.asarray(scores), np.asarray(labels))


def test_softmax_ranking_removes_per_image_offsets_hand_worked():
    # image A (class 0) sits high on both classes, image B (class 1) low: [.9, .8] and [.3, .5].
    # raw cosines: class 1 column ranks A (.8, neg) over B (.5, pos): AP 1/2, mAP (1 + 1/2) / 2 = 75.
    # softmax: p1(A) = sigmoid(-.1) = .475 < p1(B) = sigmoid(.2) = .550: both columns AP 1, mAP 100.
    logits, labels = np.array([[0.9, 0.8], [0.3, 0.5]]), np.array([0, 1])
    assert evaluate("map_11point", ranking_scores("map_11point", logits, "cosine", 1.0), labels) == pytest.approx(75.0)
    assert evaluate("map_11point", ranking_scores("map_11point", logits, "softmax", 1.0), labels) == pytest.approx(100.0)
    expected = np.log(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))  # log-probabilities: same order
    np.testing.assert_allclose(ranking_scores("map_11point", logits, "softmax", 1.0), expected)
    assert ranking_scores("accuracy", logits, "softmax", 1.0) is logits  # arg-max metrics take the logits
