"""Known-answer tests for the accuracy table."""

import numpy as np
import pandas as pd
import pytest

from vrp.metrics import accuracy_table


def _predictions():
    # presence/random: answers yes yes no no, predictions yes no yes no -> acc .5, P .5, R .5
    # presence/adversarial: answers yes no, predictions yes yes -> acc .5, P .5, R 1, yes-share 1
    # counting: answers 1 2 2, predictions 1 2 1 -> acc 2/3
    rows = [
        ("presence", "random", "yes", "yes"),
        ("presence", "random", "yes", "no"),
        ("presence", "random", "no", "yes"),
        ("presence", "random", "no", "no"),
        ("presence", "adversarial", "yes", "yes"),
        ("presence", "adversarial", "no", "yes"),
        ("counting", "", "1", "1"),
        ("counting", "", "2", "2"),
        ("counting", "", "2", "1"),
    ]
    frame = pd.DataFrame(rows, columns=["task", "pope_setting", "answer", "prediction"])
    return frame.assign(model="m", dataset="d")


def test_accuracy_table_known_values():
    table = accuracy_table(_predictions()).set_index(["task", "pope_setting"])
    random = table.loc[("presence", "random")]
    assert (random["n"], random["accuracy"], random["precision"], random["recall"]) == (
        4,
        0.5,
        0.5,
        0.5,
    )
    assert random["yes_share"] == 0.5
    adversarial = table.loc[("presence", "adversarial")]
    assert adversarial["recall"] == 1.0 and adversarial["yes_share"] == 1.0
    assert adversarial["f1"] == pytest.approx(2 / 3)
    pooled = table.loc[("presence", "all")]
    assert pooled["n"] == 6 and pooled["accuracy"] == pytest.approx(0.5)
    counting = table.loc[("counting", "")]
    assert counting["accuracy"] == pytest.approx(2 / 3)
    # macro recall over classes 1 (1/1) and 2 (1/2)
    assert counting["recall"] == pytest.approx(0.75)
    assert np.isnan(counting["yes_share"])


def test_generation_cross_check_columns_known_values():
    # presence/random, checked rows 0, 1, 2: generated "yes", "the image shows" (unparsed), "no"
    # against answers yes, yes, no and predictions yes, no, yes -> agreement 1/3 (row 0 only);
    # generated accuracy 2/3, precision 1 (one yes, correct), recall 1/2 (unparsed yes: missed)
    frame = _predictions()
    frame["generation_checked"] = [True, True, True] + [False] * 6
    frame["generated_answer"] = ["yes", "the image shows", "no"] + [""] * 6
    table = accuracy_table(frame).set_index(["task", "pope_setting"])
    random = table.loc[("presence", "random")]
    assert random["n_generated"] == 3
    assert random["generation_agreement"] == pytest.approx(1 / 3)
    assert random["generated_accuracy"] == pytest.approx(2 / 3)
    assert (random["generated_precision"], random["generated_recall"]) == (1.0, 0.5)
    assert random["generated_yes_share"] == pytest.approx(1 / 3)
    # scored metrics are unchanged by the generation columns
    assert random["accuracy"] == 0.5
    assert table.loc[("counting", "")]["n_generated"] == 0
    assert np.isnan(table.loc[("counting", "")]["generation_agreement"])


def test_macro_metrics_count_predicted_answers_outside_the_gold_set():
    # gold 1 1 2 2, predicted 1 3 2 2: "3" is never gold; its class enters the macro average
    frame = pd.DataFrame(
        {
            "task": "counting",
            "pope_setting": "",
            "answer": ["1", "1", "2", "2"],
            "prediction": ["1", "3", "2", "2"],
        }
    ).assign(model="m", dataset="d")
    row = accuracy_table(frame).iloc[0]
    # precision per class 1: 1/1, 2: 2/2, 3: 0/1 -> 2/3; recall 1: 1/2, 2: 1, 3: 0 (no gold) -> 1/2
    assert row["precision"] == pytest.approx(2 / 3) and row["recall"] == pytest.approx(0.5)
