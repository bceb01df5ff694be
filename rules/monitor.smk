# The reliability monitor: the peak-layer probe exported with its calibration and model identity
# (results/monitor/{model}/{dataset}/, read by vrp.monitor.ReliabilityMonitor and vrp-monitor),
# then its calibration and shift (trained on one POPE setting or task, scored on the others).
# Input functions: monitor_hashed_config in rules/common.smk.


rule monitor_export:
    input:
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
        peak="results/probes/{model}/{dataset}/peak.json",
        questions="results/data/{dataset}/eval.parquet",
        checkpoint=model_checkpoint,
    output:
        bundle=directory("results/monitor/{model}/{dataset}"),
    log:
        "logs/monitor/export/{model}/{dataset}.log",
    benchmark:
        "benchmarks/monitor/export/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=model_mem_mb,
        runtime=60,
        gpu=model_gpus,
    params:
        probes=stage_settings("probes", "C", "n_splits", "seed"),
        monitor=stage_settings(
            "monitor",
            "calibration",
            "n_bins",
            "n_boot",
            "coverages",
            "check_questions",
            "seed",
        ),
        model=model_spec,
        dataset=lambda wildcards: config["datasets"][wildcards.dataset],
        hashed=monitor_hashed_config,
    script:
        "../workflow/scripts/monitor_export.py"


rule monitor_evaluate:
    input:
        bundle="results/monitor/{model}/{dataset}",
        samples="results/extract/{model}/{dataset}/samples.parquet",
        manifest="results/extract/{model}/{dataset}/manifest.json",
    output:
        evaluation="results/monitor_eval/{model}/{dataset}/evaluation.csv",
        bins="results/monitor_eval/{model}/{dataset}/reliability_bins.csv",
    log:
        "logs/monitor/evaluate/{model}/{dataset}.log",
    benchmark:
        "benchmarks/monitor/evaluate/{model}/{dataset}.tsv"
    conda:
        "../envs/vrp.yaml"
    resources:
        mem_mb=16000,
        runtime=60,
    params:
        probes=stage_settings("probes", "C", "n_splits", "seed"),
        monitor=stage_settings(
            "monitor",
            "calibration",
            "n_bins",
            "n_boot",
            "coverages",
            "check_questions",
            "seed",
        ),
        interval_unit=config["stats"]["interval_unit"],
    script:
        "../workflow/scripts/monitor_evaluate.py"


rule monitor_table:
    input:
        evaluations=per_model_dataset(
            "results/monitor_eval/{model}/{dataset}/evaluation.csv"
        ),
    output:
        calibration=report(
            "results/table_monitor.csv",
            caption="../workflow/report/table_monitor.rst",
            category="Reliability monitor",
        ),
        selective=report(
            "results/table_monitor_selective.csv",
            caption="../workflow/report/table_monitor_selective.rst",
            category="Reliability monitor",
        ),
    log:
        "logs/monitor/table.log",
    benchmark:
        "benchmarks/monitor/table.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_pairs(),
        coverages=config["monitor"]["coverages"],
    script:
        "../workflow/scripts/monitor_table.py"


rule monitor_figure:
    input:
        bins=per_model_dataset(
            "results/monitor_eval/{model}/{dataset}/reliability_bins.csv"
        ),
    output:
        pdf=report(
            "results/figures/fig_monitor_reliability.pdf",
            caption="../workflow/report/fig_monitor_reliability.rst",
            category="Reliability monitor",
        ),
        png=report(
            "results/figures/fig_monitor_reliability.png",
            caption="../workflow/report/fig_monitor_reliability.rst",
            category="Reliability monitor",
        ),
    log:
        "logs/monitor/figure.log",
    benchmark:
        "benchmarks/monitor/figure.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        labels=model_dataset_pairs(),
        families=model_families(),
    script:
        "../workflow/scripts/monitor_figure.py"


TARGETS.extend(
    per_model_dataset("results/monitor/{model}/{dataset}")
    + [
        "results/table_monitor.csv",
        "results/table_monitor_selective.csv",
        "results/figures/fig_monitor_reliability.pdf",
        "results/figures/fig_monitor_reliability.png",
    ]
)
