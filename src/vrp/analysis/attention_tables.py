"""Attention structure and reliability: per-sample H_s / C_k, Tables 1 and 4, the Figure 5 case.

Everything here reads the extraction (``samples.parquet`` rows aligned with the arrays of
``vrp.extract``) and computes with :mod:`vrp.stats`; no model is run.

Choices where the paper is ambiguous (``docs/method.md`` §3–§6):

* **The attention map of a sample** (§3.1) is the last prompt token's attention to the image
  tokens, mean over heads (the extraction's ``image_attention``), averaged over the decoder layers
  of a configured span (``attention.layer_range``; all layers by default, LLaVA 16–31 in the
  paper face) and L1-normalised, on the sample's own ``grid_rows x grid_cols`` patch grid.
* **H_s** is in nats, or divided by log S with ``attention.entropy_normalized``; **C_k** is the
  connected-components count (top 30% of mass, 8-connectivity, minus one) or DBSCAN on the top
  decile, by ``attention.ck_method``. Both C_k variants always enter the stress-test features.
* **Top-K heads** (Table 1, §3.5): heads (layer, head) over all decoder layers are ranked by the
  mean over samples of |direct logit contribution to the answer token| (``head_logit``). For each
  sample the top-K heads' maps, each L1-normalised over the image tokens, are averaged with
  weights proportional to that sample's |contribution| of each head (equal weights when all are
  zero); the combined map's normalised entropy is correlated (Pearson) with the log-probability
  of the predicted token ("confidence", as in the development code). R² is reported for every
  configured K and the table's "R² (max)" is the largest over those K (our reading of "max").
* **Stress test** (§3.6): the 11 features of :data:`vrp.stats.ATTENTION_FEATURES` into the
  random-forest + gradient-boosting ensemble, accuracy and AUROC of out-of-fold predictions
  under image-grouped stratified K-fold CV.
* **Case study** (Figure 5): see :func:`select_case_study`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps
from sklearn.model_selection import GroupKFold

from vrp.io import read_json
from vrp.stats import (
    ATTENTION_FEATURES,
    attention_features,
    cluster_count,
    cv_accuracy_auroc,
    fisher_z_interval,
    nan_intervals,
    normalize_maps,
    point_biserial,
    spatial_entropy,
    unit_intervals,
    weighted_pearson,
    weighted_within_pearson,
    within_group_pearson,
)
from vrp.stats.classify import check_group_folds
from vrp.stats.cluster import INTERVAL_COLUMNS, interval_method
from vrp.stats.correlation import as_binary, pearson

__all__ = [
    "CK_METHODS",
    "resolve_layer_span",
    "grid_groups",
    "maps_on_grid",
    "attention_statistics",
    "layer_entropy_table",
    "rank_heads",
    "read_head_maps",
    "combined_map_entropy",
    "top_heads_r2",
    "stress_test",
    "correlation_table",
    "table1",
    "select_case_study",
    "CASE_STUDY_TIERS",
]

CK_METHODS = ("components", "dbscan")

# Per-sample columns copied from samples.parquet into the statistics table.
_SAMPLE_COLUMNS = tuple(
    "question_id image_id task answer prediction correct confidence grid_rows grid_cols".split()
)


# --------------------------------------------------------------------------------------------
# Layers and grids
# --------------------------------------------------------------------------------------------
def resolve_layer_span(span, n_layers: int, what: str = "attention.layer_range") -> tuple[int, int]:
    """``(first, last)`` decoder layers (0-based, inclusive) of a configured span; None = all layers.

    ``what`` names the config key in the error raised for a span outside ``0 .. n_layers - 1``.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be positive, got {n_layers}")
    if span is None:
        return 0, n_layers - 1
    if len(span) != 2:
        raise ValueError(f"{what} must be [first, last], got {span!r}")
    first, last = int(span[0]), int(span[1])
    if not 0 <= first <= last <= n_layers - 1:
        raise ValueError(
            f"{what} = [{first}, {last}] is not a span of this model's decoder layers 0..{n_layers - 1}; "
            f"set it to [first, last] with 0 <= first <= last <= {n_layers - 1} (or drop it for all layers)"
        )
    return first, last


