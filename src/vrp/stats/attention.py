"""Structural statistics of attention maps over the image-patch grid (paper §3.1–3.4, §3.6).

Every function takes maps with the patch grid in the **last two axes**: a single map
``(rows, cols)``, a batch ``(n, rows, cols)`` or per-layer maps ``(n, L, rows, cols)``.
Maps are non-negative attention weights; they are L1-normalised here (so raw, un-normalised
head/layer averages can be passed straight in).

Definitions (see ``docs/method.md`` §3.1-3.4):

* **H_s** (spatial entropy): ``-sum M log(M + delta)`` in nats on the L1-normalised map,
  ``delta = 1e-9``; optionally divided by ``log S`` (S = number of patches) so it lies in [0, 1].
* **C_k, connected components** (primary; the later paper's definition): binarise the grid by
  keeping the smallest set of highest-attention patches holding at least 30% of the attention
  *mass*, label connected components with :func:`scipy.ndimage.label`, return components - 1
  (0 = a single dominant focus).
* **C_k, DBSCAN** (the COLM paper and official code): patches at or above the 90th percentile,
  :class:`sklearn.cluster.DBSCAN` ``(eps=1.5, min_samples=3)`` on their integer coordinates,
  number of clusters without noise; 0 when fewer than ``min_samples`` patches pass.
* **ΔH_s(l)** = H_s(l) - H_s(l-1) along the layer axis.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.cluster import DBSCAN

__all__ = [
    "normalize_maps",
    "spatial_entropy",
    "cluster_count_components",
    "cluster_count_dbscan",
    "cluster_count",
    "top_mass",
    "gini",
    "max_mass",
    "centroid_spread",
    "attention_features",
    "ATTENTION_FEATURES",
    "layer_delta_entropy",
]

# Slack for floating-point cumulative sums when testing "holds at least `mass` of the total".
_MASS_TOLERANCE = 1e-9


def normalize_maps(maps) -> np.ndarray:
    """Return float64 maps L1-normalised over the last two (grid) axes.

    Raises ``ValueError`` for fewer than two axes, non-finite or negative values, or a map whose
    total is zero (an attention map can never be all zeros; such input is a bug upstream).
    """
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(
            f"attention maps need the patch grid in the last two axes (rows, cols); got shape {arr.shape}"
        )
    if arr.shape[-1] == 0 or arr.shape[-2] == 0:
        raise ValueError(f"attention maps have an empty patch grid: shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("attention maps contain NaN or inf; check the attention extraction")
    if np.any(arr < 0):
        raise ValueError("attention maps contain negative values; pass attention weights (>= 0)")
    total = arr.sum(axis=(-2, -1), keepdims=True)
    if np.any(total <= 0):
        raise ValueError("an attention map sums to zero and cannot be L1-normalised")
    return arr / total


def spatial_entropy(maps, normalized: bool = False, delta: float = 1e-9) -> np.ndarray | float:
    """Spatial entropy H_s = -sum M log(M + delta) (nats) of each L1-normalised map.

    With ``normalized=True`` the value is divided by ``log S`` (S = rows*cols), giving 1.0 for a
    uniform map and 0.0 for a one-hot map. Returns a float for one map, else an array with the
    leading (batch/layer) shape.
    """
    probs = normalize_maps(maps)
    entropy = -(probs * np.log(probs + delta)).sum(axis=(-2, -1))
    if normalized:
        n_patches = probs.shape[-2] * probs.shape[-1]
        if n_patches < 2:
            raise ValueError("normalised entropy needs at least 2 patches (log S = 0 for S = 1)")
        entropy = entropy / math.log(n_patches)
    return _scalar_or_array(entropy)


def _structure(connectivity: int) -> np.ndarray:
    if connectivity == 8:
        return ndimage.generate_binary_structure(2, 2)
    if connectivity == 4:
        return ndimage.generate_binary_structure(2, 1)
    raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")


def _top_mass_masks(probs: np.ndarray, mass: float) -> np.ndarray:
    """Boolean masks (n, rows, cols) of the highest patches holding >= ``mass`` of each map.

    Patches tied with the last patch needed are all kept, so the mask never depends on the
    order patches happen to be stored in (a uniform map keeps every patch).
    """
    n, rows, cols = probs.shape
    flat = probs.reshape(n, rows * cols)
    descending = -np.sort(-flat, axis=1)
    cumulative = np.cumsum(descending, axis=1)
    # Index of the first sorted patch at which the cumulative mass reaches `mass`.
    last_needed = (cumulative < mass - _MASS_TOLERANCE).sum(axis=1)
    last_needed = np.minimum(last_needed, rows * cols - 1)
    threshold = descending[np.arange(n), last_needed]
    return (flat >= threshold[:, None]).reshape(n, rows, cols)


def _components_batch(probs: np.ndarray, mass: float, connectivity: int) -> np.ndarray:
    """Connected-component counts minus one for a stack (n, rows, cols), in one labelling pass."""
    masks = _top_mass_masks(probs, mass)
    # A 3-D structure whose first and last slices are empty never joins patches across maps,
    # so one ndimage.label call labels the whole batch.
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = _structure(connectivity)
    labels, _ = ndimage.label(masks, structure=structure)
    flat_labels = labels.ravel()
    labelled = np.flatnonzero(flat_labels)
    # Each label lives in exactly one map: find the map of each label's first patch.
    _, first = np.unique(flat_labels[labelled], return_index=True)
    map_of_label = labelled[first] // (masks.shape[1] * masks.shape[2])
    counts = np.bincount(map_of_label, minlength=masks.shape[0])
    return counts - 1


def cluster_count_components(map2d, mass: float = 0.30, connectivity: int = 8) -> int:
    """C_k by connected components: components among the top-``mass`` patches, minus one.

    The kept set is the smallest set of highest-attention patches whose share of the total
    attention is at least ``mass`` (30% of the attention **mass**, not 30% of the patches);
    patches tied with the last one needed are kept too. Components are labelled with
    :func:`scipy.ndimage.label` using 8-connectivity (diagonal neighbours join; the default)
    or 4-connectivity. Returns 0 for a single dominant focus, 1 for two separate foci, ...
    """
    grid = np.asarray(map2d)
    if grid.ndim != 2:
        raise ValueError(
            f"cluster_count_components takes one 2-D map; got shape {grid.shape}. "
            "Use cluster_count(maps) for batches."
        )
    _check_mass(mass)
    probs = normalize_maps(grid)[None]
    return int(_components_batch(probs, mass, connectivity)[0])


def cluster_count_dbscan(
    map2d, quantile: float = 0.90, eps: float = 1.5, min_samples: int = 3
) -> int:
    """C_k by DBSCAN (COLM paper / official code): clusters among the top-decile patches.

    Keeps grid coordinates whose value is >= the ``quantile`` of the map (``np.quantile``,
    linear interpolation, as ``np.percentile(M, 90)`` in the official code), clusters them with
    ``DBSCAN(eps, min_samples)`` in (row, col) patch units and counts clusters without the
    noise label -1. Returns 0 if fewer than ``min_samples`` patches pass.
    """
    grid = np.asarray(map2d)
    if grid.ndim != 2:
        raise ValueError(
            f"cluster_count_dbscan takes one 2-D map; got shape {grid.shape}. "
            "Use cluster_count(maps, method='dbscan') for batches."
        )
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
    probs = normalize_maps(grid)
    coords = np.argwhere(probs >= np.quantile(probs, quantile))
    if len(coords) < min_samples:
        return 0
    labels = DBSCAN(eps=eps, min_samples=min_samples).fit(coords).labels_
    return int(len(set(labels.tolist()) - {-1}))


def cluster_count(
    maps, method: Literal["components", "dbscan"] = "components", **params
) -> np.ndarray | int:
    """C_k for every map in ``maps`` (grid in the last two axes); integer array of the leading shape.

    ``method="components"`` (default; params ``mass``, ``connectivity``) is vectorised over the
    batch; ``method="dbscan"`` (params ``quantile``, ``eps``, ``min_samples``) loops per map.
    """
    arr = np.asarray(maps)
    if arr.ndim < 2:
        raise ValueError(
            f"cluster_count needs maps with a (rows, cols) grid; got shape {arr.shape}"
        )
    lead = arr.shape[:-2]
    stack = arr.reshape((-1,) + arr.shape[-2:])
    if method == "components":
        unknown = set(params) - {"mass", "connectivity"}
        if unknown:
            raise TypeError(f"unknown parameter(s) {sorted(unknown)} for method='components'")
        mass = params.get("mass", 0.30)
        _check_mass(mass)
        counts = _components_batch(normalize_maps(stack), mass, params.get("connectivity", 8))
    elif method == "dbscan":
        counts = np.array([cluster_count_dbscan(m, **params) for m in stack], dtype=np.int64)
    else:
        raise ValueError(f"method must be 'components' or 'dbscan', got {method!r}")
    counts = counts.astype(np.int64).reshape(lead)
    return int(counts) if counts.ndim == 0 else counts


def top_mass(maps, fraction: float = 0.10) -> np.ndarray | float:
    """Share of attention mass held by the top ``ceil(fraction * S)`` patches (S = patches).

    A uniform map gives ``ceil(fraction*S)/S``; a one-hot map gives 1.0.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    probs = normalize_maps(maps)
    flat = probs.reshape(probs.shape[:-2] + (-1,))
    k = max(1, math.ceil(fraction * flat.shape[-1] - _MASS_TOLERANCE))
    # np.partition puts the k largest values in the last k slots without a full sort.
    largest = np.partition(flat, flat.shape[-1] - k, axis=-1)[..., -k:]
    return _scalar_or_array(largest.sum(axis=-1))


