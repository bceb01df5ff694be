"""Build the counting / spatial / object-ID questions from COCO val2014 instance annotations."""

from vrp.benchmark.coco import build_coco_tasks
from vrp.io import write_parquet
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
coco = snakemake.params.coco
questions = build_coco_tasks(
    coco["annotations"],
    coco["image_dir"],
    n_per_task=coco["n_per_task"],
    seed=snakemake.params.seed,
    max_count=coco["max_count"],
    max_per_image=coco["max_per_image"],
)
log.info("COCO tasks: %s", questions.groupby("task").size().to_dict())
write_parquet(questions, snakemake.output.eval)
