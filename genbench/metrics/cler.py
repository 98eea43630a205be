"""CLER (class-centred recognition) score and the CLIP zero-shot baseline it is compared with.

CLER: L2-normalise the image features of the external images (generated, retrieved or original);
the prototype of class j is the mean of the normalised features of the images labelled j (for
multi-hot labels: the images positive for j), renormalised; each L2-normalised test feature gets the logits cos(test, prototype_j); the score is
the dataset metric of those logits on the real test set, in percent.

Zero-shot: the same with the CLIP text prototypes (one (D,) text embedding per class, e.g. the
renormalised mean over the dataset's templates) in place of the image prototypes.

Two ensembles of the two, when text prototypes are given:
- `cler_ensemble` (GenBench paper, Algorithm 1): logits = (CLER logits + zero-shot logits) / 2.
- `cler_ensemble_protosum` (the paper's released code): prototype_j =
  normalise(normalise(image prototype_j) + normalise(text prototype_j)), then cosine logits.

Ranking metrics (11-point mAP, ROC AUC) rank test images by per-image scores, so how a row is
normalised matters. `ranking="softmax"` (default, the released code): CLER and the protosum
ensemble rank by softmax(cosines) (temperature CLER_TEMPERATURE = 1), zero-shot by
softmax(100 x cosines) (ZERO_SHOT_TEMPERATURE, CLIP's logit scale), and the mean ensemble by the
mean of its two members' softmax probabilities (as the released code averages its ensembles).
`ranking="cosine"` ranks by the cosine logits themselves (and the mean ensemble by the mean
cosine), a variant. Accuracy and mean per class
take the arg-max of the logits either way.
"""

from __future__ import annotations

import numpy as np

from genbench.errors import GenBenchError
from genbench.metrics.arrays import as_int_labels, as_matrix, as_multi_hot, l2_normalize, to_numpy
from genbench.metrics.evaluation import RANKING_METRICS, check_metric, check_ranking, evaluate, ranking_scores

CLER_TEMPERATURE = 1.0  # released code: softmax over image-prototype cosines as they are
ZERO_SHOT_TEMPERATURE = 100.0  # released code: softmax over 100 x image-text cosines


