"""Draw the offline synthetic benchmark (train and eval question tables) from the config seed."""

from vrp.benchmark.synthetic import SyntheticBenchmarkConfig, generate_benchmark
from vrp.io import write_parquet
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
config = SyntheticBenchmarkConfig.from_dict(
    {**snakemake.params.synthetic, "seed": snakemake.params.seed}
)
splits = generate_benchmark(config)
for split, frame in splits.items():
    log.info("%s: %d questions on %d images", split, len(frame), frame["image_id"].nunique())
    log.info("%s tasks: %s", split, frame.groupby(["task", "pope_setting"]).size().to_dict())
write_parquet(splits["train"], snakemake.output.train)
write_parquet(splits["eval"], snakemake.output.eval)
