"""Fetch COCO val2014 (annotations and images archives) and record / verify their checksums."""

from pathlib import Path

from vrp.benchmark.coco import coco_urls, download_coco_val2014
from vrp.io import write_json
from vrp.pins import record_file, recorded_file
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0])
lock_file = snakemake.params.lock_file
datasets = snakemake.params.datasets
dest = Path(snakemake.output.annotations).parent.parent
urls = coco_urls()
expected = {url: recorded_file(lock_file, url) for url in urls.values()}
result = download_coco_val2014(
    dest,
    expected={u: e for u, e in expected.items() if e},
    dataset=datasets[0] if datasets else None,
)
for info in result["files"]:
    if expected.get(info["url"]):
        log.info("verified %s: %d bytes, sha256 %s", info["url"], info["size"], info["sha256"])
    elif lock_file:
        record_file(lock_file, info["url"], info["size"], info["sha256"])
        log.info(
            "recorded %s in %s: %d bytes, sha256 %s",
            info["url"],
            lock_file,
            info["size"],
            info["sha256"],
        )
    else:
        log.warning(
            "no lock_file configured: %s (sha256 %s) is not recorded", info["url"], info["sha256"]
        )
write_json(
    {"source": "COCO val2014", "files": result["files"], "lock_file": lock_file},
    snakemake.output.manifest,
)
