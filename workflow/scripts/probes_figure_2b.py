"""Figure 2b: density of the per-channel activation shift at the peak layer, top probe channels marked."""

import pandas as pd

from vrp.analysis.figures_probes import delta_activation_figure
from vrp.analysis.plotting import save_figure
from vrp.io import read_json
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
keys = [tuple(label) for label in snakemake.params.labels]
rankings = {key: pd.read_parquet(path) for key, path in zip(keys, snakemake.input.rankings)}
peaks = {key: read_json(path) for key, path in zip(keys, snakemake.input.peaks)}
fig = delta_activation_figure(rankings, peaks, snakemake.params.families, snakemake.params.top_channels)
save_figure(fig, snakemake.output.pdf, snakemake.output.png)
log.info("wrote %s", snakemake.output.pdf)
