"""Figure: self-consistency AUROC and R_pb against K per family."""

import pandas as pd

from vrp.analysis.figures_probes import consistency_curve_figure
from vrp.analysis.plotting import save_figure
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
summary = pd.concat(
    [
        pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"pope_setting": str})
        for path in snakemake.input
    ],
    ignore_index=True,
)
summary["pope_setting"] = summary["pope_setting"].fillna("")
fig = consistency_curve_figure(summary, snakemake.params.families)
save_figure(fig, snakemake.output.pdf, snakemake.output.png)
log.info("wrote %s", snakemake.output.pdf)
