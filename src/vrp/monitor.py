"""The reliability monitor: a trained hidden-state probe, exported and applied at inference time.

Train once with the workflow (``results/monitor/{model}/{dataset}/``), then for every new
(image, question) get the model's answer, a calibrated P(correct) and the output confidence
beside it, all from the ONE forward pass that answers: a forward hook on the probe's decoder
layer keeps that layer's last-prompt-token residual state, and the probe is one standardise +
dot product on it.

Bundle layout (format :data:`FORMAT_VERSION`; plain files, no pickles)
----------------------------------------------------------------------
``monitor.json``
    the card: format version, probe layer (decoder-layer index ``l``; the state is the output of
    decoder layer ``l``, the extraction's ``hidden[:, l + 1]``), calibration method, model
    identity (family, path or Hub id, configured and resolved revision, dtype, hidden size,
    layers, a weights signature), prompt template, answer candidates per task, dataset name,
    config hashes, held-out metrics, and the export-time equivalence check.
``probe.safetensors``
    float64 arrays: ``mean`` and ``scale`` (the StandardScaler), ``coef`` and ``intercept`` (the
    logistic probe on standardised features); for Platt calibration ``platt`` = [slope, bias]
    applied to the probe's logit; for isotonic ``isotonic_x`` / ``isotonic_y``, the fitted
    thresholds (linear interpolation between them, clipped at the ends, as scikit-learn does).
``oof_scores.parquet``
    per training question: the out-of-fold probe probability (``probe_oof``, the same number as
    ``probe_peak_in_sample_layer`` in results/probes/.../scores.parquet: the layer is the peak
    chosen on all folds, so these held-out metrics carry that one in-sample choice; Table 3's
    nested ``probe_peak`` chooses the layer inside each fold), the
    cross-fitted calibrated P(correct) (``p_correct_oof``), output confidence, correctness.

The probe applied here is ONE final probe fit on all training questions; its held-out quality is
what the out-of-fold scores measure (folds: :func:`vrp.analysis.probes.probe_folds`, image-grouped).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from vrp.io import atomic_dir
from vrp.stats.cluster import (
    cluster_codes,
    cluster_resample_counts,
    percentile_interval,
    tie_block_weights,
    weighted_auroc,
)

FORMAT_VERSION = 1
CARD_FILE = "monitor.json"
WEIGHTS_FILE = "probe.safetensors"
OOF_FILE = "oof_scores.parquet"
CALIBRATIONS = ("platt", "isotonic")
# the pseudo-task of a question given without a task: every training candidate competes
ANY_TASK = "any"


class MonitorModelMismatch(ValueError):
    """The model given to a monitor is not the one the monitor's probe was trained on."""


# ---------------------------------------------------------------------------------------------
# Probe and calibration (numpy; what the bundle stores)
# ---------------------------------------------------------------------------------------------
@dataclass
class LinearProbe:
    """Standardise, then a logistic probe: ``logit = ((h - mean) / scale) @ coef + intercept``."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def from_pipeline(cls, pipeline) -> "LinearProbe":
        """From a fitted StandardScaler + LogisticRegression (:func:`vrp.stats.logistic_probe`)."""
        scaler, logistic = pipeline[0], pipeline[-1]
        return cls(
            mean=np.asarray(scaler.mean_, dtype=np.float64),
            scale=np.asarray(scaler.scale_, dtype=np.float64),
            coef=np.asarray(logistic.coef_, dtype=np.float64).ravel(),
            intercept=float(np.ravel(logistic.intercept_)[0]),
        )

    @property
    def width(self) -> int:
        return len(self.coef)

    def logit(self, states) -> np.ndarray:
        x = np.asarray(states, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"the probe reads {self.width}-wide states; got shape {x.shape}")
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def probability(self, states) -> np.ndarray:
        return _sigmoid(self.logit(states))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _logit(p, eps: float = 1e-12):
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


@dataclass
class Calibrator:
    """Maps the probe's probability to a calibrated P(correct): Platt (on the logit) or isotonic."""

    method: str
    platt: np.ndarray | None = None  # [slope, bias] on logit(p)
    isotonic_x: np.ndarray | None = None
    isotonic_y: np.ndarray | None = None

    @classmethod
    def fit(cls, method: str, p, correct) -> "Calibrator":
        if method not in CALIBRATIONS:
            raise ValueError(f"unknown calibration {method!r}; choose one of {list(CALIBRATIONS)}")
        y = np.asarray(correct).astype(np.int64)
        if len(np.unique(y)) < 2:
            raise ValueError("calibration needs both correct and incorrect answers")
        if method == "platt":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=ConvergenceWarning)
                model = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p)[:, None], y)
            return cls(
                method, platt=np.array([float(model.coef_[0, 0]), float(model.intercept_[0])])
            )
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            np.asarray(p, float), y
        )
        return cls(
            method,
            isotonic_x=np.asarray(model.X_thresholds_, dtype=np.float64),
            isotonic_y=np.asarray(model.y_thresholds_, dtype=np.float64),
        )

    def apply(self, p) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "platt":
            return _sigmoid(self.platt[0] * _logit(p) + self.platt[1])
        return np.interp(p, self.isotonic_x, self.isotonic_y)

    def arrays(self) -> dict[str, np.ndarray]:
        if self.method == "platt":
            return {"platt": self.platt}
        return {"isotonic_x": self.isotonic_x, "isotonic_y": self.isotonic_y}


