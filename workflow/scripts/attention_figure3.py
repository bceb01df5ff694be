"""Figure 3: ΔH_s (change of attention spatial entropy per layer) against normalised depth, per model."""

import numpy as np
import pandas as pd

from vrp.analysis.dynamics import layer_curves
from vrp.analysis.figures_attention import figure_entropy_dynamics
from vrp.analysis.plotting import save_figure
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
column = "delta_entropy_normalized" if snakemake.params.entropy_normalized else "delta_entropy"
pooled = {}  # (model, family) -> per-layer tables of its datasets
for (model, family, _), path in zip(snakemake.params.labels, snakemake.input):
    pooled.setdefault((model, family), []).append(pd.read_parquet(path))
curves = []
for (model, family), parts in pooled.items():
    # each table is sample-major, layer-minor: one row of the wide array per sample
    wide = np.concatenate(
        [t[column].to_numpy().reshape(-1, int(t["n_layers"].iloc[0])) for t in parts]
    )
    # ΔH_s is undefined into layer 0 (and for a map without attention): counted, then left out
    part = layer_curves(wide, name=f"{model} {column}", allow_nan=True)
    curves.append(
        part[part["layer"] > 0].assign(model=model, family=family)
    )  # no ΔH_s into layer 0
curves = pd.concat(curves, ignore_index=True)
log.info("\n%s", curves.to_string())
save_figure(
    figure_entropy_dynamics(curves, normalized=snakemake.params.entropy_normalized),
    snakemake.output.pdf,
    snakemake.output.png,
)