def grid_groups(samples: pd.DataFrame) -> dict[tuple[int, int], np.ndarray]:
    """Row indices of ``samples`` per patch grid ``(grid_rows, grid_cols)`` (Qwen2-VL grids vary)."""
    missing = {"grid_rows", "grid_cols"} - set(samples.columns)
    if missing:
        raise ValueError(
            f"samples lack column(s) {sorted(missing)}; rerun the extraction (samples.parquet)"
        )
    positions = samples.groupby(
        ["grid_rows", "grid_cols"], sort=True
    ).indices  # row positions per group
    return {(int(rows), int(cols)): np.asarray(idx) for (rows, cols), idx in positions.items()}


def maps_on_grid(flat_maps, rows: int, cols: int) -> np.ndarray:
    """(..., S_max) NaN-padded token maps -> (..., rows, cols): the first rows*cols tokens, raster order."""
    arr = np.asarray(flat_maps, dtype=np.float64)
    size = rows * cols
    if arr.shape[-1] < size:
        raise ValueError(
            f"maps have {arr.shape[-1]} image tokens, fewer than the {rows}x{cols} grid needs"
        )
    grid = arr[..., :size]
    if np.isnan(grid).any():
        raise ValueError(
            f"NaN inside the {rows}x{cols} grid: grid_rows/grid_cols do not match the attention maps"
        )
    return grid.reshape(arr.shape[:-1] + (rows, cols))


def _check_aligned(samples: pd.DataFrame, array: np.ndarray, name: str) -> None:
    if len(array) != len(samples):
        raise ValueError(
            f"{name} has {len(array)} rows but samples.parquet has {len(samples)}; "
            "both must come from the same extraction"
        )


# --------------------------------------------------------------------------------------------
# Per-sample statistics
# --------------------------------------------------------------------------------------------
def _ck_parameters(ck_components: Mapping | None, ck_dbscan: Mapping | None) -> tuple[dict, dict]:
    components = {"mass": 0.30, "connectivity": 8, **dict(ck_components or {})}
    dbscan = {"quantile": 0.90, "eps": 1.5, "min_samples": 3, **dict(ck_dbscan or {})}
    return components, dbscan


