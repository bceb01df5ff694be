"""Top-K logit-contribution heads of one (model, dataset): R² of combined-map entropy vs confidence.

Two versions per K: in-sample (heads ranked on every question, as the paper; ``*_in_sample``) and
nested (heads ranked on each training fold, R² of the held-out questions; the headline).
"""

import pandas as pd

from vrp.analysis.attention_tables import (
    fold_head_rankings,
    nested_head_folds,
    nested_top_heads_r2,
    rank_heads,
    read_head_maps,
    top_heads_r2,
)
from vrp.io import write_csv
from vrp.runlog import setup_job_logging
from vrp.shards import load_array

log = setup_job_logging(snakemake.log[0])
params = snakemake.params
samples = pd.read_parquet(snakemake.input.samples)
head_logit = load_array(snakemake.input.manifest, "head_logit")
ranking = rank_heads(head_logit)
k_max = max(params.top_k)
if k_max > len(ranking):
    raise ValueError(
        f"attention.top_k_heads asks for K={k_max}, but {snakemake.wildcards.model} has only "
        f"{len(ranking)} heads (layers x heads); lower K"
    )
top = ranking.iloc[:k_max]
folds = nested_head_folds(samples, params.n_splits, params.seed)
rankings = fold_head_rankings(head_logit, folds, k_max)
# one read of every head any fold (or the whole sample) ranks in its top K_max
needed = list(
    dict.fromkeys(
        [*zip(top["layer"], top["head"])]
        + [h for r in rankings for h in zip(r["layer"], r["head"])]
    )
)
needed = [(int(layer), int(head)) for layer, head in needed]
all_maps = read_head_maps(snakemake.input.manifest, needed)
column = {head: i for i, head in enumerate(needed)}


def maps_of(heads):
    return all_maps[:, [column[(int(layer), int(head))] for layer, head in heads], :]


in_sample = top_heads_r2(
    samples, head_logit, maps_of(list(zip(top["layer"], top["head"]))), ranking, params.top_k
)
nested = nested_top_heads_r2(
    samples,
    head_logit,
    maps_of,
    params.top_k,
    folds,
    rankings,
    n_boot=params.n_boot,
    seed=params.seed,
    unit=params.interval_unit,
)
in_sample = in_sample.rename(columns={"r": "r_in_sample", "r2": "r2_in_sample", "p": "p_in_sample"})
table = in_sample.merge(nested.drop(columns="n"), on="k", validate="one_to_one")
log.info("head ranking (top %d):\n%s\nR² per K:\n%s", k_max, top.to_string(), table.to_string())
write_csv(table, snakemake.output[0])
