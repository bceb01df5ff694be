"""Build the tiny zoo's word-level tokenizer from the benchmark text and the prompt templates."""

import pandas as pd

from vrp.runlog import setup_job_logging
from vrp.zoo.tokenizer import questions_tokenizer

log = setup_job_logging(snakemake.log[0])
frames = [pd.read_parquet(p, columns=["question", "answer"]) for p in [*snakemake.input.train, *snakemake.input.eval]]
# the instruction after each question, if any, joins the vocabulary too
tokenizer = questions_tokenizer(
    pd.concat(frames), snakemake.params.families, extra_words=snakemake.params.post_prompts
)
log.info("vocabulary: %d tokens", len(tokenizer))
tokenizer.save_pretrained(snakemake.output[0])