def _fit_logistic(features, correct, C: float):
    from vrp import stats

    model = stats.logistic_probe(C=C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        model.fit(np.asarray(features, dtype=np.float64), np.asarray(correct).astype(np.int64))
    return model


def cross_fitted_calibration(method: str, raw, correct, folds) -> np.ndarray:
    """Calibrated held-out scores: fold k's scores through a calibrator fit on the other folds."""
    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(correct).astype(np.int64)
    out = np.full(len(raw), np.nan)
    for train, test in folds:
        out[test] = Calibrator.fit(method, raw[train], y[train]).apply(raw[test])
    return out


def fit_monitor(states, correct, image_ids, settings, calibration: str):
    """Out-of-fold scores, the final probe and the calibrator of one layer's states.

    ``settings`` is a :class:`vrp.analysis.probes.ProbeSettings` (C, n_splits, seed). The folds
    and the probe are the workflow's own (:func:`~vrp.analysis.probes.probe_folds`,
    ``settings.logistic()``), so ``probe_oof`` equals the workflow's out-of-fold probe score at
    this layer. Returns (probe, calibrator, probe_oof, p_correct_oof).
    """
    from vrp import stats
    from vrp.analysis.probes import probe_folds

    states = np.asarray(states, dtype=np.float64)
    y = np.asarray(correct).astype(bool)
    folds = probe_folds(y, image_ids, settings)
    probe_oof = stats.grouped_cv_scores(states, y, image_ids, settings.logistic(), folds=folds)
    p_correct_oof = cross_fitted_calibration(calibration, probe_oof, y, folds)
    probe = LinearProbe.from_pipeline(_fit_logistic(states, y, settings.C))
    calibrator = Calibrator.fit(calibration, probe_oof, y)
    return probe, calibrator, probe_oof, p_correct_oof


# ---------------------------------------------------------------------------------------------
# Metrics: AUROC, ECE, Brier, AUPRC, selective accuracy, and an image-resampling bootstrap
# ---------------------------------------------------------------------------------------------
def expected_calibration_error(correct, p, n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins on [0, 1]: sum_b (n_b / n) |accuracy_b - mean p_b|."""
    y = np.asarray(correct, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    bins = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    gap = np.bincount(bins, weights=y, minlength=n_bins) - np.bincount(
        bins, weights=p, minlength=n_bins
    )
    return float(np.abs(gap).sum() / len(y))


def reliability_bins(correct, p, n_bins: int = 10) -> pd.DataFrame:
    """Per equal-width bin: count, mean predicted P(correct), observed accuracy."""
    y = np.asarray(correct, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    bins = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=p, minlength=n_bins) / counts
        accuracy = np.bincount(bins, weights=y, minlength=n_bins) / counts
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": np.arange(n_bins) / n_bins,
            "upper": np.arange(1, n_bins + 1) / n_bins,
            "n": counts,
            "mean_p": mean_p,
            "accuracy": accuracy,
        }
    )


def selective_accuracy(correct, score, coverage: float) -> float:
    """Accuracy on the ``coverage`` share of questions with the highest score (the rest abstained).

    Keeps ``ceil(coverage * n)`` questions; ties at the threshold are broken by a stable sort on
    the score, i.e. by question order.
    """
    y = np.asarray(correct, dtype=np.float64)
    keep = int(np.ceil(coverage * len(y) - 1e-9))
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    return float(y[order[:keep]].mean()) if keep else float("nan")


def score_metrics(
    correct, p, n_bins: int = 10, coverages: Sequence[float] = (0.8, 0.9, 0.95)
) -> dict:
    """AUROC, ECE, Brier, AUPRC (correct class) and accuracy at each coverage of score ``p``."""
    y = np.asarray(correct).astype(np.int64)
    p = np.asarray(p, dtype=np.float64)
    both = 0 < y.sum() < len(y)
    out = {
        "auroc": float(roc_auc_score(y, p)) if both else float("nan"),
        "ece": expected_calibration_error(y, p, n_bins),
        "brier": float(brier_score_loss(y, p, labels=[0, 1])),
        "auprc": float(average_precision_score(y, p)) if both else float("nan"),
    }
    for coverage in coverages:
        out[coverage_key(coverage)] = selective_accuracy(y, p, coverage)
    return out


def coverage_key(coverage: float) -> str:
    return f"acc_at_{round(coverage * 100):d}"


def metric_names(coverages: Sequence[float] = (0.8, 0.9, 0.95)) -> list[str]:
    """The keys of :func:`score_metrics`, in order."""
    return ["auroc", "ece", "brier", "auprc"] + [coverage_key(c) for c in coverages]


# ----------------------------------------------------------------------- weighted forms, for CIs
# Each factory returns a statistic in the convention of vrp.stats.cluster: ``statistic(w)`` takes
# a (b, n) matrix of per-question weights (one bootstrap resample per row; a question's weight is
# how often its image was drawn) and returns b values. With integer weights each equals the
# unweighted metric on the row-repeated data (tested), so all resamples are scored at once
# without copying data or calling scikit-learn (whose per-call validation was 75% of the job).
def weighted_brier(correct, p) -> Callable[[np.ndarray], np.ndarray]:
    """Statistic: the weighted Brier score, ``Σ w (p - y)² / Σ w``."""
    loss = (np.asarray(p, dtype=np.float64) - np.asarray(correct, dtype=np.float64)) ** 2

    def statistic(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ loss) / w.sum(axis=1)

    return statistic


def weighted_ece(correct, p, n_bins: int = 10) -> Callable[[np.ndarray], np.ndarray]:
    """Statistic: :func:`expected_calibration_error` with weights, ``Σ_b |Σ_{i∈b} w (y - p)| / Σ w``.

    The bins are those of the unweighted ECE (equal width on [0, 1], computed once).
    """
    y = np.asarray(correct, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    bins = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    gap = np.zeros((len(y), n_bins))
    gap[np.arange(len(y)), bins] = y - p  # (n, n_bins): each question's gap in its bin's column

    def statistic(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.abs(w @ gap).sum(axis=1) / w.sum(axis=1)

    return statistic


def weighted_average_precision(correct, score) -> Callable[[np.ndarray], np.ndarray]:
    """Statistic: average precision (AUPRC of the correct class) with weights.

    As :func:`sklearn.metrics.average_precision_score` with ``sample_weight``: thresholds are the
    distinct scores in descending order (tied scores form one threshold), and
    ``AP = Σ_k (TP_k - TP_{k-1}) / P · TP_k / (TP_k + FP_k)`` with TP_k, FP_k the weight of
    correct / incorrect questions scoring at least the k-th threshold. NaN where a resample
    lacks a class (as :func:`score_metrics` gives NaN then). Scores are sorted once.
    """
    blocks = tie_block_weights(correct, score, descending=True)

    def statistic(w: np.ndarray) -> np.ndarray:
        pos, neg = blocks(w)
        tps, fps = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
        total_pos, total_neg = tps[:, -1], fps[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            # a block with no weight adds no recall; its 0/0 precision is never used
            precision = np.where(pos > 0, tps / (tps + fps), 0.0)
            ap = (pos * precision).sum(axis=1) / total_pos
        return np.where((total_pos > 0) & (total_neg > 0), ap, np.nan)

    return statistic


def weighted_selective_accuracy(correct, score, coverage: float) -> Callable:
    """Statistic: :func:`selective_accuracy` with weights.

    Questions are ordered by descending score (stable sort: ties by question order, as the
    unweighted rule) and the first ``K = ceil(coverage · Σ w)`` units of WEIGHT are kept; the
    question at the boundary counts with the part of its weight that fits. With integer weights
    that is exactly the unweighted rule on the row-repeated data (a repeated question's copies are
    adjacent in the stable order); with all-ones weights it is the unweighted rule. Accuracy =
    kept weight of correct questions / K; NaN where K = 0.
    """
    y = np.asarray(correct, dtype=np.float64)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    y_sorted = y[order]

    def statistic(w: np.ndarray) -> np.ndarray:
        ws = w[:, order]
        before = np.cumsum(ws, axis=1) - ws  # weight ahead of each question
        keep = np.ceil(coverage * ws.sum(axis=1) - 1e-9)
        kept = np.clip(keep[:, None] - before, 0.0, ws)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(keep > 0, (kept @ y_sorted) / keep, np.nan)

    return statistic


def weighted_score_metrics(
    correct, p, n_bins: int = 10, coverages: Sequence[float] = (0.8, 0.9, 0.95)
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The weighted statistic of every :func:`score_metrics` value, keyed as there."""
    y = np.asarray(correct).astype(np.int64)
    p = np.asarray(p, dtype=np.float64)
    out = {
        "auroc": weighted_auroc(y, p),
        "ece": weighted_ece(y, p, n_bins),
        "brier": weighted_brier(y, p),
        "auprc": weighted_average_precision(y, p),
    }
    for coverage in coverages:
        out[coverage_key(coverage)] = weighted_selective_accuracy(y, p, coverage)
    return out


def image_bootstrap_metric_ci(
    groups, metric_fn, n_boot: int = 200, seed: int = 0, ci: float = 0.95, unit: str = "image"
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs of an arbitrary ``metric_fn`` by explicit resampled rows.

    For metrics without a weighted form; :func:`metrics_with_ci` no longer uses it. The resamples
    are the project's image-cluster bootstrap (:func:`vrp.stats.cluster.cluster_resample_counts`,
    the same draws for the same ``seed``): ``metric_fn(index)`` returns a dict of metrics for the
    questions at ``index`` (row indices, each image's rows repeated as often as it was drawn).
    Resamples where a metric is NaN are dropped for that metric. Returns {metric: (lo, hi)}.
    """
    codes, n_clusters = cluster_codes(groups, unit)
    rows = np.arange(len(codes))
    draws: dict[str, list[float]] = {}
    for counts in cluster_resample_counts(n_clusters, n_boot, seed):
        for row_counts in counts:
            index = np.repeat(rows, row_counts[codes])
            for key, value in metric_fn(index).items():
                draws.setdefault(key, []).append(value)
    out = {}
    for key, values in draws.items():
        lo, hi, _ = percentile_interval([np.asarray(values, dtype=np.float64)], ci)
        out[key] = (lo, hi)
    return out


def metrics_with_ci(
    correct,
    scores: dict[str, np.ndarray],
    groups,
    n_bins=10,
    coverages=(0.8, 0.9, 0.95),
    n_boot: int = 200,
    seed: int = 0,
    unit: str = "image",
    ci: float = 0.95,
) -> list[dict]:
    """One row per method: every :func:`score_metrics` value with its bootstrap 95% CI.

    Point estimates are :func:`score_metrics` on the data as it is. The CIs are the project's
    image-cluster bootstrap, as every other table's (:mod:`vrp.stats.cluster`; ``unit="question"``
    resamples questions): per resample, each image's draw count becomes its questions' weight
    and every metric is its weighted form (:func:`weighted_score_metrics`), all resamples of a
    batch at once; percentile intervals, NaN resamples (one class only) dropped. All methods
    share the resamples, so their CIs are paired.
    """
    y = np.asarray(correct).astype(np.int64)
    statistics = {
        method: weighted_score_metrics(y, p, n_bins, coverages) for method, p in scores.items()
    }
    draws: dict[tuple[str, str], list[np.ndarray]] = {
        (method, key): [] for method, stats_ in statistics.items() for key in stats_
    }
    codes, n_clusters = cluster_codes(groups, unit)
    if n_boot > 0 and len(codes):
        for counts in cluster_resample_counts(n_clusters, n_boot, seed):
            weights = counts[:, codes].astype(np.float64)
            for method, stats_ in statistics.items():
                for key, statistic in stats_.items():
                    draws[method, key].append(statistic(weights))
    rows = []
    for method, p in scores.items():
        point = score_metrics(y, np.asarray(p), n_bins, coverages)
        row = {
            "method": method,
            "n": len(y),
            "n_pos": int(y.sum()),
            "n_images": int(pd.Series(groups).nunique()),
        }
        for key in metric_names(coverages):
            row[key] = point[key]
            row[f"{key}_lo"], row[f"{key}_hi"], _ = percentile_interval(draws[method, key], ci)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Shift: trained on one POPE setting or task, scored on the others (image-disjoint)
# ---------------------------------------------------------------------------------------------
def shift_domains(samples: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(axis, name, mask) of every domain: each task, and each POPE setting of the presence task."""
    tasks = samples["task"].to_numpy()
    settings = samples["pope_setting"].fillna("").to_numpy()
    domains = [("task", task, tasks == task) for task in sorted(set(tasks))]
    presence = tasks == "presence"
    domains += [
        ("pope_setting", s, presence & (settings == s))
        for s in sorted(set(settings[presence]))
        if s
    ]
    return domains


def shift_evaluation(
    states,
    samples: pd.DataFrame,
    settings,
    calibration: str,
    n_bins=10,
    coverages=(0.8, 0.9, 0.95),
    n_boot: int = 200,
    seed: int = 0,
    unit: str = "image",
) -> pd.DataFrame:
    """Monitor vs output confidence when the probe is trained on one domain and scored on another.

    For each source domain (:func:`shift_domains`) and each fold of the workflow's image-grouped
    split, a probe is fit on the source questions of the training images and scores every question
    of the test images, so source and target never share an image. The calibrator of fold k is fit
    on the source questions outside fold k (their out-of-fold probe scores). Rows with
    ``source == target`` are that domain's in-distribution numbers. A source whose training folds
    lack a class gets one row with a ``note`` and no numbers. ``confidence`` never depends on the
    source; it is scored on the same target questions. CIs: :func:`metrics_with_ci` (image-cluster
    bootstrap by default, ``unit``).
    """
    from vrp.analysis.probes import probe_folds

    states = np.asarray(states, dtype=np.float64)
    y = samples["correct"].to_numpy().astype(bool)
    groups = samples["image_id"].to_numpy()
    confidence = samples["confidence"].to_numpy(dtype=np.float64)
    folds = probe_folds(y, groups, settings)
    rows = []
    domains = shift_domains(samples)
    for axis, source, source_mask in domains:
        raw = np.full(len(y), np.nan)
        problem = None
        for train, test in folds:
            fit_rows = train[source_mask[train]]
            if len(np.unique(y[fit_rows])) < 2:
                problem = (
                    f"the source's training folds hold one class only ({len(fit_rows)} questions)"
                )
                break
            raw[test] = _fit_logistic(states[fit_rows], y[fit_rows], settings.C).predict_proba(
                states[test]
            )[:, 1]
        if problem is None:
            calibrated = np.full(len(y), np.nan)
            for train, test in folds:
                fit_rows = train[source_mask[train]]
                calibrated[test] = Calibrator.fit(calibration, raw[fit_rows], y[fit_rows]).apply(
                    raw[test]
                )
        for target_axis, target, target_mask in domains:
            if target_axis != axis:
                continue
            base = {
                "axis": axis,
                "source": source,
                "target": target,
                "kind": "in_distribution" if target == source else "shift",
            }
            if problem is not None:
                rows.append({**base, "method": "monitor", "note": problem})
                continue
            index = np.flatnonzero(target_mask)
            for row in metrics_with_ci(
                y[index],
                {"monitor": calibrated[index], "confidence": confidence[index]},
                groups[index],
                n_bins,
                coverages,
                n_boot,
                seed,
                unit,
            ):
                rows.append({**base, **row, "note": ""})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Model identity
# ---------------------------------------------------------------------------------------------
def weights_signature(adapter, n: int = 64) -> list[float]:
    """``n`` fixed, seeded entries of the output projection's weights: a cheap weights check.

    A retrained or different checkpoint of the same shape changes them; loading in another dtype
    moves them by its rounding only (checked with a 1% tolerance).
    """
    import torch

    with torch.no_grad():
        flat = adapter.lm_head().weight.detach().reshape(-1)
        generator = torch.Generator().manual_seed(0)
        index = torch.randint(0, flat.numel(), (n,), generator=generator).to(flat.device)
        return [float(v) for v in flat[index].double().cpu()]


def model_identity(adapter, spec: dict) -> dict:
    """What identifies the model a probe was trained on (stored in the card, checked on load)."""
    config = adapter.model.config
    return {
        "family": adapter.family,
        "model_type": config.model_type,
        "path": str(spec["path"]),
        "path_absolute": str(Path(spec["path"]).resolve()) if Path(spec["path"]).exists() else None,
        "revision": spec.get("revision"),
        "resolved_revision": getattr(config, "_commit_hash", None),
        "dtype": str(spec.get("dtype", "float32")),
        "hidden_size": adapter.hidden_size,
        "num_layers": adapter.num_layers,
        "weights_signature": weights_signature(adapter),
    }


def check_model(adapter, identity: dict, source: str = "the monitor") -> None:
    """Raise :class:`MonitorModelMismatch` when ``adapter`` is not the model of ``identity``."""
    problems = []
    for key, actual in (
        ("family", adapter.family),
        ("hidden_size", adapter.hidden_size),
        ("num_layers", adapter.num_layers),
    ):
        if identity[key] != actual:
            problems.append(f"{key} is {actual!r}, the probe was trained on {identity[key]!r}")
    resolved = getattr(adapter.model.config, "_commit_hash", None)
    if identity.get("resolved_revision") and resolved and resolved != identity["resolved_revision"]:
        problems.append(
            f"revision is {resolved!r}, the probe was trained on {identity['resolved_revision']!r}"
        )
    if not problems:
        signature = weights_signature(adapter)
        stored = np.asarray(identity["weights_signature"], dtype=np.float64)
        scale = float(np.abs(stored).max()) if len(stored) else 0.0
        if len(signature) != len(stored) or not np.allclose(
            signature, stored, rtol=1e-2, atol=1e-3 * scale
        ):
            gap = (
                np.max(np.abs(np.asarray(signature) - stored))
                if len(signature) == len(stored)
                else None
            )
            problems.append(
                f"the output-projection weights differ (max |difference| {gap} over "
                f"{len(stored)} sampled entries): a retrained or different checkpoint"
            )
    if problems:
        raise MonitorModelMismatch(
            f"{source} was trained on {identity['family']} model {identity['path']!r} "
            f"(revision {identity.get('resolved_revision') or identity.get('revision')}), but the "
            f"loaded model differs: {'; '.join(problems)}. Load the model the monitor was exported "
            "from, or re-export the monitor for this model "
            "(snakemake results/monitor/<model>/<dataset>/)"
        )


def config_hash(value) -> str:
    """sha256 (first 16 hex digits) of a JSON value with sorted keys."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The bundle
# ---------------------------------------------------------------------------------------------
def write_bundle(
    out_dir, card: dict, probe: LinearProbe, calibrator: Calibrator, oof: pd.DataFrame
) -> None:
    """Write the bundle atomically (a temp folder beside ``out_dir``, renamed when complete)."""
    from safetensors.numpy import save_file

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out_dir) as tmp:
        tensors = {
            "mean": probe.mean,
            "scale": probe.scale,
            "coef": probe.coef,
            "intercept": np.array([probe.intercept]),
            **calibrator.arrays(),
        }
        save_file(
            {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in tensors.items()},
            str(tmp / WEIGHTS_FILE),
            metadata={"format_version": str(FORMAT_VERSION)},
        )
        oof.to_parquet(tmp / OOF_FILE, index=False)
        (tmp / CARD_FILE).write_text(
            json.dumps(card, indent=2, sort_keys=True, default=_json_default) + "\n"
        )
        # mkdtemp and safetensors create owner-only files; a bundle is shared like any result
        umask = os.umask(0)
        os.umask(umask)
        for path in tmp.iterdir():
            path.chmod(0o666 & ~umask)
        tmp.chmod(0o777 & ~umask)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_bundle(directory) -> tuple[dict, LinearProbe, Calibrator]:
    """The card, probe and calibrator of a bundle; a clear error for a missing or newer bundle."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    card_path = directory / CARD_FILE
    if not card_path.exists():
        raise FileNotFoundError(
            f"{directory} holds no {CARD_FILE}: not a monitor bundle; build one with "
            "snakemake results/monitor/<model>/<dataset>/"
        )
    card = json.loads(card_path.read_text())
    if card.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{card_path} has format_version {card.get('format_version')!r}; this vrp reads "
            f"version {FORMAT_VERSION}: re-export the monitor with this vrp"
        )
    arrays = load_file(str(directory / WEIGHTS_FILE))
    probe = LinearProbe(
        arrays["mean"], arrays["scale"], arrays["coef"], float(arrays["intercept"][0])
    )
    method = card["calibration"]
    if method == "platt":
        calibrator = Calibrator(method, platt=arrays["platt"])
    else:
        calibrator = Calibrator(
            method, isotonic_x=arrays["isotonic_x"], isotonic_y=arrays["isotonic_y"]
        )
    return card, probe, calibrator


@dataclass(frozen=True)
class MonitorSettings:
    """Config section ``monitor``: calibration method, reliability bins, bootstrap, coverages."""

    calibration: str = "platt"
    n_bins: int = 10
    n_boot: int = 200
    coverages: tuple[float, ...] = (0.8, 0.9, 0.95)
    check_questions: int = 8
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict) -> "MonitorSettings":
        from vrp.config import known_fields

        values = known_fields(cls, params)
        if "coverages" in values:
            values["coverages"] = tuple(float(c) for c in values["coverages"])
        return cls(**values)

    def __post_init__(self):
        if self.calibration not in CALIBRATIONS:
            raise ValueError(
                f"monitor.calibration must be one of {list(CALIBRATIONS)}, got {self.calibration!r}"
            )


