"""Statistics for the reliability analyses: attention structure, correlations, probes, paired tests.

Pure numpy/scipy/scikit-learn/statsmodels; no models. Submodules:

* :mod:`vrp.stats.attention` — H_s, C_k (connected components / DBSCAN), concentration, ΔH_s.
* :mod:`vrp.stats.cluster` — image-clustered intervals (cluster bootstrap), clustered McNemar.
* :mod:`vrp.stats.correlation` — point-biserial R_pb with Fisher-z and bootstrap CIs, Pearson r.
* :mod:`vrp.stats.classify` — AUROC with CI, image-grouped CV, probes, stress test.
* :mod:`vrp.stats.paired` — McNemar, paired t-test, accuracy-drop CI, Wilson interval.
* :mod:`vrp.stats.consistency` — answer normalisation and self-consistency.
* :mod:`vrp.stats.selection` — which patches to mask, which channels to ablate.
* :mod:`vrp.stats.summary` — per-layer means with Student-t intervals.

The names below are imported from their submodule on first use (PEP 562): a workflow job pays
only for the submodules it uses (scikit-learn and statsmodels take most of a second to import).
"""

from __future__ import annotations

import importlib

# submodule -> the names it exports here
_EXPORTS: dict[str, tuple[str, ...]] = {
    "attention": (
        "ATTENTION_FEATURES",
        "attention_features",
        "centroid_spread",
        "cluster_count",
        "cluster_count_components",
        "cluster_count_dbscan",
        "gini",
        "layer_delta_entropy",
        "max_mass",
        "normalize_maps",
        "spatial_entropy",
        "top_mass",
    ),
    "classify": (
        "auroc_with_ci",
        "check_group_folds",
        "cv_accuracy_auroc",
        "ensemble_classifier",
        "grouped_cv_scores",
        "grouped_splits",
        "l1_channel_ranking",
        "l1_probe",
        "logistic_probe",
        "mlp_probe",
        "peak_layer",
        "per_fold_feature_scores",
        "probe_auroc",
    ),
    "cluster": (
        "INTERVAL_COLUMNS",
        "INTERVAL_UNITS",
        "auroc_intervals",
        "cluster_bootstrap",
        "clustered_mcnemar",
        "nan_intervals",
        "unit_intervals",
        "weighted_auroc",
        "weighted_mean",
        "weighted_pearson",
        "weighted_within_pearson",
        "within_group_pearson",
    ),
    "consistency": (
        "normalize_answer",
        "precision_at_full_agreement",
        "self_consistency",
    ),
    "correlation": (
        "as_binary",
        "fisher_z_interval",
        "pearson",
        "point_biserial",
    ),
    "paired": (
        "accuracy_drop_ci",
        "flips",
        "mcnemar_exact",
        "paired_table",
        "paired_ttest",
        "wilson_interval",
    ),
    "selection": (
        "n_masked",
        "random_channels",
        "select_patches",
    ),
    "summary": ("layer_mean_ci",),
}
_SUBMODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    module = _SUBMODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'vrp.stats' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"vrp.stats.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULE_OF))


__all__ = sorted(_SUBMODULE_OF)
