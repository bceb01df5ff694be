"""Per-sample attention statistics of one (model, dataset): H_s, C_k, the 11 features, the maps."""

import pandas as pd

from vrp.analysis.attention_tables import attention_statistics, resolve_layer_span
from vrp.io import read_json, write_npy, write_parquet
from vrp.runlog import setup_job_logging
from vrp.shards import open_array

log = setup_job_logging(snakemake.log[0])
params = snakemake.params
samples = pd.read_parquet(snakemake.input.samples)
manifest = read_json(snakemake.input.manifest)
span = resolve_layer_span(
    params.layer_range,
    manifest["num_layers"],
    what=f"attention.layer_range.{snakemake.wildcards.model}",
)
table, maps = attention_statistics(
    samples,
    open_array(snakemake.input.manifest, "image_attention"),  # only the span's layers are read
    span,
    ck_method=params.ck_method,
    ck_components=params.ck_components,
    ck_dbscan=params.ck_dbscan,
    entropy_normalized=params.entropy_normalized,
)
log.info(
    "layers %d-%d of %d; %d samples; mean H_s %.4f; C_k counts %s",
    span[0],
    span[1],
    manifest["num_layers"],
    len(table),
    table["hs"].mean(),
    table["ck"].value_counts().sort_index().to_dict(),
)
write_parquet(table, snakemake.output.stats)
write_npy(maps, snakemake.output.maps)
