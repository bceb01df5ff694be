# The accuracy table, read from the extraction's greedy answers (no extra forward pass).


rule evaluate_accuracy:
    input:
        expand(
            "results/extract/{model}/{dataset}/samples.parquet",
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
    priority: 1
    conda:
        "../envs/vrp.yaml"
    params:
        labels=[[m, d] for m in MODELS for d in DATASETS],
    script:
        "../workflow/scripts/evaluate_accuracy.py"
