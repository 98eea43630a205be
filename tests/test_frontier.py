"""The frontier's science on hand-worked cases (genbench.frontier)."""

import numpy as np
import pytest

from genbench.errors import GenBenchError
from genbench.frontier import bootstrap_interval, cheapest_within, expand_grid, pareto_front, point_id


def test_pareto_front_hand_worked():
    # (cost, score): b dominates a (cheaper? no: a cheaper, b better) ; d is dominated by c
    costs = [1.0, 2.0, 3.0, 4.0, 2.0]
    scores = [80.0, 85.0, 90.0, 89.0, 84.0]
    assert pareto_front(costs, scores) == [0, 1, 2]


def test_pareto_front_ties_keep_the_better_at_equal_cost():
    assert pareto_front([1.0, 1.0], [70.0, 75.0]) == [1]


def test_cheapest_within_hand_worked():
    rows = [{"id": "a", "settings": {"steps": 5}, "cler": 80.0, "usd_per_image": 1e-6},
            {"id": "b", "settings": {"steps": 10}, "cler": 88.5, "usd_per_image": 2e-6},
            {"id": "c", "settings": {"steps": 50}, "cler": 90.0, "usd_per_image": 9e-6}]
    table = cheapest_within(rows, (1.0, 2.0, 15.0))
    assert [r["id"] for r in table] == ["c", "b", "a"]
    assert table[1]["usd_per_1000_images"] == pytest.approx(2e-3)


def test_bootstrap_interval_matches_numpy_by_hand():
    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    low, high = bootstrap_interval(lambda idx: values[idx].mean() * 100, len(values), draws=500, seed=3)
    rng = np.random.default_rng(3)
    means = [values[rng.integers(0, 10, size=10)].mean() * 100 for _ in range(500)]
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    assert low < 70.0 < high


def test_expand_grid_product_and_points_without_repeats():
    points = expand_grid({"product": {"steps": [5, 10], "scheduler": ["default", "ddim"]},
                          "points": [{"steps": 5, "scheduler": "ddim"}]})
    assert len(points) == 4
    assert len({point_id(p) for p in points}) == 4


def test_expand_grid_refuses_an_unknown_setting():
    with pytest.raises(GenBenchError, match="stepz"):
        expand_grid({"points": [{"stepz": 5}]})


def test_default_grid_has_at_least_16_points():
    from genbench.frontier import load_grid

    points = load_grid("profiles/frontier/embedded.yaml")
    assert len(points) >= 16
    assert {p["steps"] for p in points} >= {5, 10, 20, 50}
    assert len({p["guidance_scale"] for p in points}) >= 3
    assert len({p["scheduler"] for p in points}) >= 2
    assert len({p["images_per_class"] for p in points}) >= 2


def test_a_finished_point_is_not_pending(tmp_path):
    from genbench import storage
    from genbench.frontier import row_key
    from genbench.frontier_points import pending

    points = expand_grid({"product": {"steps": [5, 10, 20]}})
    context = {"generate": {"seed": 0}}
    storage.atomic_write_json(tmp_path / f"{row_key(points[1], context)}.json", {"id": point_id(points[1])})
    (tmp_path / f"{row_key(points[2], context)}.json.tmp").write_text("{")  # a half-written row does not count
    assert pending(points, tmp_path, context) == [points[0], points[2]]
    # a row made under other params (here another seed) is not this run's
    assert pending(points, tmp_path, {"generate": {"seed": 1}}) == points


def test_run_order_groups_points_that_load_the_same_generator():
    from genbench.frontier import run_order

    points = expand_grid({"product": {"steps": [5, 10], "scheduler": ["default", "ddim"]}})
    ordered = run_order(points, {"scheduler": "default"})
    assert [p["scheduler"] for p in ordered] == ["default", "default", "ddim", "ddim"]
    assert [p["steps"] for p in ordered] == [5, 10, 5, 10]
    assert sorted(map(point_id, ordered)) == sorted(map(point_id, points))
