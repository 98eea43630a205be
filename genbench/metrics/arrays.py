"""Input checks shared by the metrics: turn numpy arrays or torch tensors into float64 / int64
numpy arrays of the expected shape, or raise `GenBenchError` naming the bad argument; and the
two ways rows are scaled to unit norm (`l2_normalize` refuses a zero row, `unit_norm` keeps it)."""

from __future__ import annotations

import numpy as np

from genbench.errors import GenBenchError


def to_numpy(value) -> np.ndarray:
    """A numpy view of an array-like or a (possibly CUDA, possibly grad-tracking) torch tensor."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def as_matrix(value, name: str, *, min_rows: int = 1) -> np.ndarray:
    """A finite float64 (N, D) matrix with at least `min_rows` rows."""
    array = to_numpy(value)
    if array.ndim != 2:
        raise GenBenchError(f"{name} must be a 2-D (rows, dims) array, got shape {array.shape}")
    if array.shape[0] < min_rows or array.shape[1] < 1:
        raise GenBenchError(f"{name} needs at least {min_rows} row(s) and 1 column, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise GenBenchError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise GenBenchError(f"{name} holds NaN or infinite values; check the features that produced it")
    return array


def as_int_labels(value, name: str, *, num_rows: int, num_classes: int | None = None) -> np.ndarray:
    """Integer class indices (N,) in [0, num_classes) when num_classes is given."""
    array = to_numpy(value)
    if array.ndim != 1:
        raise GenBenchError(f"{name} must be 1-D integer class indices, got shape {array.shape}")
    if len(array) != num_rows:
        raise GenBenchError(f"{name} has {len(array)} entries but its features have {num_rows} rows")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise GenBenchError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise GenBenchError(f"{name} must hold integer class indices, got non-integer values")
    array = array.astype(np.int64)
    if len(array) and array.min() < 0:
        raise GenBenchError(f"{name} holds the negative class index {int(array.min())}")
    if num_classes is not None and len(array) and array.max() >= num_classes:
        raise GenBenchError(
            f"{name} holds class index {int(array.max())}, but there are only {num_classes} classes"
        )
    return array


def as_multi_hot(value, name: str, *, num_rows: int, num_classes: int) -> np.ndarray:
    """A 0/1 (N, C) matrix; integer labels (N,) are expanded to one-hot rows."""
    array = to_numpy(value)
    if array.ndim == 1:
        indices = as_int_labels(array, name, num_rows=num_rows, num_classes=num_classes)
        return np.eye(num_classes, dtype=np.int64)[indices]
    if array.shape != (num_rows, num_classes):
        raise GenBenchError(
            f"{name} must be multi-hot ({num_rows}, {num_classes}) or 1-D class indices, got shape {array.shape}"
        )
    if not np.isin(array, (0, 1)).all():
        raise GenBenchError(f"{name} must be multi-hot with entries 0 or 1 only")
    return array.astype(np.int64)


def l2_normalize(matrix: np.ndarray, name: str) -> np.ndarray:
    """Rows scaled to unit Euclidean norm; a zero row is an error (it has no direction)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if np.any(norms == 0):
        row = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise GenBenchError(f"{name} row {row} is all zeros and cannot be L2-normalised")
    return matrix / norms


def unit_norm(x: np.ndarray) -> np.ndarray:
    """`x` scaled to unit Euclidean norm along its last axis, the norm clamped at 1e-12 (a zero
    vector stays zero, where `l2_normalize` raises)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
