"""Export the reliability monitor of one (model, dataset): probe, calibration, card."""

import pandas as pd

from vrp.analysis.probes import ProbeSettings
from vrp.io import read_json
from vrp.models import load_model_from_spec
from vrp.monitor import MonitorSettings, build_monitor, config_hash, write_bundle
from vrp.runlog import setup_job_logging
from vrp.shards import load_array

log = setup_job_logging(snakemake.log[0], threads=snakemake.threads)
probe_settings = ProbeSettings.from_params(snakemake.params.probes)
settings = MonitorSettings.from_params(snakemake.params.monitor)
manifest = read_json(snakemake.input.manifest)
samples = pd.read_parquet(snakemake.input.samples)
images = pd.read_parquet(snakemake.input.questions, columns=["question_id", "question", "image"])
samples = samples.merge(images, on="question_id", how="left", validate="one_to_one")
layer = read_json(snakemake.input.peak)["peak_layer"]
adapter = load_model_from_spec(snakemake.params.model)
provenance = {
    "dataset": {
        "name": snakemake.wildcards.dataset,
        "config": snakemake.params.dataset,
        "config_hash": config_hash(snakemake.params.dataset),
    },
    "config_hash": config_hash(snakemake.params.hashed),
    "model_name": snakemake.wildcards.model,
}
card, probe, calibrator, oof = build_monitor(
    samples,
    load_array(snakemake.input.manifest, "hidden"),
    manifest,
    layer,
    adapter,
    snakemake.params.model,
    probe_settings,
    settings,
    provenance,
)
log.info(
    "layer %d, %s calibration; held-out: %s; export check: %s",
    layer,
    settings.calibration,
    card["held_out"]["metrics"],
    card["export_check"],
)
write_bundle(snakemake.output.bundle, card, probe, calibrator, oof)
