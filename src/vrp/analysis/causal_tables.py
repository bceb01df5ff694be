"""The causal tables: paired comparisons of intervention runs against the unchanged model.

Paired comparisons
------------------
:func:`paired_comparison` / :func:`compare_by_subset` turn two per-question prediction tables of
the same questions into one row of statistics (:mod:`vrp.stats.paired`): n, both accuracies with
image-clustered intervals (the questions of one image are one cluster) beside the question-level
ones (Wilson / question bootstrap), the accuracy drop (percentage points) likewise, the clustered
McNemar test (headline by default) beside the exact McNemar test and the paired t-test, correctness
flips and the number of changed answers.

Tables
------
* :func:`masking_table`: the contrasts of one masking run (:func:`vrp.interventions.masking.run_masking`,
  paper §3.11) against the unmasked baseline and each other.
* :func:`ablation_table`: Tables 5 and 6 (paper §3.12, §3.13), every ablation condition
  (:func:`vrp.interventions.ablation.run_ablation`) against the unablated baseline.
* :func:`per_model_tables`: one of them per (model, dataset) of a job's runs, labelled and pooled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from vrp.interventions.conditions import CONDITION_KEYS
from vrp.per_model import prepend_labels
from vrp.stats import (
    INTERVAL_COLUMNS,
    clustered_mcnemar,
    flips,
    mcnemar_exact,
    paired_ttest,
    unit_intervals,
    weighted_mean,
    wilson_interval,
)

ALL_TASKS = "all"


# ---------------------------------------------------------------------------- paired statistics
def _aligned(reference: pd.DataFrame, changed: pd.DataFrame) -> pd.DataFrame:
    if reference["question_id"].duplicated().any() or changed["question_id"].duplicated().any():
        raise ValueError("paired comparison needs one row per question_id in each condition")
    if "image_id" not in reference.columns:
        raise ValueError(
            "paired comparison needs the questions' image_id (the clusters of the intervals); "
            "rerun the causal baseline / masking / ablation jobs, whose outputs now carry it"
        )
    merged = reference.merge(
        changed.drop(columns=["image_id"], errors="ignore"),
        on="question_id",
        suffixes=("_ref", "_new"),
        validate="one_to_one",
    )
    if len(merged) != len(reference) or len(merged) != len(changed):
        raise ValueError(
            f"paired comparison needs the same questions in both conditions: {len(reference)} and "
            f"{len(changed)} rows share {len(merged)} question_ids"
        )
    return merged


PAIRED_TESTS = {
    "image": "clustered McNemar by image (Obuchowski/Durkalski)",
    "question": "exact McNemar (questions independent)",
}


def _accuracy_intervals(
    correct: np.ndarray, groups, n_boot: int, seed: int, unit: str, prefix: str
) -> dict:
    """Interval columns of an accuracy in percent: image-clustered, and Wilson for questions independent."""
    lo, hi = wilson_interval(int(correct.sum()), len(correct))
    return unit_intervals(
        weighted_mean(100.0 * correct),
        groups,
        n_boot,
        seed,
        unit,
        prefix=prefix,
        question=(100.0 * lo, 100.0 * hi, "Wilson (questions independent)"),
    )


def paired_comparison(
    reference: pd.DataFrame,
    changed: pd.DataFrame,
    n_boot: int = 2000,
    seed: int = 0,
    unit: str = "image",
) -> dict:
    """Statistics of ``changed`` against ``reference`` on the same questions (matched by question_id).

    Both frames need question_id, prediction and correct; ``reference`` also image_id (the
    cluster of each question). Returns n, n_images; acc_reference / acc_changed (percent) and
    drop_pp (reference minus changed), each with :func:`vrp.stats.unit_intervals` columns
    (``*_lo``/``*_hi`` the configured ``unit``, ``*_ci_method``, ``*_lo_image``/``*_hi_image`` the
    cluster bootstrap by image, ``*_lo_question``/``*_hi_question`` questions independent: Wilson
    for the accuracies, the paired question bootstrap for the drop); ``paired_p`` / ``paired_test``
    the headline paired test (the clustered McNemar of :func:`vrp.stats.clustered_mcnemar` for
    ``unit="image"``, the exact McNemar for ``"question"``); the question-level exact McNemar
    (mcnemar_b = right->wrong, mcnemar_c = wrong->right, mcnemar_p), the clustered one
    (mcnemar_clustered_stat, mcnemar_clustered_p), the paired t-test (ttest_t, ttest_p; the
    paper's),
    right_to_wrong, wrong_to_right and answers_changed (questions whose predicted answer differs).
    """
    if unit not in PAIRED_TESTS:
        raise ValueError(f"stats.interval_unit must be one of {list(PAIRED_TESTS)}, got {unit!r}")
    merged = _aligned(reference, changed)
    a = merged["correct_ref"].to_numpy(dtype=bool)
    b = merged["correct_new"].to_numpy(dtype=bool)
    groups = merged["image_id"].to_numpy()
    mcnemar = mcnemar_exact(a, b)
    clustered = clustered_mcnemar(a, b, groups)
    ttest = paired_ttest(a, b)
    flip = flips(a, b)
    n = len(merged)
    acc_ref = _accuracy_intervals(a, groups, n_boot, seed, unit, prefix="acc_reference_")
    acc_new = _accuracy_intervals(b, groups, n_boot, seed, unit, prefix="acc_changed_")
    diff_pp = 100.0 * (a.astype(np.float64) - b.astype(np.float64))
    drop = unit_intervals(weighted_mean(diff_pp), groups, n_boot, seed, unit, prefix="drop_")
    return {
        "n": n,
        "n_images": int(len(pd.unique(groups))),
        "acc_reference": 100.0 * float(a.mean()),
        **acc_ref,
        "acc_changed": 100.0 * float(b.mean()),
        **acc_new,
        "drop_pp": float(diff_pp.mean()),
        **drop,
        "paired_p": clustered["p"] if unit == "image" else mcnemar["p"],
        "paired_test": PAIRED_TESTS[unit],
        "mcnemar_b": mcnemar["b"],
        "mcnemar_c": mcnemar["c"],
        "mcnemar_p": mcnemar["p"],
        "mcnemar_clustered_stat": clustered["statistic"],
        "mcnemar_clustered_p": clustered["p"],
        "ttest_t": ttest["statistic"],
        "ttest_p": ttest["p"],
        "right_to_wrong": flip["right_to_wrong"],
        "wrong_to_right": flip["wrong_to_right"],
        "answers_changed": int((merged["prediction_ref"] != merged["prediction_new"]).sum()),
    }


def subset_question_ids(reference: pd.DataFrame) -> list[tuple[str, set | None]]:
    """(subset, question ids) per reported subset: "all" (None = every question), then each task."""
    subsets: list[tuple[str, set | None]] = [(ALL_TASKS, None)]
    for task in sorted(reference["task"].unique()):
        subsets.append((task, set(reference.loc[reference["task"] == task, "question_id"])))
    return subsets


def compare_by_subset(reference: pd.DataFrame, changed: pd.DataFrame, **options) -> list[dict]:
    """:func:`paired_comparison` on all questions (subset "all") and on each task's questions.

    ``options`` are :func:`paired_comparison`'s keywords (``n_boot``, ``seed``, ``unit``).
    """
    rows = []
    for subset, ids in subset_question_ids(reference):
        ref = reference if ids is None else reference[reference["question_id"].isin(ids)]
        new = changed if ids is None else changed[changed["question_id"].isin(ids)]
        rows.append({"subset": subset, **paired_comparison(ref, new, **options)})
    return rows


# ---------------------------------------------------------------------------- the masking table
MASKING_CONTRASTS: tuple[tuple[str, str, str], ...] = (
    # (contrast, reference condition, changed condition): drop = accuracy(reference) - accuracy(changed)
    ("full_vs_high", "full", "high"),
    ("full_vs_low", "full", "low"),
    ("full_vs_random", "full", "random"),
    ("low_vs_high", "low", "high"),
    ("random_vs_high", "random", "high"),
)


def masking_table(baseline: pd.DataFrame, masked: pd.DataFrame, **options) -> pd.DataFrame:
    """Paired contrasts of one (model, dataset, p) masking run; RANDOM contrasts once per seed.

    ``baseline`` holds the unmasked predictions (:func:`vrp.scoring.predict` of the same
    questions), ``masked`` the output of :func:`vrp.interventions.masking.run_masking` for one p.
    ``low_vs_high`` is the paper's effect size LOW - HIGH; ``random_vs_high`` is RANDOM - HIGH.
    ``n_masked_mean`` is the mean number of masked patches over the row's own questions (grids
    vary per image). ``options`` are :func:`paired_comparison`'s keywords (``n_boot``, ``seed``,
    ``unit``).
    """
    ps = masked["p"].unique()
    if len(ps) != 1:
        raise ValueError(f"masking_table takes the runs of one p, got p values {sorted(ps)}")
    seeds = sorted(masked.loc[masked["condition"] == "random", "seed"].unique())

    def condition(name: str, random_seed: int) -> pd.DataFrame:
        if name == "full":
            return baseline
        rows = masked[masked["condition"] == name]
        return rows[rows["seed"] == random_seed] if name == "random" else rows

    subsets = dict(subset_question_ids(baseline))
    rows = []
    for contrast, reference, changed in MASKING_CONTRASTS:
        for random_seed in seeds if "random" in (reference, changed) else [-1]:
            ref, new = condition(reference, random_seed), condition(changed, random_seed)
            masked_side = new if changed != "full" else ref
            for stats in compare_by_subset(ref, new, **options):
                ids = subsets[stats["subset"]]
                own = (
                    masked_side
                    if ids is None
                    else masked_side[masked_side["question_id"].isin(ids)]
                )
                rows.append(
                    {
                        "p": float(ps[0]),
                        "contrast": contrast,
                        "reference": reference,
                        "changed": changed,
                        "seed": random_seed,
                        "n_masked_mean": float(own["n_masked"].mean()),
                        **stats,
                    }
                )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- tables 5 and 6
_RENAMED = {
    "acc_changed": "accuracy",
    **{f"acc_changed_{key}": f"accuracy_{key}" for key in INTERVAL_COLUMNS},
    "acc_reference": "baseline_accuracy",
}
_DROPPED = [f"acc_reference_{key}" for key in INTERVAL_COLUMNS]


def ablation_table(baseline: pd.DataFrame, runs: pd.DataFrame, **options) -> pd.DataFrame:
    """Per condition and subset (all questions, then each task): accuracy with its intervals, the
    drop against the unablated baseline with its intervals, the paired tests, and flips
    (:func:`paired_comparison`; headline intervals and ``paired_p`` by ``unit``).

    ``runs`` is the concatenation of :func:`vrp.interventions.ablation.run_ablation` outputs (any
    layers and conditions) of one model on one dataset; ``baseline`` the unablated predictions of
    the same questions. The first rows (condition ``baseline``, no layer) are the unablated model
    itself; their ``majority_accuracy`` (share of the subset's most common gold answer, in
    percent) is the floor an answer-changing claim needs the unablated model to clear.
    ``options`` are :func:`paired_comparison`'s keywords (``n_boot``, ``seed``, ``unit``).
    """
    rows = []
    majority = _majority_accuracy(baseline)
    for stats in compare_by_subset(baseline, baseline, **options):
        rows.append(
            {
                "layer": pd.NA,
                "condition": "baseline",
                "k": 0,
                "rank": -1,
                "seed": -1,
                "fraction": 0.0,
                "n_channels": 0,
                "channels": "",
                "mode": "",
                **stats,
            }
        )
    keys = list(CONDITION_KEYS) + ["mode"]
    for values, group in runs.groupby(keys, sort=False, dropna=False):
        labels = dict(zip(keys, values))
        for stats in compare_by_subset(baseline, group, **options):
            rows.append({**labels, **stats})
    table = pd.DataFrame(rows)
    table["layer"] = table["layer"].astype("Int64")
    table["majority_accuracy"] = table["subset"].map(majority)
    table = table.rename(columns=_RENAMED).drop(columns=_DROPPED)
    first = [
        "layer",
        "condition",
        "k",
        "rank",
        "seed",
        "fraction",
        "n_channels",
        "channels",
        "mode",
        "subset",
        "n",
        "n_images",
        "accuracy",
        "accuracy_lo",
        "accuracy_hi",
        "baseline_accuracy",
        "majority_accuracy",
        "drop_pp",
        "drop_lo",
        "drop_hi",
        "drop_ci_method",
        "paired_p",
        "paired_test",
    ]
    return table[first + [c for c in table if c not in first]]


def _majority_accuracy(baseline: pd.DataFrame) -> dict[str, float]:
    """Per subset ("all" and each task): accuracy (%) of always giving the commonest gold answer."""
    out = {ALL_TASKS: 100.0 * float(baseline["answer"].value_counts(normalize=True).iloc[0])}
    for task, part in baseline.groupby("task"):
        out[task] = 100.0 * float(part["answer"].value_counts(normalize=True).iloc[0])
    return out


def per_model_tables(
    inputs,
    table_of: Callable[..., pd.DataFrame],
    families: Mapping[str, str],
    by: Sequence[str] = (),
    **options,
) -> pd.DataFrame:
    """``table_of(baseline, runs, **options)`` per (model, dataset) of a table job, labelled and pooled.

    ``inputs.baselines`` / ``inputs.runs`` are the job's parquet files: the causal baseline and
    the intervention runs of every model and dataset (columns ``model``, ``dataset``); ``by``
    splits each model's runs further (the masking table takes one p at a time). Each table gets
    the columns model, family (from ``families``) and dataset first; the tables come in
    (model, dataset, ``by``) order.
    """
    baselines = pd.concat(map(pd.read_parquet, inputs.baselines), ignore_index=True)
    runs = pd.concat(map(pd.read_parquet, inputs.runs), ignore_index=True)
    keys = ["model", "dataset"]
    unmatched = set(runs[keys].itertuples(index=False, name=None)) - set(
        baselines[keys].itertuples(index=False, name=None)
    )
    if unmatched:
        raise ValueError(
            f"runs of {sorted(unmatched)} have no baseline predictions; rerun causal_baseline"
        )
    frames = []
    for (model, dataset), baseline in baselines.groupby(keys, sort=True):
        own = runs[(runs["model"] == model) & (runs["dataset"] == dataset)].drop(columns=keys)
        for _, part in own.groupby(list(by), sort=True) if by else [((), own)]:
            table = table_of(baseline, part, **options)
            frames.append(
                prepend_labels(table, model=model, family=families[model], dataset=dataset)
            )
    return pd.concat(frames, ignore_index=True)