def attention_statistics(
    samples: pd.DataFrame,
    image_attention,
    span: tuple[int, int],
    ck_method: str = "components",
    ck_components: Mapping | None = None,
    ck_dbscan: Mapping | None = None,
    entropy_normalized: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-sample H_s, C_k and the 11 stress-test features of the layer-averaged attention map.

    ``image_attention`` is the extraction's (n, L, S_max) array; ``span`` = (first, last) decoder
    layers averaged (:func:`resolve_layer_span`). Returns ``(table, maps)``: the table holds the
    sample columns, ``layer_first``/``layer_last``, ``ck`` (the configured method), ``hs`` (nats,
    or / log S with ``entropy_normalized``) and every feature of :data:`ATTENTION_FEATURES`, with
    ``ck_components``/``ck_dbscan``/``ck_x_entropy`` at the configured C_k parameters; ``maps`` is
    (n, S_max) float32, each sample's L1-normalised map (NaN beyond its grid).
    """
    if ck_method not in CK_METHODS:
        raise ValueError(
            f"attention.ck_method must be one of {list(CK_METHODS)}, got {ck_method!r}"
        )
    _check_aligned(samples, image_attention, "image_attention")
    first, last = span
    layer_mean = np.asarray(image_attention[:, first : last + 1, :], dtype=np.float64).mean(axis=1)
    components, dbscan = _ck_parameters(ck_components, ck_dbscan)
    maps = np.full(layer_mean.shape, np.nan, dtype=np.float32)
    parts = []
    for (rows, cols), idx in grid_groups(samples).items():
        probs = normalize_maps(maps_on_grid(layer_mean[idx], rows, cols))
        features = attention_features(probs)
        features["ck_components"] = cluster_count(probs, method="components", **components).astype(
            np.float64
        )
        features["ck_dbscan"] = cluster_count(probs, method="dbscan", **dbscan).astype(np.float64)
        features["ck_x_entropy"] = features["ck_components"] * features["entropy"]
        features.index = idx
        parts.append(features)
        maps[idx, : rows * cols] = probs.reshape(len(idx), -1)
    features = pd.concat(parts).sort_index()
    table = samples[list(_SAMPLE_COLUMNS)].reset_index(drop=True).copy()
    table["correct"] = table["correct"].astype(bool)
    table["layer_first"], table["layer_last"] = first, last
    table["ck"] = features[f"ck_{ck_method}"].astype(np.int64).to_numpy()
    table["hs"] = features["entropy_normalized" if entropy_normalized else "entropy"].to_numpy()
    for name in ATTENTION_FEATURES:
        table[name] = features[name].to_numpy()
    return table, maps


def layer_entropy_table(samples: pd.DataFrame, image_attention) -> pd.DataFrame:
    """H_s of every decoder layer's map (mean over heads), per sample: the input of Figure 3.

    Long format, one row per (sample, layer): question_id, correct, layer, n_layers, entropy (nats),
    entropy_normalized (/ log S), delta_entropy and delta_entropy_normalized (ΔH_s(l) = H_s(l) -
    H_s(l-1); NaN at layer 0).
    """
    _check_aligned(samples, image_attention, "image_attention")
    n, n_layers = image_attention.shape[:2]
    entropy = np.full((n, n_layers), np.nan)
    normalized = np.full((n, n_layers), np.nan)
    for (rows, cols), idx in grid_groups(samples).items():
        grid = maps_on_grid(np.asarray(image_attention[idx], dtype=np.float64), rows, cols)
        entropy[idx] = spatial_entropy(grid)
        normalized[idx] = spatial_entropy(grid, normalized=True)
    delta = np.concatenate([np.full((n, 1), np.nan), np.diff(entropy, axis=1)], axis=1)
    delta_norm = np.concatenate([np.full((n, 1), np.nan), np.diff(normalized, axis=1)], axis=1)
    return pd.DataFrame(
        {
            "question_id": np.repeat(samples["question_id"].to_numpy(), n_layers),
            "correct": np.repeat(samples["correct"].astype(bool).to_numpy(), n_layers),
            "layer": np.tile(np.arange(n_layers), n),
            "n_layers": n_layers,
            "entropy": entropy.ravel(),
            "entropy_normalized": normalized.ravel(),
            "delta_entropy": delta.ravel(),
            "delta_entropy_normalized": delta_norm.ravel(),
        }
    )


# --------------------------------------------------------------------------------------------
# Top-K heads by logit contribution (Table 1)
# --------------------------------------------------------------------------------------------
def rank_heads(head_logit) -> pd.DataFrame:
    """Heads ranked by mean |direct logit contribution to the answer token| over samples.

    ``head_logit`` is (n, L, H). Returns layer, head, mean_abs_logit, rank (1 = largest), sorted;
    ties keep (layer, head) order.
    """
    arr = np.asarray(head_logit, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(
            f"head_logit must be (n_samples, n_layers, n_heads); got shape {arr.shape}"
        )
    score = np.abs(arr).mean(axis=0)  # (L, H)
    layers, heads = np.meshgrid(np.arange(score.shape[0]), np.arange(score.shape[1]), indexing="ij")
    order = np.lexsort((heads.ravel(), layers.ravel(), -score.ravel()))
    return pd.DataFrame(
        {
            "layer": layers.ravel()[order],
            "head": heads.ravel()[order],
            "mean_abs_logit": score.ravel()[order],
            "rank": np.arange(1, len(order) + 1),
        }
    )


def read_head_maps(manifest_path: str | Path, heads: Sequence[tuple[int, int]]) -> np.ndarray:
    """(n, K, S_max) per-head attention maps of the given (layer, head) pairs, shard by shard.

    Reads only those slices of the memory-mapped ``head_attention`` shards (the full array is
    n x L x H x S floats, gigabytes for the paper's models).
    """
    manifest_path = Path(manifest_path)
    manifest = read_json(manifest_path)
    if "head_attention" not in manifest["arrays"]:
        raise KeyError(
            f"{manifest_path} has no head_attention; set extraction.per_head: true and rerun it"
        )
    entry = manifest["arrays"]["head_attention"]
    s_max = entry["shape"][-1]
    layer_idx = np.array([h[0] for h in heads], dtype=np.int64)
    head_idx = np.array([h[1] for h in heads], dtype=np.int64)
    parts = []
    for rel in entry["shards"]:
        shard = np.load(manifest_path.parent / rel, mmap_mode="r")
        part = np.asarray(shard[:, layer_idx, head_idx, :], dtype=np.float64)  # (n_shard, K, S)
        if part.shape[-1] < s_max:
            part = np.pad(
                part, [(0, 0), (0, 0), (0, s_max - part.shape[-1])], constant_values=np.nan
            )
        parts.append(part)
    return np.concatenate(parts)


def combined_map_entropy(samples: pd.DataFrame, head_maps, weights) -> np.ndarray:
    """Normalised entropy (H_s / log S) of each sample's contribution-weighted mix of head maps.

    ``head_maps`` (n, K, S_max); ``weights`` (n, K) non-negative (rows are normalised; an all-zero
    row gets equal weights). Each head's map is L1-normalised over the image tokens before mixing,
    so a head's weight, not its total image attention, sets its share.
    """
    maps = np.asarray(head_maps, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if maps.ndim != 3 or w.shape != maps.shape[:2]:
        raise ValueError(
            f"head_maps must be (n, K, S) and weights (n, K); got {maps.shape} and {w.shape}"
        )
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("head weights must be finite and non-negative (use |contribution|)")
    _check_aligned(samples, maps, "head_maps")
    totals = w.sum(axis=1, keepdims=True)
    w = np.where(totals > 0, w / np.where(totals > 0, totals, 1.0), 1.0 / w.shape[1])
    entropy = np.full(len(maps), np.nan)
    for (rows, cols), idx in grid_groups(samples).items():
        per_head = normalize_maps(maps_on_grid(maps[idx], rows, cols))  # (m, K, r, c)
        mixed = (per_head * w[idx][:, :, None, None]).sum(axis=1)
        entropy[idx] = spatial_entropy(mixed, normalized=True)
    return entropy


def top_heads_r2(
    samples: pd.DataFrame, head_logit, head_maps, ranking: pd.DataFrame, ks: Sequence[int]
) -> pd.DataFrame:
    """R² (Pearson) between the top-K heads' combined-map entropy and log answer confidence, per K.

    ``head_maps`` (n, K_max, S_max) are the maps of the first K_max heads of ``ranking``
    (:func:`rank_heads`), in rank order; ``ks`` are the K values (each <= K_max). Confidence is
    ``samples.confidence`` (probability of the predicted token); its log is the target. Returns
    k, heads ("L<layer>H<head>;..."), n, r, r2, p, mean_entropy.
    """
    logit = np.asarray(head_logit, dtype=np.float64)
    maps = np.asarray(head_maps)
    _check_aligned(samples, logit, "head_logit")
    confidence = samples["confidence"].to_numpy(dtype=np.float64)
    if np.any(confidence <= 0) or not np.all(np.isfinite(confidence)):
        raise ValueError(
            "samples.confidence must be positive probabilities (its log is the R² target)"
        )
    target = np.log(confidence)
    rows = []
    for k in sorted(set(int(k) for k in ks)):
        if not 1 <= k <= maps.shape[1] or k > len(ranking):
            raise ValueError(
                f"attention.top_k_heads holds K={k}, but the model has {len(ranking)} heads "
                f"and {maps.shape[1]} head maps were read; use 1 <= K <= {min(len(ranking), maps.shape[1])}"
            )
        top = ranking.iloc[:k]
        weights = np.abs(logit[:, top["layer"].to_numpy(), top["head"].to_numpy()])
        entropy = combined_map_entropy(samples, maps[:, :k, :], weights)
        r, p = pearson(entropy, target)
        rows.append(
            {
                "k": k,
                "heads": ";".join(
                    f"L{layer}H{head}" for layer, head in zip(top["layer"], top["head"])
                ),
                "n": len(entropy),
                "r": r,
                "r2": r * r,
                "p": p,
                "mean_entropy": float(np.mean(entropy)),
            }
        )
    return pd.DataFrame(rows)


def nested_head_folds(
    samples: pd.DataFrame, n_splits: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Image-grouped folds for the nested top-K selection: ``GroupKFold(shuffle=True)`` by image id.

    The target (log confidence) is continuous, so the folds are grouped but not stratified; no
    image has questions on both sides. Raises ``ValueError`` with fewer images than folds.
    """
    groups = samples["image_id"].to_numpy()
    check_group_folds(
        n_splits,
        len(pd.unique(groups)),
        "the nested top-K heads' choice",
        "attention.stress_test.n_splits",
    )
    splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.zeros(len(groups)), groups=groups)]


