"""Generation dynamics from the extraction: logit-lens margins, MLP share, residual updates (Table 2, Figs 2a/4).

Layer convention: the extraction's ``lens_margin`` / ``lens_margin_blank`` are (n, L+1) with
index 0 the embeddings and index l+1 the residual stream after decoder layer l; every layer
reported here is a 0-based DECODER layer l (so LLaVA's last layer is 31, the paper's "L31"), and
peaks are taken over decoder layers only.

Definitions (``docs/method.md`` §3.8, §3.14, §4 Table 2):

* ΔM_l, the truth margin: answer-token logit minus the largest other logit under the logit lens
  (final norm applied) after layer l. "Peak final margin" = the largest mean ΔM_l over layers and
  the layer where it occurs.
* Visual attribution Δmargin(l) = margin(l, real image) - margin(l, grey image); the peak
  visual-integration layer is argmax_l |mean Δmargin(l)|.
* MLP share = Σ|mlp_logit| / (Σ|mlp_logit| + Σ|attn_logit|), summed over samples and over the
  answer-forming layers: configured per model (``attention.answer_layers``), by default the last
  ceil(L/4) decoder layers (LLaVA: the paper's "answer-boosting" L30-31 in the paper face).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from vrp.stats.summary import layer_mean_ci

log = logging.getLogger(__name__)

__all__ = [
    "default_answer_layers",
    "decoder_lens",
    "peak_visual_layer",
    "peak_margin",
    "mlp_share",
    "dynamics_row",
    "layer_curves",
]


def default_answer_layers(n_layers: int) -> tuple[int, int]:
    """The last ceil(L/4) decoder layers, (first, last) inclusive."""
    if n_layers < 1:
        raise ValueError(f"n_layers must be positive, got {n_layers}")
    return n_layers - math.ceil(n_layers / 4), n_layers - 1


class NonFiniteError(ValueError):
    """A peak or mean would be computed over NaN/inf values."""


def require_finite(values, name: str) -> np.ndarray:
    """``values`` as float64, refusing NaN/inf: ``np.argmax`` over a NaN mean reports layer 0."""
    arr = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1)) if arr.ndim else np.array([0])
        raise NonFiniteError(
            f"{name} holds {int(bad.sum())} NaN/inf value(s) in sample row(s) {rows[:10].tolist()}"
            f"{' ...' if len(rows) > 10 else ''}; a peak or mean over them is undefined. The extraction "
            "refuses non-finite arrays since vrp's shard fingerprint version 2: rerun it "
            "(snakemake -R extract_activations) and check models.<name>.dtype if it fails there"
        )
    return arr


def decoder_lens(lens, name: str = "logit-lens margin") -> np.ndarray:
    """(n, L+1) logit-lens array -> (n, L): drop the embeddings column (decoder layers 0..L-1).

    Refuses NaN/inf (:func:`require_finite`).
    """
    arr = np.asarray(lens, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(
            f"a logit-lens array must be (n_samples, n_layers + 1); got shape {arr.shape}"
        )
    return require_finite(arr, name)[:, 1:]


def peak_visual_layer(lens_margin, lens_margin_blank) -> tuple[int, float]:
    """(layer, mean Δmargin there) at argmax over decoder layers of |mean(real - blank margin)|."""
    real = decoder_lens(lens_margin, "lens_margin")
    blank = decoder_lens(lens_margin_blank, "lens_margin_blank")
    if real.shape != blank.shape:
        raise ValueError(
            f"lens_margin {real.shape} and lens_margin_blank {blank.shape} differ in shape"
        )
    mean_delta = (real - blank).mean(axis=0)
    layer = int(np.argmax(np.abs(mean_delta)))
    return layer, float(mean_delta[layer])


def peak_margin(lens_margin) -> tuple[int, float]:
    """(layer, value) of the largest mean truth margin ΔM_l over decoder layers (earliest on ties)."""
    mean = decoder_lens(lens_margin, "lens_margin").mean(axis=0)
    layer = int(np.argmax(mean))
    return layer, float(mean[layer])


def mlp_share(mlp_logit, attn_logit, span: tuple[int, int]) -> float:
    """Σ|mlp| / (Σ|mlp| + Σ|attn|) of the answer-token direct logit contributions over ``span``.

    ``mlp_logit``/``attn_logit`` are (n, L); ``span`` = (first, last) decoder layers, inclusive.
    NaN when both sums are zero.
    """
    mlp, attn = require_finite(mlp_logit, "mlp_logit"), require_finite(attn_logit, "attn_logit")
    if mlp.shape != attn.shape or mlp.ndim != 2:
        raise ValueError(
            f"mlp_logit and attn_logit must both be (n, L); got {mlp.shape} and {attn.shape}"
        )
    first, last = span
    if not 0 <= first <= last < mlp.shape[1]:
        raise ValueError(f"layer span {span} outside decoder layers 0..{mlp.shape[1] - 1}")
    mlp_total = np.abs(mlp[:, first : last + 1]).sum()
    attn_total = np.abs(attn[:, first : last + 1]).sum()
    total = mlp_total + attn_total
    return float(mlp_total / total) if total > 0 else math.nan


def dynamics_row(arrays: Mapping[str, np.ndarray], answer_span: tuple[int, int]) -> dict:
    """One Table 2 row from the extraction arrays lens_margin, lens_margin_blank, mlp_logit, attn_logit.

    Keys: n, n_layers, peak_visual_layer, peak_visual_delta, peak_margin_layer, peak_margin,
    final_margin (mean ΔM at the last layer), answer_first, answer_last, mlp_share,
    mlp_share_all_layers.
    """
    margin = arrays["lens_margin"]
    n_layers = np.asarray(arrays["mlp_logit"]).shape[1]
    visual_layer, visual_delta = peak_visual_layer(margin, arrays["lens_margin_blank"])
    margin_layer, margin_value = peak_margin(margin)
    return {
        "n": int(len(margin)),
        "n_layers": int(n_layers),
        "peak_visual_layer": visual_layer,
        "peak_visual_delta": visual_delta,
        "peak_margin_layer": margin_layer,
        "peak_margin": margin_value,
        "final_margin": float(decoder_lens(margin)[:, -1].mean()),
        "answer_first": int(answer_span[0]),
        "answer_last": int(answer_span[1]),
        "mlp_share": mlp_share(arrays["mlp_logit"], arrays["attn_logit"], answer_span),
        "mlp_share_all_layers": mlp_share(
            arrays["mlp_logit"], arrays["attn_logit"], (0, n_layers - 1)
        ),
    }


def layer_curves(
    values, correct=None, ci: float = 0.95, name: str = "values", allow_nan: bool = False
) -> pd.DataFrame:
    """:func:`vrp.stats.layer_mean_ci` for all samples (group "all") and, given ``correct``, per answer outcome.

    Adds ``group`` ("all", "correct", "incorrect") and ``depth`` = (layer + 1) / L, the share of
    the decoder stack done after the layer. Groups without samples are left out. NaN/inf is
    refused (:func:`require_finite`) unless ``allow_nan`` (a quantity undefined for some samples);
    then the values left out of the means are counted in a logged warning, never dropped silently.
    """
    arr = np.asarray(values, dtype=np.float64)
    if not allow_nan:
        require_finite(arr, name)
    elif arr.size and not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        log.warning(
            "%s: %d of %d values are NaN/inf (layers %s) and are left out of the per-layer means",
            name,
            int(bad.sum()),
            arr.size,
            np.flatnonzero(bad.any(axis=0)).tolist(),
        )
    groups = {"all": np.ones(len(arr), dtype=bool)}
    if correct is not None:
        flags = np.asarray(correct, dtype=bool)
        if flags.shape != (len(arr),):
            raise ValueError(
                f"correct must hold one flag per sample ({len(arr)}); got shape {flags.shape}"
            )
        groups.update(correct=flags, incorrect=~flags)
    parts = []
    for name, mask in groups.items():
        if mask.any():
            part = layer_mean_ci(arr[mask], ci)
            part.insert(0, "group", name)
            parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["depth"] = (out["layer"] + 1) / arr.shape[1]
    return out
