"""Figures of the reliability readouts: probe AUROC by layer, the self-consistency K curve, Figure 2b.

Colours are the family colours of :mod:`vrp.analysis.plotting`; one panel row per dataset.
Layers are decoder-layer indices (see :mod:`vrp.analysis.probes`; -1 = embeddings).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from vrp.analysis.plotting import FAMILY_COLOURS, model_label

PROBE_STYLES = {  # probe -> (line style, marker, legend label)
    "logistic": ("-", "o", "logistic (L2) on hidden"),
    "mlp": ("--", "s", "MLP on hidden"),
    "l1": (":", "^", "sparse L1 on MLP output"),
}


def _grid(n_rows: int, n_cols: int, width: float = 4.2, height: float = 3.4, sharey=True):
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False, sharey=sharey
    )
    return fig, axes


def probe_layers_figure(layers: dict[tuple[str, str], pd.DataFrame], families: dict[str, str]):
    """Held-out AUROC (95% CI band) against layer, one panel per (dataset, model).

    Each panel shows the logistic and MLP probes on the hidden state and the L1 probe on the MLP
    output in the family colour; the logistic probe's in-sample AUROC is a thin grey line,
    labelled as such. The dotted line is chance.
    """
    datasets = sorted({d for _, d in layers})
    models = sorted({m for m, _ in layers})
    fig, axes = _grid(len(datasets), len(models))
    for i, dataset in enumerate(datasets):
        for j, model in enumerate(models):
            ax = axes[i][j]
            table = layers.get((model, dataset))
            colour = FAMILY_COLOURS.get(families[model], "black")
            if table is None:
                ax.set_visible(False)
                continue
            for probe, (style, marker, label) in PROBE_STYLES.items():
                part = table[table["probe"] == probe].sort_values("layer")
                if part.empty:
                    continue
                ax.plot(
                    part["layer"],
                    part["auroc"],
                    style,
                    marker=marker,
                    color=colour,
                    label=label,
                    markersize=4,
                )
                ax.fill_between(
                    part["layer"], part["lo"], part["hi"], color=colour, alpha=0.12, linewidth=0
                )
            logistic = table[table["probe"] == "logistic"].sort_values("layer")
            ax.plot(
                logistic["layer"],
                logistic["auroc_in_sample"],
                "-",
                color="0.55",
                linewidth=1,
                label="logistic, in-sample (optimistic)",
            )
            ax.axhline(0.5, color="0.3", linestyle=":", linewidth=1)
            ax.set_title(f"{model_label(model, families[model])} — {dataset}")
            ax.set_xlabel("decoder layer (-1 = embeddings)")
            ax.set_ylim(0.3, 1.02)
            ax.xaxis.get_major_locator().set_params(integer=True)
            if j == 0:
                ax.set_ylabel("held-out AUROC (correct vs wrong)")
    handles, labels = next(
        ax for row in axes for ax in row if ax.get_visible()
    ).get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=len(labels),
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
    )
    fig.suptitle("Reliability probes by layer (image-grouped CV, 95% bootstrap CI)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def consistency_curve_figure(
    summary: pd.DataFrame, families: dict[str, str], task: str = "all", pope_setting: str = ""
):
    """Self-consistency against K: AUROC (95% CI) and R_pb (Fisher-z 95% CI) per family.

    ``summary`` is the concatenation of the ``results/selfconsistency/k~{K}.csv`` tables; one row
    of panels per dataset, restricted to the (task, pope_setting) subset.
    """
    table = summary[
        (summary["task"] == task) & (summary["pope_setting"].fillna("") == pope_setting)
    ]
    datasets = sorted(table["dataset"].unique())
    fig, axes = _grid(max(1, len(datasets)), 2, sharey=False)
    for i, dataset in enumerate(datasets):
        part = table[table["dataset"] == dataset]
        models = sorted(part["model"].unique())
        for index, model in enumerate(models):
            rows = part[part["model"] == model].sort_values("k")
            dodge = 0.08 * (index - (len(models) - 1) / 2)  # keep overlapping error bars apart
            colour = FAMILY_COLOURS.get(families[model], "black")
            label = model_label(model, families[model])
            for ax, (value, lo, hi) in zip(
                axes[i], (("auroc", "lo", "hi"), ("r_pb", "r_pb_lo", "r_pb_hi"))
            ):
                k = rows["k"].to_numpy() + dodge
                ax.errorbar(
                    k,
                    rows[value],
                    yerr=[rows[value] - rows[lo], rows[hi] - rows[value]],
                    color=colour,
                    marker="o",
                    capsize=3,
                    label=label,
                )
        axes[i][0].axhline(0.5, color="0.3", linestyle=":", linewidth=1)
        axes[i][1].axhline(0.0, color="0.3", linestyle=":", linewidth=1)
        axes[i][0].set_ylabel("AUROC of S_SC")
        axes[i][1].set_ylabel("R_pb(S_SC, correct)")
        for ax, what in zip(axes[i], ("AUROC", "point-biserial R")):
            ax.set_xlabel("K (samples per question)")
            ax.set_title(f"{what} — {dataset}")
            ax.set_xticks(sorted(part["k"].unique()))
        axes[i][0].legend(frameon=False)
    fig.suptitle("Self-consistency against the number of samples K (greedy-answer correctness)")
    fig.tight_layout()
    return fig


def delta_activation_figure(
    rankings: dict[tuple[str, str], pd.DataFrame],
    peaks: dict[tuple[str, str], dict],
    families: dict[str, str],
    top_channels: int = 5,
):
    """Figure 2b: density of Δact over the MLP output channels at each family's peak layer.

    The ``top_channels`` channels with the largest |L1 probe weight| at that layer are marked:
    green where Δact > 0 (more active when correct), red where Δact < 0, labelled by channel.
    """
    datasets = sorted({d for _, d in rankings})
    models = sorted({m for m, _ in rankings})
    fig, axes = _grid(len(datasets), len(models), sharey=False)
    for i, dataset in enumerate(datasets):
        for j, model in enumerate(models):
            ax = axes[i][j]
            if (model, dataset) not in rankings:
                ax.set_visible(False)
                continue
            peak = peaks[(model, dataset)]["peak_layer"]
            layer = rankings[(model, dataset)]
            layer = layer[layer["layer"] == peak]
            colour = FAMILY_COLOURS.get(families[model], "black")
            values = layer["delta_act"].to_numpy()
            if np.ptp(values) > 0:
                sns.kdeplot(
                    x=values, ax=ax, color=colour, fill=True, alpha=0.25, warn_singular=False
                )
            ax.plot(values, np.zeros_like(values), "|", color=colour, alpha=0.5, markersize=8)
            top = layer[layer["abs_weight"] > 0].nsmallest(top_channels, "rank")
            ymax = ax.get_ylim()[1]
            if top.empty:
                ax.text(
                    0.03,
                    0.95,
                    "no channel has a non-zero\nL1-probe weight here",
                    transform=ax.transAxes,
                    va="top",
                    fontsize=8,
                    color="0.3",
                )
            for n, record in enumerate(top.itertuples()):
                mark = "#2ca02c" if record.delta_act > 0 else "#d62728"
                ax.axvline(record.delta_act, color=mark, linewidth=1.2)
                ax.annotate(
                    f"N{record.channel}",
                    (record.delta_act, ymax * (0.92 - 0.09 * n)),
                    color=mark,
                    fontsize=8,
                    ha="left",
                    xytext=(2, 0),
                    textcoords="offset points",
                )
            ax.set_title(f"{model_label(model, families[model])} — {dataset}, layer {peak}")
            ax.set_xlabel("Δact = mean(correct) − mean(incorrect), MLP output")
            ax.set_ylabel("density" if j == 0 else "")
    handles = [
        plt.Line2D([], [], color="#2ca02c", label="top probe channel, Δact > 0 (success)"),
        plt.Line2D([], [], color="#d62728", label="top probe channel, Δact < 0 (failure)"),
    ]
    fig.legend(
        handles=handles, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.02)
    )
    fig.suptitle(
        f"Figure 2b: per-channel activation shift at the peak probe layer (top {top_channels} "
        "L1-probe channels marked)"
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
