"""Build the tiny zoo's word-level tokenizer from the benchmark text and the prompt templates."""

import pandas as pd

from vrp.runlog import setup_job_logging
from vrp.zoo.tokenizer import questions_tokenizer

log = setup_job_logging(snakemake.log[0])
frames = [
    pd.read_parquet(p, columns=["question", "answer"])
    for p in [*snakemake.input.train, *snakemake.input.eval]
]
# only the configured models' families give special tokens and template words (a family the run
# does not use must not shift the word ids the tiny models train on); the instruction after each
# question, if any, joins the vocabulary too
tokenizer = questions_tokenizer(
    pd.concat(frames), snakemake.params.families, extra_words=snakemake.params.post_prompts
)
log.info(
    "vocabulary: %d tokens for the families %s",
    len(tokenizer),
    ", ".join(snakemake.params.families),
)
tokenizer.save_pretrained(snakemake.output[0])
