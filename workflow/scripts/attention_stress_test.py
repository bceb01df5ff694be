"""Supervised stress test of one (model, dataset): ensemble on the 11 attention features, grouped CV."""

import pandas as pd

from vrp.analysis.attention_tables import stress_test
from vrp.io import write_json
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
stats = pd.read_parquet(snakemake.input[0])
result = stress_test(
    stats,
    n_splits=snakemake.params.n_splits,
    seed=snakemake.params.seed,
    n_boot=snakemake.params.n_boot,
    unit=snakemake.params.interval_unit,
)
log.info("stress test: %s", result)
write_json(result, snakemake.output[0])
