"""One masking sweep point: HIGH / LOW / seeded RANDOM patch masks at share p, re-scored."""

from vrp.interventions.masking import load_causal_inputs, run_masking
from vrp.io import write_parquet
from vrp.models import load_model_from_spec
from vrp.runlog import setup_job_logging
from vrp.shards import load_array

log = setup_job_logging(snakemake.log[0], threads=snakemake.threads)
settings, masking = snakemake.params.causal, snakemake.params.masking
p = float(snakemake.wildcards.p)
questions, samples, manifest = load_causal_inputs(snakemake.input, settings["max_images"])
adapter = load_model_from_spec(snakemake.params.model)
grids = list(
    zip(
        samples["grid_rows"].to_numpy()[questions["row"]],
        samples["grid_cols"].to_numpy()[questions["row"]],
    )
)
runs = run_masking(
    adapter,
    questions,
    manifest["candidates"],
    load_array(snakemake.input.manifest, "image_attention"),
    grids,
    p,
    rank_layer=masking["rank_layer"],
    random_seeds=masking["random_seeds"],
    global_seed=snakemake.params.seed,
    random_unit=masking["random_unit"],
    fill=tuple(masking["fill"]),
    batch_size=settings["batch_size"],
    share_prefix=snakemake.params.prefix_sharing,
)
log.info(
    "p=%g: accuracy per condition\n%s",
    p,
    runs.groupby(["condition", "seed"])["correct"].mean().to_string(),
)
write_parquet(
    runs.assign(model=snakemake.wildcards.model, dataset=snakemake.wildcards.dataset),
    snakemake.output[0],
)
