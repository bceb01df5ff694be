"""H_s of every decoder layer's attention map, per sample, for one (model, dataset) (Figure 3)."""

import pandas as pd

from vrp.analysis.attention_tables import layer_entropy_table
from vrp.io import write_parquet
from vrp.runlog import setup_job_logging
from vrp.shards import load_array

log = setup_job_logging(snakemake.log[0])
samples = pd.read_parquet(snakemake.input.samples)
table = layer_entropy_table(samples, load_array(snakemake.input.manifest, "image_attention"))
log.info("mean H_s per layer:\n%s", table.groupby("layer")["entropy"].mean().to_string())
write_parquet(table, snakemake.output[0])
