# Causal sweeps (paper §3.11-3.13): attention-guided patch masking, neuron ablation, the masking
# table and Tables 5 and 6. Every sweep point (a masking share p, an ablated k, a single neuron, a
# channel fraction) is its own file. A masking share and a top-k point are each their own job, so
# a cluster runs them in parallel and a new value runs only the new jobs; the single neurons of a
# layer (ranks 1..max k) and the peak-layer fractions are one job each, because a job's fixed cost
# (imports, model and question loading: ~5 CPU s on the demo) is larger than one such point. A new
# rank or fraction reruns that one job. Layers of the ablation sweeps depend on each model's depth,
# which the checkpoint causal_ablation_layers reads from the extraction manifest.


rule causal_baseline:
    input:
        questions="results/data/{dataset}/eval.parquet",
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
        checkpoint=model_checkpoint,
    output:
        "results/causal/baseline/{model}/{dataset}.parquet",
    log:
        "logs/causal/baseline/{model}/{dataset}.log",
    benchmark:
        "benchmarks/causal/baseline/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=model_mem_mb,
        runtime=60,
        gpu=model_gpus,
    params:
        model=model_spec,
        causal=config["causal"],
        prefix_sharing=config["runtime"]["prefix_sharing"],
    script:
        "../workflow/scripts/causal_baseline.py"


rule causal_masking:
    input:
        questions="results/data/{dataset}/eval.parquet",
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
        checkpoint=model_checkpoint,
    output:
        "results/masking/p~{p}/{model}/{dataset}.parquet",
    log:
        "logs/causal/masking/p~{p}/{model}/{dataset}.log",
    benchmark:
        "benchmarks/causal/masking/p~{p}/{model}/{dataset}.tsv"
    wildcard_constraints:
        p=sweep_alternatives(config["masking"]["p_values"]),
    conda:
        "../envs/vrp.yaml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=model_mem_mb,
        runtime=120,
        gpu=model_gpus,
    params:
        model=model_spec,
        causal=config["causal"],
        masking=causal_settings(
            "masking", "rank_layer", "random_seeds", "random_unit", "fill"
        ),
        seed=config["seed"],
        prefix_sharing=config["runtime"]["prefix_sharing"],
    script:
        "../workflow/scripts/causal_masking.py"


rule causal_table_masking:
    input:
        baselines=expand(
            "results/causal/baseline/{model}/{dataset}.parquet",
            model=MODELS,
            dataset=DATASETS,
        ),
        runs=expand(
            "results/masking/p~{p}/{model}/{dataset}.parquet",
            p=[sweep_value(p) for p in config["masking"]["p_values"]],
            model=MODELS,
            dataset=DATASETS,
        ),
    output:
        report(
            "results/table_masking.csv",
            caption="../workflow/report/table_masking.rst",
            category="Causal interventions",
        ),
    log:
        "logs/causal/table_masking.log",
    benchmark:
        "benchmarks/causal/table_masking.tsv"
    localrule: True
    conda:
        "../envs/vrp.yaml"
    params:
        families=model_families(),
        n_boot=config["masking"]["n_boot"],
        seed=config["seed"],
        interval_unit=config["stats"]["interval_unit"],
    script:
        "../workflow/scripts/causal_table_masking.py"


rule causal_figure_masking:
    input:
        "results/table_masking.csv",
    output:
        pdf=report(
            "results/figures/fig_masking.pdf",
            caption="../workflow/report/fig_masking.rst",
            category="Causal interventions",
        ),
        png=report(
            "results/figures/fig_masking.png",
            caption="../workflow/report/fig_masking.rst",
            category="Causal interventions",
        ),
    log:
        "logs/causal/fig_masking.log",
    benchmark:
        "benchmarks/causal/fig_masking.tsv"
    localrule: True
    conda:
        "../envs/vrp.yaml"
    script:
        "../workflow/scripts/causal_figure_masking.py"


checkpoint causal_ablation_layers:
    input:
        manifest="results/extract/{model}/{dataset}/manifest.json",
    output:
        "results/causal/layers/{model}/{dataset}.json",
    log:
        "logs/causal/layers/{model}/{dataset}.log",
    localrule: True
    conda:
        "../envs/vrp.yaml"
    params:
        ablation=causal_settings("ablation", "layers", "layers_depth", "k_sweep_layer"),
    script:
        "../workflow/scripts/causal_ablation_layers.py"


rule causal_ablation_top_k:
    input:
        questions="results/data/{dataset}/eval.parquet",
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
        ranking="results/probes/{model}/{dataset}/neuron_ranking.parquet",
        checkpoint=model_checkpoint,
    output:
        "results/ablation/layer~{layer}/k~{k}/{model}/{dataset}.parquet",
    log:
        "logs/causal/ablation/layer~{layer}/k~{k}/{model}/{dataset}.log",
    benchmark:
        "benchmarks/causal/ablation/layer~{layer}/k~{k}/{model}/{dataset}.tsv"
    wildcard_constraints:
        layer=r"\d+",
        k=r"[1-9]\d*",
    conda:
        "../envs/vrp.yaml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=model_mem_mb,
        runtime=120,
        gpu=model_gpus,
    params:
        model=model_spec,
        causal=config["causal"],
        plans=ablation_plans("top_k"),
        mode=config["ablation"]["mode"],
        seed=config["seed"],
        prefix_sharing=config["runtime"]["prefix_sharing"],
        replay_last_layer=config["runtime"]["replay_last_layer"],
    script:
        "../workflow/scripts/causal_ablation.py"