def fold_head_rankings(head_logit, folds, k_max: int) -> list[pd.DataFrame]:
    """Per training fold, the top ``k_max`` heads of :func:`rank_heads` on its training samples."""
    logit = np.asarray(head_logit, dtype=np.float64)
    return [rank_heads(logit[train]).iloc[:k_max].reset_index(drop=True) for train, _ in folds]


def nested_top_heads_r2(
    samples: pd.DataFrame,
    head_logit,
    maps_of,
    ks: Sequence[int],
    folds,
    rankings: Sequence[pd.DataFrame],
    n_boot: int = 1000,
    seed: int = 0,
    unit: str = "image",
) -> pd.DataFrame:
    """R² of the top-K heads' combined-map entropy vs log confidence, heads chosen out of fold.

    For each fold the K heads are ranked on the TRAINING questions only (``rankings``, from
    :func:`fold_head_rankings`) and the combined-map entropy of the HELD-OUT questions is computed
    with them; r is the Pearson r of the pooled held-out entropies with log confidence, so the
    questions that pick the heads never score them. ``maps_of(heads)`` returns the (n, K, S_max)
    maps of a list of (layer, head) pairs. The r interval is :func:`vrp.stats.unit_intervals`
    (cluster bootstrap by image / by question, ``r_lo``, ``r_hi``, ``r_ci_method``, ...).
    Returns k, heads_by_fold ("L0H1;L1H0|..." one block per fold), n, r, r2, p, r_lo, r_hi,
    r_ci_method, r_lo_image, r_hi_image, r_lo_question, r_hi_question.
    """
    logit = np.asarray(head_logit, dtype=np.float64)
    _check_aligned(samples, logit, "head_logit")
    target = np.log(samples["confidence"].to_numpy(dtype=np.float64))
    groups = samples["image_id"].to_numpy()
    rows = []
    for k in sorted(set(int(k) for k in ks)):
        entropy = np.full(len(samples), np.nan)
        chosen = []
        for (_, test), ranking in zip(folds, rankings):
            top = ranking.iloc[:k]
            heads = list(zip(top["layer"].astype(int), top["head"].astype(int)))
            chosen.append(";".join(f"L{layer}H{head}" for layer, head in heads))
            maps = np.asarray(maps_of(heads))[test]
            weights = np.abs(logit[test][:, top["layer"].to_numpy(), top["head"].to_numpy()])
            entropy[test] = combined_map_entropy(
                samples.iloc[test].reset_index(drop=True), maps, weights
            )
        r, p = pearson(entropy, target)
        if np.isfinite(r):
            intervals = unit_intervals(
                weighted_pearson(entropy, target), groups, n_boot, seed, unit, prefix="r_"
            )
        else:
            intervals = nan_intervals("r_", interval_method(unit, n_boot))
        rows.append(
            {
                "k": k,
                "heads_by_fold": "|".join(chosen),
                "n": len(entropy),
                "r": r,
                "r2": r * r,
                "p": p,
                **intervals,
            }
        )
    return pd.DataFrame(rows)


