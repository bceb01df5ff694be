"""Tests for vrp.stats.consistency (answer normalisation, self-consistency, SC=1 precision)."""

import math

import numpy as np
import pytest

from vrp.stats.consistency import normalize_answer, precision_at_full_agreement, self_consistency


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Yes.", "yes"),
        (" Two apples", "two"),
        ("NO!", "no"),
        ("left-of", "left"),
        ("  don't know", "dont"),
        ("3", "3"),
        ("", ""),
        ("...", ""),
        (None, ""),
        (float("nan"), ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_self_consistency_majority_ties_and_k_prefix():
    samples = [
        ["Yes", "yes.", "No", "yes", "no"],  # 3 x yes among 5
        ["two", "Three", "three", "two", "4"],  # tie two/three at k=4 -> "two" (first seen)
        ["cat", "cat", "cat", "cat", "cat"],
    ]
    majority, share = self_consistency(samples, k=5)
    assert majority.tolist() == ["yes", "two", "cat"]
    np.testing.assert_allclose(share, [0.6, 0.4, 1.0])
    majority, share = self_consistency(samples, k=4)
    assert majority.tolist() == ["yes", "two", "cat"]
    np.testing.assert_allclose(share, [0.75, 0.5, 1.0])
    # Only the first 3 samples count: "three" twice beats "two" once.
    majority, share = self_consistency(samples, k=3)
    assert majority.tolist() == ["yes", "three", "cat"]
    np.testing.assert_allclose(share, [2 / 3, 2 / 3, 1.0])
    # k = 1 is the first sample; without normalisation "Yes" and "yes." differ.
    assert self_consistency(samples, k=1)[0].tolist() == ["yes", "two", "cat"]
    assert self_consistency(samples, k=2, normalize=False)[1].tolist() == [0.5, 0.5, 1.0]
    with pytest.raises(ValueError, match="k must lie"):
        self_consistency(samples, k=6)


def test_precision_at_full_agreement():
    share = [1.0, 1.0, 1.0, 0.9, 0.5, 1.0]
    correct = [1, 1, 0, 0, 1, 1]
    out = precision_at_full_agreement(share, correct)
    assert (out["n"], out["n_correct"]) == (4, 3) and out["precision"] == pytest.approx(0.75)
    assert out["lo"] < 0.75 < out["hi"]
    empty = precision_at_full_agreement([0.5, 0.7], [1, 0])
    assert empty["n"] == 0 and math.isnan(empty["precision"]) and math.isnan(empty["lo"])
