"""Linear probe on frozen features: L2-regularised logistic regression, fitted in torch with
full-batch L-BFGS (on the GPU when there is one).

Objective, for n training rows x_i (L2-normalised first when `normalize=True`) and weights
W (C, D), bias b (C,):

    single-label (integer labels y_i):   mean_i CE(softmax(W x_i + b), y_i) + l2/2 * ||W||_F^2
    multi-label  (multi-hot rows Y_i):   mean_i sum_c BCE(sigmoid(W x_i + b)_c, Y_ic) + l2/2 * ||W||_F^2

The bias is not regularised. This is scikit-learn's LogisticRegression (lbfgs, multinomial)
objective C * sum_i CE_i + 1/2 ||W||^2 divided by C * n, so the same minimiser is reached with
C = 1 / (n * l2); `sklearn_C` in the result gives that C for the final fit.

Protocol "clean" (the default): l2 is chosen from a log-spaced grid by the dataset metric on a
stratified validation split of the training data only (ties, common with small validation sets,
go to the lower validation loss, the data term of the objective), the model is
refitted on train + validation at that l2, and the test set is scored exactly once. Nothing is
selected on the test set, and the test set is not used until the final scoring.

Protocol "l2-on-test": every l2 of the grid is fitted on all the training data and the best test
score is reported. Its results carry `selects_on_test: True`; they are optimistic and are not
comparable with the clean protocol. It is NOT the ELEVATER toolkit's protocol the paper used
(which trains a linear head with its own optimiser, initialised from the text encoder, and
reports a test-chosen epoch; docs/metrics.md): it is named for what it does. Its former name,
"elevater", is refused with a pointer here.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from genbench.devices import resolve_device
from genbench.errors import GenBenchError
from genbench.metrics.arrays import as_int_labels, as_matrix, as_multi_hot, l2_normalize, to_numpy
from genbench.metrics.evaluation import check_metric, evaluate

DEFAULT_L2_GRID = tuple(float(v) for v in np.logspace(-6, 0, 13))
PROTOCOLS = ("clean", "l2-on-test")
RENAMED_PROTOCOLS = {"elevater": "l2-on-test"}  # former name -> current name
SMALL_PROBLEM_SIZE = 2**24  # rows x dims x classes below which one CPU thread is fastest
GRADIENT_TOLERANCE = 1e-7  # L-BFGS stops when no gradient entry of the objective exceeds this


@contextmanager
def _cpu_threads(count: int | None):
    """Run with `count` torch CPU threads, restoring the previous setting afterwards."""
    previous = torch.get_num_threads()
    if count is not None and count != previous:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _auto_threads(device: torch.device, rows: int, dims: int, classes: int,
                  requested: int | None) -> int | None:
    """`requested`, or 1 for a small CPU problem (rows x dims x classes < SMALL_PROBLEM_SIZE, where
    thread hand-offs cost more than they save), or None (keep the current setting)."""
    if requested is not None:
        return requested
    return 1 if device.type == "cpu" and rows * dims * classes < SMALL_PROBLEM_SIZE else None


def _device_and_dtype(device, dtype) -> tuple[torch.device, torch.dtype]:
    device = torch.device(device if device is not None else resolve_device("auto"))
    if dtype is None:
        dtype = torch.float32 if device.type == "cuda" else torch.float64
    return device, dtype


def _data_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if targets.ndim == 2:
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(logits)
    return F.cross_entropy(logits, targets)


def fit_logistic(feats: torch.Tensor, targets: torch.Tensor, *, l2: float, num_classes: int,
                 init: tuple[torch.Tensor, torch.Tensor] | None = None, max_iter: int = 1000,
                 tolerance_grad: float = GRADIENT_TOLERANCE,
                 num_threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Minimise the module's objective at strength `l2` from `init` (zeros when None).

    `feats` (n, D) and `targets` (n,) int64 class indices or (n, C) float multi-hot rows, already
    on one device and dtype. `num_threads` as in `linear_probe`. Returns (W, b, L-BFGS iterations).
    """
    threads = _auto_threads(feats.device, feats.shape[0], feats.shape[1], num_classes, num_threads)
    with _cpu_threads(threads):
        return _minimise(feats, targets, l2, num_classes, init, max_iter, tolerance_grad)


