# The claims check (results/claims.csv, category "Claims" of the HTML report): each headline number
# of the paper against the result tables this run builds. The HTML report itself is
# `snakemake --report results/report.html` (workflow/report/workflow.rst is its front page).
# Input function: claims_inputs in rules/common.smk.


rule report_claims:
    input:
        unpack(claims_inputs),
    output:
        csv=report(
            "results/claims.csv",
            caption="../workflow/report/claims.rst",
            category="Claims",
        ),
        html=report(
            "results/claims.html",
            caption="../workflow/report/claims.rst",
            category="Claims",
        ),
    log:
        "logs/report/claims.log",
    benchmark:
        "benchmarks/report/claims.tsv"
    localrule: True
    conda:
        "../envs/vrp.yaml"
    params:
        datasets=DATASETS,
        families=model_families(),
        margins=config["claims"],
    script:
        "../workflow/scripts/report_claims.py"


TARGETS.extend(["results/claims.csv", "results/claims.html"])