def r2_interval(r_lo: float, r_hi: float) -> tuple[float, float]:
    """The interval of R² = r² implied by an interval [r_lo, r_hi] of r (0 when it holds 0)."""
    if not (np.isfinite(r_lo) and np.isfinite(r_hi)):
        return math.nan, math.nan
    low = 0.0 if r_lo <= 0 <= r_hi else min(r_lo * r_lo, r_hi * r_hi)
    return low, max(r_lo * r_lo, r_hi * r_hi)


# --------------------------------------------------------------------------------------------
# Supervised stress test (Table 1)
# --------------------------------------------------------------------------------------------
def stress_test(
    stats: pd.DataFrame, n_splits: int = 5, seed: int = 0, n_boot: int = 1000, unit: str = "image"
) -> dict:
    """Ensemble classifier on the 11 attention features: out-of-fold accuracy and AUROC.

    Image-grouped stratified K-fold (:func:`vrp.stats.cv_accuracy_auroc`); both intervals are
    :func:`vrp.stats.unit_intervals` (headline ``unit``; ``lo``/``hi`` of the AUROC,
    ``accuracy_lo``/``accuracy_hi`` of the accuracy). When the data cannot support the test (one
    class only, fewer images than folds, a training fold with one class) the numbers are NaN and
    ``status`` says why, so a toy run still completes; otherwise status "ok".
    """
    missing = [c for c in (*ATTENTION_FEATURES, "correct", "image_id") if c not in stats.columns]
    if missing:
        raise ValueError(
            f"stats table lacks column(s) {missing}; rebuild it with attention_statistics"
        )
    y = as_binary(stats["correct"].astype(bool).to_numpy())
    result = {
        "n": int(len(y)),
        "n_pos": int(y.sum()),
        "n_images": int(stats["image_id"].nunique()),
        "n_splits": int(n_splits),
        "accuracy": math.nan,
        "auroc": math.nan,
        **nan_intervals("accuracy_", interval_method(unit, n_boot)),
        **nan_intervals("", interval_method(unit, n_boot)),
        "majority_accuracy": float(max(y.mean(), 1 - y.mean())) if len(y) else math.nan,
        "status": "ok",
    }
    try:
        scores = cv_accuracy_auroc(
            stats[list(ATTENTION_FEATURES)].to_numpy(dtype=np.float64),
            y,
            stats["image_id"].to_numpy(),
            n_splits=n_splits,
            seed=seed,
            n_boot=n_boot,
            unit=unit,
        )
    except ValueError as err:  # data too small or one-class: documented as NaN + reason
        result["status"] = f"skipped: {err}"
        return result
    result.update(
        {
            key: scores[key]
            for key in result
            if key in scores and key not in ("n", "n_pos", "status")
        }
    )
    return result


