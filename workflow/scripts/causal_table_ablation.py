"""Table 5 (neuron ablation sweeps) or Table 6 (large-scale ablation at the peak layer)."""

from vrp.analysis.causal_tables import ablation_table, per_model_tables
from vrp.io import write_csv
from vrp.runlog import setup_job_logging

# the columns of the log's overview (all questions)
OVERVIEW = "model layer condition k rank seed n accuracy drop_pp paired_p mcnemar_p right_to_wrong wrong_to_right".split()

log = setup_job_logging(snakemake.log[0])
params = snakemake.params
options = {"n_boot": params.n_boot, "seed": params.seed, "unit": params.interval_unit}
table = per_model_tables(snakemake.input, ablation_table, params.families, **options)
log.info("\n%s", table.loc[table["subset"] == "all", OVERVIEW].to_string())
write_csv(table, snakemake.output[0])
