"""Reliability diagram: held-out monitor P(correct) vs output confidence, per (model, dataset)."""

import pandas as pd

from vrp.analysis.figures_monitor import reliability_diagram
from vrp.analysis.plotting import save_figure
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
bins = {
    tuple(label): pd.read_csv(path)
    for label, path in zip(snakemake.params.labels, snakemake.input.bins)
}
fig = reliability_diagram(bins, snakemake.params.families)
save_figure(fig, snakemake.output.pdf, snakemake.output.png)