def export_check(
    monitor: "ReliabilityMonitor",
    samples: pd.DataFrame,
    states: np.ndarray,
    n: int,
    atol: float = 1e-4,
) -> dict:
    """Score the first ``n`` training questions live: they must agree with the extraction's states.

    Compares, for the same questions, the probe applied to the extraction's hidden states with
    :meth:`ReliabilityMonitor.score` (the hook in the answering forward), and the live answers and
    confidences with the extraction's. Raises ``RuntimeError`` on disagreement (the hook would
    then read another state than the probe was trained on).
    """
    from vrp.benchmark.images import decode_images

    rows = samples.iloc[:n]
    live = monitor.score_batch(
        decode_images(rows["image"]), rows["question"].tolist(), rows["task"].tolist()
    )
    offline = monitor.probe.probability(states[:n])
    diff = float(np.max(np.abs(live["probe_p"].to_numpy() - offline)))
    same_answers = bool((live["answer"].to_numpy() == rows["prediction"].to_numpy()).all())
    confidence_diff = float(
        np.max(np.abs(live["confidence"].to_numpy() - rows["confidence"].to_numpy()))
    )
    check = {
        "questions": int(len(rows)),
        "max_abs_probe_diff": diff,
        "answers_match": same_answers,
        "max_abs_confidence_diff": confidence_diff,
        "atol": atol,
    }
    if diff > atol or confidence_diff > atol or not same_answers:
        raise RuntimeError(
            f"the live monitor disagrees with the extraction on the same questions: {check}"
        )
    return check


