"""Collect every model's predictions into results/accuracy.csv."""

from vrp.io import write_csv
from vrp.metrics import accuracy_table
from vrp.per_model import read_labelled
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
samples = read_labelled(snakemake.params.labels, snakemake.input, names=("model", "dataset"))
table = accuracy_table(samples)
log.info("\n%s", table.to_string())
write_csv(table, snakemake.output[0])
