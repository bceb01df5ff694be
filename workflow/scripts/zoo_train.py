"""Build one tiny model of a real transformers VLM class, train it on the synthetic train split, save it."""

import hashlib
import time

import pandas as pd
from transformers import AutoTokenizer

from vrp.adapters import get_adapter_class
from vrp.benchmark.schema import read_questions
from vrp.io import write_json
from vrp.runlog import setup_job_logging
from vrp.zoo.train import TrainConfig, train_adapter

log = setup_job_logging(snakemake.log[0], threads=snakemake.threads)
params = snakemake.params
tokenizer = AutoTokenizer.from_pretrained(snakemake.input.tokenizer)
adapter_class = get_adapter_class(params.family)
adapter = adapter_class.build_tiny(tokenizer, dict(params.tiny), seed=params.seed)
if params.prompt_template:
    adapter.prompt_template = params.prompt_template
adapter.post_prompt = params.post_prompt  # trained with the prompt it is later asked with
train = pd.concat([read_questions(p) for p in snakemake.input.train], ignore_index=True)
config = TrainConfig.from_dict(dict(params.train))
n_params = sum(p.numel() for p in adapter.model.parameters())
log.info(
    "%s: %d parameters, %d train questions, %d steps",
    params.family,
    n_params,
    len(train),
    config.steps,
)

start = time.perf_counter()
history = train_adapter(adapter, train, config, seed=params.seed)
seconds = time.perf_counter() - start
adapter.save(snakemake.output.checkpoint)

digest = hashlib.sha256()
for name, tensor in sorted(adapter.model.state_dict().items()):
    digest.update(name.encode())
    digest.update(tensor.detach().cpu().numpy().tobytes())
write_json(
    {
        "family": params.family,
        "parameters": n_params,
        "train_seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / config.steps, 4),
        "final_loss_mean_50": sum(history["losses"][-50:]) / min(50, len(history["losses"])),
        "parameter_sha256": digest.hexdigest(),
        **history,
    },
    snakemake.output.report,
)
log.info("trained in %.1f s; saved to %s", seconds, snakemake.output.checkpoint)
