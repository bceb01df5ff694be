"""End-to-end: the causal sweeps on the toy demo (tests/config/ci.yaml), and that a new sweep value
runs only the jobs whose outputs it adds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import CI_MODELS, planned_jobs
from vrp.io import read_json

pytestmark = pytest.mark.slow

MODELS = CI_MODELS
UPSTREAM = {
    "zoo_train",
    "extract_activations",
    "probes_layers",
    "probes_neurons",
    "causal_baseline",
    "causal_ablation_layers",
}


def _table(workdir, name):
    return pd.read_csv(workdir / "results" / name, keep_default_na=False, na_values=[""])


def test_masking_table_and_figure(demo_workdir):
    table = _table(demo_workdir, "table_masking.csv")
    assert set(table["model"]) == set(MODELS) and set(table["p"]) == {0.3}
    assert set(table["contrast"]) == {
        "full_vs_high",
        "full_vs_low",
        "full_vs_random",
        "low_vs_high",
        "random_vs_high",
    }
    overall = table[table["subset"] == "all"]
    # ci.yaml: 2 random seeds -> full_vs_random and random_vs_high once per seed
    assert overall.groupby("model").size().to_dict() == {m: 7 for m in MODELS}
    assert (overall["n_masked_mean"] == 19).all()  # floor(0.3 * 64 + 0.5) of the 8x8 grid
    assert set(table["subset"]) == {"all", "presence", "counting", "spatial", "object_id"}
    assert table["mcnemar_p"].between(0, 1).all() and table["ttest_p"].between(0, 1).all()
    assert (table["drop_lo"] <= table["drop_pp"] + 1e-9).all() and (
        table["drop_pp"] <= table["drop_hi"] + 1e-9
    ).all()
    np.testing.assert_allclose(
        table["drop_pp"], table["acc_reference"] - table["acc_changed"], atol=1e-3
    )
    for model in MODELS:
        runs = pd.read_parquet(
            demo_workdir / "results" / "masking" / "p~0.3" / model / "synthetic.parquet"
        )
        assert (
            runs.groupby(["condition", "seed"]).size().nunique() == 1
        )  # every condition scores every question
    for suffix in ("pdf", "png"):
        assert (
            demo_workdir / "results" / "figures" / f"fig_masking.{suffix}"
        ).stat().st_size > 1000


def test_table5_covers_every_condition_layer_and_task(demo_workdir):
    table = _table(demo_workdir, "table5.csv")
    assert set(table["model"]) == set(MODELS)
    assert set(table["condition"]) == {"baseline", "top_k", "random_k", "single"}
    assert "object_id" in set(table["subset"])
    for model in MODELS:
        plan = read_json(demo_workdir / "results" / "causal" / "layers" / model / "synthetic.json")
        assert plan == {
            "num_layers": 2,
            "k_sweep_layer": 1,
            "sweep_layers": [0, 1],
        }  # 10..31 of 32 -> 0, 1
        rows = table[(table["model"] == model) & (table["subset"] == "all")]
        assert set(rows.loc[rows["condition"] == "top_k", "layer"]) == {0, 1}
        assert sorted(rows.loc[rows["condition"] == "single", "rank"]) == [1, 2]
        top = rows[(rows["condition"] == "top_k") & (rows["layer"] == 1)].iloc[0]
        ranking = pd.read_parquet(
            demo_workdir / "results" / "probes" / model / "synthetic" / "neuron_ranking.parquet"
        )
        expected = ranking[ranking["layer"] == 1].sort_values("rank")["channel"].head(2).tolist()
        assert top["channels"] == " ".join(map(str, expected))
        random_k = rows[rows["condition"] == "random_k"]
        for channels in random_k["channels"]:
            assert not set(channels.split()) & set(map(str, expected))
    assert (table["right_to_wrong"] + table["wrong_to_right"] <= table["answers_changed"]).all()
    assert ((table["condition"] != "baseline") | (table["drop_pp"] == 0)).all()


def test_table6_is_at_the_peak_layer(demo_workdir):
    table = _table(demo_workdir, "table6.csv")
    assert set(table["condition"]) == {"baseline", "random_fraction", "bypass", "top_k"}
    for model in MODELS:
        peak = read_json(demo_workdir / "results" / "probes" / model / "synthetic" / "peak.json")[
            "peak_layer"
        ]
        rows = table[(table["model"] == model) & (table["condition"] != "baseline")]
        assert set(rows["layer"]) == {peak}
    fractions = table[table["condition"] == "random_fraction"]
    assert set(fractions["fraction"]) == {0.5} and set(fractions["n_channels"]) == {
        64
    }  # half of 128
    assert set(table.loc[table["condition"] == "bypass", "n_channels"]) == {128}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"masking": {"p_values": [0.3, 0.4]}},
            {"causal_masking": len(MODELS), "causal_table_masking": 1, "causal_figure_masking": 1},
        ),
        # one new largest k -> top-3 and the single-neuron job (now ranks 1..3), per model
        (
            {"ablation": {"k_values": [2, 3]}},
            {
                "causal_ablation_top_k": len(MODELS),
                "causal_ablation_single": len(MODELS),
                "causal_table5": 1,
            },
        ),
        # a new k below the largest adds no rank: the single-neuron jobs stay done
        (
            {"ablation": {"k_values": [1, 2]}},
            {"causal_ablation_top_k": len(MODELS), "causal_table5": 1},
        ),
        (
            {
                "ablation": {"large_scale": {"fractions": [0.5, 0.25]}}
            },  # the fractions job of each model
            {"causal_ablation_peak_fraction": len(MODELS), "causal_table6": 1},
        ),
    ],
    ids=["new-p", "new-largest-k", "new-smaller-k", "new-fraction"],
)
def test_a_new_sweep_value_runs_only_the_new_jobs(demo_workdir, tmp_path, change, expected):
    changed = tmp_path / "change.yaml"
    changed.write_text(yaml.safe_dump(change))
    planned = planned_jobs(demo_workdir, "--configfile", str(changed))
    causal = {rule: n for rule, n in planned.items() if rule.startswith("causal_")}
    assert causal == expected
    assert not set(planned) & UPSTREAM
