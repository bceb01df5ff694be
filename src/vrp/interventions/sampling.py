"""Self-consistency sampling (paper §3.10): K_max sampled answers per question, drawn once.

:func:`sample_answers` runs each question's prompt once (:mod:`vrp.prompt_pass`: one shared prefix
per image for the causal families) and draws its ``k_max`` answers from that one prompt state, as
one batch of question x sample rows decoded together, where the samples of a question that have
drawn the same tokens so far share one forward (:func:`vrp.prompt_pass.generate_shared`). Tokens
are drawn with transformers' own logits warpers (temperature, then top-k, then top-p, as
``generate(do_sample=True)`` applies them). Sample ``s`` of question ``q`` draws from its own
generator, seeded with ``sample_seed(seed, q, s)``, so

* the run is reproducible from (seed, question ids) alone: batching, image grouping and the
  other questions do not change a question's samples,
* the first K samples do not depend on ``k_max``: raising ``k_max`` appends samples and keeps the
  old ones, and every K <= K_max is read off the first K stored samples, and
* :func:`sample_answers_reference` gives the same samples from the plain pattern: one
  ``model.generate(do_sample=True)`` per question and sample after
  ``torch.manual_seed(sample_seed(seed, q, s))``, each with its own prefill (the equivalence
  tests and ``bench/consistency_sampling.py`` compare them).

Every sampling knob is passed explicitly, so a checkpoint's own generation defaults cannot change
the distribution (Qwen2-VL-Instruct ships ``top_k=1``, which would make every sample the greedy
answer; transformers otherwise adds ``top_k=50``): ``top_k=0`` means nucleus sampling only, and
``repetition_penalty`` is 1.

Only the newly generated tokens are decoded (special tokens skipped) and each is normalised with
:func:`vrp.stats.normalize_answer` (lower-case, punctuation stripped, first word).

Every K <= K_max is scored from the stored samples by :mod:`vrp.analysis.consistency`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from vrp import stats
from vrp.adapters.base import FamilyAdapter
from vrp.benchmark.images import decode_images
from vrp.config import known_fields
from vrp.prompt_pass import generate_shared, prompt_passes, uses_shared_prefix
from vrp.scoring import SCORED_TASKS_EXCLUDED, question_batches

SAMPLE_COLUMNS = [
    "question_id",
    "image_id",
    "task",
    "pope_setting",
    "answer",
    "sample",
    "text",
    "normalized",
]


@dataclass(frozen=True)
class ConsistencySettings:
    """Sampling settings (config section ``consistency``)."""

    k_max: int = 15
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 0
    max_new_tokens: int = 5
    batch_size: int = 16
    # question x sample rows decoded together from copies of their prompt's cache (memory:
    # rows x one prompt's KV cache, ~0.33 GB per row for LLaVA-1.5-7B in bf16)
    decode_rows: int = 64
    seed: int = 0

    def __post_init__(self):
        if self.k_max < 1:
            raise ValueError(f"consistency.k_max must be >= 1, got {self.k_max}")
        if self.temperature <= 0:
            raise ValueError(
                f"consistency.temperature must be > 0 for sampling, got {self.temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"consistency.top_p must lie in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"consistency.top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.decode_rows < 1:
            raise ValueError(f"consistency.decode_rows must be >= 1, got {self.decode_rows}")

    @classmethod
    def from_params(cls, params: dict) -> "ConsistencySettings":
        """Build from a config dict, ignoring keys that are not sampling settings."""
        return cls(**known_fields(cls, params))


def sample_seed(seed: int, question_id: str, sample_index: int) -> int:
    """The torch seed of sample ``sample_index`` of question ``question_id`` (independent streams)."""
    question = int.from_bytes(hashlib.sha256(str(question_id).encode()).digest()[:8], "big")
    entropy = [seed, question >> 32, question & 0xFFFFFFFF, sample_index]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def _warpers(settings: ConsistencySettings) -> LogitsProcessorList:
    """generate(do_sample=True)'s warpers for these settings, in its order."""
    warpers = LogitsProcessorList([TemperatureLogitsWarper(settings.temperature)])
    if settings.top_k > 0:
        warpers.append(TopKLogitsWarper(settings.top_k))
    if settings.top_p < 1.0:
        warpers.append(TopPLogitsWarper(settings.top_p))
    return warpers


def seeded_sampler(settings: ConsistencySettings, generators: list[torch.Generator]):
    """``choose(logits, step)`` for :func:`vrp.prompt_pass.generate`: row r draws from the warped
    distribution with ``generators[r]`` (one stream per question and sample)."""
    warpers = _warpers(settings)

    def choose(logits: torch.Tensor, step: int) -> torch.Tensor:
        probs = torch.softmax(warpers(None, logits), dim=-1)
        return torch.cat(
            [torch.multinomial(probs[r], 1, generator=g) for r, g in enumerate(generators)]
        )

    return choose


