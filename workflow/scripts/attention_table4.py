"""Table 4: R_pb of C_k and H_s with correctness, per model and pooled (within-model and stacked),
image-clustered and Fisher-z CIs."""

from vrp.analysis.attention_tables import correlation_table
from vrp.io import write_csv
from vrp.per_model import read_labelled
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
params = snakemake.params
stats = read_labelled(params.labels, snakemake.input.stats, names=("model", "family", "dataset"))
if params.ck_method == "components":
    c = params.ck_components
    ck_label = (
        f"connected components - 1 (top {c['mass']:g} of mass; {c['connectivity']}-connectivity)"
    )
else:
    c = params.ck_dbscan
    ck_label = f"DBSCAN clusters (patches >= q{c['quantile']:g}; eps {c['eps']:g}; min_samples {c['min_samples']})"
hs_label = "spatial entropy / log S" if params.entropy_normalized else "spatial entropy (nats)"
table = correlation_table(
    stats,
    n_boot=params.n_boot,
    seed=params.seed,
    ck_label=ck_label,
    hs_label=hs_label,
    unit=params.interval_unit,
)
log.info("\n%s", table.to_string())
write_csv(table, snakemake.output[0])
