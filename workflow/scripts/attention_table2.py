"""Table 2: per model and dataset, peak visual-integration layer, peak margin ΔM and the MLP share."""

import pandas as pd

from vrp.analysis.attention_tables import resolve_layer_span
from vrp.analysis.dynamics import default_answer_layers, dynamics_row
from vrp.io import read_json, write_csv
from vrp.runlog import setup_job_logging
from vrp.shards import load_array

log = setup_job_logging(snakemake.log[0])
rows = []
for (model, family, dataset), manifest_path in zip(
    snakemake.params.labels, snakemake.input.manifests
):
    n_layers = read_json(manifest_path)["num_layers"]
    configured = snakemake.params.answer_layers[model]
    span = (
        default_answer_layers(n_layers)
        if configured is None
        else resolve_layer_span(configured, n_layers, what=f"attention.answer_layers.{model}")
    )
    arrays = {
        name: load_array(manifest_path, name)
        for name in ("lens_margin", "lens_margin_blank", "mlp_logit", "attn_logit")
    }
    rows.append(
        {"model": model, "family": family, "dataset": dataset, **dynamics_row(arrays, span)}
    )
table = pd.DataFrame(rows)
log.info("\n%s", table.to_string())
write_csv(table, snakemake.output[0])
