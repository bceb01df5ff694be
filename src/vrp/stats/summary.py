"""Per-layer summaries of (samples x layers) arrays: the mean with a Student-t interval per layer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = ["layer_mean_ci"]


def layer_mean_ci(values, ci: float = 0.95) -> pd.DataFrame:
    """Mean and Student-t confidence interval per layer of (n, L) values, ignoring NaN.

    Returns layer, n, mean, lo, hi; the bounds are NaN with fewer than 2 finite values, the mean
    with none.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"values must be (n_samples, n_layers); got shape {arr.shape}")
    finite = np.isfinite(arr)
    counts = finite.sum(axis=0)
    filled = np.where(finite, arr, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / counts
        variance = (np.where(finite, arr - mean, 0.0) ** 2).sum(axis=0) / (counts - 1)
        sem = np.where(counts > 1, np.sqrt(variance / counts), np.nan)
    half = sps.t.ppf(0.5 + ci / 2.0, np.maximum(counts - 1, 1)) * sem
    return pd.DataFrame(
        {
            "layer": np.arange(arr.shape[1]),
            "n": counts,
            "mean": mean,
            "lo": mean - half,
            "hi": mean + half,
        }
    )