def gini(maps) -> np.ndarray | float:
    """Gini coefficient of the patch values: 0 for a uniform map, (S-1)/S for a one-hot map.

    G = sum_i (2i - S - 1) x_(i) / (S sum x), with x sorted ascending and i = 1..S.
    """
    probs = normalize_maps(maps)
    flat = np.sort(probs.reshape(probs.shape[:-2] + (-1,)), axis=-1)
    n_patches = flat.shape[-1]
    weights = 2.0 * np.arange(1, n_patches + 1) - n_patches - 1
    # The maps are normalised, so sum x = 1.
    return _scalar_or_array((flat * weights).sum(axis=-1) / n_patches)


def max_mass(maps) -> np.ndarray | float:
    """Largest single-patch share of the attention (1/S uniform, 1.0 one-hot)."""
    probs = normalize_maps(maps)
    return _scalar_or_array(probs.max(axis=(-2, -1)))


def centroid_spread(maps) -> np.ndarray | float:
    """Spatial variance of the map around its centroid, in squared patch units.

    sum_ij M_ij ((i - ci)^2 + (j - cj)^2) with (ci, cj) the attention-weighted centroid;
    0 for a one-hot map.
    """
    probs = normalize_maps(maps)
    rows = np.arange(probs.shape[-2], dtype=np.float64)[:, None]
    cols = np.arange(probs.shape[-1], dtype=np.float64)[None, :]
    row_c = (probs * rows).sum(axis=(-2, -1))[..., None, None]
    col_c = (probs * cols).sum(axis=(-2, -1))[..., None, None]
    spread = (probs * ((rows - row_c) ** 2 + (cols - col_c) ** 2)).sum(axis=(-2, -1))
    return _scalar_or_array(spread)


