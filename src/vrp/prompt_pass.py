"""Prompt passes: the forward over each question's prompt that every model job starts from.

Two paths give the same result:

* **full**: one forward over a left-padded batch of whole prompts (image + question). Every family
  can take it. PaliGemma must: its prefix-LM attention lets image and prompt tokens attend to each
  other both ways, so its image tokens' states depend on the question.
* **shared prefix**: for families whose prompt prefix through the image span attends to nothing
  after it (:attr:`vrp.adapters.base.FamilyAdapter.shares_prefix`: the causal decoders), one
  forward over each image's prefix (:meth:`~vrp.adapters.base.FamilyAdapter.encode_shared`: the
  template text, the image span and any template text up to the question). Every question about
  that image then continues from a copy of its KV cache as one right-padded batch of text
  suffixes. The suffix positions continue the prefix's, through
  :meth:`~vrp.adapters.base.FamilyAdapter.continuation_inputs`. For Qwen2-VL these are M-RoPE
  positions; dropping its rope deltas would silently shift every suffix token, and the
  equivalence tests catch that. Attention to the image is read over the cached keys, and the image
  columns keep their prefix indices.

A pass gives, per row, the next-token logits at the last prompt token and a :class:`PromptState`.
Later tokens continue through that state: the multi-token answer forms of :mod:`vrp.scoring`, and
greedy or sampled generations (:func:`generate`). Rows with identical pixels share a prefix
(:func:`image_groups`). Images that differ per question (patch masking) form groups of one and cost
what a full forward costs.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from vrp.adapters.base import FamilyAdapter

PASS_MODES = ("shared_prefix", "full")


@dataclass
class PromptState:
    """What later tokens continue from: the prompt's KV cache (None when nothing continues),
    which cache entries are real tokens (``key_mask`` (B, K)), and each row's next position."""

    cache: Any
    key_mask: torch.Tensor
    next_positions: torch.Tensor


@dataclass
class PromptPass:
    """One pass over a batch of prompts: last-prompt-token logits (B, V) and the state."""

    logits: torch.Tensor
    state: PromptState


@dataclass
class SharedPrompts:
    """The questions about one image, encoded for a shared prefix (``encode_shared``)."""

    prefix_inputs: dict[str, torch.Tensor]  # one row: the prefix, with the image inputs
    suffix_ids: torch.Tensor  # (n, L) right-padded
    suffix_mask: torch.Tensor  # (n, L)
    image_mask: torch.Tensor  # (1, P) True at the prefix's image tokens

    @property
    def suffix_lengths(self) -> torch.Tensor:
        return self.suffix_mask.sum(dim=1).to(torch.long)

    @property
    def prefix_length(self) -> int:
        return int(self.prefix_inputs["input_ids"].shape[1])

    def key_image_mask(self) -> torch.Tensor:
        """(n, P + L) True at the image-token keys a suffix query sees (all in the prefix)."""
        rows = self.suffix_ids.shape[0]
        return torch.cat(
            [
                self.image_mask.expand(rows, -1),
                torch.zeros_like(self.suffix_mask, dtype=torch.bool),
            ],
            dim=1,
        )


def cache_rows(cache, rows: torch.Tensor):
    """A copy of ``cache`` with the prompt rows ``rows`` (repeats allowed); ``cache`` untouched."""
    chunk = copy.copy(cache)
    chunk.layers = [copy.copy(layer) for layer in cache.layers]
    chunk.reorder_cache(rows)  # index_select rebinds each copied layer's tensors
    return chunk


def select_rows(state: PromptState, rows: torch.Tensor) -> PromptState:
    """The state of the prompt rows ``rows`` (repeats allowed), with a copy of their cache."""
    cache = None if state.cache is None else cache_rows(state.cache, rows)
    return PromptState(cache, state.key_mask[rows], state.next_positions[rows])


