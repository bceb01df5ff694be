# One-pass activation extraction per (model, dataset): samples.parquet + NPY shards + manifest.
from snakemake.logging import logger

from vrp.shards import invalidate_if_broken

# The NPY shards are not declared outputs (their number depends on the question table), so a
# deleted or truncated shard is found here, at start-up: its manifest is moved aside, the rule's
# output is then missing, and this run reruns the extraction (which redoes only broken shards).
# Only the main process checks: a job re-parsing this file on a cluster node leaves it alone.
for _model in MODELS if workflow.is_main_process else []:
    for _dataset in DATASETS:
        _manifest = f"results/extract/{_model}/{_dataset}/manifest.json"
        _problems = invalidate_if_broken(_manifest)
        if _problems:
            logger.warning(
                f"{_manifest}: broken shards ({'; '.join(_problems[:5])}); moved it to "
                f"{_manifest}.broken so that extract_activations reruns and repairs them"
            )


rule extract_activations:
    input:
        questions="results/data/{dataset}/eval.parquet",
        checkpoint=model_checkpoint,
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
        mem_mb=16000,
        runtime=240,
        gpu=model_gpus,
    params:
        model=model_spec,
        extraction=config["extraction"],
    script:
        "../workflow/scripts/extract_activations.py"
