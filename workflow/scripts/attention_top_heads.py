"""Top-K logit-contribution heads of one (model, dataset): R² of combined-map entropy vs confidence."""

import pandas as pd

from vrp.analysis.attention_tables import rank_heads, read_head_maps, top_heads_r2
from vrp.io import write_csv
from vrp.runlog import setup_job_logging
from vrp.shards import load_array

log = setup_job_logging(snakemake.log[0])
samples = pd.read_parquet(snakemake.input.samples)
head_logit = load_array(snakemake.input.manifest, "head_logit")
ranking = rank_heads(head_logit)
k_max = max(snakemake.params.top_k)
if k_max > len(ranking):
    raise ValueError(f"attention.top_k_heads asks for K={k_max}, but {snakemake.wildcards.model} has only "
                     f"{len(ranking)} heads (layers x heads); lower K")
top = ranking.iloc[:k_max]
head_maps = read_head_maps(snakemake.input.manifest, list(zip(top["layer"], top["head"])))
table = top_heads_r2(samples, head_logit, head_maps, ranking, snakemake.params.top_k)
log.info("head ranking (top %d):\n%s\nR² per K:\n%s", k_max, top.to_string(), table.to_string())
write_csv(table, snakemake.output[0])
