"""Table 5 (neuron ablation sweeps) or Table 6 (large-scale ablation at the peak layer)."""

import pandas as pd

from vrp.analysis.causal_tables import ablation_table
from vrp.io import write_csv
from vrp.per_model import prepend_labels
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
baselines = pd.concat([pd.read_parquet(path) for path in snakemake.input.baselines], ignore_index=True)
runs = pd.concat([pd.read_parquet(path) for path in snakemake.input.runs], ignore_index=True)
frames = []
for (model, dataset), baseline in baselines.groupby(["model", "dataset"], sort=True):
    selected = runs[(runs["model"] == model) & (runs["dataset"] == dataset)].drop(columns=["model", "dataset"])
    table = ablation_table(baseline, selected, n_boot=snakemake.params.n_boot, seed=snakemake.params.seed,
                           unit=snakemake.params.interval_unit)
    family = snakemake.params.families[model]
    frames.append(prepend_labels(table, model=model, family=family, dataset=dataset))
table = pd.concat(frames, ignore_index=True)
log.info(
    "\n%s",
    table[table["subset"] == "all"][
        [
            "model",
            "layer",
            "condition",
            "k",
            "rank",
            "seed",
            "n",
            "accuracy",
            "drop_pp",
            "paired_p",
            "mcnemar_p",
            "right_to_wrong",
            "wrong_to_right",
        ]
    ].to_string(),
)
write_csv(table, snakemake.output[0])