def build_monitor(
    samples: pd.DataFrame,
    hidden,
    manifest: dict,
    layer: int,
    adapter,
    spec: dict,
    probe_settings,
    settings: MonitorSettings,
    provenance: dict,
):
    """Fit the probe and calibrator of one (model, dataset) and assemble the bundle's card.

    ``samples`` = the extraction's samples.parquet joined with the question table's ``question``
    and ``image`` columns (for the export-time check), ``hidden`` = its (n, L+1, d) array,
    ``layer`` = the
    decoder layer (the peak of the held-out layer sweep). ``provenance`` holds the dataset name
    and config hashes. Returns (card, probe, calibrator, oof frame).
    """
    if adapter.family != manifest["family"] or adapter.hidden_size != manifest["hidden_size"]:
        raise MonitorModelMismatch(
            f"the extraction was made with {manifest['family']} (hidden "
            f"{manifest['hidden_size']}), the loaded "
            f"model is {adapter.family} (hidden {adapter.hidden_size}): rerun the extraction"
        )
    states = np.asarray(hidden[:, layer + 1, :], dtype=np.float64)
    correct = samples["correct"].to_numpy().astype(bool)
    groups = samples["image_id"].to_numpy()
    probe, calibrator, probe_oof, p_correct_oof = fit_monitor(
        states, correct, groups, probe_settings, settings.calibration
    )
    confidence = samples["confidence"].to_numpy(dtype=np.float64)
    oof = samples[
        ["question_id", "image_id", "task", "pope_setting", "answer", "prediction"]
    ].reset_index(drop=True)
    oof["correct"] = correct
    oof["probe_oof"] = probe_oof
    oof["p_correct_oof"] = p_correct_oof
    oof["confidence"] = confidence
    held_out = metrics_with_ci(
        correct,
        {"monitor": p_correct_oof, "confidence": confidence, "probe_uncalibrated": probe_oof},
        groups,
        settings.n_bins,
        settings.coverages,
        settings.n_boot,
        settings.seed,
    )
    card = {
        "format_version": FORMAT_VERSION,
        "layer": int(layer),
        "layer_indexing": "decoder-layer index l in 0..L-1: the probe reads the output of decoder "
        "layer l at the "
        "last prompt token (the extraction's hidden[:, l + 1])",
        "probe": {
            "kind": "logistic",
            "features": "hidden",
            "C": probe_settings.C,
            "standardised": True,
            "fit_on": "every training question",
            "width": probe.width,
        },
        "calibration": settings.calibration,
        "calibration_fit": "on the out-of-fold probe scores of every training question",
        "model": model_identity(adapter, spec),
        "prompt_template": adapter.prompt_template,
        # the instruction appended to every question (vrp.adapters.base.FamilyAdapter.question_text)
        "post_prompt": adapter.post_prompt,
        "candidates": manifest["candidates"],
        "training": {
            "n": int(len(correct)),
            "n_pos": int(correct.sum()),
            "n_images": int(len(set(groups))),
            "n_splits": probe_settings.n_splits,
            "seed": probe_settings.seed,
            "extraction_fingerprint": manifest["fingerprint"],
        },
        "held_out": {
            "folds": f"{probe_settings.n_splits}-fold image-grouped stratified CV; "
            "calibration cross-fitted",
            "metrics": held_out,
        },
        **provenance,
    }
    monitor = ReliabilityMonitor(
        adapter, card, probe, calibrator, source="the monitor being exported"
    )
    card["export_check"] = export_check(monitor, samples, states, settings.check_questions)
    return card, probe, calibrator, oof


