"""Collect every model's predictions into results/accuracy.csv."""

import pandas as pd

from vrp.io import write_csv
from vrp.metrics import accuracy_table
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
frames = []
for path, (model, dataset) in zip(snakemake.input, snakemake.params.labels):
    frames.append(pd.read_parquet(path).assign(model=model, dataset=dataset))
table = accuracy_table(pd.concat(frames, ignore_index=True))
log.info("\n%s", table.to_string())
write_csv(table, snakemake.output[0])
