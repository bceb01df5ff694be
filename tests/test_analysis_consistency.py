"""Tests for vrp.analysis.consistency: first-K scoring and the summary statistics."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from vrp.analysis import consistency as C
from vrp.stats import normalize_answer


def _long(answers: dict[str, list[str]]) -> pd.DataFrame:
    rows = [
        {"question_id": q, "sample": s, "text": text, "normalized": normalize_answer(text)}
        for q, texts in answers.items()
        for s, text in enumerate(texts)
    ]
    return pd.DataFrame(rows)


def _greedy(question_ids, answers, correct) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "question_id": question_ids,
            "image_id": [f"i{q}" for q in question_ids],
            "task": "presence",
            "pope_setting": "random",
            "answer": answers,
            "correct": correct,
        }
    )


def test_first_k_samples_give_known_shares_and_majorities():
    samples = _long(
        {
            "a": ["Yes.", "yes", "no", "no"],  # k=2: yes 2/2; k=4: tie 2/2, first seen (yes) wins
            "b": ["no", "No!", "no", "yes"],  # k=2: no 1.0; k=4: no 0.75
            "c": ["two", "three", "2", "three"],  # k=4: three 0.5
        }
    )
    greedy = _greedy(["c", "a", "b"], ["three", "yes", "yes"], [True, True, False])
    k2 = C.consistency_scores(samples, greedy, 2)
    assert k2["question_id"].tolist() == ["c", "a", "b"]  # the greedy table's order
    assert k2["s_sc"].tolist() == [0.5, 1.0, 1.0]
    assert k2["majority"].tolist() == ["two", "yes", "no"]
    k4 = C.consistency_scores(samples, greedy, 4)
    assert k4["s_sc"].tolist() == [0.5, 0.5, 0.75]
    assert k4["majority"].tolist() == ["three", "yes", "no"]
    assert k4["majority_correct"].tolist() == [True, True, False]
    with pytest.raises(ValueError, match="k must lie in"):
        C.consistency_scores(samples, greedy, 5)
    with pytest.raises(ValueError, match="no sampled answers"):
        C.consistency_scores(samples, _greedy(["a", "zzz"], ["yes", "no"], [True, False]), 2)
    with pytest.raises(ValueError, match="incomplete"):
        C.answers_matrix(samples[samples["sample"] != 3].iloc[:-1])


def test_summary_equals_sklearn_scipy_and_statsmodels():
    rng = np.random.default_rng(0)
    n, k = 240, 10
    correct = rng.random(n) < 0.6
    # "yes" count out of k: higher when the greedy answer is right
    agree = rng.binomial(k, np.where(correct, 0.85, 0.6))
    answers = {f"q{i}": ["yes"] * a + ["no"] * (k - a) for i, a in enumerate(agree)}
    greedy = _greedy(list(answers), ["yes"] * n, correct)
    scores = C.consistency_scores(_long(answers), greedy, k)
    share = np.maximum(agree, k - agree) / k  # the majority's share, whichever answer it is
    np.testing.assert_allclose(scores["s_sc"], share)
    summary = C.consistency_summary(scores, k, n_boot=200, seed=0)
    assert list(summary.columns) == C.SUMMARY_COLUMNS
    everything = summary[summary["task"] == "all"].iloc[0]
    assert everything["auroc"] == roc_auc_score(correct, share)
    assert everything["lo"] < everything["auroc"] < everything["hi"]
    assert everything["r_pb"] == pytest.approx(scipy_stats.pointbiserialr(correct, share).statistic)
    full = share == 1
    lo, hi = proportion_confint(
        int(correct[full].sum()), int(full.sum()), alpha=0.05, method="wilson"
    )
    assert (everything["n_sc1"], everything["n_sc1_correct"]) == (
        int(full.sum()),
        int(correct[full].sum()),
    )
    assert everything["precision_at_sc1"] == correct[full].mean()
    assert (everything["precision_lo_question"], everything["precision_hi_question"]) == (lo, hi)
    assert (
        everything["precision_lo_image"]
        <= everything["precision_at_sc1"]
        <= everything["precision_hi_image"]
    )
    assert (everything["precision_lo"], everything["precision_hi"]) == (
        everything["precision_lo_image"],
        everything["precision_hi_image"],
    )
    assert everything["r_pb_ci_method"].startswith("cluster bootstrap by image")
    assert everything["cost"] == "10x" and everything["k"] == k
    assert everything["greedy_accuracy"] == correct.mean()
    assert everything["majority_accuracy"] == np.mean(
        agree >= k / 2
    )  # ties keep the first answer, "yes"
    assert set(summary["pope_setting"]) == {"", "random", "all"}


def test_constant_agreement_gives_nan_correlation_not_an_error():
    answers = {f"q{i}": ["no"] * 3 for i in range(6)}
    scores = C.consistency_scores(
        _long(answers), _greedy(list(answers), ["no"] * 6, [True, False] * 3), 3
    )
    row = C.consistency_summary(scores, 3, n_boot=20).iloc[0]
    assert np.isnan(row["r_pb"]) and row["auroc"] == 0.5 and row["precision_at_sc1"] == 0.5
