"""Which decoder layers this model's ablation sweeps use (the paper's LLaVA layers scaled to its depth)."""

from vrp.interventions.conditions import layer_plan
from vrp.io import read_json, write_json
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
settings = snakemake.params.ablation
manifest = read_json(snakemake.input.manifest)
plan = layer_plan(
    manifest["num_layers"], settings["layers"], settings["layers_depth"], settings["k_sweep_layer"]
)
log.info("%s", plan)
write_json(plan, snakemake.output[0])
