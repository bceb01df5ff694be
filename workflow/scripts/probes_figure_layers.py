"""Figure: held-out probe AUROC against layer per family, with 95% CIs."""

import pandas as pd

from vrp.analysis.figures_probes import probe_layers_figure
from vrp.analysis.plotting import save_figure
from vrp.per_model import read_keyed
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
layers = read_keyed(snakemake.params.labels, snakemake.input.layers, pd.read_csv)
fig = probe_layers_figure(layers, snakemake.params.families)
save_figure(fig, snakemake.output.pdf, snakemake.output.png)
log.info("wrote %s", snakemake.output.pdf)