def _scored(questions: pd.DataFrame) -> pd.DataFrame:
    questions = questions[~questions["task"].isin(SCORED_TASKS_EXCLUDED)].reset_index(drop=True)
    if questions.empty:
        raise ValueError("no scored questions to sample (the table holds only caption rows?)")
    return questions


def _long_frame(questions: pd.DataFrame, texts: np.ndarray, k_max: int) -> pd.DataFrame:
    """One row per question and sample (questions in table order, samples 0..k_max-1)."""
    meta = questions[["question_id", "image_id", "task", "pope_setting", "answer"]].reset_index(
        drop=True
    )
    frame = meta.loc[meta.index.repeat(k_max)].reset_index(drop=True)
    frame["sample"] = np.tile(np.arange(k_max, dtype=np.int64), len(questions))
    frame["text"] = texts.reshape(-1)
    frame["normalized"] = [stats.normalize_answer(text) for text in frame["text"]]
    return frame[SAMPLE_COLUMNS]


@torch.no_grad()
def sample_answers(
    adapter: FamilyAdapter,
    questions: pd.DataFrame,
    settings: ConsistencySettings = ConsistencySettings(),
    progress: bool = True,
    share_prefix: bool = True,
) -> pd.DataFrame:
    """``k_max`` sampled answers for every scored question (caption rows are skipped).

    Each question's prompt is run once; its k_max samples continue from that prompt state, in
    chunks of ``settings.decode_rows`` question x sample rows. Returns long rows (one per question
    and sample, questions in table order, samples 0..k_max-1) with columns
    :data:`SAMPLE_COLUMNS`: ``text`` is the decoded new text, ``normalized`` its
    :func:`vrp.stats.normalize_answer`.
    """
    questions = _scored(questions)
    k_max = settings.k_max
    texts = np.empty((len(questions), k_max), dtype=object)
    batches = question_batches(
        questions, settings.batch_size, uses_shared_prefix(adapter, share_prefix)
    )
    device = adapter.device
    bar = tqdm(
        total=len(questions), desc=f"sample {adapter.family}", mininterval=5, disable=not progress
    )
    for rows in batches:
        batch = questions.iloc[rows]
        images, prompts = decode_images(batch["image"]), batch["question"].tolist()
        for group, prompt in prompt_passes(adapter, images, prompts, True, share_prefix):
            pairs = [(g, s) for g in group for s in range(k_max)]
            for start in range(0, len(pairs), settings.decode_rows):
                chunk = pairs[start : start + settings.decode_rows]
                pick = torch.tensor([group.index(g) for g, _ in chunk], device=device)
                generators = [
                    torch.Generator(device=device).manual_seed(
                        sample_seed(settings.seed, batch["question_id"].iloc[g], s)
                    )
                    for g, s in chunk
                ]
                ids = generate_shared(
                    adapter,
                    prompt,
                    pick,
                    settings.max_new_tokens,
                    seeded_sampler(settings, generators),
                )
                decoded = adapter.tokenizer.batch_decode(ids, skip_special_tokens=True)
                for (g, s), text in zip(chunk, decoded):
                    texts[rows[g], s] = text.strip()
            prompt.state.cache = None
        bar.update(len(rows))
    bar.close()
    return _long_frame(questions, texts, k_max)


def generate_kwargs(settings: ConsistencySettings, pad_token_id: int) -> dict:
    """``model.generate`` sampling kwargs with every knob explicit (module docstring)."""
    return {
        "do_sample": True,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k,
        "repetition_penalty": 1.0,
        "max_new_tokens": settings.max_new_tokens,
        "pad_token_id": pad_token_id,
    }


@torch.no_grad()
def sample_answers_reference(
    adapter: FamilyAdapter,
    questions: pd.DataFrame,
    settings: ConsistencySettings = ConsistencySettings(),
) -> pd.DataFrame:
    """The plain pattern :func:`sample_answers` must equal: one ``generate(do_sample=True)`` per
    question and sample, each its own prefill, seeded with :func:`sample_seed`."""
    questions = _scored(questions)
    tokenizer = adapter.tokenizer
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    texts = np.empty((len(questions), settings.k_max), dtype=object)
    images = decode_images(questions["image"])
    for q, (question_id, question) in enumerate(
        zip(questions["question_id"], questions["question"])
    ):
        inputs = adapter.encode([images[q]], [question])
        for s in range(settings.k_max):
            torch.manual_seed(sample_seed(settings.seed, question_id, s))
            output = adapter.model.generate(**inputs, **generate_kwargs(settings, pad_id))
            new = output[0, inputs["input_ids"].shape[1] :]
            texts[q, s] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return _long_frame(questions, texts, settings.k_max)
