"""Table 1: per model and dataset, accuracy, top-K heads R² and the supervised stress test."""

import pandas as pd

from vrp.analysis.attention_tables import table1
from vrp.io import read_json, write_csv
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
parts = []
for (model, family, dataset), samples, heads, stress in zip(
    snakemake.params.labels,
    snakemake.input.samples,
    snakemake.input.top_heads,
    snakemake.input.stress,
):
    parts.append(
        {
            "model": model,
            "family": family,
            "dataset": dataset,
            "samples": pd.read_parquet(samples),
            "top_heads": pd.read_csv(heads),
            "stress": read_json(stress),
        }
    )
table = table1(parts)
log.info("\n%s", table.to_string())
write_csv(table, snakemake.output[0])
