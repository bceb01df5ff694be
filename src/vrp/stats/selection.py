"""Index geometry for the causal sweeps: which patches to mask, which channels to ablate.

Rounding rule (one rule everywhere): ``n_masked(p, n) = floor(p * n + 0.5)`` — round half up,
not Python's banker's rounding (``round(2.5) == 2``), so the count never decreases as p grows
and a half-patch always rounds up. A 1e-9 slack absorbs binary floating error: 0.35 * 90 is
31.499999999999996 in floats but exactly 31.5, so it gives 32.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

__all__ = ["n_masked", "select_patches", "random_channels"]


def n_masked(p: float, n_patches: int) -> int:
    """Number of patches masked at ratio ``p``: floor(p * n_patches + 0.5) (round half up)."""
    if isinstance(n_patches, bool) or int(n_patches) != n_patches or n_patches < 1:
        raise ValueError(f"n_patches must be a positive integer, got {n_patches!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"masking ratio p must lie in [0, 1], got {p}")
    return int(math.floor(p * int(n_patches) + 0.5 + 1e-9))


def _as_generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise ValueError("mode='random' needs rng: a numpy Generator or an integer seed")
    return np.random.default_rng(rng)


def select_patches(
    scores, p: float, mode: Literal["high", "low", "random"] = "high", rng=None
) -> np.ndarray:
    """Indices of exactly ``n_masked(p, len(scores))`` patches, sorted ascending.

    * ``"high"``: the highest-scoring patches; ties broken by lower index first.
    * ``"low"``: the lowest-scoring patches; ties broken by lower index first.
    * ``"random"``: uniformly without replacement from ``rng`` (a numpy Generator or int seed);
      the scores only fix the number of patches.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(
            f"scores must be 1-D (one score per patch, flattened row-major); got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("scores contain NaN or inf; cannot rank patches")
    k = n_masked(p, len(values))
    index = np.arange(len(values))
    if mode == "high":
        chosen = np.lexsort((index, -values))[:k]
    elif mode == "low":
        chosen = np.lexsort((index, values))[:k]
    elif mode == "random":
        chosen = _as_generator(rng).choice(len(values), size=k, replace=False)
    else:
        raise ValueError(f"mode must be 'high', 'low' or 'random', got {mode!r}")
    return np.sort(chosen).astype(np.int64)


def random_channels(n_channels: int, k: int, seed: int, exclude=None) -> np.ndarray:
    """``k`` distinct channel indices in [0, n_channels), uniformly at random, sorted ascending.

    Channels in ``exclude`` (e.g. the probe's top channels, for a random control) are never
    drawn. Deterministic from ``seed``.
    """
    if n_channels < 1:
        raise ValueError(f"n_channels must be positive, got {n_channels}")
    pool = np.arange(n_channels)
    if exclude is not None:
        excluded = np.asarray(exclude, dtype=np.int64).ravel()
        if excluded.size and (excluded.min() < 0 or excluded.max() >= n_channels):
            raise ValueError(f"exclude holds channel indices outside [0, {n_channels})")
        pool = np.setdiff1d(pool, excluded)
    if not 0 <= k <= len(pool):
        raise ValueError(
            f"cannot draw k={k} channels from {len(pool)} available "
            f"({n_channels} channels minus {n_channels - len(pool)} excluded)"
        )
    return np.sort(np.random.default_rng(seed).choice(pool, size=k, replace=False)).astype(np.int64)
