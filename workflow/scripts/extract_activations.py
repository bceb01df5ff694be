"""Run the one-pass extraction of one model on one dataset (resumes from complete shards)."""

from pathlib import Path

from vrp.benchmark.schema import read_questions
from vrp.config import known_fields
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
    settings=ExtractionSettings(
        **known_fields(ExtractionSettings, snakemake.params.extraction),
        generation_seed=snakemake.params.seed,
        prefix_sharing=snakemake.params.prefix_sharing,
    ),
)
log.info(
    "extracted %d samples; arrays %s",
    manifest["n_samples"],
    {k: v["shape"] for k, v in manifest["arrays"].items()},
)
scoring = manifest["answer_scoring"]
log.info(
    "prompt pass: %s (%s)",
    manifest["answer_scoring"]["prompt_pass"]["mode"],
    manifest["answer_scoring"]["prompt_pass"]["reason"],
)
log.info(
    "answers scored with the %s attention kernel, attention read with %s; prompt %r",
    scoring["answer_attention_kernel"],
    scoring["readout_attention_kernel"],
    scoring["prompt_example"],
)
if "kernel_agreement" in scoring:
    log.info("answer agreement between the two kernels: %.4f", scoring["kernel_agreement"])
check = scoring["generation_check"]
minimum = snakemake.params.extraction["generation_min_agreement"]
if check["n_checked"]:
    log.info(
        "greedy generation agrees with the scored prediction on %.4f of %d questions %s",
        check["agreement"],
        check["n_checked"],
        check["agreement_by_task"],
    )
    if check["agreement"] < minimum:
        log.warning(
            "generation agreement %.4f is below extraction.generation_min_agreement=%.2f: "
            "the scored answers may not be what the model says (check the post-prompt "
            "and the answer forms in the manifest)",
            check["agreement"],
            minimum,
        )
