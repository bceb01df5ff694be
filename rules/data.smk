# Question tables: the offline synthetic benchmark (demo) and POPE / COCO-derived sets (paper).


rule make_synthetic_benchmark:
    output:
        train="results/data/{dataset}/train.parquet",
        eval="results/data/{dataset}/eval.parquet",
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/data/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("synthetic")),
    conda:
        "../envs/vrp.yaml"
    params:
        synthetic=dataset_section("synthetic"),
        seed=config["seed"],
    script:
        "../workflow/scripts/make_synthetic_benchmark.py"


rule fetch_pope:
    output:
        eval="results/data/{dataset}/eval.parquet",
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/data/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("pope")),
    conda:
        "../envs/vrp.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        pope=dataset_section("pope"),
    script:
        "../workflow/scripts/fetch_pope.py"


rule build_coco_tasks:
    output:
        eval="results/data/{dataset}/eval.parquet",
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/data/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("coco_tasks")),
    conda:
        "../envs/vrp.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        coco=dataset_section("coco"),
        seed=config["seed"],
    script:
        "../workflow/scripts/build_coco_tasks.py"
