"""Fetch POPE (lmms-lab/POPE) or read a local copy, and write it in the project's question schema."""

from pathlib import Path

from vrp.benchmark.coco import sha256_file
from vrp.benchmark.pope import download_pope, find_pope_parquets, load_pope
from vrp.io import write_json, write_parquet
from vrp.pins import PinError
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
pope = snakemake.params.pope
if pope.get("unpinned") and not pope.get("local_dir"):
    raise PinError(pope["unpinned"])
if pope.get("local_dir"):
    paths = find_pope_parquets(pope["local_dir"])
else:
    paths = download_pope(
        Path(snakemake.output.eval).parent / "download",
        repo_id=pope["repo_id"],
        revision=pope["revision"],
        settings=tuple(pope["settings"]),
        dataset=snakemake.params.dataset,
    )
questions = load_pope(
    paths, settings=tuple(pope["settings"]), limit_per_setting=pope["limit_per_setting"]
)
log.info("POPE: %d questions on %d images", len(questions), questions["image_id"].nunique())
write_parquet(questions, snakemake.output.eval)
# what the table was built from: the pinned commit (the lock file's) and every file's checksum
write_json(
    {
        "source": "pope",
        "repo_id": None if pope.get("local_dir") else pope["repo_id"],
        "revision": None if pope.get("local_dir") else pope["revision"],
        "local_dir": pope.get("local_dir"),
        "files": [
            {"path": str(p), "size": p.stat().st_size, "sha256": sha256_file(p)} for p in paths
        ],
        "n_questions": len(questions),
    },
    snakemake.output.manifest,
)
