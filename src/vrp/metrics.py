"""The accuracy table: per model × dataset × task × POPE setting, with n.

Yes/no tasks (presence, spatial) report precision / recall / F1 with "yes" as the positive class
and the share of "yes" among predictions (the POPE yes-ratio). Multi-class tasks (counting,
object_id) report macro-averaged precision / recall / F1 over the UNION of gold and predicted
answers (scikit-learn's ``labels=None``), so a predicted answer that never occurs in the gold set
counts as a class with precision 0 instead of being ignored; yes_share is empty there. Presence also gets a pooled row with pope_setting "all".

The same metrics from the parsed greedy generations (``generated_*`` columns, on the rows of the
generation cross-check only, ``n_generated`` of them) and ``generation_agreement``, the share of
those rows whose parsed generation equals the scored prediction (:mod:`vrp.scoring`). A
generation that parses to neither "yes" nor "no" counts as wrong and as not-"yes". The yes-ratio
is the share of "yes" answers, as the POPE paper defines it (lmms-eval's aggregate of that name
reports the ground truth's share, constant per split).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

YES_NO_TASKS = ("presence", "spatial")


def _metrics(group: pd.DataFrame, task: str) -> dict:
    y_true, y_pred = group["answer"].to_numpy(), group["prediction"].to_numpy()
    if task in YES_NO_TASKS:
        # "yes" against everything else (an unparsed generation is neither yes nor no)
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=["yes"], average="micro", zero_division=0
        )
        yes_share = float(np.mean(y_pred == "yes"))
    else:
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average="macro", labels=None, zero_division=0
        )
        yes_share = np.nan
    return {
        "n": len(group),
        "accuracy": accuracy_score(y_true, y_pred),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "yes_share": yes_share,
    }


def _generation_metrics(group: pd.DataFrame, task: str) -> dict:
    """The metrics of the parsed generations (cross-checked rows) and their agreement."""
    names = ["n", "accuracy", "precision", "recall", "f1", "yes_share"]
    empty = {
        "n_generated": 0,
        "generation_agreement": np.nan,
        **{f"generated_{k}": np.nan for k in names[1:]},
    }
    if "generation_checked" not in group:
        return empty
    checked = group[group["generation_checked"].astype(bool)]
    if checked.empty:
        return empty
    metrics = _metrics(checked.assign(prediction=checked["generated_answer"]), task)
    return {
        "n_generated": metrics["n"],
        "generation_agreement": float(
            (checked["generated_answer"] == checked["prediction"]).mean()
        ),
        **{f"generated_{k}": metrics[k] for k in names[1:]},
    }


def accuracy_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` needs columns model, dataset, task, pope_setting, answer, prediction (and the
    cross-check's generation_checked, generated_answer where present)."""
    rows = []
    keys = ["model", "dataset", "task", "pope_setting"]
    for (model, dataset, task, setting), group in predictions.groupby(keys, sort=True):
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "task": task,
                "pope_setting": setting or "",
                **_metrics(group, task),
                **_generation_metrics(group, task),
            }
        )
    presence = predictions[predictions["task"] == "presence"]
    for (model, dataset), group in presence.groupby(["model", "dataset"], sort=True):
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "task": "presence",
                "pope_setting": "all",
                **_metrics(group, "presence"),
                **_generation_metrics(group, "presence"),
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values(keys, kind="stable").reset_index(drop=True)
