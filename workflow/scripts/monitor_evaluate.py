"""Calibration and shift of one monitor: trained on one domain, scored on others."""

import pandas as pd

from vrp.analysis.probes import ProbeSettings
from vrp.io import read_json, write_csv
from vrp.monitor import (
    CARD_FILE,
    OOF_FILE,
    MonitorSettings,
    metrics_with_ci,
    reliability_bins,
    shift_evaluation,
)
from vrp.runlog import setup_job_logging
from vrp.shards import load_array

log = setup_job_logging(snakemake.log[0], threads=1)
probe_settings = ProbeSettings.from_params(snakemake.params.probes)
settings = MonitorSettings.from_params(snakemake.params.monitor)
card = read_json(f"{snakemake.input.bundle}/{CARD_FILE}")
oof = pd.read_parquet(f"{snakemake.input.bundle}/{OOF_FILE}")
samples = pd.read_parquet(snakemake.input.samples)
if not (samples["question_id"].to_numpy() == oof["question_id"].to_numpy()).all():
    raise ValueError(
        f"{snakemake.input.bundle} was exported from other questions than "
        f"{snakemake.input.samples}; "
        "rebuild the monitor"
    )
hidden = load_array(snakemake.input.manifest, "hidden")
layer = card["layer"]

pooled = metrics_with_ci(
    oof["correct"].to_numpy(),
    {"monitor": oof["p_correct_oof"].to_numpy(), "confidence": oof["confidence"].to_numpy()},
    oof["image_id"].to_numpy(),
    settings.n_bins,
    settings.coverages,
    settings.n_boot,
    settings.seed,
    unit=snakemake.params.interval_unit,
)
pooled = pd.DataFrame(pooled).assign(
    axis="all", source="all", target="all", kind="in_distribution", note=""
)
shift = shift_evaluation(
    hidden[:, layer + 1, :],
    samples,
    probe_settings,
    settings.calibration,
    settings.n_bins,
    settings.coverages,
    settings.n_boot,
    settings.seed,
    unit=snakemake.params.interval_unit,
)
table = pd.concat([pooled, shift], ignore_index=True)
table.insert(0, "layer", layer)
log.info("\n%s", table.to_string())
write_csv(table, snakemake.output.evaluation)

bins = pd.concat(
    [
        reliability_bins(oof["correct"], oof[column], settings.n_bins).assign(method=method)
        for method, column in (("monitor", "p_correct_oof"), ("confidence", "confidence"))
    ],
    ignore_index=True,
)
write_csv(bins, snakemake.output.bins)
