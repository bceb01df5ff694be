"""Answer scoring, used everywhere after the benchmark is built.

* Greedy answers for yes/no and one-word questions are read from the next-token logits at the last
  prompt position under teacher forcing: the prediction is the candidate answer whose first token
  has the highest logit. The candidates of a task are the distinct ground-truth answers of that task
  in the question table (presence/spatial: yes, no; counting: the digits; object_id: the names).
  This avoids the generation-length and "Yes." parsing failures peers report for POPE.
* Sampled generations (self-consistency) are compared as normalised free text
  (:func:`vrp.stats.consistency.normalize_answer`: lower-case, punctuation stripped, first word).

Readouts per question (all from one logit vector, full vocabulary unless named "candidate"):
``confidence`` = softmax probability of the predicted token, ``p_answer`` = probability of the
ground-truth answer's token, ``entropy`` = next-token entropy (nats), ``margin_top2`` = top-1 minus
top-2 logit, ``p_yes``/``p_no`` where those are candidates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from vrp.adapters.base import FamilyAdapter

SCORED_TASKS_EXCLUDED = ("caption",)


def candidate_sets(questions: pd.DataFrame) -> dict[str, list[str]]:
    """Distinct ground-truth answers per task (sorted), the answer candidates of that task."""
    scored = questions[~questions["task"].isin(SCORED_TASKS_EXCLUDED)]
    return {task: sorted(group["answer"].unique()) for task, group in scored.groupby("task")}


class CandidateIndex:
    """Maps each task's candidate answers to first-token ids of one adapter's tokenizer."""

    def __init__(self, adapter: FamilyAdapter, candidates: dict[str, list[str]]):
        self.candidates = candidates
        self.token_ids = {t: adapter.candidate_token_ids(c) for t, c in candidates.items()}

    def ids_for(self, tasks: list[str]) -> list[list[int]]:
        return [self.token_ids[t] for t in tasks]

    def answer_token(self, task: str, answer: str) -> int:
        return self.token_ids[task][self.candidates[task].index(answer)]


def readouts_from_logits(
    logits: torch.Tensor, tasks: list[str], answers: list[str], index: CandidateIndex
) -> pd.DataFrame:
    """Greedy prediction and confidence readouts from last-position logits ``(B, V)``."""
    logits = logits.float()
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(-1)
    top2 = logits.topk(2, dim=-1).values
    rows = []
    for b, (task, answer) in enumerate(zip(tasks, answers)):
        ids = index.token_ids[task]
        cand_logits = logits[b, ids]
        best = int(cand_logits.argmax())
        prediction = index.candidates[task][best]
        row = {
            "prediction": prediction,
            "correct": prediction == answer,
            "confidence": float(probs[b, ids[best]]),
            "p_answer": float(probs[b, index.answer_token(task, answer)]),
            "candidate_confidence": float(torch.softmax(cand_logits, -1)[best]),
            "entropy": float(entropy[b]),
            "margin_top2": float(top2[b, 0] - top2[b, 1]),
        }
        for word in ("yes", "no"):
            row[f"p_{word}"] = float(probs[b, ids[index.candidates[task].index(word)]]) if word in index.candidates[task] else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


@torch.no_grad()
def predict(
    adapter: FamilyAdapter,
    questions: pd.DataFrame,
    candidates: dict[str, list[str]],
    batch_size: int = 32,
    images: list | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Greedy answers and readouts for ``questions`` (one forward per batch, logits of the last token only).

    ``images`` (PIL, one per row) replaces the table's own images, e.g. patch-masked copies;
    interventions on the model (ablation hooks) are registered by the caller around this call.
    """
    from tqdm.auto import tqdm

    from vrp.benchmark.images import decode_images

    questions = questions.reset_index(drop=True)
    if images is not None and len(images) != len(questions):
        raise ValueError(f"got {len(images)} images for {len(questions)} questions")
    index = CandidateIndex(adapter, candidates)
    parts = []
    starts = range(0, len(questions), batch_size)
    for start in tqdm(starts, desc=f"predict {adapter.family}", mininterval=5, disable=not progress):
        batch = questions.iloc[start : start + batch_size]
        batch_images = images[start : start + batch_size] if images is not None else decode_images(batch["image"])
        inputs = adapter.encode(batch_images, batch["question"].tolist())
        logits = adapter.model(**inputs, use_cache=False, logits_to_keep=1).logits[:, -1, :]
        out = readouts_from_logits(logits, batch["task"].tolist(), batch["answer"].tolist(), index)
        meta = batch[["question_id", "image_id", "task", "pope_setting", "answer"]].reset_index(drop=True)
        parts.append(pd.concat([meta, out], axis=1))
    return pd.concat(parts, ignore_index=True)
