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
"""

from vrp.stats.attention import (
    ATTENTION_FEATURES,
    attention_features,
    centroid_spread,
    cluster_count,
    cluster_count_components,
    cluster_count_dbscan,
    gini,
    layer_delta_entropy,
    max_mass,
    normalize_maps,
    spatial_entropy,
    top_mass,
)
from vrp.stats.classify import (
    auroc_with_ci,
    check_group_folds,
    cv_accuracy_auroc,
    ensemble_classifier,
    grouped_cv_scores,
    grouped_splits,
    l1_channel_ranking,
    l1_probe,
    logistic_probe,
    mlp_probe,
    peak_layer,
    per_fold_feature_scores,
    probe_auroc,
)
from vrp.stats.cluster import (
    INTERVAL_COLUMNS,
    INTERVAL_UNITS,
    auroc_intervals,
    cluster_bootstrap,
    clustered_mcnemar,
    nan_intervals,
    unit_intervals,
    weighted_auroc,
    weighted_mean,
    weighted_pearson,
    weighted_within_pearson,
    within_group_pearson,
)
from vrp.stats.consistency import normalize_answer, precision_at_full_agreement, self_consistency
from vrp.stats.correlation import as_binary, fisher_z_interval, pearson, point_biserial
from vrp.stats.paired import (
    accuracy_drop_ci,
    flips,
    mcnemar_exact,
    paired_table,
    paired_ttest,
    wilson_interval,
)
from vrp.stats.selection import n_masked, random_channels, select_patches
from vrp.stats.summary import layer_mean_ci

__all__ = [
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
    "ATTENTION_FEATURES",
    "accuracy_drop_ci",
    "as_binary",
    "attention_features",
    "auroc_with_ci",
    "centroid_spread",
    "check_group_folds",
    "cluster_count",
    "cluster_count_components",
    "cluster_count_dbscan",
    "cv_accuracy_auroc",
    "ensemble_classifier",
    "fisher_z_interval",
    "flips",
    "gini",
    "grouped_cv_scores",
    "grouped_splits",
    "l1_channel_ranking",
    "l1_probe",
    "layer_delta_entropy",
    "layer_mean_ci",
    "logistic_probe",
    "max_mass",
    "mcnemar_exact",
    "mlp_probe",
    "n_masked",
    "normalize_answer",
    "normalize_maps",
    "paired_table",
    "paired_ttest",
    "pearson",
    "peak_layer",
    "per_fold_feature_scores",
    "point_biserial",
    "precision_at_full_agreement",
    "probe_auroc",
    "random_channels",
    "select_patches",
    "self_consistency",
    "spatial_entropy",
    "top_mass",
    "wilson_interval",
]