# The 11 attention-derived features of the supervised stress test (paper §3.6). The paper names
# "cluster count, spatial entropy, concentration metrics and polynomial interaction terms"
# without the exact list; this is our documented choice.
ATTENTION_FEATURES: tuple[str, ...] = (
    "ck_components",  # C_k, connected components on the top-30% mass (8-connectivity)
    "ck_dbscan",  # C_k, DBSCAN on the top-decile patches (eps 1.5, min_samples 3)
    "entropy",  # H_s in nats
    "entropy_normalized",  # H_s / log S
    "top10_mass",  # share of mass in the top 10% of patches
    "gini",  # Gini coefficient of patch values
    "max_mass",  # largest single-patch share
    "centroid_spread",  # spatial variance around the attention centroid (patch units^2)
    "ck_x_entropy",  # interaction C_k(components) x H_s
    "entropy_sq",  # H_s^2
    "top10_mass_x_entropy",  # interaction top-10% mass x H_s
)


def attention_features(maps) -> pd.DataFrame:
    """The 11 attention features (:data:`ATTENTION_FEATURES`) of each map in a batch (n, rows, cols).

    One row per map, columns in :data:`ATTENTION_FEATURES` order. Accepts a single 2-D map too.
    """
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"attention_features takes maps of shape (n, rows, cols); got {arr.shape}")
    probs = normalize_maps(arr)
    entropy = spatial_entropy(probs)
    ck = cluster_count(probs, method="components")
    top10 = top_mass(probs, 0.10)
    features = {
        "ck_components": ck,
        "ck_dbscan": cluster_count(probs, method="dbscan"),
        "entropy": entropy,
        "entropy_normalized": spatial_entropy(probs, normalized=True),
        "top10_mass": top10,
        "gini": gini(probs),
        "max_mass": max_mass(probs),
        "centroid_spread": centroid_spread(probs),
        "ck_x_entropy": ck * entropy,
        "entropy_sq": entropy**2,
        "top10_mass_x_entropy": top10 * entropy,
    }
    frame = pd.DataFrame(
        {
            name: np.atleast_1d(np.asarray(features[name], dtype=np.float64))
            for name in ATTENTION_FEATURES
        }
    )
    return frame


def layer_delta_entropy(per_layer_entropy, axis: int = -1) -> np.ndarray:
    """ΔH_s(l) = H_s(l) - H_s(l-1) along the layer ``axis`` (default last).

    The output has one entry fewer than the input along ``axis``: entry i is the change into
    layer i+1 (there is no ΔH_s for layer 0).
    """
    arr = np.asarray(per_layer_entropy, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[axis] < 2:
        raise ValueError(
            f"layer_delta_entropy needs at least 2 layers along axis {axis}; got shape {arr.shape}"
        )
    return np.diff(arr, axis=axis)


def _check_mass(mass: float) -> None:
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must lie in (0, 1] (a share of total attention), got {mass}")


def _scalar_or_array(values: np.ndarray) -> np.ndarray | float:
    values = np.asarray(values)
    return float(values) if values.ndim == 0 else values
