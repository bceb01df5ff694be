# One-pass activation extraction per (model, dataset): samples.parquet + NPY shards + manifest.


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
        mem_mb=model_mem_mb,
        runtime=240,
        gpu=model_gpus,
    params:
        model=model_spec,
        extraction=config["extraction"],
    script:
        "../workflow/scripts/extract_activations.py"
