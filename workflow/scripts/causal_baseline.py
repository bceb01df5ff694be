"""Unablated, unmasked predictions of the questions the causal sweeps score (their shared reference)."""

import numpy as np

from vrp.interventions.masking import PREDICTION_COLUMNS, load_causal_inputs
from vrp.io import write_parquet
from vrp.models import load_model_from_spec
from vrp.runlog import setup_job_logging
from vrp.scoring import predict

log = setup_job_logging(snakemake.log[0], threads=snakemake.threads)
settings = snakemake.params.causal
questions, samples, manifest = load_causal_inputs(snakemake.input, settings["max_images"])
adapter = load_model_from_spec(snakemake.params.model)
log.info(
    "loaded %r; scoring %d questions of %d images",
    adapter,
    len(questions),
    questions["image_id"].nunique(),
)
scored = predict(
    adapter,
    questions,
    manifest["candidates"],
    batch_size=settings["batch_size"],
    progress=True,
    share_prefix=snakemake.params.prefix_sharing,
)
agree = np.mean(
    scored["prediction"].to_numpy() == samples["prediction"].to_numpy()[questions["row"]]
)
log.info(
    "accuracy %.4f; predictions equal to the extraction's for %.4f of questions",
    scored["correct"].mean(),
    agree,
)
out = scored.loc[:, list(PREDICTION_COLUMNS)].assign(
    model=snakemake.wildcards.model, dataset=snakemake.wildcards.dataset
)
write_parquet(out, snakemake.output[0])
