import numpy as np
import pytest
import scipy.linalg
import torch

from genbench.errors import GenBenchError
from genbench.metrics import frechet_distance, proxy_a_distance


def _scipy_frechet(a, b):
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(root)))


@pytest.mark.parametrize("dims", [4, 32])
def test_frechet_matches_scipy_sqrtm_on_random_gaussians(dims):
    rng = np.random.default_rng(dims)
    mix_a, mix_b = rng.normal(size=(dims, dims)), rng.normal(size=(dims, dims))
    a = rng.normal(size=(400, dims)) @ mix_a + 1.0
    b = rng.normal(size=(300, dims)) @ mix_b - 0.5
    expected = _scipy_frechet(a, b)
    assert abs(frechet_distance(a, b) - expected) / expected < 1e-4


def test_frechet_one_dimensional_closed_form():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2, with sample std (ddof=1).
    a = np.array([[0.0], [2.0]])  # mean 1, sample std sqrt(2)
    b = np.array([[4.0], [6.0], [8.0]])  # mean 6, sample std 2
    assert frechet_distance(a, b) == pytest.approx(25 + (np.sqrt(2) - 2) ** 2)


def test_frechet_is_zero_for_identical_sets_and_accepts_torch():
    feats = np.random.default_rng(3).normal(size=(200, 16))
    assert frechet_distance(feats, feats.copy()) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(torch.tensor(feats), torch.tensor(feats)) == pytest.approx(0.0, abs=1e-8)


def test_frechet_is_symmetric():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(100, 8)), 2 * rng.normal(size=(150, 8))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_frechet_bad_input():
    with pytest.raises(GenBenchError, match="feats_a have 3 dims but feats_b have 4"):
        frechet_distance(np.ones((5, 3)), np.ones((5, 4)))
    with pytest.raises(GenBenchError, match="at least 2 row"):
        frechet_distance(np.ones((1, 3)), np.ones((5, 3)))


def test_proxy_a_near_zero_for_one_distribution_even_with_unequal_sizes():
    rng = np.random.default_rng(5)
    assert proxy_a_distance(rng.normal(size=(150, 8)), rng.normal(size=(150, 8))) < 0.5
    # 40 vs 300 rows: a plain error rate would reward predicting the larger set (PAD about 1.5).
    assert proxy_a_distance(rng.normal(size=(40, 8)), rng.normal(size=(300, 8))) < 0.5


def test_proxy_a_is_two_for_separable_sets_and_in_between_for_overlap():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(150, 8))
    assert proxy_a_distance(a, rng.normal(size=(150, 8)) + 5.0) == pytest.approx(2.0)
    assert 0.5 < proxy_a_distance(a, rng.normal(size=(150, 8)) + 0.4) < 1.9


def test_proxy_a_is_deterministic_for_a_seed():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 0.3
    assert proxy_a_distance(a, b, seed=1) == proxy_a_distance(a, b, seed=1)


def test_proxy_a_needs_a_few_rows_per_set():
    with pytest.raises(GenBenchError, match="feats_b needs at least 4 row"):
        proxy_a_distance(np.ones((10, 2)), np.ones((3, 2)))
