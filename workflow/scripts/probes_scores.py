"""Every single-pass reliability readout of one model per question (learned ones out-of-fold)."""

import pandas as pd

from vrp.analysis.probes import ProbeSettings, reliability_scores
from vrp.io import read_json, write_parquet
from vrp.runlog import setup_job_logging
from vrp.shards import load_array, open_array

log = setup_job_logging(snakemake.log[0], threads=1)
settings = ProbeSettings.from_params(snakemake.params.probes)
samples = pd.read_parquet(snakemake.input.samples)
# hidden and mlp_out are read a layer at a time (only the peak and last layers are used)
arrays = {name: open_array(snakemake.input.manifest, name) for name in ("hidden", "mlp_out")}
arrays.update(
    {
        name: load_array(snakemake.input.manifest, name)
        for name in ("image_attention", "lens_margin", "lens_margin_pred")
    }
)
peak = read_json(snakemake.input.peak)["peak_layer"]
attention_stats = pd.read_parquet(
    snakemake.input.attention_stats, columns=["question_id", "hs", "ck"]
)
layer_scores = pd.read_parquet(snakemake.input.layer_scores)
scores = reliability_scores(
    samples, arrays, peak, settings, attention_stats=attention_stats, layer_scores=layer_scores
)
labels = ["question_id", "image_id", "task", "pope_setting", "answer", "fold", "nested_layer"]
log.info(
    "peak layer %d; %d questions; score means by correctness:\n%s",
    peak,
    len(scores),
    scores.drop(columns=labels).groupby("correct").mean().T,
)
write_parquet(scores, snakemake.output.scores)
