"""Per-layer reliability probes of one model on one dataset: layers.csv, peak.json and the per-layer
out-of-fold logistic scores (layer_scores.parquet, the input of the nested layer choice)."""

import pandas as pd

from vrp.analysis.probes import ProbeSettings, layer_probes, peak_summary
from vrp.io import write_csv, write_json, write_parquet
from vrp.runlog import setup_job_logging
from vrp.shards import open_array

log = setup_job_logging(snakemake.log[0], threads=1)
settings = ProbeSettings.from_params(
    {**snakemake.params.probes, "interval_unit": snakemake.params.interval_unit}
)
samples = pd.read_parquet(snakemake.input.samples)
hidden = open_array(snakemake.input.manifest, "hidden")  # read a layer at a time
mlp_out = open_array(snakemake.input.manifest, "mlp_out")
log.info(
    "%d questions, %d images; hidden %s; %s",
    len(samples),
    samples["image_id"].nunique(),
    hidden.shape,
    settings,
)
layers, layer_scores = layer_probes(
    hidden,
    mlp_out,
    samples["correct"].to_numpy(),
    samples["image_id"].to_numpy(),
    settings,
    n_jobs=snakemake.threads,
    keep_scores=True,
)
peak = peak_summary(layers, probe="logistic")
log.info("\n%s\npeak: %s", layers.to_string(), peak)
write_csv(layers, snakemake.output.layers)
write_json(peak, snakemake.output.peak)
write_parquet(layer_scores, snakemake.output.layer_scores)
