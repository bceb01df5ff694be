# vrp: the VLM Reliability Probe, reproduced end to end (arXiv 2605.08200).
# Default config = demo face (offline synthetic benchmark + tiny zoo); config/paper.yaml = paper face.


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/zoo.smk"
include: "rules/extract.smk"
include: "rules/evaluate.smk"
include: "rules/attention.smk"
include: "rules/probes.smk"
include: "rules/consistency.smk"
include: "rules/causal.smk"
include: "rules/monitor.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
