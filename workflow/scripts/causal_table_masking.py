"""The masking table: paired contrasts (McNemar headline, t-test beside it) per model, dataset and p."""

import pandas as pd

from vrp.analysis.causal_tables import masking_table
from vrp.io import write_csv
from vrp.per_model import prepend_labels
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
baselines = pd.concat([pd.read_parquet(path) for path in snakemake.input.baselines], ignore_index=True)
runs = pd.concat([pd.read_parquet(path) for path in snakemake.input.runs], ignore_index=True)
frames = []
for (model, dataset, _p), group in runs.groupby(["model", "dataset", "p"], sort=True):
    baseline = baselines[(baselines["model"] == model) & (baselines["dataset"] == dataset)]
    table = masking_table(baseline, group, n_boot=snakemake.params.n_boot, seed=snakemake.params.seed,
                          unit=snakemake.params.interval_unit)
    family = snakemake.params.families[model]
    frames.append(prepend_labels(table, model=model, family=family, dataset=dataset))
table = pd.concat(frames, ignore_index=True)
log.info(
    "\n%s",
    table[(table["subset"] == "all") & (table["seed"] <= 0)][
        [
            "model",
            "dataset",
            "p",
            "contrast",
            "seed",
            "n",
            "drop_pp",
            "drop_lo",
            "drop_hi",
            "paired_p",
            "mcnemar_p",
            "ttest_p",
        ]
    ].to_string(),
)
write_csv(table, snakemake.output[0])
