"""Table 3: held-out probe AUROC per family and task, beside output-confidence AUROC."""

from vrp.analysis.probes import table3
from vrp.io import read_json, write_csv
from vrp.per_model import read_keyed
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
scores = read_keyed(snakemake.params.labels, snakemake.input.scores)
peaks = read_keyed(snakemake.params.labels, snakemake.input.peaks, read_json)
table = table3(
    scores,
    peaks,
    n_boot=snakemake.params.probes["n_boot"],
    seed=snakemake.params.probes["seed"],
    unit=snakemake.params.interval_unit,
)
log.info("\n%s", table.to_string())
write_csv(table, snakemake.output[0])