def image_key(image: Image.Image) -> str:
    """A digest of an image's pixels: rows with equal keys can share one prefix."""
    digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def image_groups(images: Sequence[Image.Image]) -> list[list[int]]:
    """Row indices grouped by identical pixels, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for row, image in enumerate(images):
        groups.setdefault(image_key(image), []).append(row)
    return list(groups.values())


@torch.no_grad()
def full_pass(
    adapter: FamilyAdapter, inputs: dict[str, torch.Tensor], use_cache: bool
) -> PromptPass:
    """The plain forward over a left-padded batch (``adapter.encode``): position -1 is each row's
    last prompt token."""
    out = adapter.forward(**inputs, use_cache=use_cache, logits_to_keep=1)
    state = PromptState(
        out.cache if use_cache else None,
        inputs["attention_mask"],
        adapter.next_positions(inputs),
    )
    return PromptPass(out.logits[:, -1, :], state)


@torch.no_grad()
def prefix_pass(adapter: FamilyAdapter, shared: SharedPrompts) -> PromptState:
    """The forward over one image's prefix; its cache serves every question about the image."""
    inputs = shared.prefix_inputs
    out = adapter.forward(**inputs, use_cache=True, logits_to_keep=1)
    return PromptState(out.cache, inputs["attention_mask"], adapter.next_positions(inputs))


@torch.no_grad()
def suffix_pass(
    adapter: FamilyAdapter, shared: SharedPrompts, prefix: PromptState, use_cache: bool
) -> PromptPass:
    """The questions' suffixes over copies of the prefix cache, one right-padded batch."""
    rows = torch.zeros(
        shared.suffix_ids.shape[0], dtype=torch.long, device=shared.suffix_ids.device
    )
    kwargs = adapter.continuation_inputs(prefix, rows, shared.suffix_ids, shared.suffix_mask)
    lengths = shared.suffix_lengths
    last = lengths - 1
    keep = torch.unique(last)  # sorted; the logits of only these positions are computed
    out = adapter.forward(
        **kwargs, cache=cache_rows(prefix.cache, rows), use_cache=True, logits_to_keep=keep
    )
    logits = out.logits[torch.arange(len(last)), torch.searchsorted(keep, last)]
    state = PromptState(
        out.cache if use_cache else None,
        kwargs["attention_mask"],
        prefix.next_positions[rows] + lengths,
    )
    return PromptPass(logits, state)


def last_token_index(shared: SharedPrompts) -> torch.Tensor:
    """(n,) each suffix row's last real position in the suffix pass (where the answer is read)."""
    return shared.suffix_lengths - 1


def uses_shared_prefix(adapter: FamilyAdapter, requested: bool) -> bool:
    """The pass a job takes: shared prefix where requested and the family allows it."""
    return bool(requested) and adapter.shares_prefix


def pass_record(adapter: FamilyAdapter, requested: bool) -> dict:
    """What a manifest says about the prompt pass of a model."""
    mode = "shared_prefix" if uses_shared_prefix(adapter, requested) else "full"
    reason = (
        adapter.prefix_sharing_note if requested else "prefix sharing switched off in the config"
    )
    return {"mode": mode, "requested": bool(requested), "reason": reason}


def prompt_passes(
    adapter: FamilyAdapter,
    images: Sequence[Image.Image],
    questions: Sequence[str],
    use_cache: bool,
    share: bool,
    on_prefix: Callable[[SharedPrompts], Any] | None = None,
) -> Iterator[tuple[list[int], PromptPass]]:
    """Yield ``(rows, pass)`` covering every row of the batch once.

    Shared prefix (``share`` and the family allows it): one group per distinct image, its rows in
    batch order. Full: one pass over the whole batch. ``on_prefix(shared)`` may return a context
    manager entered around each prefix pass (e.g. hooks that read the image tokens there).
    """
    if not uses_shared_prefix(adapter, share):
        inputs = adapter.encode(list(images), list(questions))
        yield list(range(len(questions))), full_pass(adapter, inputs, use_cache)
        return
    for rows in image_groups(images):
        shared = adapter.encode_shared(images[rows[0]], [questions[r] for r in rows])
        context = on_prefix(shared) if on_prefix is not None else nullcontext()
        with context:
            prefix = prefix_pass(adapter, shared)
        yield rows, suffix_pass(adapter, shared, prefix, use_cache)


