"""Point-biserial correlation between a score and binary correctness, with two 95% CIs (paper §6).

The paper's CIs on R_pb (r = 0.001 -> [-0.034, 0.036]; r = -0.0115 -> [-0.047, 0.024], n = 3,090)
match the Fisher-z interval ``tanh(atanh(r) +- z_{0.975} / sqrt(n - 3))``; a paired percentile
bootstrap (:func:`scipy.stats.bootstrap`) is reported beside it. :func:`pearson` is the plain
Pearson r (with its p) of two continuous samples.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

__all__ = ["point_biserial", "pearson", "fisher_z_interval", "as_binary"]


def as_binary(values, name: str = "correct") -> np.ndarray:
    """Return ``values`` as a 1-D int array of 0/1; raise naming ``name`` for anything else."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be boolean or 0/1 numbers, got dtype {arr.dtype}")
    if not np.all(np.isin(arr, (0, 1))):
        bad = arr[~np.isin(arr, (0, 1))][:3].tolist()
        raise ValueError(f"{name} must hold only 0/1 (or True/False); found e.g. {bad}")
    return arr.astype(np.int64)


def _as_score(values, n: int, name: str = "score") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(
            f"{name} has {len(arr)} values but the labels have {n}; pass one score per sample"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; drop or impute those samples first")
    return arr


def fisher_z_interval(r: float, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Fisher-z confidence interval tanh(atanh(r) +- z_{(1+ci)/2} / sqrt(n - 3)) for a correlation.

    Returns (nan, nan) when r is NaN or n <= 3 (the interval is undefined).
    """
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    if not np.isfinite(r) or n <= 3:
        return (math.nan, math.nan)
    z_crit = stats.norm.ppf(0.5 + ci / 2.0)
    # atanh(+-1) = +-inf and tanh(+-inf) = +-1, the correct degenerate interval.
    with np.errstate(divide="ignore"):
        centre = np.arctanh(np.clip(r, -1.0, 1.0))
    half_width = z_crit / math.sqrt(n - 3)
    return (float(np.tanh(centre - half_width)), float(np.tanh(centre + half_width)))


def pearson(x, y) -> tuple[float, float]:
    """Pearson r of two continuous samples and its two-sided p (:func:`scipy.stats.pearsonr`).

    (NaN, NaN) with fewer than 3 pairs or a constant side, where r is undefined, so a sweep over
    many subsets keeps going.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    result = stats.pearsonr(x, y)
    return float(result.statistic), float(result.pvalue)


def _pearson_last_axis(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson r along ``axis`` for batches of resamples; NaN where either side is constant."""
    x = np.moveaxis(x, axis, -1)
    y = np.moveaxis(y, axis, -1)
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    denom = np.sqrt((xc**2).sum(axis=-1) * (yc**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(axis=-1) / denom


def point_biserial(
    score,
    correct,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    boot_method: str = "percentile",
) -> dict:
    """Point-biserial correlation R_pb(score, correct) with Fisher-z and bootstrap CIs.

    * ``r``, ``p``: :func:`scipy.stats.pointbiserialr` (two-sided p).
    * ``fisher_lo``, ``fisher_hi``: :func:`fisher_z_interval`.
    * ``boot_lo``, ``boot_hi``: :func:`scipy.stats.bootstrap` resampling (correct, score) pairs
      together (``paired=True``), ``n_boot`` resamples, ``boot_method`` ("percentile" or "BCa"),
      seeded with ``np.random.default_rng(seed)``. Resamples in which one side is constant have
      no r; they are dropped (their count is ``boot_degenerate``) and the percentile interval is
      taken over the rest. ``n_boot=0`` skips the bootstrap (NaN bounds).
    * ``constant_input``: True when ``score`` or ``correct`` is constant; r is then undefined
      and every statistic is NaN (no exception, so a sweep over many subsets keeps going).
    """
    y = as_binary(correct)
    x = _as_score(score, len(y))
    n = len(y)
    result = {
        "r": math.nan,
        "p": math.nan,
        "n": int(n),
        "fisher_lo": math.nan,
        "fisher_hi": math.nan,
        "boot_lo": math.nan,
        "boot_hi": math.nan,
        "boot_degenerate": 0,
        "constant_input": False,
    }
    if n < 3:
        raise ValueError(f"point_biserial needs at least 3 samples, got {n}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        result["constant_input"] = True
        return result
    r, p = stats.pointbiserialr(y, x)
    result["r"], result["p"] = float(r), float(p)
    result["fisher_lo"], result["fisher_hi"] = fisher_z_interval(r, n, ci)
    if n_boot > 0:
        result.update(_bootstrap_r(x, y, n_boot, seed, ci, boot_method))
    return result


def _bootstrap_r(
    x: np.ndarray, y: np.ndarray, n_boot: int, seed: int, ci: float, method: str
) -> dict:
    with warnings.catch_warnings():
        # A NaN resample (constant side) makes scipy warn about a degenerate distribution; the
        # interval is recomputed without those resamples below.
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)
        res = stats.bootstrap(
            (y.astype(np.float64), x),
            _pearson_last_axis,
            n_resamples=n_boot,
            paired=True,
            vectorized=True,
            confidence_level=ci,
            method=method,
            rng=np.random.default_rng(seed),
            batch=250,
        )
    distribution = np.asarray(res.bootstrap_distribution)
    degenerate = int(np.isnan(distribution).sum())
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if degenerate and degenerate < len(distribution):
        alpha = (1.0 - ci) / 2.0
        lo, hi = (float(v) for v in np.nanquantile(distribution, [alpha, 1.0 - alpha]))
    return {"boot_lo": lo, "boot_hi": hi, "boot_degenerate": degenerate}
