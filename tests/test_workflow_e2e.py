"""End-to-end: the demo DAG at toy size (tests/config/ci.yaml) runs to results/accuracy.csv."""

import pandas as pd
import pytest

from conftest import CI_MODELS, planned_jobs
from vrp.io import read_json

pytestmark = pytest.mark.slow


def test_accuracy_table_is_built(demo_workdir):
    table = pd.read_csv(demo_workdir / "results" / "accuracy.csv", keep_default_na=False)
    # every family, the two beyond the paper's three included (ci.yaml switches them on)
    assert (
        set(table["model"])
        == set(CI_MODELS)
        == {"llava", "paligemma", "qwen2vl", "qwen25vl", "gemma3"}
    )
    presence = table[table["task"] == "presence"]
    assert set(presence["pope_setting"]) == {"random", "popular", "adversarial", "all"}
    assert set(table["task"]) == {"presence", "counting", "spatial", "object_id"}
    assert (table["n"] > 0).all()
    numeric = table[["accuracy", "precision", "recall", "f1"]].astype(float)
    assert ((numeric >= 0) & (numeric <= 1)).all().all()


def test_extraction_manifest_matches_the_models(demo_workdir):
    for model in CI_MODELS:
        manifest = read_json(
            demo_workdir / "results" / "extract" / model / "synthetic" / "manifest.json"
        )
        layers, n = manifest["num_layers"], manifest["n_samples"]
        arrays = manifest["arrays"]
        assert arrays["hidden"]["shape"] == [n, layers + 1, manifest["hidden_size"]]
        assert arrays["image_attention"]["shape"] == [n, layers, 64]  # 8x8 grid at 64 px
        assert arrays["head_logit"]["shape"] == [n, layers, manifest["num_heads"]]
        assert manifest["transformers_version"].startswith("5.")


def test_second_run_does_nothing(demo_workdir):
    assert planned_jobs(demo_workdir) == {}
