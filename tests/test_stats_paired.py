"""Known-answer tests for vrp.stats.paired (McNemar, t-test, bootstrap drop, Wilson)."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from vrp.stats import paired as P


def vectors_from_table(both_right, right_to_wrong, wrong_to_right, both_wrong):
    a = [1] * both_right + [1] * right_to_wrong + [0] * wrong_to_right + [0] * both_wrong
    b = [1] * both_right + [0] * right_to_wrong + [1] * wrong_to_right + [0] * both_wrong
    return np.array(a), np.array(b)


def test_mcnemar_exact_known_table():
    a, b = vectors_from_table(50, 12, 3, 35)
    out = P.mcnemar_exact(a, b)
    assert (out["n"], out["b"], out["c"], out["statistic"]) == (100, 12, 3, 3.0)
    assert out["p"] == pytest.approx(mcnemar([[50, 12], [3, 35]], exact=True).pvalue, rel=1e-12)
    # By hand: 2 * P(X <= 3), X ~ Bin(15, 1/2) = 2 * (1 + 15 + 105 + 455) / 32768 = 1152 / 32768
    assert out["p"] == pytest.approx(1152 / 32768, rel=1e-12)
    assert out["p"] == pytest.approx(2 * stats.binom.cdf(3, 15, 0.5), rel=1e-12)


def test_mcnemar_balanced_and_empty_discordance():
    a, b = vectors_from_table(10, 4, 4, 10)
    assert P.mcnemar_exact(a, b)["p"] == pytest.approx(1.0)  # 2*CDF > 1, capped at 1
    a, b = vectors_from_table(10, 0, 0, 5)
    assert P.mcnemar_exact(a, b)["p"] == pytest.approx(1.0)


def test_paired_ttest_matches_scipy_and_handles_identical():
    a, b = vectors_from_table(50, 12, 3, 35)
    out = P.paired_ttest(a, b)
    ref = stats.ttest_rel(a, b)
    assert out["statistic"] == pytest.approx(ref.statistic) and out["p"] == pytest.approx(
        ref.pvalue
    )
    assert out["mean_diff"] == pytest.approx(0.09) and not out["degenerate"]
    same = P.paired_ttest(a, a)
    assert same["p"] == 1.0 and same["statistic"] == 0.0 and same["degenerate"]
    with pytest.raises(ValueError, match="same samples"):
        P.paired_ttest([1, 0], [1, 0, 1])


def test_flips_and_drop_ci():
    a, b = vectors_from_table(50, 12, 3, 35)
    assert P.flips(a, b) == {
        "right_to_wrong": 12,
        "wrong_to_right": 3,
        "both_right": 50,
        "both_wrong": 35,
        "n": 100,
    }
    out = P.accuracy_drop_ci(a, b, n_boot=2000, seed=0)
    assert (out["acc_a"], out["acc_b"], out["drop_pp"]) == pytest.approx((62.0, 53.0, 9.0))
    # Normal approximation: sd of the difference 0.379 / sqrt(100) -> +-7.4 pp around 9.
    assert out["lo"] == pytest.approx(9.0 - 7.4, abs=1.5) and out["hi"] == pytest.approx(
        9.0 + 7.4, abs=1.5
    )
    assert out == P.accuracy_drop_ci(a, b, n_boot=2000, seed=0)
    same = P.accuracy_drop_ci(a, a)
    assert (same["drop_pp"], same["lo"], same["hi"]) == (0.0, 0.0, 0.0)


def test_wilson_matches_statsmodels_and_paper_sc_precision():
    assert P.wilson_interval(17, 40) == pytest.approx(proportion_confint(17, 40, method="wilson"))
    assert P.wilson_interval(0, 10) == pytest.approx(proportion_confint(0, 10, method="wilson"))
    # SC=1 precision 90.8% with about 660 full-agreement questions: paper CI [88.4, 92.8].
    lo, hi = P.wilson_interval(599, 660)
    assert 100 * lo == pytest.approx(88.4, abs=0.15) and 100 * hi == pytest.approx(92.8, abs=0.15)
    assert all(math.isnan(v) for v in P.wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes"):
        P.wilson_interval(5, 3)
