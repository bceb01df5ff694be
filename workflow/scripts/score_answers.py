"""Greedy answers (candidate next-token logits) of one model on one dataset's eval questions."""

import pandas as pd

from vrp.models import load_model_from_spec
from vrp.io import write_parquet
from vrp.runlog import setup_job_logging
from vrp.scoring import score_questions

log = setup_job_logging(snakemake.log[0], threads=snakemake.threads)
adapter = load_model_from_spec(snakemake.params.model)
questions = pd.read_parquet(snakemake.input.questions)
predictions = score_questions(adapter, questions, batch_size=snakemake.params.batch_size)
log.info("accuracy %.3f on %d questions", predictions["correct"].mean(), len(predictions))
write_parquet(predictions, snakemake.output[0])