# --------------------------------------------------------------------------------------------
# Table 4: R_pb of C_k and H_s with correctness
# --------------------------------------------------------------------------------------------
POOLING_WITHIN = "within-model (per-model centred)"
POOLING_STACKED = "stacked (models mixed)"


def correlation_table(
    stats: pd.DataFrame,
    n_boot: int = 2000,
    seed: int = 0,
    ck_label: str = "C_k",
    hs_label: str = "H_s",
    unit: str = "image",
) -> pd.DataFrame:
    """Table 4: point-biserial R_pb(C_k, correct) and R_pb(H_s, correct) per (model, dataset) and pooled.

    ``stats`` is the concatenation of :func:`attention_statistics` tables with ``model``,
    ``family``, ``dataset`` and ``image_id`` columns. Rows: each (model, dataset); "pooled" over
    models per dataset; and, when there are several datasets, dataset "all" per model and pooled.

    Pooled rows: model "pooled" is the WITHIN-model pooled R_pb (x and correctness centred within
    each model, :func:`vrp.stats.within_group_pearson`), so a model with a lower mean H_s and a
    higher accuracy does not make H_s look predictive; model "pooled_stacked" is the plain R_pb of
    the stacked questions, kept as a labelled variant (``pooling``).

    Intervals (:func:`vrp.stats.unit_intervals`): ``lo``/``hi`` the configured ``unit`` (named in
    ``ci_method``), ``lo_image``/``hi_image`` the cluster bootstrap by image (an image shared by
    models or datasets is one cluster), ``lo_question``/``hi_question`` =
    ``fisher_lo``/``fisher_hi``,
    the Fisher-z interval (questions independent; the paper's). For the within-model r the Fisher
    interval uses n - (models - 1) (one mean removed per model). ``p`` is scipy's question-level p
    (stacked rows) or the Fisher-z p (within rows).
    """
    needed = {"model", "family", "dataset", "ck", "hs", "correct", "image_id"}
    if needed - set(stats.columns):
        raise ValueError(f"stats lacks column(s) {sorted(needed - set(stats.columns))}")
    datasets = sorted(stats["dataset"].unique())
    models = list(dict.fromkeys(stats["model"]))
    scopes = []
    for dataset in datasets + (["all"] if len(datasets) > 1 else []):
        in_dataset = stats if dataset == "all" else stats[stats["dataset"] == dataset]
        for model in models:
            part = in_dataset[in_dataset["model"] == model]
            scopes.append((model, part["family"].iloc[0], dataset, part, "single model"))
        if len(models) > 1:
            scopes.append(("pooled", "pooled", dataset, in_dataset, POOLING_WITHIN))
            scopes.append(("pooled_stacked", "pooled", dataset, in_dataset, POOLING_STACKED))
    rows = []
    for model, family, dataset, part, pooling in scopes:
        correct = part["correct"].astype(bool).to_numpy()
        groups = part["image_id"].to_numpy()
        for metric, column, label in (("C_k", "ck", ck_label), ("H_s", "hs", hs_label)):
            x = part[column].to_numpy(dtype=np.float64)
            result = point_biserial(x, correct, n_boot=0, seed=seed)
            r, p, n_eff = result["r"], result["p"], len(x)
            if pooling == POOLING_WITHIN:
                strata = part["model"].to_numpy()
                r = within_group_pearson(x, correct.astype(np.float64), strata)
                n_eff = len(x) - (len(np.unique(strata)) - 1)
                statistic = weighted_within_pearson(x, correct.astype(np.float64), strata)
                p = (
                    float(
                        2
                        * sps.norm.sf(
                            abs(np.arctanh(min(abs(r), 1 - 1e-15))) * math.sqrt(n_eff - 3)
                        )
                    )
                    if np.isfinite(r) and n_eff > 3
                    else math.nan
                )
            else:
                statistic = weighted_pearson(x, correct.astype(np.float64))
            fisher = fisher_z_interval(r, n_eff)
            if np.isfinite(r):
                intervals = unit_intervals(
                    statistic,
                    groups,
                    n_boot,
                    seed,
                    unit,
                    question=(*fisher, "Fisher-z (questions independent)"),
                )
            else:
                intervals = nan_intervals(method=interval_method(unit, n_boot))
            rows.append(
                {
                    "model": model,
                    "family": family,
                    "dataset": dataset,
                    "metric": metric,
                    "definition": label,
                    "pooling": pooling,
                    "n": result["n"],
                    "n_images": int(len(pd.unique(groups))),
                    "n_correct": int(correct.sum()),
                    "r": r,
                    **intervals,
                    "fisher_lo": fisher[0],
                    "fisher_hi": fisher[1],
                    "p": p,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------------
def table1(rows: Sequence[Mapping]) -> pd.DataFrame:
    """Table 1 from per-(model, dataset) parts.

    Each row mapping holds model, family, dataset, ``samples`` (samples.parquet frame),
    ``top_heads`` (the top_heads.csv frame: :func:`nested_top_heads_r2` columns, plus the in-sample
    ``r2_in_sample`` of :func:`top_heads_r2` when present) and ``stress`` (:func:`stress_test`
    dict). Columns: model, family, dataset, n, accuracy; ``topk_r2_max`` (the largest NESTED R²
    over K: heads ranked on training folds, scored held out), ``topk_best_k``, its interval
    ``topk_r2_lo``/``topk_r2_hi`` (from the r interval, ``topk_r2_ci_method``), ``topk_r2_k<K>``
    per K; the in-sample values ``topk_r2_max_in_sample`` and ``topk_r2_in_sample_k<K>`` (heads
    ranked on the questions they are scored on, as the paper); then stress_accuracy with its
    interval, stress_auroc with its interval (``*_lo``/``*_hi`` headline, ``*_ci_method``,
    ``*_lo_image``... / ``*_lo_question``...), stress_majority_accuracy, stress_status.
    """
    records = []
    for part in rows:
        samples, heads, stress = part["samples"], part["top_heads"], part["stress"]
        r2 = heads["r2"].to_numpy(dtype=np.float64)
        has_r2 = np.isfinite(r2).any()
        best = int(np.nanargmax(r2)) if has_r2 else -1
        record = {
            "model": part["model"],
            "family": part["family"],
            "dataset": part["dataset"],
            "n": int(len(samples)),
            "accuracy": float(samples["correct"].astype(bool).mean()),
            "topk_r2_max": float(r2[best]) if has_r2 else math.nan,
            "topk_best_k": int(heads["k"].iloc[best]) if has_r2 else -1,
        }
        for suffix in ("", "_image", "_question"):
            lo, hi = (
                (heads[f"r_lo{suffix}"].iloc[best], heads[f"r_hi{suffix}"].iloc[best])
                if has_r2 and f"r_lo{suffix}" in heads
                else (math.nan, math.nan)
            )
            record[f"topk_r2_lo{suffix}"], record[f"topk_r2_hi{suffix}"] = r2_interval(
                float(lo), float(hi)
            )
            if suffix == "":
                record["topk_r2_ci_method"] = (
                    f"{heads['r_ci_method'].iloc[best]}, of r; R² = r²"
                    if has_r2 and "r_ci_method" in heads
                    else ""
                )
        for k, value in zip(heads["k"], r2):
            record[f"topk_r2_k{int(k)}"] = float(value)
        if "r2_in_sample" in heads:
            in_sample = heads["r2_in_sample"].to_numpy(dtype=np.float64)
            record["topk_r2_max_in_sample"] = (
                float(np.nanmax(in_sample)) if np.isfinite(in_sample).any() else math.nan
            )
            for k, value in zip(heads["k"], in_sample):
                record[f"topk_r2_in_sample_k{int(k)}"] = float(value)
        record.update(
            {
                "stress_accuracy": stress["accuracy"],
                **{
                    f"stress_accuracy_{key}": stress.get(f"accuracy_{key}", math.nan)
                    for key in _INTERVAL_KEYS
                },
                "stress_auroc": stress["auroc"],
                **{f"stress_auroc_{key}": stress.get(key, math.nan) for key in _INTERVAL_KEYS},
                "stress_majority_accuracy": stress["majority_accuracy"],
                "stress_status": stress["status"],
            }
        )
        records.append(record)
    return pd.DataFrame(records)


_INTERVAL_KEYS = INTERVAL_COLUMNS


# --------------------------------------------------------------------------------------------
# Figure 5: the case study, chosen by rule
# --------------------------------------------------------------------------------------------
CASE_STUDY_TIERS = (
    "incorrect, C_k = 0, H_s in the lowest quantile",
    "incorrect, C_k = 0 (no sample met the H_s quantile)",
    "incorrect (no incorrect sample had C_k = 0)",
    "any sample (no incorrect answers)",
)


def select_case_study(stats: pd.DataFrame, entropy_quantile: float = 0.10) -> dict:
    """The Figure 5 sample: a confident wrong answer with a sharp, single-cluster attention map.

    Rule: among incorrect answers with C_k = 0 and H_s at or below the ``entropy_quantile`` of its
    own (model, dataset) (H_s scales differ between grids and models), take the highest
    confidence. If none qualifies the rule relaxes in the order of :data:`CASE_STUDY_TIERS`; the
    tier used is returned. Ties: first model, dataset, then question_id in sort order.
    ``stats``: concatenated statistics tables with ``model`` and ``dataset`` columns.
    Returns dict(model, dataset, question_id, row (index into that model/dataset's table),
    tier, tier_rule, hs_threshold).
    """
    if not 0.0 < entropy_quantile <= 1.0:
        raise ValueError(
            f"attention.case_study.entropy_quantile must lie in (0, 1], got {entropy_quantile}"
        )
    if stats.empty:
        raise ValueError("no samples to choose a case study from")
    frame = stats.copy()
    frame["row"] = frame.groupby(["model", "dataset"], sort=False).cumcount()
    threshold = frame.groupby(["model", "dataset"], sort=False)["hs"].transform(
        lambda hs: np.quantile(hs, entropy_quantile)
    )
    frame["hs_threshold"] = threshold
    wrong = ~frame["correct"].astype(bool)
    single = frame["ck"] == 0
    sharp = frame["hs"] <= threshold
    for tier, mask in enumerate(
        (wrong & single & sharp, wrong & single, wrong, pd.Series(True, index=frame.index))
    ):
        pool = frame[mask]
        if len(pool):
            best = pool.sort_values(
                ["confidence", "model", "dataset", "question_id"],
                ascending=[False, True, True, True],
                kind="mergesort",
            ).iloc[0]
            return {
                "model": best["model"],
                "dataset": best["dataset"],
                "question_id": best["question_id"],
                "row": int(best["row"]),
                "tier": tier,
                "tier_rule": CASE_STUDY_TIERS[tier],
                "hs_threshold": float(best["hs_threshold"]),
            }
    raise AssertionError("unreachable: the last tier accepts every sample")
