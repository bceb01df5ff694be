"""Build the tiny zoo's word-level tokenizer from the benchmark text and the prompt templates."""

import pandas as pd

from vrp.adapters import get_adapter_class
from vrp.runlog import setup_job_logging
from vrp.zoo.tokenizer import build_word_tokenizer

log = setup_job_logging(snakemake.log[0])
frames = [pd.read_parquet(p, columns=["question", "answer"]) for p in [*snakemake.input.train, *snakemake.input.eval]]
texts = pd.concat(frames)
extra = [w for family in snakemake.params.families for w in get_adapter_class(family).template_words()]
extra += list(snakemake.params.post_prompts)  # the instruction after each question, if any
tokenizer = build_word_tokenizer([*texts["question"], *texts["answer"]], extra_words=extra)
log.info("vocabulary: %d tokens", len(tokenizer))
tokenizer.save_pretrained(snakemake.output[0])
