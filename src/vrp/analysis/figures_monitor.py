"""The reliability diagram of the exported monitors (held-out, image-grouped)."""

from __future__ import annotations

import matplotlib.pyplot as plt  # noqa: E402 (after plotting sets the Agg backend)
import pandas as pd

from vrp.analysis.plotting import FAMILY_COLOURS, FAMILY_LABELS

METHOD_STYLES = {
    "monitor": ("Monitor P(correct)", "-", "o"),
    "confidence": ("Output confidence", "--", "s"),
}


def reliability_diagram(bins: dict[tuple[str, str], pd.DataFrame], families: dict[str, str]):
    """One panel per (model, dataset): observed accuracy against mean predicted P(correct) per bin.

    ``bins`` maps (model, dataset) to a :func:`vrp.monitor.reliability_bins` table with a
    ``method`` column (monitor, confidence). Marker area grows with the bin's question count;
    the bars at the bottom show the share of questions per bin for each method.
    """
    n = len(bins)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.6), squeeze=False)
    for ax, ((model, dataset), table) in zip(axes[0], bins.items()):
        colour = FAMILY_COLOURS.get(families.get(model), "black")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="Perfect calibration")
        width = float(table["upper"].iloc[0] - table["lower"].iloc[0])
        for offset, (method, (label, style, marker)) in enumerate(METHOD_STYLES.items()):
            part = table[(table["method"] == method) & (table["n"] > 0)]
            share = part["n"] / part["n"].sum()
            ax.bar(
                part["lower"] + width * (0.25 + 0.5 * offset),
                0.25 * share,
                width=width * 0.45,
                bottom=0,
                color=colour,
                alpha=0.6 if method == "monitor" else 0.25,
            )
            alpha = 1.0 if method == "monitor" else 0.6
            ax.plot(
                part["mean_p"], part["accuracy"], ls=style, color=colour, alpha=alpha, label=label
            )
            ax.scatter(
                part["mean_p"],
                part["accuracy"],
                marker=marker,
                color=colour,
                alpha=alpha,
                s=10 + 120 * share.to_numpy(),
                zorder=3,
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("predicted P(correct)")
        ax.set_title(f"{FAMILY_LABELS.get(families.get(model), model)} · {dataset}", fontsize=9)
    axes[0][0].set_ylabel("observed accuracy")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
