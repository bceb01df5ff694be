# Question tables: the offline synthetic benchmark (demo) and POPE / COCO-derived sets (paper).


rule make_synthetic_benchmark:
    output:
        train="results/data/{dataset}/train.parquet",
        eval="results/data/{dataset}/eval.parquet",
    params:
        synthetic=dataset_section("synthetic"),
        seed=config["seed"],
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("synthetic")),
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/data/{dataset}.tsv"
    script:
        "../workflow/scripts/make_synthetic_benchmark.py"


rule fetch_pope:
    output:
        eval="results/data/{dataset}/eval.parquet",
    params:
        pope=dataset_section("pope"),
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("pope")),
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/data/{dataset}.tsv"
    resources:
        mem_mb=8000,
        runtime=60,
    script:
        "../workflow/scripts/fetch_pope.py"


rule build_coco_tasks:
    output:
        eval="results/data/{dataset}/eval.parquet",
    params:
        coco=dataset_section("coco"),
        seed=config["seed"],
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("coco_tasks")),
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/data/{dataset}.tsv"
    resources:
        mem_mb=8000,
        runtime=60,
    script:
        "../workflow/scripts/build_coco_tasks.py"
