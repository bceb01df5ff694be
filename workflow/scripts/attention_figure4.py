"""Figure 4: mean visual-token residual update norm per layer, one panel per model."""

import numpy as np
import pandas as pd

from vrp.analysis.dynamics import layer_curves
from vrp.analysis.figures_attention import figure_update_norm
from vrp.analysis.plotting import save_figure
from vrp.runlog import setup_job_logging
from vrp.shards import load_array

log = setup_job_logging(snakemake.log[0])
pooled = {}  # (model, family) -> arrays of its datasets
for (model, family, _), manifest in zip(snakemake.params.labels, snakemake.input.manifests):
    pooled.setdefault((model, family), []).append(
        np.asarray(load_array(manifest, "visual_update_norm"))
    )
curves = pd.concat(
    [
        layer_curves(np.concatenate(parts), name=f"{model} visual_update_norm").assign(
            model=model, family=family
        )
        for (model, family), parts in pooled.items()
    ],
    ignore_index=True,
)
log.info("\n%s", curves.to_string())
save_figure(figure_update_norm(curves), snakemake.output.pdf, snakemake.output.png)
