"""The masking table: paired contrasts (McNemar headline, t-test beside it) per model, dataset and p."""

from vrp.analysis.causal_tables import masking_table, per_model_tables
from vrp.io import write_csv
from vrp.runlog import setup_job_logging

# the columns of the log's overview (all questions; of the random masks, seed 0 only)
OVERVIEW = (
    "model dataset p contrast seed n drop_pp drop_lo drop_hi paired_p mcnemar_p ttest_p".split()
)

log = setup_job_logging(snakemake.log[0])
params = snakemake.params
options = {"n_boot": params.n_boot, "seed": params.seed, "unit": params.interval_unit}
table = per_model_tables(snakemake.input, masking_table, params.families, by=["p"], **options)
log.info("\n%s", table.loc[(table["subset"] == "all") & (table["seed"] <= 0), OVERVIEW].to_string())
write_csv(table, snakemake.output[0])
