"""Logging set-up for workflow scripts: everything a job prints goes to its Snakemake log."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def setup_job_logging(
    log_path: str | os.PathLike | None, threads: int | None = None
) -> logging.Logger:
    """Send stdout, stderr (tqdm progress included) and ``logging`` to ``log_path``.

    Also pins torch to ``threads`` CPU threads: results are bit-reproducible on one machine only
    for a fixed thread count.
    """
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_path, "w", buffering=1)
        sys.stdout = stream
        sys.stderr = stream
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return logging.getLogger("vrp")
