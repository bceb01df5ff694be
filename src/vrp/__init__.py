"""vrp: the VLM Reliability Probe, reproduced as a Snakemake workflow (arXiv 2605.08200)."""

__version__ = "0.1.0"
