"""Table 3: held-out probe AUROC per family and task, beside output-confidence AUROC."""

import pandas as pd

from vrp.analysis.probes import table3
from vrp.io import read_json, write_csv
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
keys = [tuple(label) for label in snakemake.params.labels]
scores = {key: pd.read_parquet(path) for key, path in zip(keys, snakemake.input.scores)}
peaks = {key: read_json(path) for key, path in zip(keys, snakemake.input.peaks)}
table = table3(
    scores,
    peaks,
    n_boot=snakemake.params.probes["n_boot"],
    seed=snakemake.params.probes["seed"],
    unit=snakemake.params.interval_unit,
)
log.info("\n%s", table.to_string())
write_csv(table, snakemake.output[0])
