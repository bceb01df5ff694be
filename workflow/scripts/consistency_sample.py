"""Sample K_max answers per question for one model on one dataset (the only generation job of the K sweep)."""

from vrp.benchmark.schema import read_questions
from vrp.interventions.sampling import ConsistencySettings, sample_answers
from vrp.io import write_parquet
from vrp.models import load_model_from_spec
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0], threads=snakemake.threads)
spec = snakemake.params.model
settings = ConsistencySettings.from_params(snakemake.params.sampling)
adapter = load_model_from_spec(spec)
log.info("loaded %r from %s; %s", adapter, spec["path"], settings)
samples = sample_answers(
    adapter,
    read_questions(snakemake.input.questions),
    settings,
    share_prefix=snakemake.params.prefix_sharing,
)
log.info(
    "%d questions x %d samples; most common answers:\n%s",
    samples["question_id"].nunique(),
    settings.k_max,
    samples["normalized"].value_counts().head(15).to_string(),
)
write_parquet(samples, snakemake.output.samples)
