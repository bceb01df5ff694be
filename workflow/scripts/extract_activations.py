"""Run the one-pass extraction of one model on one dataset (resumes from complete shards)."""

from pathlib import Path

from vrp.benchmark.schema import read_questions
from vrp.extract import ExtractionSettings, extract
from vrp.models import load_model_from_spec
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0], threads=snakemake.threads)
spec = snakemake.params.model
adapter = load_model_from_spec(spec)
log.info("loaded %r from %s", adapter, spec["path"])
questions = read_questions(snakemake.input.questions)
manifest = extract(
    adapter,
    questions,
    Path(snakemake.output.manifest).parent,
    model_spec=spec,
    settings=ExtractionSettings(**snakemake.params.extraction),
)
log.info("extracted %d samples; arrays %s", manifest["n_samples"],
         {k: v["shape"] for k, v in manifest["arrays"].items()})
