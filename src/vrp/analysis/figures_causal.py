"""Figures of the causal sweeps: accuracy drop against the masked share p (the masking table's figure)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vrp.analysis.plotting import FAMILY_COLOURS, model_label, plt

# condition -> (label, line style, marker, alpha); colour is the model's family colour
CONDITION_STYLES = {
    "high": ("HIGH (most attended)", "-", "o", 1.0),
    "low": ("LOW (least attended)", "--", "s", 0.75),
    "random": ("RANDOM (mean over seeds)", ":", "^", 0.75),
}


def masking_curves(table: pd.DataFrame) -> pd.DataFrame:
    """Drop vs full image per (model, dataset, condition, p), all questions.

    HIGH and LOW carry their paired bootstrap CI and McNemar p; RANDOM is the mean over seeds
    with the range of the seeds' drops as its interval (and the largest seed p).
    """
    rows = table[(table["subset"] == "all") & (table["reference"] == "full")]
    curves = []
    for (model, family, dataset, condition, p), group in rows.groupby(
        ["model", "family", "dataset", "changed", "p"], sort=True
    ):
        if condition == "random":
            drop, lo, hi = group["drop_pp"].mean(), group["drop_pp"].min(), group["drop_pp"].max()
        else:
            drop, lo, hi = (float(group[c].iloc[0]) for c in ("drop_pp", "drop_lo", "drop_hi"))
        curves.append(
            {
                "model": model,
                "family": family,
                "dataset": dataset,
                "condition": condition,
                "p": p,
                "drop_pp": drop,
                "lo": lo,
                "hi": hi,
                "mcnemar_p": group["paired_p"].max(),
            }
        )
    return pd.DataFrame(curves)


def masking_figure(table: pd.DataFrame, alpha: float = 0.05):
    """One panel per model (columns) and dataset (rows): drop (pp) against p for HIGH, LOW, RANDOM.

    Filled markers: McNemar p < ``alpha`` against the full image; hollow: not significant.
    """
    curves = masking_curves(table)
    if curves.empty:
        raise ValueError("the masking table has no full-image contrasts on all questions to plot")
    models = list(dict.fromkeys(curves.sort_values(["family", "model"])["model"]))
    shares = np.sort(curves["p"].unique())
    # conditions side by side around each p, so their intervals do not hide each other
    dodge = 0.12 * (np.diff(shares).min() if len(shares) > 1 else 0.05)
    offsets = dict(zip(CONDITION_STYLES, (-dodge, 0.0, dodge)))
    datasets = sorted(curves["dataset"].unique())
    fig, axes = plt.subplots(
        len(datasets),
        len(models),
        figsize=(4.2 * len(models), 3.4 * len(datasets)),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    for row, dataset in enumerate(datasets):
        for col, model in enumerate(models):
            ax = axes[row, col]
            panel = curves[(curves["model"] == model) & (curves["dataset"] == dataset)]
            family = panel["family"].iloc[0] if len(panel) else ""
            colour = FAMILY_COLOURS.get(family, "black")
            for condition, (_label, style, marker, alpha_line) in CONDITION_STYLES.items():
                line = panel[panel["condition"] == condition].sort_values("p")
                if line.empty:
                    continue
                x, y = line["p"].to_numpy() + offsets[condition], line["drop_pp"].to_numpy()
                err = np.vstack([y - line["lo"].to_numpy(), line["hi"].to_numpy() - y])
                ax.errorbar(
                    x,
                    y,
                    yerr=err,
                    color=colour,
                    linestyle=style,
                    alpha=alpha_line,
                    capsize=3,
                    lw=1.6,
                )
                significant = line["mcnemar_p"].to_numpy() < alpha
                ax.scatter(
                    x[significant], y[significant], marker=marker, color=colour, s=36, zorder=3
                )
                ax.scatter(
                    x[~significant],
                    y[~significant],
                    marker=marker,
                    facecolors="white",
                    edgecolors=colour,
                    s=36,
                    zorder=3,
                )
            ax.axhline(0.0, color="grey", lw=0.8)
            ax.set_xticks(shares, [f"{v:g}" for v in shares])
            ax.set_title(f"{model_label(model, family)} · {dataset}", fontsize=10)
            ax.grid(alpha=0.3)
            if row == len(datasets) - 1:
                ax.set_xlabel("masked share of image patches p")
            if col == 0:
                ax.set_ylabel("accuracy drop vs full image (pp)")
    handles = [
        plt.Line2D([], [], color="black", linestyle=style, marker=marker, alpha=a, label=label)
        for label, style, marker, a in CONDITION_STYLES.values()
    ]
    handles.append(
        plt.Line2D(
            [],
            [],
            color="black",
            marker="o",
            linestyle="",
            markerfacecolor="white",
            label=f"hollow: McNemar p ≥ {alpha:g}",
        )
    )
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=len(handles),
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
        fontsize=9,
    )
    fig.suptitle(
        "Masking attention-ranked patches: accuracy drop against the masked share", fontsize=12
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
