# Greedy answers of every model on every dataset, and the accuracy table.


rule score_answers:
    input:
        questions="results/data/{dataset}/eval.parquet",
        checkpoint=model_checkpoint,
    output:
        "results/predictions/{model}/{dataset}.parquet",
    log:
        "logs/predictions/{model}/{dataset}.log",
    benchmark:
        "benchmarks/predictions/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=model_gpus,
    params:
        model=model_spec,
        batch_size=config["runtime"]["batch_size"],
    script:
        "../workflow/scripts/score_answers.py"


rule accuracy_table:
    input:
        expand(
            "results/predictions/{model}/{dataset}.parquet",
            model=MODELS,
            dataset=DATASETS,
        ),
    output:
        report(
            "results/accuracy.csv",
            caption="../workflow/report/accuracy.rst",
            category="Accuracy",
        ),
    log:
        "logs/accuracy.log",
    benchmark:
        "benchmarks/accuracy.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=[[m, d] for m in MODELS for d in DATASETS],
    script:
        "../workflow/scripts/accuracy_table.py"
