"""Figure 2b: density of the per-channel activation shift at the peak layer, top probe channels marked."""

from vrp.analysis.figures_probes import delta_activation_figure
from vrp.analysis.plotting import save_figure
from vrp.io import read_json
from vrp.per_model import read_keyed
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
rankings = read_keyed(snakemake.params.labels, snakemake.input.rankings)
peaks = read_keyed(snakemake.params.labels, snakemake.input.peaks, read_json)
fig = delta_activation_figure(
    rankings, peaks, snakemake.params.families, snakemake.params.top_channels
)
save_figure(fig, snakemake.output.pdf, snakemake.output.png)
log.info("wrote %s", snakemake.output.pdf)