# ---------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------
class _LastTokenState:
    """A forward hook on one decoder layer keeping its output at the last position (float32)."""

    def __init__(self, layer_module):
        self.layer_module = layer_module
        self.state = None
        self.handle = None

    def __enter__(self):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            self.state = hidden[:, -1, :].detach().float()

        self.handle = self.layer_module.register_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


class ReliabilityMonitor:
    """A loaded model with its exported reliability probe.

    ``ReliabilityMonitor.load(bundle_dir)`` loads the model named in the bundle's card;
    ``ReliabilityMonitor.from_directory(adapter, bundle_dir)`` uses an already loaded adapter.
    Either way the
    model is checked against the card (family, hidden size, layers, resolved revision, weights
    signature) and a mismatch raises :class:`MonitorModelMismatch`.
    """

    def __init__(
        self,
        adapter,
        card: dict,
        probe: LinearProbe,
        calibrator: Calibrator,
        source: str = "the monitor",
    ):
        check_model(adapter, card["model"], source=source)
        if probe.width != adapter.hidden_size:
            raise MonitorModelMismatch(
                f"{source}: probe width {probe.width} != hidden size {adapter.hidden_size}"
            )
        self.adapter, self.card, self.probe, self.calibrator = adapter, card, probe, calibrator
        # asked as it was trained: the same instruction after each question
        adapter.post_prompt = card.get("post_prompt") or ""
        self.layer = int(card["layer"])
        self.candidates = {task: list(c) for task, c in card["candidates"].items()}
        self.candidates[ANY_TASK] = sorted(
            {c for cands in card["candidates"].values() for c in cands}
        )
        from vrp.scoring import CandidateIndex

        self.index = CandidateIndex(adapter, self.candidates)

    @classmethod
    def from_directory(cls, adapter, directory) -> "ReliabilityMonitor":
        """The bundle in ``directory`` on a loaded ``adapter`` (checked against the card)."""
        card, probe, calibrator = read_bundle(directory)
        return cls(adapter, card, probe, calibrator, source=f"the monitor in {directory}")

    @classmethod
    def load(
        cls,
        directory,
        device: str = "cpu",
        model_path: str | os.PathLike | None = None,
        hf_offline: bool | None = None,
    ) -> "ReliabilityMonitor":
        """Load the bundle and the model it names (``model_path`` overrides where the model is)."""
        from vrp.adapters import get_adapter_class
        from vrp.models import resolve_device

        card = read_bundle(directory)[0]
        identity = card["model"]
        path = model_path
        if path is None:
            path = identity["path"]
            if (
                not Path(path).exists()
                and identity.get("path_absolute")
                and Path(identity["path_absolute"]).exists()
            ):
                path = identity["path_absolute"]
        if hf_offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
        adapter = get_adapter_class(identity["family"]).load(
            path,
            revision=identity.get("resolved_revision") or identity.get("revision"),
            dtype=identity["dtype"],
            device=resolve_device(device),
            prompt_template=card["prompt_template"],
        )
        return cls.from_directory(adapter, directory)

    def _tasks(self, tasks, n: int) -> list[str]:
        if tasks is None:
            return [ANY_TASK] * n
        tasks = [
            ANY_TASK if t is None or (isinstance(t, float) and np.isnan(t)) or t == "" else str(t)
            for t in tasks
        ]
        unknown = sorted(set(tasks) - set(self.candidates))
        if unknown:
            raise ValueError(
                f"unknown task(s) {unknown}; the monitor knows {sorted(self.candidates)} "
                f"(leave the task empty to let every candidate answer compete)"
            )
        if len(tasks) != n:
            raise ValueError(f"got {len(tasks)} tasks for {n} questions")
        return tasks

    def score_batch(self, images, questions, tasks=None) -> pd.DataFrame:
        """One forward for the batch: answer, P(correct), output confidence (and the raw probe)."""
        import torch

        from vrp.prompt_pass import full_pass
        from vrp.scoring import readouts, score_answers

        questions = list(questions)
        tasks = self._tasks(tasks, len(questions))
        with torch.no_grad():
            inputs = self.adapter.encode(list(images), questions)
            # the hook sees only the prompt pass (a full pass: the hook reads position -1 of a
            # left-padded batch); multi-token answers are scored after it, over that pass's KV
            # cache (vrp.scoring), which would otherwise overwrite the state
            with _LastTokenState(self.adapter.decoder_layers()[self.layer]) as recorder:
                prompt = full_pass(self.adapter, inputs, self.index.needs_continuation)
            logits = prompt.logits
            scores = score_answers(
                self.adapter, self.index, tasks, torch.log_softmax(logits.float(), -1), prompt.state
            )
        # the answer column only feeds p_answer / correct, which are dropped here
        placeholders = [self.candidates[t][0] for t in tasks]
        readout = readouts(logits, scores, tasks, placeholders, self.index)
        states = recorder.state.cpu().numpy()
        probe_p = self.probe.probability(states)
        return pd.DataFrame(
            {
                "task": tasks,
                "answer": readout["prediction"].to_numpy(),
                "p_correct": self.calibrator.apply(probe_p),
                "confidence": readout["confidence"],
                "probe_p": probe_p,
            }
        )

    def score(
        self, images, questions, tasks=None, batch_size: int = 16, progress: bool = False
    ) -> pd.DataFrame:
        """Score (image, question) pairs; one forward per batch of ``batch_size``.

        ``images`` are PIL images (one per question); ``tasks`` (optional) restricts each answer
        to that task's candidates (presence / spatial: yes, no; counting: digits; ...); without
        it every candidate answer the monitor was trained on competes. Returns a DataFrame with
        task, answer, p_correct (calibrated monitor), confidence (softmax probability of the
        answer token), probe_p (the uncalibrated probe).
        """
        from tqdm.auto import tqdm

        images, questions = list(images), list(questions)
        if len(images) != len(questions):
            raise ValueError(f"got {len(images)} images for {len(questions)} questions")
        tasks = None if tasks is None else list(tasks)
        parts = []
        for start in tqdm(
            range(0, len(questions), batch_size), desc="monitor", disable=not progress
        ):
            end = start + batch_size
            parts.append(
                self.score_batch(
                    images[start:end],
                    questions[start:end],
                    None if tasks is None else tasks[start:end],
                )
            )
        return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Command line: vrp-monitor
