"""The cost-quality frontier: a grid of generation settings, each point's CLER with a bootstrap
interval over test images, the Pareto-optimal points (cheaper and better), and the cheapest
setting that comes within a target distance of the best CLER.

A grid file (YAML) is `{points: [ {steps: 5, scheduler: ddim, ...}, ... ]}` or
`{product: {steps: [5, 10], guidance_scale: [2.0, 5.0]}}` (every combination), or both; each point
overrides keys of the `generate` params section.

A point is scored (`score_features`) on the pipeline's own test features and zero-shot head (text
features) exactly as the cler and probe stages score an image set, plus a bootstrap interval.
"""

from __future__ import annotations

import hashlib
import json
import math
from itertools import product
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import yaml

from genbench.errors import GenBenchError

# keys of the generate section a grid point may set
GRID_KEYS = ("steps", "scheduler", "guidance_scale", "images_per_class", "height", "width", "dtype", "strategies")
# grid keys that change what the generator loads (genbench.executors.GenerationWorker.load_key):
# points are run grouped by these, so the one loaded pipeline is reused by consecutive points
LOAD_KEYS = ("scheduler", "dtype", "height", "strategies")
TARGETS = (1.0, 2.0, 5.0)  # CLER points below the best that the cheapest-setting table asks for


def expand_grid(grid: dict) -> list[dict]:
    """The grid's points in order: the listed `points`, then every combination of `product`,
    each once (a repeat is dropped)."""
    if not isinstance(grid, dict) or not ({"points", "product"} & set(grid)):
        raise GenBenchError("a frontier grid must be a mapping with 'points' (a list of settings) and/or 'product' "
                            "(a mapping of setting -> list of values)")
    points = list(grid.get("points") or [])
    axes = grid.get("product") or {}
    if not isinstance(axes, dict) or any(not isinstance(v, list) or not v for v in axes.values()):
        raise GenBenchError(f"frontier grid 'product' = {axes!r} must map each setting to a non-empty list of values")
    if axes:
        points += [dict(zip(axes, combo)) for combo in product(*axes.values())]
    out, seen = [], set()
    for point in points:
        if not isinstance(point, dict) or not point:
            raise GenBenchError(f"frontier grid point {point!r} must be a non-empty mapping of settings")
        unknown = sorted(set(point) - set(GRID_KEYS))
        if unknown:
            raise GenBenchError(f"frontier grid point {point!r} sets {unknown[0]!r}; a point may set {', '.join(GRID_KEYS)}")
        key = point_id(point)
        if key not in seen:
            seen.add(key)
            out.append(dict(point))
    return out


def load_grid(path: str | Path) -> list[dict]:
    """The expanded points of the grid file at `path`."""
    path = Path(path)
    if not path.is_file():
        raise GenBenchError(f"frontier grid {str(path)!r} not found; give a YAML file (see profiles/frontier/*.yaml)")
    try:
        grid = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GenBenchError(f"frontier grid {str(path)!r} is not valid YAML ({type(exc).__name__}); fix it") from None
    return expand_grid(grid)


