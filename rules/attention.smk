# Attention structure and generation dynamics: Tables 1, 2, 4 and Figures 2a, 3, 4, 5.
# Per (model, dataset): attention statistics (C_k / layer-range dependent), per-layer entropy,
# top-K heads (K dependent) and the stress test; then one job per table and figure.
rule attention_stats:
    input:
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
    output:
        stats="results/attention/{model}/{dataset}/stats.parquet",
        maps="results/attention/{model}/{dataset}/maps.npy",
    log:
        "logs/attention/stats/{model}/{dataset}.log",
    benchmark:
        "benchmarks/attention/stats/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        layer_range=attention_layer_span,
        ck_method=config["attention"]["ck_method"],
        ck_components=config["attention"]["ck_components"],
        ck_dbscan=config["attention"]["ck_dbscan"],
        entropy_normalized=config["attention"]["entropy_normalized"],
    script:
        "../workflow/scripts/attention_stats.py"


rule attention_layer_entropy:
    input:
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
    output:
        "results/attention/{model}/{dataset}/layer_entropy.parquet",
    log:
        "logs/attention/layer_entropy/{model}/{dataset}.log",
    benchmark:
        "benchmarks/attention/layer_entropy/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    script:
        "../workflow/scripts/attention_layer_entropy.py"


rule attention_top_heads:
    input:
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
    output:
        "results/attention/{model}/{dataset}/top_heads.csv",
    log:
        "logs/attention/top_heads/{model}/{dataset}.log",
    benchmark:
        "benchmarks/attention/top_heads/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    resources:
        mem_mb=16000,
        runtime=60,
    params:
        top_k=config["attention"]["top_k_heads"],
        n_splits=config["attention"]["stress_test"]["n_splits"],
        n_boot=config["attention"]["n_boot"],
        seed=config["seed"],
        interval_unit=config["stats"]["interval_unit"],
    script:
        "../workflow/scripts/attention_top_heads.py"


rule attention_stress_test:
    input:
        "results/attention/{model}/{dataset}/stats.parquet",
    output:
        "results/attention/{model}/{dataset}/stress_test.json",
    log:
        "logs/attention/stress_test/{model}/{dataset}.log",
    benchmark:
        "benchmarks/attention/stress_test/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        n_splits=config["attention"]["stress_test"]["n_splits"],
        n_boot=config["attention"]["n_boot"],
        seed=config["seed"],
        interval_unit=config["stats"]["interval_unit"],
    script:
        "../workflow/scripts/attention_stress_test.py"


rule attention_table1:
    input:
        samples=attention_inputs("results/extract/{model}/{dataset}/samples.parquet"),
        top_heads=attention_inputs("results/attention/{model}/{dataset}/top_heads.csv"),
        stress=attention_inputs("results/attention/{model}/{dataset}/stress_test.json"),
    output:
        report(
            "results/table1.csv",
            caption="../workflow/report/table1.rst",
            category="Attention and dynamics",
        ),
    log:
        "logs/attention/table1.log",
    benchmark:
        "benchmarks/attention/table1.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_labels(),
    script:
        "../workflow/scripts/attention_table1.py"


rule attention_table2:
    input:
        manifests=attention_inputs("results/extract/{model}/{dataset}/manifest.json"),
    output:
        report(
            "results/table2.csv",
            caption="../workflow/report/table2.rst",
            category="Attention and dynamics",
        ),
    log:
        "logs/attention/table2.log",
    benchmark:
        "benchmarks/attention/table2.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_labels(),
        answer_layers=answer_layer_spans(),
    script:
        "../workflow/scripts/attention_table2.py"


