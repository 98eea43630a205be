"""Distances between two sets of features (e.g. CLIP features of generated and of real images)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from genbench.errors import GenBenchError
from genbench.metrics.arrays import as_matrix

PROXY_A_C_GRID = tuple(float(c) for c in np.logspace(-3, 2, 6))


def _paired_sets(feats_a, feats_b, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    a = as_matrix(feats_a, "feats_a", min_rows=min_rows)
    b = as_matrix(feats_b, "feats_b", min_rows=min_rows)
    if a.shape[1] != b.shape[1]:
        raise GenBenchError(f"feats_a have {a.shape[1]} dims but feats_b have {b.shape[1]}")
    return a, b


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance between Gaussian fits of two feature sets ("FID in CLIP feature space"
    when the features are CLIP embeddings):

        ||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2)),

    each set with its own mean and unbiased covariance (ddof=1, as pytorch-fid). The trace of the
    matrix square root is computed as Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)), which has the same
    eigenvalues and is symmetric positive semi-definite, so it needs two symmetric
    eigen-decompositions and no complex arithmetic. Tiny negative results from rounding are
    returned as 0.
    """
    a, b = _paired_sets(feats_a, feats_b, min_rows=2)
    mean_gap = a.mean(axis=0) - b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    inner = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    distance = mean_gap @ mean_gap + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return float(max(distance, 0.0))


def proxy_a_distance(feats_a, feats_b, *, seed: int = 0) -> float:
    """Proxy-A distance, PAD = 2 (1 - 2 e), in [0, 2].

    The rows of the two sets are labelled by set and split 50/50, shuffled and stratified by set.
    A standardised L2 logistic regression (scikit-learn, lbfgs) is fitted on the training half, its
    C chosen from PROXY_A_C_GRID by stratified k-fold cross-validation (k = 5, fewer when a set has
    fewer rows) on that half only, then refitted on the whole half; e is its error on the held-out
    half, folded at chance (e = min(e, 1 - e)). Both the classifier (class_weight="balanced") and
    e (the balanced error, the mean of the two per-set error rates) weigh the two sets equally, so
    two samples of one distribution give a PAD near 0 whatever their sizes; with equal sizes e is
    the plain error.
    """
    a, b = _paired_sets(feats_a, feats_b, min_rows=4)
    feats = np.vstack([a, b])
    sets = np.r_[np.zeros(len(a), dtype=np.int64), np.ones(len(b), dtype=np.int64)]
    fit_x, held_x, fit_y, held_y = train_test_split(feats, sets, test_size=0.5, shuffle=True,
                                                    stratify=sets, random_state=seed)
    folds = int(min(5, np.bincount(fit_y).min()))
    classifier = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000)),
        {"logisticregression__C": list(PROXY_A_C_GRID)},
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring="balanced_accuracy",
    )
    classifier.fit(fit_x, fit_y)
    error = 1.0 - balanced_accuracy_score(held_y, classifier.predict(held_x))
    error = min(error, 1.0 - error)
    return float(2.0 * (1.0 - 2.0 * error))