# ---------------------------------------------------------------------------------------------
# decoding from a prompt state
# ---------------------------------------------------------------------------------------------
def generate(
    adapter: FamilyAdapter,
    first_logits: torch.Tensor,
    state: PromptState,
    max_new_tokens: int,
    choose: Callable[[torch.Tensor, int], torch.Tensor],
) -> list[list[int]]:
    """Decode up to ``max_new_tokens`` tokens per row from a prompt state; ids without the eos.

    ``first_logits`` (R, V) are the logits at each row's last prompt token and ``state`` the
    matching rows' state (left untouched). ``choose(logits, step)`` returns one token id per row
    (greedy: argmax; sampling: seeded draws). A row stops at the eos token; the batch stops when
    every row has. Each row is its own prompt here: :func:`generate_shared` with no rows in common.
    """
    rows = torch.arange(first_logits.shape[0], device=first_logits.device)
    return generate_shared(adapter, PromptPass(first_logits, state), rows, max_new_tokens, choose)


@torch.no_grad()
def generate_shared(
    adapter: FamilyAdapter,
    prompt: PromptPass,
    picks: torch.Tensor,
    max_new_tokens: int,
    choose: Callable[[torch.Tensor, int], torch.Tensor],
) -> list[list[int]]:
    """Decode up to ``max_new_tokens`` tokens for rows that continue prompt rows ``picks`` (R,) of
    ``prompt``, with one forward per distinct continuation: ids without the eos, one list per row.

    ``choose(logits, step)`` returns one token id per row of the (R, V) logits it gets (row r:
    its own stream); a row stops at the eos token, and decoding stops when every row has.

    A row's next-token distribution depends only on its prompt and the tokens it has drawn, so
    the rows that drew the same tokens from the same prompt row (the K samples of a one-word
    answer mostly agree) share one forward, and each row draws from it with its own stream. The
    prompt's state is left untouched.
    """
    eos = adapter.tokenizer.eos_token_id
    device = prompt.logits.device
    rows = int(picks.shape[0])
    tokens: list[list[int]] = [[] for _ in range(rows)]
    alive = [True] * rows
    node = picks.tolist()  # each row's entry in the current logits: step 0, its prompt row
    logits, state = prompt.logits, prompt.state
    for step in range(max_new_tokens):
        chosen = choose(logits[torch.tensor(node, device=device)].float(), step)
        for r in range(rows):
            if alive[r]:
                token = int(chosen[r])
                if token == eos:
                    alive[r] = False
                else:
                    tokens[r].append(token)
        if not any(alive) or step == max_new_tokens - 1:
            break
        branches: dict[tuple[int, int], int] = {}  # (entry, token) -> the next step's entry
        for r in range(rows):
            node[r] = (
                branches.setdefault((node[r], tokens[r][-1]), len(branches)) if alive[r] else 0
            )
        parents = torch.tensor([entry for entry, _ in branches], device=device)
        step_ids = torch.tensor([[token] for _, token in branches], device=device)
        branch = select_rows(state, parents)
        step_mask = torch.ones(step_ids.shape, dtype=branch.key_mask.dtype, device=device)
        kwargs = adapter.continuation_inputs(
            branch, torch.arange(len(branches), device=device), step_ids, step_mask
        )
        out = adapter.forward(**kwargs, cache=branch.cache, use_cache=True, logits_to_keep=1)
        state = PromptState(out.cache, kwargs["attention_mask"], branch.next_positions + 1)
        logits = out.logits[:, -1, :]
    return tokens
