"""End-to-end: the demo DAG at toy size (tests/config/ci.yaml) runs to results/accuracy.csv."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vrp.io import read_json

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="session")
def demo_workdir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    (workdir / "config").mkdir()
    shutil.copy(REPO / "tests" / "config" / "ci.yaml", workdir / "config" / "config.yaml")
    result = snakemake(workdir, "results/accuracy.csv")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workdir


def test_accuracy_table_is_built(demo_workdir):
    table = pd.read_csv(demo_workdir / "results" / "accuracy.csv", keep_default_na=False)
    assert set(table["model"]) == {"llava", "paligemma", "qwen2vl"}
    presence = table[table["task"] == "presence"]
    assert set(presence["pope_setting"]) == {"random", "popular", "adversarial", "all"}
    assert set(table["task"]) == {"presence", "counting", "spatial", "object_id"}
    assert (table["n"] > 0).all()
    numeric = table[["accuracy", "precision", "recall", "f1"]].astype(float)
    assert ((numeric >= 0) & (numeric <= 1)).all().all()


def test_extraction_manifest_matches_the_models(demo_workdir):
    for model in ("llava", "paligemma", "qwen2vl"):
        manifest = read_json(demo_workdir / "results" / "extract" / model / "synthetic" / "manifest.json")
        layers, n = manifest["num_layers"], manifest["n_samples"]
        arrays = manifest["arrays"]
        assert arrays["hidden"]["shape"] == [n, layers + 1, manifest["hidden_size"]]
        assert arrays["image_attention"]["shape"] == [n, layers, 64]  # 8x8 grid at 64 px
        assert arrays["head_logit"]["shape"] == [n, layers, manifest["num_heads"]]
        assert manifest["transformers_version"].startswith("5.")


def test_second_run_does_nothing(demo_workdir):
    result = snakemake(demo_workdir, "-n", "results/accuracy.csv")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
