"""Self-consistency (paper §3.10): sample K_max answers per question once, derive every K <= K_max.

Sampling
--------
:func:`sample_answers` draws ``k_max`` answers per question with
``model.generate(do_sample=True, temperature, top_p, max_new_tokens)`` on the same prompt and image
as the greedy pass. Sample ``s`` of every question in batch ``b`` comes from its own generate call
after ``torch.manual_seed(sampling_seed(seed, b, s))``, so

* the run is reproducible from (seed, batch_size, question order), and
* the first K samples do not depend on ``k_max``: raising ``k_max`` appends samples and keeps the
  old ones, and every K <= K_max is read off the first K stored samples.

Every sampling knob is passed explicitly, so a checkpoint's own generation defaults cannot change
the distribution (Qwen2-VL-Instruct ships ``top_k=1``, which would make every sample the greedy
answer; transformers otherwise adds ``top_k=50``): ``top_k=0`` means nucleus sampling only, and
``repetition_penalty`` is 1.

Only the newly generated tokens are decoded (special tokens skipped) and each is normalised with
:func:`vrp.stats.normalize_answer` (lower-case, punctuation stripped, first word).

Scoring
-------
S_SC = share of the majority answer among the first K samples (:func:`vrp.stats.self_consistency`).
It is scored against the GREEDY answer's correctness (``correct`` in the extraction's
samples.parquet, as the authors' code does): point-biserial R_pb with a Fisher-z CI, AUROC with a
bootstrap CI, and the precision of the greedy answer among questions whose K samples all agree
(S_SC = 1) with a Wilson 95% CI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vrp import stats
from vrp.adapters.base import FamilyAdapter
from vrp.analysis.probes import auroc_or_nan, evaluation_subsets
from vrp.benchmark.images import decode_images
from vrp.config import known_fields
from vrp.scoring import SCORED_TASKS_EXCLUDED

SAMPLE_COLUMNS = ["question_id", "image_id", "task", "pope_setting", "answer", "sample", "text", "normalized"]


@dataclass(frozen=True)
class ConsistencySettings:
    """Sampling settings (config section ``consistency``)."""

    k_max: int = 15
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 0
    max_new_tokens: int = 5
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self):
        if self.k_max < 1:
            raise ValueError(f"consistency.k_max must be >= 1, got {self.k_max}")
        if self.temperature <= 0:
            raise ValueError(f"consistency.temperature must be > 0 for sampling, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"consistency.top_p must lie in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"consistency.top_k must be >= 0 (0 = off), got {self.top_k}")

    @classmethod
    def from_params(cls, params: dict) -> "ConsistencySettings":
        """Build from a config dict, ignoring keys that are not sampling settings."""
        return cls(**known_fields(cls, params))


def sampling_seed(seed: int, batch_index: int, sample_index: int) -> int:
    """The torch seed of sample ``sample_index`` of batch ``batch_index`` (independent streams)."""
    return int(np.random.SeedSequence([seed, batch_index, sample_index]).generate_state(1, dtype=np.uint32)[0])


@torch.no_grad()
def sample_answers(adapter: FamilyAdapter, questions: pd.DataFrame,
                   settings: ConsistencySettings = ConsistencySettings(), progress: bool = True) -> pd.DataFrame:
    """``k_max`` sampled answers for every scored question (caption rows are skipped).

    Returns long rows (one per question and sample, questions in table order, samples 0..k_max-1)
    with columns :data:`SAMPLE_COLUMNS`: ``text`` is the decoded new text, ``normalized`` its
    :func:`vrp.stats.normalize_answer`.
    """
    questions = questions[~questions["task"].isin(SCORED_TASKS_EXCLUDED)].reset_index(drop=True)
    if questions.empty:
        raise ValueError("no scored questions to sample (the table holds only caption rows?)")
    tokenizer = adapter.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    parts = []
    starts = range(0, len(questions), settings.batch_size)
    bar = tqdm(total=len(questions), desc=f"sample {adapter.family}", mininterval=5, disable=not progress)
    for batch_index, start in enumerate(starts):
        batch = questions.iloc[start : start + settings.batch_size]
        inputs = adapter.encode(decode_images(batch["image"]), batch["question"].tolist())
        prompt_length = inputs["input_ids"].shape[1]  # left-padded: new tokens start here in every row
        texts = np.empty((len(batch), settings.k_max), dtype=object)
        for sample in range(settings.k_max):
            torch.manual_seed(sampling_seed(settings.seed, batch_index, sample))
            output = adapter.model.generate(
                **inputs,
                do_sample=True,
                temperature=settings.temperature,
                top_p=settings.top_p,
                top_k=settings.top_k,
                repetition_penalty=1.0,
                max_new_tokens=settings.max_new_tokens,
                pad_token_id=pad_id,
            )
            decoded = tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
            texts[:, sample] = [text.strip() for text in decoded]
        meta = batch[["question_id", "image_id", "task", "pope_setting", "answer"]].reset_index(drop=True)
        frame = meta.loc[meta.index.repeat(settings.k_max)].reset_index(drop=True)
        frame["sample"] = np.tile(np.arange(settings.k_max), len(batch))
        frame["text"] = texts.reshape(-1)
        parts.append(frame)
        bar.update(len(batch))
    bar.close()
    samples = pd.concat(parts, ignore_index=True)
    samples["normalized"] = [stats.normalize_answer(text) for text in samples["text"]]
    samples["sample"] = samples["sample"].astype(np.int64)
    return samples[SAMPLE_COLUMNS]


def answers_matrix(samples: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(question ids in first-seen order, (n_questions, k_max) array of normalised answers)."""
    counts = samples.groupby("question_id", sort=False)["sample"].agg(["min", "max", "count"])
    k_max = int(counts["count"].iloc[0])
    if (counts["count"] != k_max).any() or (counts["min"] != 0).any() or (counts["max"] != k_max - 1).any():
        raise ValueError("every question needs samples 0..k_max-1 exactly once; the samples file is incomplete")
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
        by_question, on="question_id", how="left", validate="one_to_one")
    missing = merged["s_sc"].isna()
    if missing.any():
        raise ValueError(f"{int(missing.sum())} extracted question(s) have no sampled answers, e.g. "
                         f"{merged.loc[missing, 'question_id'].iloc[0]!r}; rerun the sampling job")
    merged["majority_correct"] = [m == stats.normalize_answer(a) for m, a in zip(merged["majority"], merged["answer"])]
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


def consistency_summary(scores: pd.DataFrame, k: int, n_boot: int = 1000, seed: int = 0,
                        unit: str = "image") -> pd.DataFrame:
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
