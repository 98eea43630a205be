"""CLIP score, mean text similarity, correlations and the timing helper."""

import time

import numpy as np
import pytest
import torch
from scipy import stats

from genbench.errors import GenBenchError
from genbench.metrics import clip_score, correlations, mean_text_similarity, per_class_text_similarity, timed


def test_clip_score_hand_worked():
    images = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    texts = np.array([[5.0, 0.0], [0.0, -1.0], [1.0, 0.0]])
    # cosines 1, -1 (clipped to 0), 1/sqrt(2)
    assert clip_score(images, texts) == pytest.approx(100 * (1 + 0 + 1 / np.sqrt(2)) / 3)
    assert clip_score(torch.tensor(images), torch.tensor(texts)) == pytest.approx(clip_score(images, texts))


def test_clip_score_needs_paired_rows():
    with pytest.raises(GenBenchError, match="paired rows"):
        clip_score(np.ones((3, 2)), np.ones((2, 2)))


def test_mean_text_similarity_averages_classes_not_hits():
    hits = [np.array([0.5, 0.7]), np.array([0.2, 0.2, 0.2, 0.6])]
    np.testing.assert_allclose(per_class_text_similarity(hits), [0.6, 0.3])
    # per-class means 0.6 and 0.3 -> 0.45; pooling all six hits would give 0.4
    assert mean_text_similarity(hits) == pytest.approx(0.45)
    assert mean_text_similarity(np.array([[0.1, 0.3], [0.5, 0.7]])) == pytest.approx(0.4)


def test_mean_text_similarity_names_an_empty_class():
    with pytest.raises(GenBenchError, match="class 1"):
        mean_text_similarity([np.array([0.5]), np.array([])])


def test_correlations_hand_worked_and_against_scipy():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 3.0, 2.0, 4.0])
    result = correlations(x, y)
    # ranks differ by 1 at two places: Spearman = 1 - 6 * 2 / (4 * 15) = 0.8; Pearson is 0.8 too.
    assert result["spearman"] == pytest.approx(0.8)
    assert result["pearson"] == pytest.approx(0.8)
    assert result["pearson_p"] == pytest.approx(stats.pearsonr(x, y).pvalue)
    assert result["spearman_p"] == pytest.approx(stats.spearmanr(x, y).pvalue)


def test_monotone_but_curved_data_has_spearman_one():
    x = np.linspace(0.1, 3, 12)
    result = correlations(x, np.exp(3 * x))
    assert result["spearman"] == pytest.approx(1.0)
    assert result["pearson"] < 0.95
    assert result["pearson"] == pytest.approx(np.corrcoef(x, np.exp(3 * x))[0, 1])


@pytest.mark.parametrize(
    "x, y, match",
    [([1, 2], [1, 2], "at least 3"), ([1, 2, 3], [1, 2], "paired"), ([1, 1, 1], [1, 2, 3], "constant"),
     ([1, np.nan, 3], [1, 2, 3], "NaN")],
)
def test_correlations_bad_input(x, y, match):
    with pytest.raises(GenBenchError, match=match):
        correlations(np.array(x, dtype=float), np.array(y, dtype=float))


def test_timed_runs_warmup_then_repeats_and_returns_the_result():
    calls = []

    def work(value, *, pause):
        calls.append(value)
        time.sleep(pause)
        return value * 2

    result, seconds = timed(work, 21, repeats=3, warmup=2, pause=0.01)
    assert result == 42
    assert len(calls) == 5
    assert len(seconds) == 3 and all(s >= 0.01 for s in seconds)


def test_timed_rejects_zero_repeats():
    with pytest.raises(GenBenchError, match="repeats"):
        timed(lambda: None, repeats=0)