def point_id(point: dict) -> str:
    """A short name of a point fixed by its settings (not by its place in the grid)."""
    text = json.dumps(point, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def row_key(point: dict, context: dict) -> str:
    """The name of a point's finished row: a hash of its settings and of everything else its row
    depends on (`context`: the full generate settings, the scoring and pricing params, the thread
    count), so a row made under other params is never taken for this one."""
    text = json.dumps({"point": point, "context": context}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_order(points: Sequence[dict], generate: dict) -> list[dict]:
    """`points` grouped by the settings that reload the generator (LOAD_KEYS), grid order within
    a group."""
    def load(point: dict) -> str:
        return json.dumps([point.get(k, generate.get(k)) for k in LOAD_KEYS], default=str)

    first = {}
    for point in points:
        first.setdefault(load(point), len(first))
    return sorted(points, key=lambda p: first[load(p)])


def is_default(point: dict, generate: dict) -> bool:
    """Whether the point's settings are the generate section's own (the pipeline's setting)."""
    return all(generate.get(k) == v for k, v in point.items())


def point_label(point: dict) -> str:
    """A readable label of a point's settings, e.g. 'steps=10 scheduler=ddim'."""
    return " ".join(f"{k}={v}" for k, v in point.items())


def bootstrap_interval(score: Callable[[np.ndarray], float], n: int, *, draws: int = 200, seed: int = 0,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `score(indices)` over `n` test items resampled with
    replacement `draws` times from a seeded generator."""
    rng = np.random.default_rng(seed)
    values = np.array([score(rng.integers(0, n, size=n)) for _ in range(draws)])
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def score_features(feats: np.ndarray, labels: np.ndarray, test_feats: np.ndarray, test_labels: np.ndarray,
                   text_feats: np.ndarray, *, num_classes: int, metric: str, ranking: str, probe: dict,
                   draws: int, seed: int, confidence: float) -> dict:
    """One point's scores: CLER and CLER-ensemble (genbench.metrics.cler, as the cler stage), the
    bootstrap interval of CLER over the test images, the linear probe (`probe`: the probe
    section's seed, val_fraction, protocol) and label agreement."""
    from genbench.metrics import cler, label_agreement
    from genbench.probe import linear_probe

    s = cler(feats, labels, test_feats, test_labels, num_classes=num_classes, text_feats=text_feats, metric=metric,
             ranking=ranking)

    def resampled(idx: np.ndarray) -> float:
        return cler(feats, labels, test_feats[idx], test_labels[idx], num_classes=num_classes, metric=metric,
                    ranking=ranking)["cler"]

    ci = bootstrap_interval(resampled, len(test_feats), draws=draws, seed=seed, confidence=confidence)
    pr = linear_probe(feats, labels, test_feats, test_labels, metric=metric, seed=probe["seed"],
                      val_fraction=probe["val_fraction"], protocol=probe["protocol"], num_classes=num_classes)
    return {"cler": s["cler"], "cler_ci": list(ci), "cler_ensemble": s["cler_ensemble"], "probe": pr["score"],
            "label_agreement": label_agreement(feats, labels, text_feats)}


def reference_scores(test_feats: np.ndarray, test_labels: np.ndarray, text_feats: np.ndarray, original: np.ndarray,
                     original_labels: np.ndarray, *, num_classes: int, metric: str, ranking: str) -> dict:
    """Zero-shot CLIP and the original data's CLER on the same test set (the figure's reference lines)."""
    from genbench.metrics import cler, zero_shot

    zs = zero_shot(test_feats, test_labels, text_feats, metric=metric, ranking=ranking)
    o = cler(original, original_labels, test_feats, test_labels, num_classes=num_classes, metric=metric, ranking=ranking)
    return {"zero_shot": zs, "original_cler": o["cler"]}


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the points no other point dominates (costs no more and scores at least as high,
    strictly better in one), cheapest first."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -scores[i]))
    front, best = [], -math.inf
    for i in order:
        if scores[i] > best:
            front.append(i)
            best = scores[i]
    return front


def cheapest_within(rows: Sequence[dict], targets: Sequence[float] = TARGETS, *, score: str = "cler",
                    cost: str = "usd_per_image") -> list[dict]:
    """For each target t: the cheapest row whose `score` is at least best - t, with its cost per
    1,000 images."""
    best = max(r[score] for r in rows)
    out = []
    for t in targets:
        ok = [r for r in rows if r[score] >= best - t]
        pick = min(ok, key=lambda r: r[cost])
        out.append({"within": t, "best_cler": best, "id": pick["id"], "setting": point_label(pick["settings"]),
                    "cler": pick[score], "usd_per_1000_images": pick[cost] * 1000.0})
    return out


def table_markdown(table: list[dict], default: dict | None = None) -> str:
    """The cheapest-within-target table as Markdown (and the default setting's row beneath)."""
    lines = ["| within best CLER | cheapest setting | CLER | USD per 1,000 images |", "|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['within']:g} points | {r['setting']} | {r['cler']:.2f} | {r['usd_per_1000_images']:.3g} |")
    if default is not None:
        lines.append(f"| (the default setting) | {point_label(default['settings'])} | {default['cler']:.2f} | "
                     f"{default['usd_per_image'] * 1000.0:.3g} |")
    return "\n".join(lines) + "\n"


def frontier_figure(rows: list[dict], path: str | Path, *, zero_shot: float | None = None,
                    original: float | None = None, title: str = "") -> Path:
    """CLER against USD per image (log x) with bootstrap error bars, the Pareto points joined and
    labelled, and zero-shot and original-data CLER as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.array([r["usd_per_image"] for r in rows])
    y = np.array([r["cler"] for r in rows])
    err = np.array([[r["cler"] - r["cler_ci"][0] for r in rows], [r["cler_ci"][1] - r["cler"] for r in rows]])
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.errorbar(x, y, yerr=np.clip(err, 0, None), fmt="o", color="0.6", ecolor="0.75", capsize=2, label="grid point")
    front = pareto_front(list(x), list(y))
    ax.plot(x[front], y[front], "o-", color="C0", label="Pareto front")
    for i in front:
        ax.annotate(point_label(rows[i]["settings"]), (x[i], y[i]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for value, name, style in ((zero_shot, "zero-shot", "--"), (original, "original data", ":")):
        if value is not None:
            ax.axhline(value, color="C3" if name == "zero-shot" else "C2", linestyle=style, label=f"{name} ({value:.1f})")
    ax.set_xscale("log")
    ax.set_xlabel("USD per generated image (log)")
    ax.set_ylabel("CLER (%)")
    ax.set_title(title or "Cost-quality frontier")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
