"""Tables 7 and 8: every reliability readout as AUROC with a 95% CI, per family (long format)."""

import pandas as pd

from vrp.analysis.probes import method_table
from vrp.io import read_json, write_csv
from vrp.per_model import read_keyed
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
scores = read_keyed(snakemake.params.labels, snakemake.input.scores)
peaks = read_keyed(snakemake.params.labels, snakemake.input.peaks, read_json)
consistency = pd.read_csv(
    snakemake.input.consistency,
    keep_default_na=False,
    na_values=[""],
    dtype={"pope_setting": str, "task": str},
)
consistency["pope_setting"] = consistency["pope_setting"].fillna("")
probes = snakemake.params.probes
table = method_table(
    scores,
    peaks,
    consistency,
    methods=snakemake.params.methods,
    subsets=[tuple(s) for s in snakemake.params.subsets],
    n_boot=probes["n_boot"],
    seed=probes["seed"],
    last_k_layers=probes["last_k_layers"],
    unit=snakemake.params.interval_unit,
)
log.info("\n%s", table.to_string())
write_csv(table, snakemake.output[0])
