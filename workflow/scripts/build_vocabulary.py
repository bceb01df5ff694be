"""Build the tiny zoo's word-level tokenizer from the benchmark text and the prompt templates."""

import pandas as pd

from vrp.runlog import setup_job_logging
from vrp.zoo.tokenizer import questions_tokenizer

log = setup_job_logging(snakemake.log[0])
frames = [pd.read_parquet(p, columns=["question", "answer"]) for p in [*snakemake.input.train, *snakemake.input.eval]]
tokenizer = questions_tokenizer(pd.concat(frames), snakemake.params.families)
log.info("vocabulary: %d tokens", len(tokenizer))
tokenizer.save_pretrained(snakemake.output[0])
