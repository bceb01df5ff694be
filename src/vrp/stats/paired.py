"""Paired tests on per-sample correctness of two conditions (e.g. full image vs masked image).

``correct_a`` is the reference condition (e.g. the full image) and ``correct_b`` the changed one
(e.g. top-30% patches masked), both 0/1 per sample in the same order.

* :func:`mcnemar_exact` — the principled test for paired binary outcomes (exact binomial on the
  discordant pairs, :func:`statsmodels.stats.contingency_tables.mcnemar`).
* :func:`paired_ttest` — :func:`scipy.stats.ttest_rel` on the 0/1 vectors, the test the paper's
  dev code used; kept for comparability.
* :func:`accuracy_drop_ci` — paired bootstrap CI of the accuracy drop in percentage points.
* :func:`wilson_interval` — Wilson score interval of a proportion (e.g. SC=1 precision).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from vrp.stats.correlation import as_binary

__all__ = [
    "paired_table",
    "mcnemar_exact",
    "paired_ttest",
    "accuracy_drop_ci",
    "flips",
    "wilson_interval",
]


def _pair(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a = as_binary(correct_a, "correct_a")
    b = as_binary(correct_b, "correct_b")
    if len(a) != len(b):
        raise ValueError(
            f"correct_a has {len(a)} samples but correct_b has {len(b)}; "
            "paired tests need the same samples in the same order"
        )
    if len(a) == 0:
        raise ValueError("paired tests need at least one sample")
    return a, b


def paired_table(correct_a, correct_b) -> np.ndarray:
    """2x2 table [[a right & b right, a right & b wrong], [a wrong & b right, a wrong & b wrong]]."""
    a, b = _pair(correct_a, correct_b)
    return np.array(
        [
            [np.sum((a == 1) & (b == 1)), np.sum((a == 1) & (b == 0))],
            [np.sum((a == 0) & (b == 1)), np.sum((a == 0) & (b == 0))],
        ],
        dtype=np.int64,
    )


def mcnemar_exact(correct_a, correct_b) -> dict:
    """Exact McNemar test: dict(n, b, c, statistic, p).

    ``b`` = right under a, wrong under b; ``c`` = wrong under a, right under b. ``statistic`` is
    min(b, c) and ``p`` = min(1, 2 * BinomCDF(min(b, c); b + c, 1/2)) (p = 1 when b + c = 0).
    """
    table = paired_table(correct_a, correct_b)
    result = mcnemar(table, exact=True)
    return {
        "n": int(table.sum()),
        "b": int(table[0, 1]),
        "c": int(table[1, 0]),
        "statistic": float(result.statistic),
        "p": float(result.pvalue),
    }


def paired_ttest(correct_a, correct_b) -> dict:
    """Paired t-test (:func:`scipy.stats.ttest_rel`) on 0/1 correctness: dict(statistic, p, n, mean_diff, degenerate).

    When every paired difference is identical and zero (e.g. identical vectors) the t statistic
    is 0/0; we report statistic 0.0, p = 1.0 and ``degenerate=True`` (no evidence of a
    difference). When every difference is the same non-zero value scipy gives t = +-inf, p = 0;
    that is kept and also flagged ``degenerate``.
    """
    a, b = _pair(correct_a, correct_b)
    diff = a - b
    degenerate = bool(np.ptp(diff) == 0)
    if degenerate and diff[0] == 0:
        statistic, p = 0.0, 1.0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            res = stats.ttest_rel(a, b)
        statistic, p = float(res.statistic), float(res.pvalue)
    return {
        "statistic": statistic,
        "p": p,
        "n": int(len(a)),
        "mean_diff": float(diff.mean()),
        "degenerate": degenerate,
    }


def accuracy_drop_ci(
    correct_a, correct_b, n_boot: int = 2000, seed: int = 0, ci: float = 0.95
) -> dict:
    """Accuracy drop mean(a) - mean(b) in percentage points with a paired percentile bootstrap CI.

    Samples are resampled as pairs (the bootstrap of the per-sample difference a - b),
    :func:`scipy.stats.bootstrap` seeded with ``np.random.default_rng(seed)``.
    Returns dict(acc_a, acc_b, drop_pp, lo, hi, n), all accuracies in percent.
    """
    a, b = _pair(correct_a, correct_b)
    diff_pp = 100.0 * (a - b).astype(np.float64)
    drop = float(diff_pp.mean())
    if np.ptp(diff_pp) == 0:
        lo = hi = drop  # every resample has the same mean
    else:
        res = stats.bootstrap(
            (diff_pp,),
            np.mean,
            n_resamples=n_boot,
            vectorized=True,
            confidence_level=ci,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {
        "acc_a": 100.0 * float(a.mean()),
        "acc_b": 100.0 * float(b.mean()),
        "drop_pp": drop,
        "lo": lo,
        "hi": hi,
        "n": int(len(a)),
    }


def flips(correct_a, correct_b) -> dict:
    """Counts of answer changes from a to b: right_to_wrong, wrong_to_right, both_right, both_wrong, n."""
    table = paired_table(correct_a, correct_b)
    return {
        "right_to_wrong": int(table[0, 1]),
        "wrong_to_right": int(table[1, 0]),
        "both_right": int(table[0, 0]),
        "both_wrong": int(table[1, 1]),
        "n": int(table.sum()),
    }


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval (proportions in [0, 1]) via statsmodels ``proportion_confint``.

    Returns (nan, nan) for n = 0 (no observations, no interval).
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(
            f"wilson_interval needs 0 <= successes <= n, got successes={successes}, n={n}"
        )
    if n == 0:
        return (math.nan, math.nan)
    lo, hi = proportion_confint(int(successes), int(n), alpha=alpha, method="wilson")
    return (float(lo), float(hi))
