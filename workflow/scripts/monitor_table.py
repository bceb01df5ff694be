"""The monitor tables: calibration and shift (AUROC, ECE, Brier, AUPRC) and selective accuracy."""

import pandas as pd

from vrp.io import write_csv
from vrp.monitor import metric_names
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
frames = []
for (model, dataset), path in zip(snakemake.params.labels, snakemake.input.evaluations):
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    frame.insert(0, "dataset", dataset)
    frame.insert(0, "model", model)
    frames.append(frame)
table = pd.concat(frames, ignore_index=True)
keys = [
    "model",
    "dataset",
    "layer",
    "kind",
    "axis",
    "source",
    "target",
    "method",
    "n",
    "n_pos",
    "n_images",
]
coverages = snakemake.params.coverages
calibration_metrics = [m for m in metric_names(coverages) if not m.startswith("acc_at_")]
selective_metrics = ["accuracy"] + [m for m in metric_names(coverages) if m.startswith("acc_at_")]
table["accuracy"] = table["n_pos"] / table["n"]


def columns(metrics):
    return [c for m in metrics for c in (m, f"{m}_lo", f"{m}_hi") if c in table]


write_csv(table[keys + columns(calibration_metrics) + ["note"]], snakemake.output.calibration)
write_csv(table[keys + columns(selective_metrics) + ["note"]], snakemake.output.selective)
log.info("%d rows", len(table))
