"""Figure: held-out probe AUROC against layer per family, with 95% CIs."""

import pandas as pd

from vrp.analysis.figures_probes import probe_layers_figure
from vrp.analysis.plotting import save_figure
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
keys = [tuple(label) for label in snakemake.params.labels]
layers = {key: pd.read_csv(path) for key, path in zip(keys, snakemake.input.layers)}
fig = probe_layers_figure(layers, snakemake.params.families)
save_figure(fig, snakemake.output.pdf, snakemake.output.png)
log.info("wrote %s", snakemake.output.pdf)
