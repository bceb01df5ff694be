"""Image-clustered inference: one cluster bootstrap for every interval, a clustered McNemar test.

Why: several questions ask about one image, and their outcomes share that image (a hard image
makes all its questions hard). Treating questions as independent (the Fisher-z interval, a
question-level bootstrap, McNemar, Wilson) understates the uncertainty. The unit of resampling
is therefore the IMAGE: a resample draws ``G`` images with replacement out of the ``G`` images and
keeps every question of each drawn image (the non-parametric cluster bootstrap, Davison &
Hinkley 1997 §3.8; Field & Welsh 2007). The same image in several datasets, POPE settings or
models is one cluster: the caller passes the project-wide ``image_id`` (COCO images are
``coco-<id>`` in POPE and in the COCO tasks).

One resampling helper serves every statistic: :func:`cluster_resample_counts` draws, per
resample, how many times each cluster is taken (a ``(B, G)`` count matrix, seeded). Every
statistic is then an integer-WEIGHTED statistic of the original samples (a sample's weight is its
cluster's count), so nothing is copied per resample:

* means, accuracy drops and proportions: cluster sums aggregated once with :func:`numpy.bincount`,
  then one (B, G) x (G, k) matrix product for all resamples;
* Pearson / point-biserial r (also the within-model pooled r, per stratum): cluster sums of
  1, x, y, x², y², xy, the same way;
* AUROC: the Mann-Whitney statistic with weights (scores sorted once; ties count 1/2), which
  equals :func:`sklearn.metrics.roc_auc_score` with ``sample_weight`` (tested).

With one cluster per question the same code is the ordinary (question-level) bootstrap, which is
how the question-level intervals are computed for comparison (``unit="question"``).
Intervals are percentile intervals of the resample distribution; resamples in which a statistic is
undefined (one class only, a constant side) are dropped and counted.

The clustered paired test is the Obuchowski (1998) / Durkalski et al. (2003) clustered McNemar
statistic: with ``d_g`` = (right->wrong) - (wrong->right) summed over cluster ``g``,
``X² = (Σ d_g)² / Σ d_g²`` against chi²(1). With one question per cluster it is McNemar's
uncorrected chi² statistic ``(b - c)² / (b + c)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "INTERVAL_COLUMNS",
    "INTERVAL_UNITS",
    "cluster_codes",
    "percentile_interval",
    "cluster_resample_counts",
    "cluster_bootstrap",
    "interval_method",
    "weighted_mean",
    "weighted_pearson",
    "weighted_within_pearson",
    "weighted_auroc",
    "within_group_pearson",
    "clustered_mcnemar",
    "unit_intervals",
    "nan_intervals",
    "auroc_intervals",
]

INTERVAL_UNITS = ("image", "question")
# The interval columns of unit_intervals, in table order (prefixed by the statistic's name there).
INTERVAL_COLUMNS = ("lo", "hi", "ci_method", "lo_image", "hi_image", "lo_question", "hi_question")


def cluster_codes(groups, unit: str = "image") -> tuple[np.ndarray, int]:
    """(cluster code per sample in 0..G-1, G); ``unit="question"``: every sample its own cluster."""
    if unit not in INTERVAL_UNITS:
        raise ValueError(f"stats.interval_unit must be one of {list(INTERVAL_UNITS)}, got {unit!r}")
    values = np.asarray(groups)
    if values.ndim != 1:
        raise ValueError(
            f"cluster ids must be 1-D (one image id per sample), got shape {values.shape}"
        )
    if unit == "question":
        return np.arange(len(values), dtype=np.int64), len(values)
    if pd.isna(values).any():
        raise ValueError(
            "cluster ids (image_id) contain missing values; every question needs its image id"
        )
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), len(uniques)


def interval_method(unit: str, n_boot: int) -> str:
    """The label written beside an interval: which resampling unit and how many resamples."""
    if unit == "image":
        return f"cluster bootstrap by image (percentile, {n_boot} resamples)"
    return f"question bootstrap (percentile, {n_boot} resamples)"


def cluster_resample_counts(n_clusters: int, n_boot: int, seed: int, batch: int = 250):
    """Yield ``(b, G)`` int matrices: how often each cluster is drawn in each resample.

    Each resample draws ``G`` clusters uniformly with replacement. Seeded with
    ``np.random.default_rng(seed)``; batches of ``batch`` resamples keep memory flat.
    """
    if n_clusters < 1:
        raise ValueError("the cluster bootstrap needs at least one cluster")
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, batch):
        size = min(batch, n_boot - start)
        draws = rng.integers(0, n_clusters, size=(size, n_clusters))
        offsets = (np.arange(size) * n_clusters)[:, None]
        yield np.bincount((draws + offsets).ravel(), minlength=size * n_clusters).reshape(
            size, n_clusters
        )


def percentile_interval(values: list[np.ndarray], ci: float) -> tuple[float, float, int]:
    """(lo, hi, n used) of the percentile interval of bootstrap ``values`` (batches of them).

    Non-finite values (resamples where the statistic is undefined) are left out and ``n used``
    counts the rest; with none left the bounds are NaN.
    """
    boot = np.concatenate(values) if values else np.array([])
    boot = boot[np.isfinite(boot)]
    if not len(boot):
        return math.nan, math.nan, 0
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(lo), float(hi), int(len(boot))


def cluster_bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray],
    groups,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    unit: str = "image",
    batch: int = 250,
) -> dict:
    """Percentile interval of ``statistic`` under the cluster bootstrap.

    ``statistic(weights)`` takes a ``(b, n)`` float matrix of per-sample weights (each row one
    resample; a sample's weight is how often its cluster was drawn) and returns ``b`` values
    (NaN where undefined). Returns dict(lo, hi, n_clusters, n_boot_used, method).
    """
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    codes, n_clusters = cluster_codes(groups, unit)
    values = []
    if n_boot > 0 and len(codes):
        # statistics built from sums (means, correlations) aggregate per cluster once: each
        # resample is then one (G,) x (G, k) product instead of a pass over every question
        sums = (
            statistic.cluster_sums(codes, n_clusters) if hasattr(statistic, "from_sums") else None
        )
        for counts in cluster_resample_counts(n_clusters, n_boot, seed, batch):
            if sums is not None:
                values.append(np.asarray(statistic.from_sums(counts @ sums), dtype=np.float64))
            else:
                values.append(
                    np.asarray(statistic(counts[:, codes].astype(np.float64)), dtype=np.float64)
                )
    lo, hi, used = percentile_interval(values, ci)
    return {
        "lo": lo,
        "hi": hi,
        "n_clusters": int(n_clusters),
        "n_boot_used": used,
        "method": interval_method(unit, n_boot),
    }


# ---------------------------------------------------------------------------- weighted statistics
def weighted_mean(x) -> Callable[[np.ndarray], np.ndarray]:
    """Statistic: the weighted mean of ``x`` (accuracy, a paired difference, a proportion)."""
    values = np.asarray(x, dtype=np.float64)

    def statistic(w: np.ndarray) -> np.ndarray:
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ values) / total

    statistic.cluster_sums = lambda codes, g: _cluster_sums(codes, g, np.ones_like(values), values)
    statistic.from_sums = lambda t: _divide(t[:, 1], t[:, 0])
    return statistic


def _cluster_sums(codes: np.ndarray, n_clusters: int, *columns: np.ndarray) -> np.ndarray:
    """(G, k): the sum of each column over each cluster's samples (:func:`numpy.bincount`)."""
    return np.stack([np.bincount(codes, weights=c, minlength=n_clusters) for c in columns], axis=1)


def _divide(a, b):
    with np.errstate(invalid="ignore", divide="ignore"):
        return a / b


def _moments(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """The columns whose sums give a weighted correlation: 1, x, y, x², y², xy."""
    return np.ones_like(x), x, y, x * x, y * y, x * y


def _r_from_moments(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cov, var_x, var_y) sums of squares around the weighted means from summed moments (b, 6)."""
    total, sx, sy, sxx, syy, sxy = (t[:, i] for i in range(6))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sxy - sx * sy / total, sxx - sx * sx / total, syy - sy * sy / total


def _weighted_r(w, x, y):
    total = w.sum(axis=1)
    sx, sy = w @ x, w @ y
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = w @ (x * y) - sx * sy / total
        vx = w @ (x * x) - sx * sx / total
        vy = w @ (y * y) - sy * sy / total
    return cov, vx, vy


def _ratio(cov, vx, vy) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.sqrt(vx * vy)
        r = cov / denom
    # a constant side (zero variance up to rounding) has no r
    scale = np.maximum(np.abs(vx), np.abs(vy))
    return np.where(
        (vx <= 1e-12 * np.maximum(scale, 1.0)) | (vy <= 1e-12 * np.maximum(scale, 1.0)),
        np.nan,
        np.clip(r, -1.0, 1.0),
    )


def weighted_pearson(x, y) -> Callable[[np.ndarray], np.ndarray]:
    """Statistic: the weighted Pearson r of (x, y) (the point-biserial r when y is 0/1)."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xs, ys = xs - xs.mean(), ys - ys.mean()  # centring once keeps the sums well conditioned

    def statistic(w: np.ndarray) -> np.ndarray:
        return _ratio(*_weighted_r(w, xs, ys))

    statistic.cluster_sums = lambda codes, g: _cluster_sums(codes, g, *_moments(xs, ys))
    statistic.from_sums = lambda t: _ratio(*_r_from_moments(t))
    return statistic


def weighted_within_pearson(x, y, strata) -> Callable[[np.ndarray], np.ndarray]:
    """Statistic: pooled within-stratum r of (x, y) under weights (:func:`within_group_pearson`)."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    codes, levels = pd.factorize(np.asarray(strata))
    parts = []
    for level in range(len(levels)):
        idx = np.flatnonzero(codes == level)
        parts.append((idx, xs[idx] - xs[idx].mean(), ys[idx] - ys[idx].mean()))

    def statistic(w: np.ndarray) -> np.ndarray:
        cov = vx = vy = 0.0
        for idx, xi, yi in parts:
            c, a, b = _weighted_r(w[:, idx], xi, yi)
            keep = w[:, idx].sum(axis=1) > 0  # a stratum absent from the resample adds nothing
            cov = cov + np.where(keep, c, 0.0)
            vx = vx + np.where(keep, a, 0.0)
            vy = vy + np.where(keep, b, 0.0)
        return _ratio(cov, vx, vy)

    def cluster_sums(cluster: np.ndarray, g: int) -> np.ndarray:
        blocks = []
        for idx, xi, yi in parts:  # six moment columns per stratum
            blocks.append(_cluster_sums(cluster[idx], g, *_moments(xi, yi)))
        return np.concatenate(blocks, axis=1)

    def from_sums(t: np.ndarray) -> np.ndarray:
        cov = vx = vy = 0.0
        for m in range(len(parts)):
            block = t[:, 6 * m : 6 * m + 6]
            c, a, b = _r_from_moments(block)
            keep = block[:, 0] > 0
            cov = cov + np.where(keep, c, 0.0)
            vx = vx + np.where(keep, a, 0.0)
            vy = vy + np.where(keep, b, 0.0)
        return _ratio(cov, vx, vy)

    statistic.cluster_sums = cluster_sums
    statistic.from_sums = from_sums
    return statistic


def within_group_pearson(x, y, strata) -> float:
    """Pooled within-stratum correlation: Pearson r of x and y, both centred within each stratum.

    ``r_w = Σ_m S_xy,m / sqrt(Σ_m S_xx,m · Σ_m S_yy,m)`` with the sums of squares and products
    taken around each stratum's own means (the "within-groups" correlation of an analysis of
    covariance). Strata = models: differences between models' mean score and accuracy do not
    enter. NaN when either side is constant within every stratum.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length; got {xs.shape} and {ys.shape}")
    frame = pd.DataFrame({"x": xs, "y": ys, "s": np.asarray(strata)})
    centred = frame[["x", "y"]] - frame.groupby("s")[["x", "y"]].transform("mean")
    sxx, syy = float((centred["x"] ** 2).sum()), float((centred["y"] ** 2).sum())
    if sxx <= 0 or syy <= 0:
        return math.nan
    return float((centred["x"] * centred["y"]).sum() / math.sqrt(sxx * syy))


def tie_block_weights(
    y, score, descending: bool = False
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Per resample, the weight of positives and of negatives in each block of tied scores.

    Scores are sorted once (ascending, or ``descending``); the returned function maps (b, n)
    weights to two (b, n_blocks) arrays, blocks in score order: the common step of the weighted
    rank statistics (:func:`weighted_auroc`, the monitor's weighted average precision).
    """
    labels = np.asarray(y).astype(bool)
    scores = np.asarray(score, dtype=np.float64)
    order = np.argsort(-scores if descending else scores, kind="stable")
    sorted_scores = scores[order]
    pos_sorted = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])

    def blocks(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ws = w[:, order]
        pos = np.add.reduceat(np.where(pos_sorted, ws, 0.0), starts, axis=1)
        neg = np.add.reduceat(np.where(pos_sorted, 0.0, ws), starts, axis=1)
        return pos, neg

    return blocks


def weighted_auroc(y, score) -> Callable[[np.ndarray], np.ndarray]:
    """Statistic: the weighted AUROC (Mann-Whitney, ties 1/2) of ``score`` for labels ``y`` (0/1).

    Equals ``roc_auc_score(y, score, sample_weight=w)`` row by row; NaN where a resample lacks a
    class. Scores are sorted once; each resample costs O(n).
    """
    blocks = tie_block_weights(y, score)

    def statistic(w: np.ndarray) -> np.ndarray:
        pos, neg = blocks(w)
        below = np.cumsum(neg, axis=1) - neg
        total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
        return np.where((total_pos > 0) & (total_neg > 0), auc, np.nan)

    return statistic


# ---------------------------------------------------------------------------- clustered McNemar
def clustered_mcnemar(correct_a, correct_b, groups) -> dict:
    """Obuchowski / Durkalski clustered McNemar test of paired 0/1 outcomes.

    Per cluster ``g``: ``d_g`` = #(right under a, wrong under b) - #(wrong under a, right under b).
    ``X² = (Σ_g d_g)² / Σ_g d_g²`` ~ chi²(1) under no difference (Durkalski et al. 2003, Stat Med
    22:1417, eq. 3). p = 1 when no cluster has a discordant difference. Returns dict(statistic,
    p, n_clusters, method).
    """
    a = np.asarray(correct_a).astype(np.int64)
    b = np.asarray(correct_b).astype(np.int64)
    codes, n_clusters = cluster_codes(groups, "image")
    if not len(a) == len(b) == len(codes):
        raise ValueError(
            f"clustered McNemar needs one image id per pair; got {len(a)}, {len(b)}, {len(codes)}"
        )
    d = np.bincount(codes, weights=(a - b).astype(np.float64), minlength=n_clusters)
    denom = float((d * d).sum())
    if denom == 0:
        statistic, p = 0.0, 1.0
    else:
        statistic = float(d.sum() ** 2 / denom)
        p = float(stats.chi2.sf(statistic, df=1))
    return {
        "statistic": statistic,
        "p": p,
        "n_clusters": int(n_clusters),
        "method": "clustered McNemar by image (Obuchowski/Durkalski)",
    }


# ---------------------------------------------------------------------------- both units, labelled
def unit_intervals(
    statistic: Callable[[np.ndarray], np.ndarray],
    groups,
    n_boot: int = 2000,
    seed: int = 0,
    unit: str = "image",
    prefix: str = "",
    question: tuple[float, float, str] | None = None,
    ci: float = 0.95,
) -> dict:
    """The headline interval (``unit``) and both labelled ones, as table columns.

    Columns: ``{prefix}lo``/``{prefix}hi`` (the configured ``unit``), ``{prefix}ci_method`` (what
    they are), ``{prefix}lo_image``/``{prefix}hi_image`` (cluster bootstrap by image) and
    ``{prefix}lo_question``/``{prefix}hi_question`` (questions independent). ``question`` =
    (lo, hi, method) replaces the question-level bootstrap with a closed form (Fisher-z, Wilson),
    the interval the paper reports.
    """
    if unit not in INTERVAL_UNITS:
        raise ValueError(f"stats.interval_unit must be one of {list(INTERVAL_UNITS)}, got {unit!r}")
    image = cluster_bootstrap(statistic, groups, n_boot, seed, ci, unit="image")
    if question is None:
        q = cluster_bootstrap(statistic, groups, n_boot, seed, ci, unit="question")
        question = (q["lo"], q["hi"], q["method"])
    chosen = (image["lo"], image["hi"], image["method"]) if unit == "image" else question
    return {
        f"{prefix}lo": chosen[0],
        f"{prefix}hi": chosen[1],
        f"{prefix}ci_method": chosen[2],
        f"{prefix}lo_image": image["lo"],
        f"{prefix}hi_image": image["hi"],
        f"{prefix}lo_question": question[0],
        f"{prefix}hi_question": question[1],
    }


def nan_intervals(prefix: str = "", method: str = "") -> dict:
    """The columns of :func:`unit_intervals`, all NaN (the statistic is undefined on a subset)."""
    return {f"{prefix}{k}": (method if k == "ci_method" else math.nan) for k in INTERVAL_COLUMNS}


def auroc_intervals(
    y, score, groups, n_boot: int = 1000, seed: int = 0, unit: str = "image", prefix: str = ""
) -> dict:
    """AUROC (:func:`sklearn.metrics.roc_auc_score`) with :func:`unit_intervals` (by image).

    Returns ``{prefix}auroc``, n, n_pos, n_images and the interval columns; NaN intervals when
    ``y`` has one class.
    """
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(y).astype(np.int64)
    scores = np.asarray(score, dtype=np.float64)
    n, n_pos = len(labels), int(labels.sum())
    out = {
        f"{prefix}auroc": math.nan,
        "n": n,
        "n_pos": n_pos,
        "n_images": int(len(pd.unique(np.asarray(groups)))),
    }
    if n_pos in (0, n):
        return {**out, **nan_intervals(prefix, interval_method(unit, n_boot))}
    out[f"{prefix}auroc"] = float(roc_auc_score(labels, scores))
    return {
        **out,
        **unit_intervals(weighted_auroc(labels, scores), groups, n_boot, seed, unit, prefix),
    }
