"""Ablation sweep points of one model on one dataset: MLP output channels of one layer zeroed (or
mean-replaced), re-scored. One plan per output file (params.plans, in output order); the model and
the questions are loaded once for all of them, and all plans' conditions are scored in one sweep
(the last layer's share one unablated pass per batch: vrp.interventions.ablation.LastLayerReplay)."""

import pandas as pd

from vrp.interventions.ablation import build_conditions, run_ablation_plans
from vrp.interventions.masking import load_causal_inputs
from vrp.io import read_json, write_parquet
from vrp.models import load_model_from_spec
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0], threads=snakemake.threads)
settings, plans = snakemake.params.causal, snakemake.params.plans
if len(plans) != len(snakemake.output):
    raise ValueError(
        f"{len(plans)} ablation plan(s) for {len(snakemake.output)} output file(s); the rule's "
        "params.plans must hold one plan per output, in output order"
    )
questions, samples, manifest = load_causal_inputs(snakemake.input, settings["max_images"])


def plan_layer(plan):
    layer = plan["layer"]
    if layer == "peak":
        layer = int(read_json(snakemake.input.peak)["peak_layer"])
    if not 0 <= layer < manifest["num_layers"]:
        raise ValueError(
            f"ablation layer {layer} does not exist: {snakemake.wildcards.model} has "
            f"{manifest['num_layers']} decoder layers"
        )
    return layer


layers = [plan_layer(plan) for plan in plans]  # every layer checked before the model loads
ranking = pd.read_parquet(snakemake.input.ranking) if "ranking" in snakemake.input.keys() else None
adapter = load_model_from_spec(snakemake.params.model)
plan_conditions = [
    build_conditions(plan, layer, ranking, adapter.hidden_size, global_seed=snakemake.params.seed)
    for plan, layer in zip(plans, layers)
]
for path, layer, conditions in zip(snakemake.output, layers, plan_conditions):
    log.info(
        "%s: layer %d, %d question(s); conditions:\n%s",
        path,
        layer,
        len(questions),
        "\n".join(
            f"  {c.condition} seed={c.seed} channels={c.labels(adapter.hidden_size)['channels']}"
            for c in conditions
        ),
    )
frames = run_ablation_plans(
    adapter,
    questions,
    manifest["candidates"],
    plan_conditions,
    mode=snakemake.params.mode,
    batch_size=settings["batch_size"],
    share_prefix=snakemake.params.prefix_sharing,
    replay_last_layer=snakemake.params.replay_last_layer,
    progress=True,
)
for path, runs in zip(snakemake.output, frames):
    log.info(
        "%s: accuracy per condition\n%s",
        path,
        runs.groupby(["condition", "seed"])["correct"].mean().to_string(),
    )
    write_parquet(
        runs.assign(model=snakemake.wildcards.model, dataset=snakemake.wildcards.dataset), path
    )
