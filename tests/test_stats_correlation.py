"""Known-answer tests for vrp.stats.correlation (R_pb, Fisher-z and bootstrap CIs)."""

import math

import numpy as np
import pytest
from scipy import stats

from vrp.stats.correlation import fisher_z_interval, pearson, point_biserial


@pytest.mark.parametrize("r,expected", [(0.001, (-0.034, 0.036)), (-0.0115, (-0.047, 0.024))])
def test_fisher_interval_reproduces_paper_cis(r, expected):
    lo, hi = fisher_z_interval(r, 3090)
    assert (round(lo, 3), round(hi, 3)) == expected


def test_fisher_interval_by_hand():
    # r = 0.5, n = 28: atanh(0.5) = 0.549306, 1.959964 / 5 = 0.391993
    lo, hi = fisher_z_interval(0.5, 28)
    assert lo == pytest.approx(math.tanh(0.5493061443 - 0.3919928), abs=1e-6)
    assert hi == pytest.approx(math.tanh(0.5493061443 + 0.3919928), abs=1e-6)
    assert (round(lo, 4), round(hi, 4)) == (0.1560, 0.7358)
    assert all(math.isnan(v) for v in fisher_z_interval(0.2, 3))


def test_point_biserial_matches_scipy_and_bootstrap_brackets_r():
    rng = np.random.default_rng(0)
    correct = rng.random(500) < 0.6
    score = rng.normal(size=500) + 0.5 * correct
    out = point_biserial(score, correct, n_boot=1000, seed=3)
    ref = stats.pointbiserialr(correct, score)
    assert out["r"] == pytest.approx(ref.statistic, abs=1e-12)
    assert out["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert out["n"] == 500 and not out["constant_input"]
    assert (out["fisher_lo"], out["fisher_hi"]) == pytest.approx(
        fisher_z_interval(ref.statistic, 500)
    )
    assert out["boot_lo"] < out["r"] < out["boot_hi"]
    # The bootstrap and Fisher intervals agree to about 0.02 for n = 500.
    assert out["boot_lo"] == pytest.approx(out["fisher_lo"], abs=0.02)
    assert out["boot_hi"] == pytest.approx(out["fisher_hi"], abs=0.02)
    # Deterministic from the seed, different for another seed.
    again = point_biserial(score, correct, n_boot=1000, seed=3)
    assert again["boot_lo"] == out["boot_lo"]
    assert point_biserial(score, correct, n_boot=1000, seed=4)["boot_lo"] != out["boot_lo"]


def test_constant_inputs_give_nan_with_flag():
    out = point_biserial(np.ones(10), [0, 1] * 5)
    assert out["constant_input"] and math.isnan(out["r"]) and math.isnan(out["fisher_lo"])
    out = point_biserial(np.arange(10.0), np.ones(10, dtype=int))
    assert out["constant_input"] and math.isnan(out["p"])


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="0/1"):
        point_biserial([1.0, 2.0, 3.0], [0, 1, 2])
    with pytest.raises(ValueError, match="one score per sample"):
        point_biserial([1.0, 2.0], [0, 1, 1])


def test_pearson_equals_scipy_and_is_nan_where_r_is_undefined():
    rng = np.random.default_rng(2)
    x = rng.normal(size=40)
    y = 0.5 * x + rng.normal(size=40)
    expected = stats.pearsonr(x, y)
    assert pearson(x, y) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))
    assert all(math.isnan(v) for v in pearson(np.ones(40), y))
    assert all(math.isnan(v) for v in pearson(x[:2], y[:2]))
