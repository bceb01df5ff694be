"""Figure 2a: truth margin ΔM_l against layer per model, correct and incorrect answers apart."""

import numpy as np
import pandas as pd

from vrp.analysis.dynamics import decoder_lens, layer_curves
from vrp.analysis.figures_attention import figure_margin_by_layer
from vrp.analysis.plotting import save_figure
from vrp.runlog import setup_job_logging
from vrp.shards import load_array

log = setup_job_logging(snakemake.log[0])
pooled = {}  # (model, family) -> [(margins, correct)], datasets pooled
for (model, family, _), samples, manifest in zip(
    snakemake.params.labels, snakemake.input.samples, snakemake.input.manifests
):
    correct = pd.read_parquet(samples, columns=["correct"])["correct"].to_numpy(dtype=bool)
    pooled.setdefault((model, family), []).append(
        (decoder_lens(load_array(manifest, "lens_margin")), correct)
    )
curves = []
for (model, family), parts in pooled.items():
    part = layer_curves(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    )
    curves.append(part.assign(model=model, family=family))
curves = pd.concat(curves, ignore_index=True)
log.info("\n%s", curves.to_string())
save_figure(figure_margin_by_layer(curves), snakemake.output.pdf, snakemake.output.png)
