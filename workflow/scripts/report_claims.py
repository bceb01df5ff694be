"""The claims check: results/claims.csv (+ an HTML view for the report) from this run's result tables."""

from vrp.analysis.claims import Margins, check_claims_from_files, claims_html
from vrp.io import write_csv, write_text
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
paths = dict(snakemake.input.items())
log.info("result tables read: %s", paths or "none (every claim is not measurable)")
claims = check_claims_from_files(
    paths,
    datasets=snakemake.params.datasets,
    families=snakemake.params.families,
    margins=Margins.from_params(snakemake.params.margins),
)
log.info(
    "\n%s",
    claims[["claim_id", "dataset", "value", "ci_low", "ci_high", "n", "verdict"]].to_string(),
)
write_csv(claims, snakemake.output.csv)
write_text(claims_html(claims), snakemake.output.html)
