"""Self-consistency (paper §3.10): score S_SC for every K <= K_max from the stored samples.

The samples come from :func:`vrp.interventions.sampling.sample_answers` (K_max answers per question,
drawn once; the first K do not depend on K_max).

Scoring
-------
S_SC = share of the majority answer among the first K samples (:func:`vrp.stats.self_consistency`).
It is scored against the GREEDY answer's correctness (``correct`` in the extraction's
samples.parquet, as the authors' code does): point-biserial R_pb with a Fisher-z CI, AUROC with a
bootstrap CI, and the precision of the greedy answer among questions whose K samples all agree
(S_SC = 1) with a Wilson 95% CI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vrp import stats
from vrp.analysis.probes import auroc_or_nan, evaluation_subsets


def answers_matrix(samples: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(question ids in first-seen order, (n_questions, k_max) array of normalised answers)."""
    counts = samples.groupby("question_id", sort=False)["sample"].agg(["min", "max", "count"])
    k_max = int(counts["count"].iloc[0])
    if (
        (counts["count"] != k_max).any()
        or (counts["min"] != 0).any()
        or (counts["max"] != k_max - 1).any()
    ):
        raise ValueError(
            "every question needs samples 0..k_max-1 exactly once; the samples file is incomplete"
        )
    wide = samples.pivot(index="question_id", columns="sample", values="normalized")
    order = counts.index.to_numpy()
    return order, wide.loc[order].to_numpy(dtype=object)


def consistency_scores(samples: pd.DataFrame, greedy: pd.DataFrame, k: int) -> pd.DataFrame:
    """S_SC and the majority answer from the first ``k`` samples, joined to the greedy answers.

    ``greedy`` is the extraction's samples.parquet (question_id, task, pope_setting, answer,
    correct). Returns its rows (in its order) with ``majority``, ``s_sc``, ``majority_correct``.
    Raises if a greedy question has no samples.
    """
    order, answers = answers_matrix(samples)
    majority, share = stats.self_consistency(answers, k, normalize=False)
    by_question = pd.DataFrame({"question_id": order, "majority": majority, "s_sc": share})
    merged = greedy[["question_id", "image_id", "task", "pope_setting", "answer", "correct"]].merge(
        by_question, on="question_id", how="left", validate="one_to_one"
    )
    missing = merged["s_sc"].isna()
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} extracted question(s) have no sampled answers, e.g. "
            f"{merged.loc[missing, 'question_id'].iloc[0]!r}; rerun the sampling job"
        )
    merged["majority_correct"] = [
        m == stats.normalize_answer(a) for m, a in zip(merged["majority"], merged["answer"])
    ]
    return merged


SUMMARY_COLUMNS = [
    "k",
    "task",
    "pope_setting",
    "n",
    "n_images",
    "n_pos",
    "greedy_accuracy",
    "majority_accuracy",
    "mean_s_sc",
    "r_pb",
    *(f"r_pb_{k}" for k in stats.INTERVAL_COLUMNS),
    "r_pb_p",
    "auroc",
    *stats.INTERVAL_COLUMNS,
    "precision_at_sc1",
    "n_sc1",
    "n_sc1_correct",
    *(f"precision_{k}" for k in stats.INTERVAL_COLUMNS),
    "cost",
]


def consistency_summary(
    scores: pd.DataFrame, k: int, n_boot: int = 1000, seed: int = 0, unit: str = "image"
) -> pd.DataFrame:
    """R_pb, AUROC and SC=1 precision of S_SC against greedy correctness, per evaluation subset.

    ``scores`` comes from :func:`consistency_scores`. R_pb is NaN where S_SC or correctness is
    constant; AUROC is NaN where the subset holds one class. Every interval has a headline pair
    (the configured ``unit``, named in ``*ci_method``) and both labelled versions: ``*_image`` the
    cluster bootstrap by image, ``*_question`` questions independent (Fisher-z for R_pb, the
    question bootstrap for AUROC, Wilson for the precision: the paper's). Columns
    :data:`SUMMARY_COLUMNS`.
    """
    rows = []
    for task, setting, mask in evaluation_subsets(scores):
        part = scores[mask]
        correct = part["correct"].to_numpy().astype(bool)
        share = part["s_sc"].to_numpy(dtype=np.float64)
        groups = part["image_id"].to_numpy()
        row = {
            "k": k,
            "task": task,
            "pope_setting": setting,
            "n": len(part),
            "n_images": int(len(pd.unique(groups))),
            "n_pos": int(correct.sum()),
            "greedy_accuracy": float(correct.mean()),
            "majority_accuracy": float(part["majority_correct"].mean()),
            "mean_s_sc": float(share.mean()),
        }
        method = stats.cluster.interval_method(unit, n_boot)
        r = stats.point_biserial(share, correct, n_boot=0) if len(part) >= 3 else None
        if r is not None and np.isfinite(r["r"]):
            row.update(
                r_pb=r["r"],
                **stats.unit_intervals(
                    stats.weighted_pearson(share, correct.astype(np.float64)),
                    groups,
                    n_boot,
                    seed,
                    unit,
                    prefix="r_pb_",
                    question=(r["fisher_lo"], r["fisher_hi"], "Fisher-z (questions independent)"),
                ),
                r_pb_p=r["p"],
            )
        else:
            row.update(r_pb=np.nan, **stats.nan_intervals("r_pb_", method), r_pb_p=np.nan)
        auc = auroc_or_nan(correct, share, groups, n_boot=n_boot, seed=seed, unit=unit)
        row.update({key: auc[key] for key in ("auroc", *stats.INTERVAL_COLUMNS)})
        full = stats.precision_at_full_agreement(share, correct)
        row.update(
            precision_at_sc1=full["precision"],
            n_sc1=full["n"],
            n_sc1_correct=full["n_correct"],
            cost=f"{k}x",
        )
        agree = np.isclose(share, 1.0)
        if full["n"]:
            row.update(
                stats.unit_intervals(
                    stats.weighted_mean(correct[agree].astype(np.float64)),
                    groups[agree],
                    n_boot,
                    seed,
                    unit,
                    prefix="precision_",
                    question=(full["lo"], full["hi"], "Wilson (questions independent)"),
                )
            )
        else:
            row.update(stats.nan_intervals("precision_", method))
        rows.append(row)
    return pd.DataFrame(rows)[SUMMARY_COLUMNS]
