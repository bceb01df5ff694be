# Question tables: the offline synthetic benchmark (demo) and POPE / COCO-derived sets (paper).


rule data_synthetic:
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
        "../workflow/scripts/data_synthetic.py"


rule data_pope:
    output:
        eval="results/data/{dataset}/eval.parquet",
        manifest="results/data/{dataset}/manifest.json",
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
        # the revision is the lock file's commit (rules/common.smk: pope_section)
        pope=pope_section,
        dataset=lambda wildcards: wildcards.dataset,
    script:
        "../workflow/scripts/data_pope.py"


rule data_coco_val2014:
    # COCO publishes no checksums: the first complete download records size and sha256 in the
    # lock file (config lock_file), later ones are verified against it. Resumable (.part files).
    output:
        annotations=COCO_FETCHED["annotations"],
        images=directory(COCO_FETCHED["image_dir"]),
        manifest="resources/coco/manifest.json",
    log:
        "logs/data/fetch_coco_val2014.log",
    benchmark:
        "benchmarks/data/fetch_coco_val2014.tsv"
    conda:
        "../envs/vrp.yaml"
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        lock_file=config["lock_file"],
        datasets=coco_fetch_datasets(),
    script:
        "../workflow/scripts/data_coco_val2014.py"


rule data_coco_tasks:
    input:
        unpack(coco_inputs),
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
        "../workflow/scripts/data_coco_tasks.py"
