"""End-to-end: Tables 1, 2, 4 and Figures 2a, 3, 4, 5 on the toy demo, and what a config change reruns."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import CI_MODELS, planned_jobs

pytestmark = pytest.mark.slow

MODELS = set(CI_MODELS)
UPSTREAM = {
    "data_synthetic",
    "zoo_vocabulary",
    "zoo_train",
    "extract_activations",
    "evaluate_accuracy",
}


def test_tables_have_one_row_per_model_and_valid_numbers(demo_workdir):
    results = demo_workdir / "results"
    table1 = pd.read_csv(results / "table1.csv")
    assert set(table1["model"]) == MODELS and len(table1) == len(MODELS)
    assert {"topk_r2_k1", "topk_r2_k3", "topk_r2_max", "stress_accuracy", "stress_auroc"} <= set(
        table1.columns
    )
    assert ((table1["accuracy"] >= 0) & (table1["accuracy"] <= 1)).all()
    r2 = table1[["topk_r2_k1", "topk_r2_k3"]].to_numpy()
    assert np.allclose(table1["topk_r2_max"], np.nanmax(r2, axis=1))
    samples = pd.read_parquet(results / "extract" / "llava" / "synthetic" / "samples.parquet")
    assert table1.set_index("model").loc["llava", "accuracy"] == pytest.approx(
        samples["correct"].mean()
    )

    table2 = pd.read_csv(results / "table2.csv").set_index("model")
    assert set(table2.index) == MODELS
    assert (table2["peak_visual_layer"].between(0, table2["n_layers"] - 1)).all()
    assert ((table2["mlp_share"] >= 0) & (table2["mlp_share"] <= 1)).all()
    # ci.yaml sets paligemma's answer layers to [0, 1]; the others default to the last ceil(2/4) = 1 layer
    assert (table2.loc["paligemma", "answer_first"], table2.loc["llava", "answer_first"]) == (0, 1)

    table4 = pd.read_csv(results / "table4.csv")
    assert set(table4["model"]) == MODELS | {"pooled", "pooled_stacked"}
    assert set(table4["metric"]) == {"C_k", "H_s"}
    pooled = table4[table4["model"].isin(["pooled", "pooled_stacked"])]
    assert (pooled["n"] == len(MODELS) * len(samples)).all()
    # the models answer about the same images: one cluster per image, not per (model, image)
    assert (pooled["n_images"] == samples["image_id"].nunique()).all()
    finite = table4.dropna(subset=["r"])
    assert ((finite["fisher_lo"] <= finite["r"]) & (finite["r"] <= finite["fisher_hi"])).all()


def test_attention_stats_follow_the_configured_layer_range(demo_workdir):
    stats = pd.read_parquet(
        demo_workdir / "results" / "attention" / "llava" / "synthetic" / "stats.parquet"
    )
    other = pd.read_parquet(
        demo_workdir / "results" / "attention" / "qwen2vl" / "synthetic" / "stats.parquet"
    )
    assert set(zip(stats["layer_first"], stats["layer_last"])) == {(1, 1)}  # ci.yaml: llava [1, 1]
    assert set(zip(other["layer_first"], other["layer_last"])) == {(0, 1)}  # all layers
    assert stats["hs"].between(0, np.log(64) + 1e-6).all()
    assert (stats["ck"] >= 0).all()


def test_figures_exist_and_case_study_follows_its_rule(demo_workdir):
    figures = demo_workdir / "results" / "figures"
    for name in ("fig2a", "fig3", "fig4", "fig5"):
        assert (figures / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
        assert (figures / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    case = json.loads((figures / "fig5_case.json").read_text())
    stats = pd.read_parquet(
        demo_workdir / "results" / "attention" / case["model"] / case["dataset"] / "stats.parquet"
    )
    row = stats.iloc[case["row"]]
    assert row["question_id"] == case["question_id"]
    if case["tier"] <= 2:
        assert not row["correct"]
    if case["tier"] <= 1:
        assert row["ck"] == 0


def _changed(workdir, tmp_path, attention):
    """Every job (whatever its rule's name) a dry run of the default targets plans after the change."""
    stale = planned_jobs(workdir)
    assert not stale, (
        f"the demo workdir is out of date before any config change: a dry run plans {stale}"
    )
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump({"attention": attention}))
    jobs = planned_jobs(workdir, "--configfile", str(path))
    assert not UPSTREAM & set(jobs), f"an attention setting reran upstream jobs: {jobs}"
    return {rule: count for rule, count in jobs.items() if rule != "all"}  # "all" has no output


# What reads the per-question H_s / C_k (results/attention/*/stats.parquet): the stress test and
# Table 1, Table 4, the Figure 5 case, the probe scores (Tables 3, 7, 8) and the claims check.
READS_ATTENTION_STATS = {
    "attention_stress_test": 1,
    "attention_table1": 1,
    "attention_table4": 1,
    "attention_figure5": 1,
    "probes_scores": 1,
    "probes_table3": 1,
    "probes_table7": 1,
    "probes_table8": 1,
    "report_claims": 1,
}


def test_changing_the_ck_definition_reruns_tables_4_7_8_and_the_claims(demo_workdir, tmp_path):
    n = len(MODELS)
    per_model = {"attention_stats": n, "attention_stress_test": n, "probes_scores": n}
    assert _changed(demo_workdir, tmp_path, {"ck_method": "dbscan"}) == {
        **READS_ATTENTION_STATS,
        **per_model,
    }


def test_changing_one_models_layer_range_reruns_only_that_model(demo_workdir, tmp_path):
    assert _changed(demo_workdir, tmp_path, {"layer_range": {"llava": [0, 0]}}) == {
        **READS_ATTENTION_STATS,
        "attention_stats": 1,
    }


def test_changing_k_reruns_only_the_top_heads_and_table1(demo_workdir, tmp_path):
    assert _changed(demo_workdir, tmp_path, {"top_k_heads": [2]}) == {
        "attention_top_heads": len(MODELS),
        "attention_table1": 1,
        "report_claims": 1,
    }


def test_changing_answer_layers_reruns_only_table2(demo_workdir, tmp_path):
    assert _changed(demo_workdir, tmp_path, {"answer_layers": {"paligemma": [1, 1]}}) == {
        "attention_table2": 1
    }
