"""The L1 neuron probe at every decoder layer of one model: channels ranked by |weight|, with Δact."""

import pandas as pd

from vrp.analysis.probes import neuron_ranking
from vrp.io import write_parquet
from vrp.runlog import setup_job_logging
from vrp.shards import open_array

log = setup_job_logging(snakemake.log[0], threads=1)
params = snakemake.params.probes
samples = pd.read_parquet(snakemake.input.samples)
mlp_out = open_array(snakemake.input.manifest, "mlp_out")
ranking = neuron_ranking(
    mlp_out, samples["correct"].to_numpy(), l1_C=params["l1_C"], seed=params["seed"]
)
used = ranking[ranking["abs_weight"] > 0.01].groupby("layer").size()
log.info(
    "channels with |weight| > 0.01 per layer:\n%s\ntop channels:\n%s",
    used.to_string(),
    ranking[ranking["rank"] < 5].to_string(),
)
write_parquet(ranking, snakemake.output.ranking)
