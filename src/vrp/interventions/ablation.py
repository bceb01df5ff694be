"""Neuron ablation (paper §3.12) and large-scale ablation at the peak layer (§3.13): the hooks and conditions.

A "neuron" is one output channel of a decoder layer's MLP (its contribution to the residual
stream, the d-dimensional ``mlp_out`` of the extraction and the probe's features). Ablation
registers a forward hook on ``adapter.mlp_module(layer)`` that, at EVERY sequence position,

* ``zero``: sets the chosen channels to 0 (the paper's intervention), or
* ``mean``: sets them to their mean over every real (non-padding) token of the scored questions,
  measured in one extra unablated pass;

the full MLP bypass zeroes all channels. The re-scoring is :func:`vrp.scoring.predict`'s, batch by
batch, with the hook in place. Tables 5 and 6 (the paired statistics against the unablated baseline) are in
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

Last-layer replay (``replay_last_layer``, on by default): at the LAST decoder layer an MLP edit
changes nothing any later computation reads except that layer's own output, position by position
(the next thing is the final norm and ``lm_head``; attention of every layer read its keys before
the edit). So each batch is run once unablated while the last layer's output ``h`` and MLP output
``m`` are recorded at the positions whose logits are read, and every last-layer condition is then
scored from ``h + (edit(m) - m)`` through :meth:`~vrp.adapters.base.FamilyAdapter.logits_from_residual`
alone, the same scoring code running on top (:class:`LastLayerReplay` stands in for each forward, in
the recorded order). That holds for every family whose ``mlp_module`` output is the MLP's term of
the residual sum (Gemma 3's is its post-feedforward norm, so it holds there too). It replaces a full
pass per condition with one shared pass per job: the paper's k sweep and the single-neuron ranks
are at the last layer. Predictions and scores equal the hooked forward's to the rounding of one add
in the model's dtype (``h - m`` for ``resid + 0``, summed in float32;
tests/test_interventions_ablation.py holds each float32 family to 1e-5).

Layers: the paper's LLaVA layers (10, 17, 21, 27, 29, 31 of 32) are mapped to a model of depth L by
:func:`scale_layers`: round(l * (L - 1) / (D - 1)), so the last layer maps to the last layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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
from vrp.scoring import CandidateIndex, in_batch_order, predict_batch, prediction_batches

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


def channel_edit(
    adapter: FamilyAdapter,
    channels: Sequence[int] | None,
    values: torch.Tensor | None = None,
):
    """The function that takes an MLP output (..., d) to its ablated copy (the arguments as
    :func:`ablate_mlp_channels`'); the hook and the last-layer replay both apply it."""
    index = _channel_index(channels, adapter.hidden_size)
    if values is not None:
        expected = adapter.hidden_size if index is None else len(index)
        if values.shape != (expected,):
            raise ValueError(f"values must have shape ({expected},), got {tuple(values.shape)}")

    def edit(output: torch.Tensor) -> torch.Tensor:
        if index is None:
            if values is None:
                return torch.zeros_like(output)
            return values.to(output.device, output.dtype).expand_as(output).clone()
        out = output.clone()
        idx = index.to(output.device)
        out[..., idx] = 0.0 if values is None else values.to(output.device, output.dtype)
        return out

    return edit


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
    with _editing_mlp(adapter, layer, channel_edit(adapter, channels, values)):
        yield


@contextlib.contextmanager
def _editing_mlp(adapter: FamilyAdapter, layer: int, edit) -> Iterator[None]:
    """Inside the block, decoder ``layer``'s MLP output is replaced by ``edit(output)``."""

    def hook(mod, args, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"{adapter.family}: MLP of layer {layer} returned {type(output).__name__}, not a tensor"
            )
        return edit(output)

    handle = adapter.mlp_module(layer).register_forward_hook(hook)
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


class _ReplayedCache:
    """The cache a replayed forward returns: the later replayed calls read none (``cache_rows``
    copies it as it would a real one)."""

    layers: tuple = ()

    def reorder_cache(self, rows: torch.Tensor) -> None:
        return None


@dataclass
class _RecordedCall:
    signature: tuple
    residual: torch.Tensor  # (B, k, d) the last decoder layer's output at the kept positions
    mlp: torch.Tensor  # (B, k, d) its MLP output (the residual term) at the same positions


@dataclass
class _ReplayedOutput:
    logits: torch.Tensor
    cache: _ReplayedCache


def _call_signature(kwargs: dict) -> tuple:
    keep = kwargs.get("logits_to_keep", 0)
    keep = keep.tolist() if isinstance(keep, torch.Tensor) else keep
    return tuple(kwargs["input_ids"].shape), str(keep)


def _kept_positions(tensor: torch.Tensor, logits_to_keep) -> torch.Tensor:
    """The positions of ``tensor`` (B, T, ...) whose logits a forward with ``logits_to_keep``
    returns (transformers' rule: an int n keeps the last n, 0 keeps all; a tensor indexes)."""
    if isinstance(logits_to_keep, torch.Tensor):
        return tensor[:, logits_to_keep.to(tensor.device)]
    return tensor[:, -logits_to_keep:] if logits_to_keep else tensor


class LastLayerReplay:
    """One batch's forwards recorded unablated, then replayed under last-layer MLP edits.

    :meth:`recording` runs the model and keeps, per forward, the last decoder layer's output and
    MLP output at the positions whose logits the forward returns; :meth:`replaying` then stands
    in for the same sequence of forwards (the scoring code's calls do not depend on the logits),
    returning the logits of ``h + (edit(m) - m)`` (module docstring).
    """

    def __init__(self, adapter: FamilyAdapter):
        self.adapter = adapter
        self.calls: list[_RecordedCall] = []

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        adapter = self.adapter
        last = adapter.num_layers - 1
        captured: dict[str, torch.Tensor] = {}

        def keep(name):
            def hook(mod, args, output):
                if not isinstance(output, torch.Tensor):
                    raise TypeError(
                        f"{adapter.family}: {type(mod).__name__} of layer {last} returned "
                        f"{type(output).__name__}, not a tensor; the last-layer replay needs the "
                        "tensor (set runtime.replay_last_layer: false)"
                    )
                captured[name] = output

            return hook

        def forward(**kwargs):
            captured.clear()
            out = adapter.model(**kwargs)
            kept = kwargs.get("logits_to_keep", 0)
            self.calls.append(
                _RecordedCall(
                    _call_signature(kwargs),
                    _kept_positions(captured["residual"], kept),
                    _kept_positions(captured["mlp"], kept),
                )
            )
            return out

        handles = [
            adapter.decoder_layers()[last].register_forward_hook(keep("residual")),
            adapter.mlp_module(last).register_forward_hook(keep("mlp")),
        ]
        try:
            with adapter.standing_in(forward):
                yield
        finally:
            for handle in handles:
                handle.remove()

    @contextlib.contextmanager
    def replaying(self, edit) -> Iterator[None]:
        """Inside the block, the recorded forwards are answered under ``edit`` (:func:`channel_edit`)."""
        adapter, calls = self.adapter, iter(self.calls)
        replayed = 0

        def forward(**kwargs):
            nonlocal replayed
            call = next(calls, None)
            if call is None or call.signature != _call_signature(kwargs):
                raise RuntimeError(
                    f"{adapter.family}: forward {replayed} of the replay is not the recorded one "
                    f"({_call_signature(kwargs)} vs {None if call is None else call.signature}); "
                    "the scoring's forwards must not depend on the logits"
                )
            replayed += 1
            # in float32, so a half-precision model rounds once, where its own add would
            mlp = call.mlp.float()
            edited = call.residual.float() + (edit(call.mlp).float() - mlp)
            residual = edited.to(call.residual.dtype)
            return _ReplayedOutput(adapter.logits_from_residual(residual), _ReplayedCache())

        with adapter.standing_in(forward):
            yield
        if replayed != len(self.calls):
            raise RuntimeError(
                f"{adapter.family}: the replay answered {replayed} of {len(self.calls)} recorded forwards"
            )


def replays_last_layer(adapter: FamilyAdapter, cond: AblationCondition, enabled: bool) -> bool:
    """Whether ``cond`` is scored by the last-layer replay (module docstring)."""
    return bool(enabled) and cond.layer % adapter.num_layers == adapter.num_layers - 1


@torch.no_grad()
def run_ablation(
    adapter: FamilyAdapter,
    questions: pd.DataFrame,
    candidates: dict[str, list[str]],
    conditions: Sequence[AblationCondition],
    mode: str = "zero",
    batch_size: int = 16,
    share_prefix: bool = True,
    replay_last_layer: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Re-score ``questions`` under each condition; one row per question and condition.

    Columns: the condition's labels (:data:`CONDITION_KEYS`), ``mode`` and the prediction columns.
    In ``mean`` mode the replacement values are measured once per layer on the same questions;
    the bypass always zeroes. The ablation hooks act on every pass, so with ``share_prefix`` each
    image's prefix is computed once per condition, under that condition. Batch by batch, every
    condition is scored; with ``replay_last_layer`` the last layer's conditions share one
    unablated pass of the batch (:class:`LastLayerReplay`).
    """
    from tqdm.auto import tqdm

    if mode not in ABLATION_MODES:
        raise ValueError(f"ablation mode must be one of {ABLATION_MODES}, got {mode!r}")
    questions = questions.reset_index(drop=True)
    means: dict[int, torch.Tensor] = {}
    edits, replayed = [], []
    for cond in conditions:
        values = None
        if mode == "mean" and cond.channels is not None:
            if cond.layer not in means:
                means[cond.layer] = channel_means(adapter, questions, cond.layer, batch_size)
            values = means[cond.layer][list(cond.channels)]
        edits.append(channel_edit(adapter, cond.channels, values))
        replayed.append(replays_last_layer(adapter, cond, replay_last_layer))
    index = CandidateIndex(adapter, candidates)
    parts: list[list] = [[] for _ in conditions]
    batches = prediction_batches(adapter, questions, batch_size, share_prefix=share_prefix)
    for rows, share in tqdm(
        batches, desc=f"ablation {adapter.family}", mininterval=5, disable=not progress
    ):
        replay = LastLayerReplay(adapter) if any(replayed) else None
        if replay is not None:
            with replay.recording():
                predict_batch(adapter, index, questions, rows, share)
        for k, cond in enumerate(conditions):
            if replayed[k]:
                context = replay.replaying(edits[k])
            else:
                context = _editing_mlp(adapter, cond.layer, edits[k])
            with context:
                parts[k].append((rows, predict_batch(adapter, index, questions, rows, share)))
    frames = []
    for k, cond in enumerate(conditions):
        labels = cond.labels(adapter.hidden_size)
        frame = in_batch_order(parts[k]).loc[:, list(PREDICTION_COLUMNS)]
        for key in CONDITION_KEYS:
            frame[key] = labels[key]
        frame["mode"] = "zero" if cond.channels is None else mode
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def run_ablation_plans(
    adapter: FamilyAdapter,
    questions: pd.DataFrame,
    candidates: dict[str, list[str]],
    plans: Sequence[Sequence[AblationCondition]],
    **settings,
) -> list[pd.DataFrame]:
    """:func:`run_ablation` of several plans' conditions in one sweep (so the last-layer ones of
    all plans share one unablated pass per batch); one frame per plan, in plan order."""
    flat = [cond for conditions in plans for cond in conditions]
    runs = run_ablation(adapter, questions, candidates, flat, **settings)
    n, frames, start = len(questions), [], 0
    for conditions in plans:
        stop = start + len(conditions) * n
        frames.append(runs.iloc[start:stop].reset_index(drop=True))
        start = stop
    return frames


__all__ = [
    "ABLATION_MODES",
    "CONDITION_KEYS",
    "AblationCondition",
    "LastLayerReplay",
    "ablate_mlp_channels",
    "channel_edit",
    "build_conditions",
    "channel_means",
    "channel_seed",
    "layer_plan",
    "ranked_channels",
    "replays_last_layer",
    "run_ablation",
    "run_ablation_plans",
    "scale_layers",
]
