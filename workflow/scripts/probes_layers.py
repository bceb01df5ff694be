"""Per-layer reliability probes of one model on one dataset: layers.csv and peak.json."""

import pandas as pd

from vrp.analysis.probes import ProbeSettings, layer_probes, peak_summary
from vrp.io import write_csv, write_json
from vrp.runlog import setup_job_logging
from vrp.shards import open_array

log = setup_job_logging(snakemake.log[0], threads=1)
settings = ProbeSettings.from_params(snakemake.params.probes)
samples = pd.read_parquet(snakemake.input.samples)
hidden = open_array(snakemake.input.manifest, "hidden")  # read a layer at a time
mlp_out = open_array(snakemake.input.manifest, "mlp_out")
log.info("%d questions, %d images; hidden %s; %s", len(samples), samples["image_id"].nunique(), hidden.shape, settings)
layers = layer_probes(hidden, mlp_out, samples["correct"].to_numpy(), samples["image_id"].to_numpy(), settings,
                      n_jobs=snakemake.threads)
peak = peak_summary(layers, probe="logistic")
log.info("\n%s\npeak: %s", layers.to_string(), peak)
write_csv(layers, snakemake.output.layers)
write_json(peak, snakemake.output.peak)
