# One-pass activation extraction per (model, dataset): samples.parquet + NPY shards + manifest.
from snakemake.logging import logger

from vrp.shards import broken_shards

# The NPY shards are not declared outputs (their number depends on the question table), so
# Snakemake cannot see a deleted or truncated one. Each planned extraction's manifest is checked
# here, at start-up: a broken one is added to the run's forced targets (as `-R <manifest>` would),
# so this run (or `-n`, which then lists it) reruns extract_activations, which keeps the intact
# shards and redoes the broken ones, and reruns what reads them. Only the main process checks:
# a job re-parsing this file on a cluster node leaves it alone.
_broken_manifests = set()
for _model in MODELS if workflow.is_main_process else []:
    for _dataset in DATASETS:
        _manifest = f"results/extract/{_model}/{_dataset}/manifest.json"
        _problems = broken_shards(_manifest)
        if _problems:
            _broken_manifests.add(_manifest)
            logger.warning(
                f"{_manifest}: broken shards ({'; '.join(_problems[:5])}); rerunning "
                "extract_activations for it (it redoes only the broken shards)"
            )
if _broken_manifests:
    workflow.dag_settings.forcerun = (
        frozenset(workflow.dag_settings.forcerun) | _broken_manifests
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