def class_prototypes(feats, labels, *, num_classes: int) -> np.ndarray:
    """(C, D) unit-norm class prototypes: per class, the renormalised mean of L2-normalised rows.

    `labels` are integer class indices (N,) or multi-hot rows (N, C); with multi-hot rows an image
    counts towards the prototype of every class it is positive for. Raises GenBenchError naming
    every class index that has no row, rather than using a zero prototype that would silently lose
    all its test images.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise GenBenchError(f"num_classes must be a positive integer, got {num_classes!r}")
    feats = l2_normalize(as_matrix(feats, "gen_feats"), "gen_feats")
    multi_hot = to_numpy(labels).ndim == 2
    if multi_hot:
        members = as_multi_hot(labels, "gen_labels", num_rows=len(feats), num_classes=num_classes)
        counts = members.sum(axis=0)
    else:
        labels = as_int_labels(labels, "gen_labels", num_rows=len(feats), num_classes=num_classes)
        counts = np.bincount(labels, minlength=num_classes)
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        raise GenBenchError(
            f"no images for class index(es) {missing.tolist()} of {num_classes}; "
            "every class needs at least one image to form its prototype"
        )
    if multi_hot:
        sums = members.T.astype(np.float64) @ feats
    else:
        order = np.argsort(labels, kind="stable")
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        sums = np.add.reduceat(feats[order], starts, axis=0)
    return l2_normalize(sums / counts[:, None], "class prototypes (the images of a class cancel out)")


def _test_matrix(test_feats, dims: int) -> np.ndarray:
    test = as_matrix(test_feats, "test_feats")
    if test.shape[1] != dims:
        raise GenBenchError(f"test_feats have {test.shape[1]} dims but the prototypes have {dims}")
    return l2_normalize(test, "test_feats")


def _text_prototypes(text_feats, num_classes: int, dims: int) -> np.ndarray:
    text = as_matrix(text_feats, "text_feats")
    if text.shape != (num_classes, dims):
        raise GenBenchError(f"text_feats must be (num_classes, dims) = ({num_classes}, {dims}), got {text.shape}")
    return l2_normalize(text, "text_feats")


def _score(metric: str, logits: np.ndarray, labels, ranking: str, temperature: float) -> float:
    return evaluate(metric, ranking_scores(metric, logits, ranking, temperature), labels)


def cler(gen_feats, gen_labels, test_feats, test_labels, *, num_classes: int, text_feats=None,
         metric: str = "accuracy", ranking: str = "softmax") -> dict:
    """CLER of external images (`gen_feats` (M, D), integer `gen_labels` (M,) or multi-hot (M, C))
    on the real test set.

    `test_labels` are whatever `metric` takes (integer, or multi-hot for map_11point); `ranking`
    names the scores ranking metrics use (module docstring). Returns {"cler"} and, when
    `text_feats` (C, D) is given, also {"zero_shot", "cler_ensemble", "cler_ensemble_protosum"};
    all in percent.
    """
    check_metric(metric)
    check_ranking(ranking)
    prototypes = class_prototypes(gen_feats, gen_labels, num_classes=num_classes)
    test = _test_matrix(test_feats, prototypes.shape[1])
    cler_logits = test @ prototypes.T
    result = {"cler": _score(metric, cler_logits, test_labels, ranking, CLER_TEMPERATURE)}
    if text_feats is None:
        return result
    text = _text_prototypes(text_feats, num_classes, prototypes.shape[1])
    zero_shot_logits = test @ text.T
    protosum = l2_normalize(prototypes + text, "summed prototypes (image and text prototype are opposite)")
    result["zero_shot"] = _score(metric, zero_shot_logits, test_labels, ranking, ZERO_SHOT_TEMPERATURE)
    if metric in RANKING_METRICS and ranking == "softmax":
        probabilities = [np.exp(ranking_scores(metric, logits, ranking, temperature)) for logits, temperature
                         in ((cler_logits, CLER_TEMPERATURE), (zero_shot_logits, ZERO_SHOT_TEMPERATURE))]
        result["cler_ensemble"] = evaluate(metric, (probabilities[0] + probabilities[1]) / 2, test_labels)
    else:
        result["cler_ensemble"] = evaluate(metric, (cler_logits + zero_shot_logits) / 2, test_labels)
    result["cler_ensemble_protosum"] = _score(metric, test @ protosum.T, test_labels, ranking, CLER_TEMPERATURE)
    return result


def zero_shot(test_feats, test_labels, text_feats, *, metric: str = "accuracy", ranking: str = "softmax") -> float:
    """CLIP zero-shot score: cosine logits of the test features against the (C, D) text prototypes
    (ranking metrics on softmax(100 x cosines) by default; module docstring)."""
    check_metric(metric)
    text = as_matrix(text_feats, "text_feats")
    test = _test_matrix(test_feats, text.shape[1])
    return _score(metric, test @ l2_normalize(text, "text_feats").T, test_labels, ranking, ZERO_SHOT_TEMPERATURE)


def label_agreement(feats, labels, text_feats) -> float:
    """Share (%) of images whose zero-shot class (arg-max cosine with the (C, D) text prototypes)
    is one they are labelled with: their class for integer labels (N,), any positive class for
    multi-hot labels (N, C)."""
    text = as_matrix(text_feats, "text_feats")
    test = _test_matrix(feats, text.shape[1])
    predicted = (test @ l2_normalize(text, "text_feats").T).argmax(axis=1)
    if to_numpy(labels).ndim == 2:
        members = as_multi_hot(labels, "labels", num_rows=len(test), num_classes=len(text))
        return float(100.0 * np.mean(members[np.arange(len(test)), predicted] == 1))
    labels = as_int_labels(labels, "labels", num_rows=len(test), num_classes=len(text))
    return float(100.0 * np.mean(predicted == labels))
