# One-pass activation extraction per (model, dataset): samples.parquet + NPY shards + manifest.
from snakemake.logging import logger

from vrp.shards import broken_shards, mark_shard_check

# The NPY shards are not declared outputs (their number depends on the question table), so
# Snakemake cannot see a deleted or truncated one. Each planned extraction's manifest is checked
# here, at start-up, and the extraction rule takes a marker file as input: created old (epoch
# mtime), it is rewritten (new content, new mtime) when the shards are broken, so this run (or `-n`, which lists it) reruns extract_activations, which keeps the intact shards and
# redoes the broken ones, and then what reads them. Only the main process checks (a job
# re-parsing this file on a cluster node leaves the markers alone).
SHARD_CHECK = "results/extract/{model}/{dataset}/shards.check"
for _model in MODELS if workflow.is_main_process else []:
    for _dataset in DATASETS:
        _manifest = f"results/extract/{_model}/{_dataset}/manifest.json"
        _problems = broken_shards(_manifest)
        mark_shard_check(SHARD_CHECK.format(model=_model, dataset=_dataset), _problems)
        if _problems:
            logger.warning(
                f"{_manifest}: broken shards ({'; '.join(_problems[:5])}); rerunning "
                "extract_activations for it (it redoes only the broken shards)"
            )


rule extract_activations:
    input:
        questions="results/data/{dataset}/eval.parquet",
        checkpoint=model_checkpoint,
        shard_check=SHARD_CHECK,
    output:
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
    log:
        "logs/extract/{model}/{dataset}.log",
    benchmark:
        "benchmarks/extract/{model}/{dataset}.tsv"
    # the shards and accuracy.csv before the analyses that read them
    priority: 1
    conda:
        "../envs/vrp.yaml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=model_mem_mb,
        runtime=240,
        gpu=model_gpus,
    params:
        model=model_spec,
        extraction=config["extraction"],
        prefix_sharing=config["runtime"]["prefix_sharing"],
        seed=config["seed"],
    script:
        "../workflow/scripts/extract_activations.py"