# The other ablation sweeps are the same job with other plans (the one script reads them, one plan
# per output file), their own output pattern and the inputs those plans need; params not named
# here are causal_ablation_top_k's.
use rule causal_ablation_top_k as causal_ablation_single with:
    input:
        questions="results/data/{dataset}/eval.parquet",
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
        ranking="results/probes/{model}/{dataset}/neuron_ranking.parquet",
        checkpoint=model_checkpoint,
    output:
        expand(
            "results/ablation/layer~{{layer}}/rank~{rank}/{{model}}/{{dataset}}.parquet",
            rank=single_ranks(),
        ),
    log:
        "logs/causal/ablation/layer~{layer}/ranks/{model}/{dataset}.log",
    benchmark:
        "benchmarks/causal/ablation/layer~{layer}/ranks/{model}/{dataset}.tsv"
    wildcard_constraints:
        layer=r"\d+",
    resources:
        mem_mb=model_mem_mb,
        # 60 minutes per rank (what each rank's own job had)
        runtime=60 * len(single_ranks()),
        gpu=model_gpus,
    params:
        plans=ablation_plans("single"),


use rule causal_ablation_top_k as causal_ablation_peak_fraction with:
    input:
        questions="results/data/{dataset}/eval.parquet",
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
        peak="results/probes/{model}/{dataset}/peak.json",
        checkpoint=model_checkpoint,
    output:
        expand(
            "results/ablation/peak/frac~{frac}/{{model}}/{{dataset}}.parquet",
            frac=peak_fractions(),
        ),
    log:
        "logs/causal/ablation/peak/fractions/{model}/{dataset}.log",
    benchmark:
        "benchmarks/causal/ablation/peak/fractions/{model}/{dataset}.tsv"
    resources:
        mem_mb=model_mem_mb,
        runtime=120 * len(peak_fractions()),
        gpu=model_gpus,
    params:
        plans=ablation_plans("random_fraction"),


use rule causal_ablation_top_k as causal_ablation_peak_bypass with:
    input:
        questions="results/data/{dataset}/eval.parquet",
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
        peak="results/probes/{model}/{dataset}/peak.json",
        checkpoint=model_checkpoint,
    output:
        "results/ablation/peak/bypass/{model}/{dataset}.parquet",
    log:
        "logs/causal/ablation/peak/bypass/{model}/{dataset}.log",
    benchmark:
        "benchmarks/causal/ablation/peak/bypass/{model}/{dataset}.tsv"
    resources:
        mem_mb=model_mem_mb,
        runtime=60,
        gpu=model_gpus,
    params:
        plans=ablation_plans("bypass"),


use rule causal_ablation_top_k as causal_ablation_peak_top_k with:
    input:
        questions="results/data/{dataset}/eval.parquet",
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
        ranking="results/probes/{model}/{dataset}/neuron_ranking.parquet",
        peak="results/probes/{model}/{dataset}/peak.json",
        checkpoint=model_checkpoint,
    output:
        "results/ablation/peak/top~{k}/{model}/{dataset}.parquet",
    log:
        "logs/causal/ablation/peak/top~{k}/{model}/{dataset}.log",
    benchmark:
        "benchmarks/causal/ablation/peak/top~{k}/{model}/{dataset}.tsv"
    wildcard_constraints:
        k=r"[1-9]\d*",
    resources:
        mem_mb=model_mem_mb,
        runtime=60,
        gpu=model_gpus,
    params:
        plans=ablation_plans("peak_top_k"),


rule causal_table5:
    input:
        baselines=expand(
            "results/causal/baseline/{model}/{dataset}.parquet",
            model=MODELS,
            dataset=DATASETS,
        ),
        # listed so that every model's checkpoint is scheduled up front
        layers=expand(
            "results/causal/layers/{model}/{dataset}.json",
            model=MODELS,
            dataset=DATASETS,
        ),
        runs=ablation_sweep_runs,
    output:
        report(
            "results/table5.csv",
            caption="../workflow/report/table5.rst",
            category="Causal interventions",
        ),
    log:
        "logs/causal/table5.log",
    benchmark:
        "benchmarks/causal/table5.tsv"
    localrule: True
    conda:
        "../envs/vrp.yaml"
    params:
        families=model_families(),
        n_boot=config["ablation"]["n_boot"],
        seed=config["seed"],
        interval_unit=config["stats"]["interval_unit"],
    script:
        "../workflow/scripts/causal_table_ablation.py"


# Table 6 is Table 5's job on the peak-layer runs; params not named here are causal_table5's.
use rule causal_table5 as causal_table6 with:
    input:
        baselines=expand(
            "results/causal/baseline/{model}/{dataset}.parquet",
            model=MODELS,
            dataset=DATASETS,
        ),
        runs=ablation_peak_runs,
    output:
        report(
            "results/table6.csv",
            caption="../workflow/report/table6.rst",
            category="Causal interventions",
        ),
    log:
        "logs/causal/table6.log",
    benchmark:
        "benchmarks/causal/table6.tsv"


TARGETS.extend(
    [
        "results/table_masking.csv",
        "results/figures/fig_masking.pdf",
        "results/figures/fig_masking.png",
        "results/table5.csv",
        "results/table6.csv",
    ]
)
