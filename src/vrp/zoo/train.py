"""Training a tiny zoo model on the synthetic benchmark's train split (CPU, step-budgeted, seeded).

The recipe is the one that made all three classes learn offline (docs/method.md, "The tiny zoo"):
teacher-forced loss on answer + <eos> only, AdamW, linear warm-up then cosine decay to 5 % of the
peak rate, gradient clipping, a fixed number of steps (not wall time) so a run is reproducible.
Family specifics (prompt, prefix-LM token types, image grids) stay inside the adapter.

Mixed precision (``autocast: bfloat16``, the default): the forward runs under ``torch.autocast`` in
bfloat16 (and so does its backward), so matrix products take bfloat16 inputs and accumulate in float32,
while the weights, their gradients, AdamW's state and the loss stay float32 and the saved
checkpoint is float32. On the demo's CPUs (AVX-512 BF16) that halves a step (LLaVA 0.21 -> 0.11 s,
Qwen2-VL 0.33 -> 0.20 s: ``bench/zoo_training.py``). Only training takes it: every pass of the
analyses runs in the checkpoint's dtype (float32 on the demo). ``autocast: none`` trains in float32.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vrp.adapters.base import FamilyAdapter
from vrp.benchmark.images import decode_images

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"bfloat16": torch.bfloat16, "none": None}


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 30
    grad_clip: float = 1.0
    final_lr_fraction: float = 0.05
    # Share of each task in the training batches (None: rows drawn uniformly). Weighting presence
    # and the caption auxiliary task up is what makes tiny models learn within a few hundred
    # steps (the demo: 60 % presence, 30 % caption, in 450-1000 steps).
    task_weights: dict[str, float] | None = None
    # mixed precision of the forward, and so of its backward (module docstring): bfloat16 or none
    autocast: str = "bfloat16"

    def __post_init__(self):
        if self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(
                f"train.autocast must be one of {sorted(AUTOCAST_DTYPES)}, got {self.autocast!r}"
            )

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**values)


def lr_multiplier(step: int, config: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``final_lr_fraction`` at the last step."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.final_lr_fraction + (1.0 - config.final_lr_fraction) * cosine


def autocast_context(config: TrainConfig, device: torch.device):
    """The context a training step's forward runs in (``config.autocast``; its backward follows)."""
    dtype = AUTOCAST_DTYPES[config.autocast]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def row_probabilities(tasks: pd.Series, weights: dict[str, float] | None) -> np.ndarray | None:
    """Per-row sampling probabilities giving each task its weight's share of the batches."""
    if weights is None:
        return None
    present = set(tasks.unique())
    unknown = sorted(set(weights) - present)
    if unknown:
        raise ValueError(
            f"task_weights name tasks absent from the train split: {unknown}; present: {sorted(present)}"
        )
    counts = tasks.value_counts()
    per_row = tasks.map(lambda t: weights.get(t, 0.0) / counts[t]).to_numpy(dtype=float)
    if per_row.sum() <= 0:
        raise ValueError("task_weights give every training row zero weight")
    return per_row / per_row.sum()


def train_adapter(
    adapter: FamilyAdapter,
    train: pd.DataFrame,
    config: TrainConfig,
    seed: int,
    progress: bool = True,
) -> dict:
    """Train ``adapter.model`` in place on ``train`` rows; return the loss history and settings."""
    if len(train) < config.batch_size:
        raise ValueError(
            f"train split has {len(train)} rows, fewer than one batch ({config.batch_size})"
        )
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = decode_images(train["image"])
    questions = train["question"].tolist()
    answers = train["answer"].tolist()

    model = adapter.model
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_multiplier(s, config))

    probabilities = row_probabilities(train["task"], config.task_weights)
    order = rng.permutation(len(train))
    cursor = 0
    losses: list[float] = []
    bar = tqdm(
        range(config.steps), desc=f"train {adapter.family}", mininterval=5, disable=not progress
    )
    for _ in bar:
        if probabilities is not None:
            rows = rng.choice(len(train), size=config.batch_size, replace=False, p=probabilities)
        else:
            if cursor + config.batch_size > len(order):
                order, cursor = rng.permutation(len(train)), 0
            rows = order[cursor : cursor + config.batch_size]
            cursor += config.batch_size
        batch = adapter.encode_for_training(
            [images[i] for i in rows], [questions[i] for i in rows], [answers[i] for i in rows]
        )
        with autocast_context(config, adapter.device):
            loss = model(**batch).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {len(losses)}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # outside autocast (torch's advice): each op's backward keeps its forward's dtype
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    model.eval()
    return {"config": asdict(config), "seed": seed, "losses": losses}
