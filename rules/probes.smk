# Reliability readouts from the one-pass extraction: per-layer probes (peak layer), the L1 neuron
# ranking, every single-pass readout per question, then Tables 3, 7, 8 and the probe figures.
# Layer indices are decoder layers 0..L-1 (hidden[:, l+1]); see src/vrp/analysis/probes.py.
# The method rows of Tables 7 and 8 are vrp.analysis.probes.TABLE7_METHODS / TABLE8_METHODS.
from vrp.analysis.probes import TABLE7_METHODS, TABLE8_METHODS


rule probes_layers:
    input:
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
    output:
        layers="results/probes/{model}/{dataset}/layers.csv",
        peak="results/probes/{model}/{dataset}/peak.json",
        layer_scores="results/probes/{model}/{dataset}/layer_scores.parquet",
    log:
        "logs/probes/layers/{model}/{dataset}.log",
    benchmark:
        "benchmarks/probes/layers/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=16000,
        runtime=240,
    params:
        probes=stage_settings(
            "probes",
            "C",
            "l1_C",
            "mlp_hidden",
            "mlp_max_iter",
            "n_splits",
            "n_boot",
            "seed",
        ),
        interval_unit=config["stats"]["interval_unit"],
    script:
        "../workflow/scripts/probes_layers.py"


rule probes_neurons:
    input:
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
    output:
        ranking="results/probes/{model}/{dataset}/neuron_ranking.parquet",
    log:
        "logs/probes/neurons/{model}/{dataset}.log",
    benchmark:
        "benchmarks/probes/neurons/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    resources:
        mem_mb=16000,
        runtime=120,
    params:
        probes=stage_settings("probes", "l1_C", "seed"),
    script:
        "../workflow/scripts/probes_neurons.py"


rule probes_scores:
    input:
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
        peak="results/probes/{model}/{dataset}/peak.json",
        attention_stats="results/attention/{model}/{dataset}/stats.parquet",
        layer_scores="results/probes/{model}/{dataset}/layer_scores.parquet",
    output:
        scores="results/probes/{model}/{dataset}/scores.parquet",
    log:
        "logs/probes/scores/{model}/{dataset}.log",
    benchmark:
        "benchmarks/probes/scores/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    resources:
        mem_mb=16000,
        runtime=120,
    params:
        probes=stage_settings(
            "probes",
            "C",
            "l1_C",
            "mlp_hidden",
            "mlp_max_iter",
            "n_splits",
            "last_k_layers",
            "seed",
        ),
    script:
        "../workflow/scripts/probes_scores.py"


rule probes_table3:
    input:
        scores=per_model_dataset("results/probes/{model}/{dataset}/scores.parquet"),
        peaks=per_model_dataset("results/probes/{model}/{dataset}/peak.json"),
    output:
        report(
            "results/table3.csv",
            caption="../workflow/report/table3.rst",
            category="Reliability readouts",
        ),
    log:
        "logs/probes/table3.log",
    benchmark:
        "benchmarks/probes/table3.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_pairs(),
        probes=stage_settings("probes", "n_boot", "seed"),
        interval_unit=config["stats"]["interval_unit"],
    script:
        "../workflow/scripts/probes_table3.py"


rule probes_table7:
    input:
        scores=per_model_dataset("results/probes/{model}/{dataset}/scores.parquet"),
        peaks=per_model_dataset("results/probes/{model}/{dataset}/peak.json"),
        consistency=selfconsistency_table_for_tables,
    output:
        report(
            "results/table7.csv",
            caption="../workflow/report/table7.rst",
            category="Reliability readouts",
        ),
    log:
        "logs/probes/table7.log",
    benchmark:
        "benchmarks/probes/table7.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_pairs(),
        probes=stage_settings("probes", "n_boot", "seed", "last_k_layers"),
        interval_unit=config["stats"]["interval_unit"],
        methods=list(TABLE7_METHODS),
        subsets=[["all", ""], ["presence", "adversarial"]],
    script:
        "../workflow/scripts/probes_table_methods.py"


# Table 8 is Table 7's job with its own method rows and subsets; params not named here are
# probes_table7's.
use rule probes_table7 as probes_table8 with:
    output:
        report(
            "results/table8.csv",
            caption="../workflow/report/table8.rst",
            category="Reliability readouts",
        ),
    log:
        "logs/probes/table8.log",
    benchmark:
        "benchmarks/probes/table8.tsv"
    params:
        methods=list(TABLE8_METHODS),
        subsets=[["all", ""]],


rule probes_figure_layers:
    input:
        layers=per_model_dataset("results/probes/{model}/{dataset}/layers.csv"),
    output:
        pdf=report(
            "results/figures/fig_probes.pdf",
            caption="../workflow/report/fig_probes.rst",
            category="Reliability readouts",
        ),
        png=report(
            "results/figures/fig_probes.png",
            caption="../workflow/report/fig_probes.rst",
            category="Reliability readouts",
        ),
    log:
        "logs/probes/fig_probes.log",
    benchmark:
        "benchmarks/probes/fig_probes.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_pairs(),
        families=model_families(),
    script:
        "../workflow/scripts/probes_figure_layers.py"


rule probes_figure2b:
    input:
        rankings=per_model_dataset(
            "results/probes/{model}/{dataset}/neuron_ranking.parquet"
        ),
        peaks=per_model_dataset("results/probes/{model}/{dataset}/peak.json"),
    output:
        pdf=report(
            "results/figures/fig2b.pdf",
            caption="../workflow/report/fig2b.rst",
            category="Reliability readouts",
        ),
        png=report(
            "results/figures/fig2b.png",
            caption="../workflow/report/fig2b.rst",
            category="Reliability readouts",
        ),
    log:
        "logs/probes/fig2b.log",
    benchmark:
        "benchmarks/probes/fig2b.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_pairs(),
        families=model_families(),
        top_channels=config["probes"]["top_channels"],
    script:
        "../workflow/scripts/probes_figure2b.py"


TARGETS.extend(
    [
        "results/table3.csv",
        "results/table7.csv",
        "results/table8.csv",
        "results/figures/fig_probes.pdf",
        "results/figures/fig_probes.png",
        "results/figures/fig2b.pdf",
        "results/figures/fig2b.png",
    ]
)
