"""The causal tables: paired statistics against statsmodels / scipy, clustered intervals, the masking contrasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from vrp.analysis.causal_tables import compare_by_subset, masking_table, paired_comparison


def _predictions(correct, predictions=None, tasks=None, images=None):
    n = len(correct)
    return pd.DataFrame(
        {
            "question_id": [f"q{i}" for i in range(n)],
            "image_id": images or [f"img{i // 2}" for i in range(n)],
            "task": tasks or ["presence"] * n,
            "prediction": predictions
            if predictions is not None
            else ["yes" if c else "no" for c in correct],
            "correct": correct,
        }
    )


def test_mcnemar_and_ttest_equal_statsmodels_and_scipy_on_a_hand_made_table():
    # [[both right 5, right->wrong 7], [wrong->right 1, both wrong 3]]
    ref = [1] * 5 + [1] * 7 + [0] * 1 + [0] * 3
    new = [1] * 5 + [0] * 7 + [1] * 1 + [0] * 3
    result = paired_comparison(_predictions(ref), _predictions(new), n_boot=200)
    expected = mcnemar(np.array([[5, 7], [1, 3]]), exact=True).pvalue
    assert result["mcnemar_p"] == pytest.approx(expected, abs=0)
    assert result["mcnemar_p"] == pytest.approx(
        2 * (1 + 8) / 2**8
    )  # 2 * P(X <= 1), X ~ Bin(8, 1/2)
    assert (result["mcnemar_b"], result["mcnemar_c"]) == (7, 1)
    t = stats.ttest_rel(ref, new)
    assert result["ttest_t"] == pytest.approx(t.statistic) and result["ttest_p"] == pytest.approx(
        t.pvalue
    )
    assert result["n"] == 16 and result["drop_pp"] == pytest.approx(100 * 6 / 16)
    assert (result["right_to_wrong"], result["wrong_to_right"], result["answers_changed"]) == (
        7,
        1,
        8,
    )
    assert result["acc_reference"] == pytest.approx(75.0) and result[
        "acc_changed"
    ] == pytest.approx(37.5)
    assert result["drop_lo"] <= result["drop_pp"] <= result["drop_hi"]
    # the headline paired test is McNemar clustered by image (two questions per image here):
    # d_g per image = (0, 0, 1, 2, 2, 2, -1, 0) -> X² = 6² / 14
    assert result["mcnemar_clustered_stat"] == pytest.approx(36 / 14)
    assert (
        result["paired_p"]
        == result["mcnemar_clustered_p"]
        == pytest.approx(stats.chi2.sf(36 / 14, 1))
    )
    assert result["paired_test"].startswith("clustered McNemar")
    assert (
        result["drop_ci_method"].startswith("cluster bootstrap by image")
        and result["n_images"] == 8
    )
    question = paired_comparison(_predictions(ref), _predictions(new), n_boot=200, unit="question")
    assert question["paired_p"] == question["mcnemar_p"]
    assert (question["acc_reference_lo"], question["acc_reference_hi"]) == (
        question["acc_reference_lo_question"],
        question["acc_reference_hi_question"],
    )


def test_clustered_drop_interval_is_wider_when_images_share_outcomes():
    # 40 images x 5 questions; masking flips whole images: the clustered interval must be wider
    rng = np.random.default_rng(0)
    flipped = np.repeat(rng.random(40) < 0.3, 5)
    ref, new = [1] * 200, (~flipped).astype(int).tolist()
    images = [f"img{i // 5}" for i in range(200)]
    result = paired_comparison(
        _predictions(ref, images=images), _predictions(new, images=images), n_boot=400
    )
    width_image = result["drop_hi_image"] - result["drop_lo_image"]
    width_question = result["drop_hi_question"] - result["drop_lo_question"]
    assert width_image > 1.7 * width_question  # sqrt(design effect 5) ~ 2.2
    assert result["mcnemar_clustered_p"] > result["mcnemar_p"]


def test_paired_comparison_counts_changed_answers_without_a_correctness_flip():
    ref = _predictions([False, False], predictions=["1", "2"])
    new = _predictions([False, False], predictions=["3", "2"])
    result = paired_comparison(ref, new, n_boot=50)
    assert (
        result["answers_changed"] == 1 and result["right_to_wrong"] == result["wrong_to_right"] == 0
    )


def test_paired_comparison_refuses_different_questions():
    with pytest.raises(ValueError, match="same questions"):
        paired_comparison(_predictions([1, 0]), _predictions([1, 0, 1]))


def test_compare_by_subset_gives_all_then_each_task():
    tasks = ["presence", "presence", "object_id", "object_id"]
    rows = compare_by_subset(
        _predictions([1, 1, 1, 1], tasks=tasks), _predictions([1, 1, 0, 1], tasks=tasks), n_boot=50
    )
    assert [r["subset"] for r in rows] == ["all", "object_id", "presence"]
    assert [r["drop_pp"] for r in rows] == [25.0, 50.0, 0.0]


def test_masking_table_contrasts():
    base = _predictions([1, 1, 1, 1])
    base["task"] = ["presence", "presence", "counting", "counting"]
    runs = []
    for condition, seed, correct in [
        ("high", -1, [0, 0, 0, 1]),
        ("low", -1, [1, 1, 1, 1]),
        ("random", 0, [1, 0, 1, 1]),
        ("random", 1, [1, 1, 1, 1]),
    ]:
        runs.append(
            _predictions(correct).assign(
                condition=condition, seed=seed, p=0.3, n_masked=[19, 19, 4, 4]
            )
        )
    table = masking_table(base, pd.concat(runs), n_boot=50)
    # n_masked_mean from each row's own questions (grids vary per image)
    high = table[(table["contrast"] == "full_vs_high")].set_index("subset")["n_masked_mean"]
    assert (high["all"], high["presence"], high["counting"]) == (11.5, 19.0, 4.0)
    table = table[table["subset"] == "all"].set_index(["contrast", "seed"])["drop_pp"]
    assert table[("full_vs_high", -1)] == 75.0
    assert table[("full_vs_low", -1)] == 0.0
    assert table[("low_vs_high", -1)] == 75.0  # the paper's effect size LOW - HIGH
    assert table[("full_vs_random", 0)] == 25.0 and table[("full_vs_random", 1)] == 0.0
    assert table[("random_vs_high", 0)] == 50.0 and table[("random_vs_high", 1)] == 75.0
    assert len(table) == 7


def test_per_model_tables_label_each_models_table_and_refuse_runs_without_a_baseline(tmp_path):
    from types import SimpleNamespace

    from vrp.analysis.causal_tables import per_model_tables

    def write(name, frame):
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path)
        return str(path)

    base = _predictions([1, 1, 1, 1])
    runs = [
        pd.concat(
            [
                _predictions(high).assign(condition="high"),
                _predictions([1, 1, 1, 1]).assign(condition="low"),
            ]
        ).assign(seed=-1, p=p, n_masked=3, model=model, dataset="d")
        for model, p, high in (
            ("m2", 0.5, [0, 0, 1, 1]),
            ("m1", 0.5, [1, 1, 1, 0]),
            ("m1", 0.2, [1, 1, 1, 1]),
        )
    ]
    inputs = SimpleNamespace(
        baselines=[write(m, base.assign(model=m, dataset="d")) for m in ("m2", "m1")],
        runs=[write(f"run{i}", run) for i, run in enumerate(runs)],
    )
    table = per_model_tables(
        inputs, masking_table, {"m1": "fam1", "m2": "fam2"}, by=["p"], n_boot=20
    )
    assert list(table.columns[:3]) == ["model", "family", "dataset"]
    full_vs_high = table[(table["contrast"] == "full_vs_high") & (table["subset"] == "all")]
    assert full_vs_high[["model", "family", "p", "drop_pp"]].values.tolist() == [
        ["m1", "fam1", 0.2, 0.0],
        ["m1", "fam1", 0.5, 25.0],
        ["m2", "fam2", 0.5, 50.0],
    ]
    with pytest.raises(ValueError, match=r"\('m2', 'd'\)\] have no baseline predictions"):
        per_model_tables(
            SimpleNamespace(baselines=inputs.baselines[1:], runs=inputs.runs),
            masking_table,
            {"m1": "fam1", "m2": "fam2"},
            by=["p"],
            n_boot=20,
        )