# ---------------------------------------------------------------------------------------------
def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False)
    raise ValueError(f"{path}: the question table must be .parquet or .csv")


def _table_images(table: pd.DataFrame, folder: Path) -> list:
    from PIL import Image

    if "image" in table and len(table) and isinstance(table["image"].iloc[0], (bytes, bytearray)):
        return [Image.open(io.BytesIO(b)).convert("RGB") for b in table["image"]]
    column = "image_path" if "image_path" in table else "image" if "image" in table else None
    if column is None:
        raise ValueError(
            "the question table needs an 'image' column (encoded bytes, or a file path) or "
            "an 'image_path' column (paths relative to the table's folder)"
        )
    return [Image.open(folder / p).convert("RGB") for p in table[column]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vrp-monitor",
        description="Answer (image, question) pairs with a VLM and give each answer the "
        "reliability "
        "monitor's P(correct) beside the output confidence.",
    )
    parser.add_argument("monitor", help="monitor bundle folder (results/monitor/<model>/<dataset>)")
    parser.add_argument("--image", help="one image file")
    parser.add_argument("--question", help="the question about --image")
    parser.add_argument("--task", help="restrict the answer to a task's candidates (e.g. presence)")
    parser.add_argument(
        "--table",
        help="a .parquet or .csv of questions: columns question, image or "
        "image_path, optional task, question_id, answer",
    )
    parser.add_argument("--output", help="write the scored table here (.csv or .parquet)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--model-path", help="load the model from here instead of the path in the card"
    )
    parser.add_argument("--offline", action="store_true", help="never contact the Hugging Face Hub")
    args = parser.parse_args(argv)
    if (args.table is None) == (args.image is None):
        parser.error("give either --image with --question, or --table")
    if args.image is not None and not args.question:
        parser.error("--image needs --question")

    from PIL import Image

    monitor = ReliabilityMonitor.load(
        args.monitor, device=args.device, model_path=args.model_path, hf_offline=args.offline
    )
    if args.image is not None:
        table = pd.DataFrame(
            {"image_path": [args.image], "question": [args.question], "task": [args.task or ""]}
        )
        images = [Image.open(args.image).convert("RGB")]
    else:
        table_path = Path(args.table)
        table = _read_table(table_path)
        if "question" not in table:
            raise SystemExit(f"{table_path} has no 'question' column")
        images = _table_images(table, table_path.parent)
    tasks = table["task"].tolist() if "task" in table else None
    scored = monitor.score(
        images,
        table["question"].tolist(),
        tasks,
        batch_size=args.batch_size,
        progress=len(table) > args.batch_size,
    )
    keep = [c for c in ("question_id", "image_id", "image_path", "question") if c in table]
    out = pd.concat([table[keep].reset_index(drop=True), scored], axis=1)
    if "answer" in table and args.table is not None:
        out.insert(len(keep), "expected", table["answer"].to_numpy())
        out["correct"] = out["answer"] == out["expected"]
    if args.output:
        from vrp.io import write_csv, write_parquet

        (write_parquet if args.output.endswith(".parquet") else write_csv)(out, args.output)
    with pd.option_context(
        "display.max_columns", None, "display.width", 160, "display.max_colwidth", 60
    ):
        print(out.drop(columns=[c for c in ("image_path",) if c in out]).to_string(index=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