def _minimise(feats, targets, l2, num_classes, init, max_iter, tolerance_grad):
    dims = feats.shape[1]
    if init is None:
        weight = torch.zeros(num_classes, dims, dtype=feats.dtype, device=feats.device)
        bias = torch.zeros(num_classes, dtype=feats.dtype, device=feats.device)
    else:
        weight, bias = (t.detach().clone() for t in init[:2])
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=tolerance_grad, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = _data_loss(torch.addmm(bias, feats, weight.T), targets) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    iterations = int(optimizer.state[weight].get("n_iter", 0))
    return weight.detach(), bias.detach(), iterations


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) row indices. Single-label: per class round(val_fraction * n_c) rows go to
    validation, at least 1 and at most n_c - 1 (a class with one row stays in train). Multi-label
    (2-D labels): a plain shuffled split."""
    rng = np.random.default_rng(seed)
    if labels.ndim == 2:
        order = rng.permutation(len(labels))
        n_val = min(max(int(round(val_fraction * len(labels))), 1), len(labels) - 1)
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    val = []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(max(int(round(val_fraction * len(rows))), 1), len(rows) - 1)
        val.append(rows[:n_val])
    val = np.sort(np.concatenate(val)).astype(np.int64)
    return np.setdiff1d(np.arange(len(labels)), val), val


def _check_grid(l2_grid) -> list[float]:
    values = np.asarray(DEFAULT_L2_GRID if l2_grid is None else l2_grid)
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.number) \
            or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise GenBenchError(f"l2_grid must be a non-empty list of positive numbers, got {l2_grid!r}")
    return sorted({float(v) for v in values}, reverse=True)


def _train_labels(value, num_rows: int, num_classes: int | None) -> tuple[np.ndarray, int]:
    array = to_numpy(value)
    if array.ndim == 2:
        width = array.shape[1] if num_classes is None else num_classes
        return as_multi_hot(array, "train_labels", num_rows=num_rows, num_classes=width), width
    labels = as_int_labels(array, "train_labels", num_rows=num_rows, num_classes=num_classes)
    return labels, int(num_classes if num_classes is not None else labels.max() + 1)


class _Probe:
    """Features and labels on the fitting device, so the grid search moves data once. Its fits run
    under the thread setting `linear_probe` chose."""

    def __init__(self, feats: np.ndarray, labels: np.ndarray, num_classes: int, device, dtype, max_iter: int):
        self.feats = torch.as_tensor(feats, dtype=dtype, device=device)
        self.labels_np = labels
        target_dtype = dtype if labels.ndim == 2 else torch.int64
        self.labels = torch.as_tensor(labels, dtype=target_dtype, device=device)
        self.num_classes, self.max_iter = num_classes, max_iter

    def fit(self, rows: np.ndarray, l2: float, init=None):
        index = torch.as_tensor(rows, device=self.feats.device)
        return _minimise(self.feats[index], self.labels[index], l2, self.num_classes, init, self.max_iter,
                         GRADIENT_TOLERANCE)

    def logits(self, model, feats: np.ndarray) -> np.ndarray:
        weight, bias = model[0], model[1]
        feats = torch.as_tensor(feats, dtype=weight.dtype, device=weight.device)
        return torch.addmm(bias, feats, weight.T).cpu().numpy()

    def validate(self, model, rows: np.ndarray, metric: str) -> tuple[float, float]:
        """(metric, mean data loss) of a fitted model on rows of the training set."""
        weight, bias = model[0], model[1]
        index = torch.as_tensor(rows, device=self.feats.device)
        logits = torch.addmm(bias, self.feats[index], weight.T)
        score = evaluate(metric, logits.cpu().numpy(), self.labels_np[rows])
        return score, float(_data_loss(logits, self.labels[index]))


def _select_on_validation(probe: _Probe, grid: list[float], metric: str, val_fraction: float, seed: int,
                          test: np.ndarray, test_labels) -> dict:
    labels = probe.labels_np
    fit_rows, val_rows = stratified_split(labels, val_fraction, seed)
    if len(val_rows) == 0:
        raise GenBenchError(
            "no training class has 2 or more rows, so there is no validation split to choose l2 on; "
            "give at least 2 training rows for some class"
        )
    model, models, val_scores, val_losses = None, [], [], []
    for l2 in grid:
        model = probe.fit(fit_rows, l2, init=model)
        models.append(model)
        score, loss = probe.validate(model, val_rows, metric)
        val_scores.append(score)
        val_losses.append(loss)
    tied = [i for i, score in enumerate(val_scores) if score == max(val_scores)]
    best = min(tied, key=lambda i: (val_losses[i], i))
    final = probe.fit(np.arange(len(labels)), grid[best], init=models[best])
    score = evaluate(metric, probe.logits(final, test), test_labels)
    return {"score": score, "best": best, "val_score": val_scores[best], "val_loss": val_losses[best],
            "grid_scores": val_scores, "n_val": len(val_rows), "iterations": final[2]}


def _select_on_test(probe: _Probe, grid: list[float], metric: str, test: np.ndarray, test_labels) -> dict:
    all_rows = np.arange(len(probe.labels_np))
    model, models, test_scores = None, [], []
    for l2 in grid:
        model = probe.fit(all_rows, l2, init=model)
        models.append(model)
        test_scores.append(evaluate(metric, probe.logits(model, test), test_labels))
    best = int(np.argmax(test_scores))
    return {"score": test_scores[best], "best": best, "val_score": None, "val_loss": None,
            "grid_scores": test_scores, "n_val": 0, "iterations": models[best][2]}


def linear_probe(train_feats, train_labels, test_feats, test_labels, *, metric: str = "accuracy",
                 seed: int = 0, l2_grid=None, val_fraction: float = 0.2, device=None,
                 protocol: str = "clean", num_classes: int | None = None, normalize: bool = True,
                 max_iter: int = 1000, dtype: torch.dtype | None = None, num_threads: int | None = None) -> dict:
    """Probe score (percent, by `metric`) of a logistic regression trained on the training features.

    `train_labels`: integer (n,) for a softmax probe, multi-hot (n, C) for a one-vs-rest sigmoid
    probe; `test_labels`: whatever `metric` takes. `num_classes` defaults to the training labels'
    max + 1 (or width). `l2_grid` defaults to DEFAULT_L2_GRID (1e-6 to 1, half-decade steps).
    `device` None means CUDA when available, else CPU; `dtype` None means float64 on CPU, float32
    on CUDA. `num_threads` None means one torch CPU thread for small problems (rows x dims x
    classes < SMALL_PROBLEM_SIZE, where thread hand-offs cost more than they save) and the current
    setting otherwise; the setting is restored on return. Deterministic for a seed and device.

    Returns a flat dict: score, l2, val_score and val_loss (None under "l2-on-test"), protocol,
    selects_on_test, metric, l2_grid and grid_scores (validation scores, or test scores under
    "l2-on-test", in grid order from the largest l2 down), sklearn_C (of the final fit), n_train,
    n_val, n_test, iterations and converged (of the final fit), device.
    """
    check_metric(metric)
    if protocol in RENAMED_PROTOCOLS:
        raise GenBenchError(f"probe protocol {protocol!r} is now {RENAMED_PROTOCOLS[protocol]!r}: it chooses L2 on the test "
                            "set, which the ELEVATER toolkit does not do (docs/metrics.md)")
    if protocol not in PROTOCOLS:
        raise GenBenchError(f"unknown probe protocol {protocol!r}; known protocols: {', '.join(PROTOCOLS)}")
    if not 0 < val_fraction < 1:
        raise GenBenchError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")
    grid = _check_grid(l2_grid)
    train = as_matrix(train_feats, "train_feats", min_rows=2)
    test = as_matrix(test_feats, "test_feats")
    if test.shape[1] != train.shape[1]:
        raise GenBenchError(f"test_feats have {test.shape[1]} dims but train_feats have {train.shape[1]}")
    if normalize:
        train, test = l2_normalize(train, "train_feats"), l2_normalize(test, "test_feats")
    labels, classes = _train_labels(train_labels, len(train), num_classes)
    torch_device, torch_dtype = _device_and_dtype(device, dtype)

    with _cpu_threads(_auto_threads(torch_device, *train.shape, classes, num_threads)):
        probe = _Probe(train, labels, classes, torch_device, torch_dtype, max_iter)
        if protocol == "clean":
            run = _select_on_validation(probe, grid, metric, val_fraction, seed, test, test_labels)
        else:
            run = _select_on_test(probe, grid, metric, test, test_labels)

    l2 = grid[run["best"]]
    return {
        "score": float(run["score"]),
        "l2": l2,
        "val_score": None if run["val_score"] is None else float(run["val_score"]),
        "val_loss": run["val_loss"],
        "protocol": protocol,
        "selects_on_test": protocol == "l2-on-test",
        "metric": metric,
        "l2_grid": grid,
        "grid_scores": [float(v) for v in run["grid_scores"]],
        "sklearn_C": 1.0 / (len(train) * l2),
        "n_train": len(train) - run["n_val"],
        "n_val": run["n_val"],
        "n_test": len(test),
        "iterations": run["iterations"],
        "converged": run["iterations"] < max_iter,
        "device": str(torch_device),
    }
