"""Neuron ablation (paper §3.12) and large-scale ablation at the peak layer (§3.13): the hooks and conditions.

A "neuron" is one output channel of a decoder layer's MLP (its contribution to the residual
stream, the d-dimensional ``mlp_out`` of the extraction and the probe's features). Ablation
registers a forward hook on ``adapter.mlp_module(layer)`` that, at EVERY sequence position,

* ``zero``: sets the chosen channels to 0 (the paper's intervention), or
* ``mean``: sets them to their mean over every real (non-padding) token of the scored questions,
  measured in one extra unablated pass;

the full MLP bypass zeroes all channels. The re-scoring is :func:`vrp.scoring.predict` with the
hook in place. Tables 5 and 6 (the paired statistics against the unablated baseline) are in
:mod:`vrp.analysis.causal_tables`.

Conditions (:func:`build_conditions` from a plan the workflow passes; they live in the torch-free
:mod:`vrp.interventions.conditions` and are re-exported here):

* ``top_k``: the k channels with the highest |weight| of the L1 probe at that layer (the probe
  stage's ``neuron_ranking.parquet``, ordered by its ``rank`` column);
* ``random_k``: k channels drawn uniformly, excluding the top k, once per seed (the paper's
  "random 5" was a fixed list [100, 500, 1000, 2000, 3000]);
* ``single``: the channel of one rank alone;
* ``random_fraction``: a share of all channels (``n_masked(fraction, d)``), once per seed;
* ``bypass``: the whole MLP output zeroed at all tokens.

Layers: the paper's LLaVA layers (10, 17, 21, 27, 29, 31 of 32) are mapped to a model of depth L by
:func:`scale_layers`: round(l * (L - 1) / (D - 1)), so the last layer maps to the last layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from vrp.adapters.base import FamilyAdapter
from vrp.benchmark.images import decode_images
from vrp.interventions.conditions import (
    CONDITION_KEYS,
    AblationCondition,
    build_conditions,
    channel_seed,
    layer_plan,
    ranked_channels,
    scale_layers,
)
from vrp.interventions.masking import PREDICTION_COLUMNS
from vrp.scoring import predict

ABLATION_MODES: tuple[str, ...] = ("zero", "mean")


# ---------------------------------------------------------------------------- the hook
def _channel_index(channels: Sequence[int] | None, hidden_size: int) -> torch.Tensor | None:
    if channels is None:
        return None
    index = np.asarray(list(channels), dtype=np.int64)
    if index.size == 0:
        raise ValueError(
            "ablation needs at least one channel (or channels=None for the MLP bypass)"
        )
    if index.min() < 0 or index.max() >= hidden_size:
        raise ValueError(
            f"channel indices must lie in [0, {hidden_size}) (the MLP output width); got "
            f"{index.min()}..{index.max()}"
        )
    if len(np.unique(index)) != len(index):
        raise ValueError("channel indices must be distinct")
    return torch.from_numpy(index)


@contextlib.contextmanager
def ablate_mlp_channels(
    adapter: FamilyAdapter,
    layer: int,
    channels: Sequence[int] | None,
    values: torch.Tensor | None = None,
) -> Iterator[None]:
    """Inside the block, decoder ``layer``'s MLP output has ``channels`` replaced at every position.

    ``channels=None`` replaces all channels (the MLP bypass). ``values`` (one per channel, or
    per hidden unit for the bypass) replaces with those values; ``None`` zeroes. The hook is
    removed on exit, also after an error.
    """
    module = adapter.mlp_module(layer)
    index = _channel_index(channels, adapter.hidden_size)
    if values is not None:
        expected = adapter.hidden_size if index is None else len(index)
        if values.shape != (expected,):
            raise ValueError(f"values must have shape ({expected},), got {tuple(values.shape)}")

    def hook(mod, args, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"{adapter.family}: MLP of layer {layer} returned {type(output).__name__}, not a tensor"
            )
        if index is None:
            if values is None:
                return torch.zeros_like(output)
            return values.to(output.device, output.dtype).expand_as(output).clone()
        out = output.clone()
        idx = index.to(output.device)
        out[..., idx] = 0.0 if values is None else values.to(output.device, output.dtype)
        return out

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def channel_means(
    adapter: FamilyAdapter, questions: pd.DataFrame, layer: int, batch_size: int = 16
) -> torch.Tensor:
    """(d,) mean of decoder ``layer``'s MLP output over every real (non-padding) token of ``questions``."""
    total = torch.zeros(adapter.hidden_size, dtype=torch.float64)
    count = 0
    mask: dict[str, torch.Tensor] = {}

    def hook(mod, args, output):
        real = mask["attention_mask"].to(output.device).bool()
        total.add_(output[real].double().sum(0).cpu())

    handle = adapter.mlp_module(layer).register_forward_hook(hook)
    try:
        for start in range(0, len(questions), batch_size):
            batch = questions.iloc[start : start + batch_size]
            inputs = adapter.encode(decode_images(batch["image"]), batch["question"].tolist())
            mask["attention_mask"] = inputs["attention_mask"]
            count += int(inputs["attention_mask"].sum())
            adapter.model(**inputs, use_cache=False, logits_to_keep=1)
    finally:
        handle.remove()
    return (total / max(count, 1)).float()


def run_ablation(
    adapter: FamilyAdapter,
    questions: pd.DataFrame,
    candidates: dict[str, list[str]],
    conditions: Sequence[AblationCondition],
    mode: str = "zero",
    batch_size: int = 16,
    share_prefix: bool = True,
) -> pd.DataFrame:
    """Re-score ``questions`` under each condition; one row per question and condition.

    Columns: the condition's labels (:data:`CONDITION_KEYS`), ``mode`` and the prediction columns.
    In ``mean`` mode the replacement values are measured once per layer on the same questions;
    the bypass always zeroes. The ablation hooks act on every pass, so with ``share_prefix`` each
    image's prefix is computed once per condition, under that condition.
    """
    if mode not in ABLATION_MODES:
        raise ValueError(f"ablation mode must be one of {ABLATION_MODES}, got {mode!r}")
    means: dict[int, torch.Tensor] = {}
    parts = []
    for cond in conditions:
        values = None
        if mode == "mean" and cond.channels is not None:
            if cond.layer not in means:
                means[cond.layer] = channel_means(adapter, questions, cond.layer, batch_size)
            values = means[cond.layer][list(cond.channels)]
        with ablate_mlp_channels(adapter, cond.layer, cond.channels, values):
            scored = predict(
                adapter, questions, candidates, batch_size=batch_size, share_prefix=share_prefix
            )
        labels = cond.labels(adapter.hidden_size)
        frame = scored.loc[:, list(PREDICTION_COLUMNS)]
        for key in CONDITION_KEYS:
            frame[key] = labels[key]
        frame["mode"] = "zero" if cond.channels is None else mode
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


__all__ = [
    "ABLATION_MODES",
    "CONDITION_KEYS",
    "AblationCondition",
    "ablate_mlp_channels",
    "build_conditions",
    "channel_means",
    "channel_seed",
    "layer_plan",
    "ranked_channels",
    "run_ablation",
    "scale_layers",
]