rule attention_table4:
    input:
        stats=attention_inputs("results/attention/{model}/{dataset}/stats.parquet"),
    output:
        report(
            "results/table4.csv",
            caption="../workflow/report/table4.rst",
            category="Attention and dynamics",
        ),
    log:
        "logs/attention/table4.log",
    benchmark:
        "benchmarks/attention/table4.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_labels(),
        ck_method=config["attention"]["ck_method"],
        ck_components=config["attention"]["ck_components"],
        ck_dbscan=config["attention"]["ck_dbscan"],
        entropy_normalized=config["attention"]["entropy_normalized"],
        n_boot=config["attention"]["n_boot"],
        seed=config["seed"],
        interval_unit=config["stats"]["interval_unit"],
    script:
        "../workflow/scripts/attention_table4.py"


rule attention_figure2a:
    input:
        samples=attention_inputs("results/extract/{model}/{dataset}/samples.parquet"),
        manifests=attention_inputs("results/extract/{model}/{dataset}/manifest.json"),
    output:
        pdf="results/figures/fig2a.pdf",
        png=report(
            "results/figures/fig2a.png",
            caption="../workflow/report/fig2a.rst",
            category="Attention and dynamics",
        ),
    log:
        "logs/attention/fig2a.log",
    benchmark:
        "benchmarks/attention/fig2a.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_labels(),
    script:
        "../workflow/scripts/attention_figure2a.py"


rule attention_figure3:
    input:
        attention_inputs("results/attention/{model}/{dataset}/layer_entropy.parquet"),
    output:
        pdf="results/figures/fig3.pdf",
        png=report(
            "results/figures/fig3.png",
            caption="../workflow/report/fig3.rst",
            category="Attention and dynamics",
        ),
    log:
        "logs/attention/fig3.log",
    benchmark:
        "benchmarks/attention/fig3.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_labels(),
        entropy_normalized=config["attention"]["entropy_normalized"],
    script:
        "../workflow/scripts/attention_figure3.py"


rule attention_figure4:
    input:
        manifests=attention_inputs("results/extract/{model}/{dataset}/manifest.json"),
    output:
        pdf="results/figures/fig4.pdf",
        png=report(
            "results/figures/fig4.png",
            caption="../workflow/report/fig4.rst",
            category="Attention and dynamics",
        ),
    log:
        "logs/attention/fig4.log",
    benchmark:
        "benchmarks/attention/fig4.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_labels(),
    script:
        "../workflow/scripts/attention_figure4.py"


rule attention_figure5:
    input:
        stats=attention_inputs("results/attention/{model}/{dataset}/stats.parquet"),
        maps=attention_inputs("results/attention/{model}/{dataset}/maps.npy"),
        manifests=attention_inputs("results/extract/{model}/{dataset}/manifest.json"),
        questions=expand("results/data/{dataset}/eval.parquet", dataset=DATASETS),
        checkpoints=all_model_checkpoints,
    output:
        pdf="results/figures/fig5.pdf",
        png=report(
            "results/figures/fig5.png",
            caption="../workflow/report/fig5.rst",
            category="Attention and dynamics",
        ),
        case="results/figures/fig5_case.json",
    log:
        "logs/attention/fig5.log",
    benchmark:
        "benchmarks/attention/fig5.tsv"
    conda:
        "../envs/vrp.yaml"
    resources:
        # loads the chosen model on CPU for its exact patch -> pixel geometry (no forward pass)
        mem_mb=all_models_cpu_mem_mb,
        runtime=30,
    params:
        labels=model_dataset_labels(),
        datasets=DATASETS,
        models=all_model_specs,
        entropy_quantile=config["attention"]["case_study"]["entropy_quantile"],
        entropy_normalized=config["attention"]["entropy_normalized"],
        ck_method=config["attention"]["ck_method"],
    script:
        "../workflow/scripts/attention_figure5.py"


TARGETS.extend(
    [
        "results/table1.csv",
        "results/table2.csv",
        "results/table4.csv",
        "results/figures/fig2a.pdf",
        "results/figures/fig2a.png",
        "results/figures/fig3.pdf",
        "results/figures/fig3.png",
        "results/figures/fig4.pdf",
        "results/figures/fig4.png",
        "results/figures/fig5.pdf",
        "results/figures/fig5.png",
    ]
)
