"""Known-answer tests for vrp.stats.summary (per-layer means with Student-t intervals)."""

import numpy as np
import pytest
from scipy import stats

from vrp.stats import layer_mean_ci


def test_layer_mean_ci_equals_scipy_per_layer_and_leaves_undefined_bounds_nan():
    values = np.array([[1.0, 2.0, np.nan], [2.0, 4.0, 5.0], [4.0, 9.0, np.nan]])
    table = layer_mean_ci(values)
    assert table["layer"].tolist() == [0, 1, 2] and table["n"].tolist() == [3, 3, 1]
    for layer in (0, 1):
        column = values[:, layer]
        lo, hi = stats.t.interval(0.95, 2, loc=column.mean(), scale=stats.sem(column))
        row = table.iloc[layer]
        assert (row["mean"], row["lo"], row["hi"]) == pytest.approx((column.mean(), lo, hi))
    assert (
        table.iloc[2]["mean"] == 5.0
        and np.isnan(table.iloc[2]["lo"])
        and np.isnan(table.iloc[2]["hi"])
    )
    with pytest.raises(ValueError, match="n_samples, n_layers"):
        layer_mean_ci(np.ones(3))
