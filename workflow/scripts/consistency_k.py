"""Self-consistency at one K for every model and dataset, from the first K stored samples."""

import pandas as pd

from vrp.analysis.consistency import consistency_scores, consistency_summary
from vrp.io import write_csv
from vrp.per_model import prepend_labels
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
k = int(snakemake.wildcards.k)
frames = []
for (model, dataset), sampled, greedy in zip(
    snakemake.params.labels, snakemake.input.samples, snakemake.input.greedy
):
    scores = consistency_scores(pd.read_parquet(sampled), pd.read_parquet(greedy), k)
    summary = consistency_summary(
        scores,
        k,
        n_boot=snakemake.params.n_boot,
        seed=snakemake.params.seed,
        unit=snakemake.params.interval_unit,
    )
    frames.append(prepend_labels(summary, model=model, dataset=dataset))
table = pd.concat(frames, ignore_index=True)
log.info("\n%s", table.to_string())
write_csv(table, snakemake.output[0])
