#!/usr/bin/env bash
# The project's test command: formatting and lint of the workflow and the Python code, then the
# pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# the real tokenizers the scoring tests use (pinned, sha256-checked; kept when already in place)
bash scripts/fetch_tokenizers.sh
.venv/bin/snakefmt --check Snakefile rules/
.venv/bin/snakemake --lint --cores 1
.venv/bin/ruff check src tests workflow bench
.venv/bin/ruff format --check src tests workflow bench
.venv/bin/pytest "$@"
