"""Self-consistency sampling (paper §3.10): K_max sampled answers per question, drawn once.

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

Every K <= K_max is scored from the stored samples by :mod:`vrp.analysis.consistency`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vrp import stats
from vrp.adapters.base import FamilyAdapter
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
