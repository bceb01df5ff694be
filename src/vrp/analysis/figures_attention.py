"""Figures 2a, 3, 4 and 5: margin formation, attention-entropy dynamics, residual updates, a case study.

Each ``figure_*`` function takes tidy per-layer tables (from :func:`vrp.analysis.dynamics.layer_curves`
with ``model`` and ``family`` columns added) and returns a matplotlib Figure; the workflow
scripts save them with :func:`vrp.analysis.plotting.save_figure`. Colours are the family colours
of :data:`vrp.analysis.plotting.FAMILY_COLOURS` in every figure.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from vrp.adapters import FAMILIES
from vrp.analysis.plotting import FAMILY_COLOURS, model_label, plt

__all__ = [
    "model_label",
    "heatmap_on_pixels",
    "figure_margin_by_layer",
    "figure_entropy_dynamics",
    "figure_update_norm",
    "figure_case_study",
]

FAMILY_MARKERS = dict(zip(FAMILIES, ("o", "s", "^")))
FAMILY_LINESTYLES = dict(zip(FAMILIES, ("-", "--", ":")))


def _models(curves: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(curves["model"], curves["family"])))


def _panels(n: int, width: float = 4.2, height: float = 3.4, sharey: bool = False):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, sharey=sharey)
    return fig, axes[0]


def _band(ax, part: pd.DataFrame, x: str, colour: str, **line):
    ax.plot(part[x], part["mean"], color=colour, **line)
    ax.fill_between(part[x], part["lo"], part["hi"], color=colour, alpha=0.18, linewidth=0)


def figure_margin_by_layer(curves: pd.DataFrame, title: str = "Figure 2a") -> plt.Figure:
    """ΔM_l against decoder layer, one panel per model; correct (solid) and incorrect (dashed) answers.

    ``curves``: model, family, group ("correct"/"incorrect"/"all"), layer, n, mean, lo, hi.
    """
    models = _models(curves)
    fig, axes = _panels(len(models))
    for ax, (model, family) in zip(axes, models):
        colour = FAMILY_COLOURS.get(family, "black")
        mine = curves[curves["model"] == model]
        for group, style in (("correct", "-"), ("incorrect", "--")):
            part = mine[mine["group"] == group]
            if len(part):
                _band(
                    ax,
                    part,
                    "layer",
                    colour,
                    linestyle=style,
                    marker=FAMILY_MARKERS.get(family, "o"),
                    markersize=3.5,
                    label=f"{group} (n={int(part['n'].max())})",
                )
        ax.axhline(0.0, color="grey", linewidth=0.8, zorder=0)
        ax.set_title(model_label(model, family), color=colour)
        ax.set_xlabel("decoder layer l")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8, frameon=False)
    axes[0].set_ylabel("truth margin ΔM_l (logit lens)")
    fig.suptitle(f"{title}: answer-token margin across layers (mean, 95% CI)")
    fig.tight_layout()
    return fig


def figure_entropy_dynamics(
    curves: pd.DataFrame, normalized: bool = False, title: str = "Figure 3"
) -> plt.Figure:
    """ΔH_s(l) = H_s(l) - H_s(l-1) against normalised depth (l+1)/L, one line per model (mean, 95% CI).

    ``curves``: model, family, depth, layer, mean, lo, hi (the "all" group; layer 0 has no ΔH_s).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for model, family in _models(curves):
        part = curves[(curves["model"] == model) & np.isfinite(curves["mean"])]
        _band(
            ax,
            part,
            "depth",
            FAMILY_COLOURS.get(family, "black"),
            linestyle=FAMILY_LINESTYLES.get(family, "-"),
            marker=FAMILY_MARKERS.get(family, "o"),
            markersize=4,
            label=model_label(model, family),
        )
    ax.axhline(0.0, color="grey", linewidth=0.8, zorder=0)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("normalised depth (l + 1) / L")
    ax.set_ylabel("ΔH_s (normalised by log S)" if normalized else "ΔH_s (nats)")
    ax.set_title(f"{title}: change in attention spatial entropy per layer (mean, 95% CI)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def figure_update_norm(curves: pd.DataFrame, title: str = "Figure 4") -> plt.Figure:
    """Mean visual-token residual update ||h_l - h_(l-1)||_2 per decoder layer, one panel per model.

    ``curves``: model, family, layer, mean, lo, hi (the "all" group). Panels keep their own y
    scale (hidden sizes differ between models).
    """
    models = _models(curves)
    fig, axes = _panels(len(models))
    for ax, (model, family) in zip(axes, models):
        colour = FAMILY_COLOURS.get(family, "black")
        part = curves[curves["model"] == model]
        _band(ax, part, "layer", colour, marker=FAMILY_MARKERS.get(family, "o"), markersize=3.5)
        ax.set_title(model_label(model, family), color=colour)
        ax.set_xlabel("decoder layer l")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel("‖h_l − h_(l−1)‖₂\n(mean over image tokens)")
    fig.suptitle(f"{title}: visual-token residual update per layer (mean, 95% CI)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Figure 5
# --------------------------------------------------------------------------------------------
def heatmap_on_pixels(grid_map, boxes, image_size: tuple[int, int]) -> np.ndarray:
    """(height, width) array with each cell's attention painted over its pixel box; NaN elsewhere.

    ``grid_map`` (rows, cols), ``boxes`` (rows, cols, 4) half-open pixel boxes as from
    ``cell_boxes``; pixels no cell covers (cropped away by the processor) stay NaN.
    """
    values = np.asarray(grid_map, dtype=np.float64)
    boxes = np.asarray(boxes)
    if boxes.shape != values.shape + (4,):
        raise ValueError(
            f"boxes {boxes.shape} do not match the {values.shape} map (need (rows, cols, 4))"
        )
    width, height = image_size
    heat = np.full((height, width), np.nan)
    for (r, c), value in np.ndenumerate(values):
        x0, y0, x1, y1 = boxes[r, c]
        heat[y0:y1, x0:x1] = value
    return heat


def figure_case_study(
    image, heat: np.ndarray, info: Mapping, lens_margin, lens_margin_blank, title: str = "Figure 5"
) -> plt.Figure:
    """The case study: the image, its attention heatmap overlaid on the pixels, the logit-lens trajectory.

    ``heat`` from :func:`heatmap_on_pixels`; ``lens_margin``/``lens_margin_blank`` are the sample's
    (L+1,) margins (index 0 = embeddings). ``info`` holds model, family, question, answer,
    prediction, confidence, hs, hs_label, ck, layers ([first, last] averaged), hs_threshold, tier_rule.
    """
    fig, axes = plt.subplots(
        1, 3, figsize=(14.5, 4.6), gridspec_kw={"width_ratios": [1, 1.15, 1.5]}
    )
    colour = FAMILY_COLOURS.get(info["family"], "black")
    axes[0].imshow(image, interpolation="nearest")
    axes[0].set_title("input image")
    axes[1].imshow(image, interpolation="nearest")
    overlay = axes[1].imshow(
        np.ma.masked_invalid(heat), cmap="inferno", alpha=0.6, interpolation="nearest", vmin=0.0
    )
    fig.colorbar(overlay, ax=axes[1], fraction=0.046, pad=0.04, label="attention share per patch")
    first, last = info["layers"]
    axes[1].set_title(
        f"attention, layers {first}–{last}: H_s = {info['hs']:.3f} {info['hs_label']}, "
        f"C_k = {int(info['ck'])}\n(lowest-quantile H_s cut for this model: "
        f"{info['hs_threshold']:.3f})",
        fontsize=10,
    )
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])

    real = np.asarray(lens_margin, dtype=np.float64)
    blank = np.asarray(lens_margin_blank, dtype=np.float64)
    layers = np.arange(len(real)) - 1  # index 0 = embeddings, plotted at layer -1
    axes[2].plot(layers, real, color=colour, marker="o", markersize=4, label="real image")
    axes[2].plot(
        layers, blank, color="grey", linestyle="--", marker="s", markersize=3.5, label="grey image"
    )
    axes[2].axhline(0.0, color="black", linewidth=0.8)
    axes[2].set_xlabel("layer (−1 = embeddings)")
    axes[2].set_ylabel(f"margin of '{info['answer']}' (logit lens)")
    axes[2].xaxis.get_major_locator().set_params(integer=True)
    axes[2].set_title("logit-lens trajectory of the correct answer")
    axes[2].legend(frameon=False, fontsize=9)
    confidence = info["confidence"]
    fig.suptitle(
        f'{title}: {model_label(info["model"], info["family"])} — "{info["question"]}"  '
        f"answer: {info['answer']}, predicted: {info['prediction']} (P = {confidence:.1%})\n"
        f"chosen by rule: {info['tier_rule']}",
        fontsize=11,
    )
    fig.tight_layout()
    return fig
