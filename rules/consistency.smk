# Self-consistency: ONE sampling job per (model, dataset) stores K_max answers per question; every
# K <= K_max is then a cheap wildcard job (results/selfconsistency/k~{k}.csv) over those samples.


rule consistency_sample:
    input:
        questions="results/data/{dataset}/eval.parquet",
        checkpoint=model_checkpoint,
    output:
        samples="results/consistency/{model}/{dataset}/samples.parquet",
    log:
        "logs/consistency/sample/{model}/{dataset}.log",
    benchmark:
        "benchmarks/consistency/sample/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=model_mem_mb,
        runtime=240,
        gpu=model_gpus,
    params:
        model=model_spec,
        sampling=stage_settings(
            "consistency",
            "k_max",
            "temperature",
            "top_p",
            "top_k",
            "max_new_tokens",
            "batch_size",
            "decode_rows",
            "seed",
        ),
        prefix_sharing=config["runtime"]["prefix_sharing"],
    script:
        "../workflow/scripts/consistency_sample.py"


rule consistency_k:
    input:
        samples=per_model_dataset(
            "results/consistency/{model}/{dataset}/samples.parquet"
        ),
        greedy=per_model_dataset("results/extract/{model}/{dataset}/samples.parquet"),
    output:
        "results/selfconsistency/k~{k}.csv",
    log:
        "logs/consistency/k~{k}.log",
    benchmark:
        "benchmarks/consistency/k~{k}.tsv"
    wildcard_constraints:
        k=r"[1-9][0-9]*",
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_pairs(),
        n_boot=config["consistency"]["n_boot"],
        seed=stage_settings("consistency", "seed")["seed"],
        interval_unit=config["stats"]["interval_unit"],
    script:
        "../workflow/scripts/consistency_k.py"


rule consistency_figure:
    input:
        selfconsistency_tables(),
    output:
        pdf=report(
            "results/figures/fig_sc.pdf",
            caption="../workflow/report/fig_sc.rst",
            category="Reliability readouts",
        ),
        png=report(
            "results/figures/fig_sc.png",
            caption="../workflow/report/fig_sc.rst",
            category="Reliability readouts",
        ),
    log:
        "logs/consistency/fig_sc.log",
    benchmark:
        "benchmarks/consistency/fig_sc.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        families=model_families(),
    script:
        "../workflow/scripts/consistency_figure.py"


TARGETS.extend(
    selfconsistency_tables()
    + ["results/figures/fig_sc.pdf", "results/figures/fig_sc.png"]
)
