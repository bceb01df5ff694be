"""The masking figure: accuracy drop against the masked share p, per family and condition."""

import pandas as pd

from vrp.analysis.figures_causal import masking_figure
from vrp.analysis.plotting import save_figure
from vrp.runlog import setup_job_logging

setup_job_logging(snakemake.log[0])
fig = masking_figure(pd.read_csv(snakemake.input[0], keep_default_na=False, na_values=[""]))
save_figure(fig, snakemake.output.pdf, snakemake.output.png)
