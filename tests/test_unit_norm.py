"""unit_norm (numpy) and unit_norm_tensor (torch): unit rows, a zero row kept, the 1e-12 clamp."""

import numpy as np
import pytest
import torch

from genbench.errors import GenBenchError
from genbench.features import unit_norm_tensor
from genbench.metrics.arrays import l2_normalize, unit_norm

ROWS = np.array([[3.0, 4.0], [0.0, 0.0], [1e-13, 0.0]])
# 3-4-5 triangle; a zero row stays zero; a row of norm 1e-13 is divided by the 1e-12 clamp
EXPECTED = np.array([[0.6, 0.8], [0.0, 0.0], [0.1, 0.0]])


def test_unit_norm_by_hand():
    np.testing.assert_allclose(unit_norm(ROWS), EXPECTED)
    np.testing.assert_allclose(unit_norm(np.array([0.0, -2.0])), [0.0, -1.0])  # a single vector


def test_unit_norm_tensor_matches_numpy():
    np.testing.assert_allclose(unit_norm_tensor(torch.from_numpy(ROWS)).numpy(), EXPECTED)


def test_l2_normalize_refuses_the_zero_row_unit_norm_keeps():
    with pytest.raises(GenBenchError, match="row 1 is all zeros"):
        l2_normalize(ROWS, "feats")
    np.testing.assert_allclose(l2_normalize(ROWS[:1], "feats"), unit_norm(ROWS[:1]))
