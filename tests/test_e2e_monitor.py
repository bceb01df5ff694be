"""End-to-end: the reliability monitor targets of the toy demo run (tests/config/ci.yaml)."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import CI_MODELS
from vrp.benchmark.images import decode_images
from vrp.io import read_json
from vrp.monitor import ReliabilityMonitor, read_bundle
from vrp.shards import load_array

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

MODELS = CI_MODELS


@pytest.mark.parametrize("model", MODELS)
def test_bundle_matches_the_workflows_probe(demo_workdir, model):
    bundle = demo_workdir / "results" / "monitor" / model / "synthetic"
    card, probe, calibrator = read_bundle(bundle)
    peak = read_json(demo_workdir / "results" / "probes" / model / "synthetic" / "peak.json")
    manifest = read_json(
        demo_workdir / "results" / "extract" / model / "synthetic" / "manifest.json"
    )
    assert card["layer"] == peak["peak_layer"]
    assert (
        card["model"]["family"] == model and card["model"]["hidden_size"] == manifest["hidden_size"]
    )
    assert card["calibration"] == "isotonic" and len(calibrator.isotonic_x) >= 1
    assert card["dataset"]["name"] == "synthetic" and len(card["config_hash"]) == 16
    assert card["export_check"]["answers_match"]
    # the exported out-of-fold scores are the workflow's probe at the peak layer (the layer chosen
    # on all folds, as the monitor's), question by question
    oof = pd.read_parquet(bundle / "oof_scores.parquet")
    scores = pd.read_parquet(
        demo_workdir / "results" / "probes" / model / "synthetic" / "scores.parquet"
    )
    assert oof["question_id"].tolist() == scores["question_id"].tolist()
    np.testing.assert_allclose(oof["probe_oof"], scores["probe_peak_in_sample_layer"], atol=1e-9)
    held_out = {row["method"]: row for row in card["held_out"]["metrics"]}
    assert set(held_out) == {"monitor", "confidence", "probe_uncalibrated"}
    assert 0 <= held_out["monitor"]["ece"] <= 1


def test_loaded_monitor_reproduces_the_probe_on_extraction_states(demo_workdir, monkeypatch):
    monkeypatch.chdir(demo_workdir)  # the card names the checkpoint relative to the workdir
    monitor = ReliabilityMonitor.load("results/monitor/llava/synthetic")
    samples = pd.read_parquet("results/extract/llava/synthetic/samples.parquet").head(20)
    questions = pd.read_parquet("results/data/synthetic/eval.parquet").set_index("question_id")
    rows = questions.loc[samples["question_id"]]
    live = monitor.score(decode_images(rows["image"]), rows["question"], rows["task"], batch_size=8)
    hidden = load_array("results/extract/llava/synthetic/manifest.json", "hidden")[
        :20, monitor.layer + 1
    ]
    np.testing.assert_allclose(live["probe_p"], monitor.probe.probability(hidden), atol=1e-5)
    assert live["answer"].tolist() == samples["prediction"].tolist()


def test_monitor_tables_and_figure(demo_workdir):
    results = demo_workdir / "results"
    table = pd.read_csv(results / "table_monitor.csv", keep_default_na=False, na_values=[""])
    assert set(table["model"]) == set(MODELS)
    assert {"in_distribution", "shift"} <= set(table["kind"])
    assert {"all", "task", "pope_setting"} <= set(table["axis"])
    scored = table[table["note"].fillna("") == ""]
    assert set(scored["method"]) == {"monitor", "confidence"}
    for metric in ("auroc", "ece", "brier", "auprc"):
        assert {metric, f"{metric}_lo", f"{metric}_hi"} <= set(table.columns)
    assert (scored["ece_lo"] <= scored["ece_hi"]).all()
    selective = pd.read_csv(
        results / "table_monitor_selective.csv", keep_default_na=False, na_values=[""]
    )
    assert {"acc_at_80", "acc_at_90", "acc_at_95", "accuracy"} <= set(selective.columns)
    for name in ("fig_monitor_reliability.pdf", "fig_monitor_reliability.png"):
        assert (results / "figures" / name).stat().st_size > 1000


def test_cli_from_a_fresh_process(demo_workdir, tmp_path):
    import io

    from PIL import Image

    questions = pd.read_parquet(demo_workdir / "results" / "data" / "synthetic" / "eval.parquet")
    row = questions[questions["task"] == "presence"].iloc[0]
    image = tmp_path / "demo.png"
    Image.open(io.BytesIO(row["image"])).save(image)
    output = tmp_path / "scored.csv"
    cli = [sys.executable, "-c", "import sys; from vrp.monitor import main; sys.exit(main())"]
    result = subprocess.run(
        [
            *cli,
            "results/monitor/llava/synthetic",
            "--image",
            str(image),
            "--question",
            row["question"],
            "--task",
            "presence",
            "--output",
            str(output),
            "--offline",
        ],
        cwd=demo_workdir,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scored = pd.read_csv(output)
    assert scored["answer"].iloc[0] in ("yes", "no") and 0 <= scored["p_correct"].iloc[0] <= 1
    assert "p_correct" in result.stdout
