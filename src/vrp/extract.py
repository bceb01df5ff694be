"""One-pass activation extraction: every internal quantity the analyses read, from one forward per batch.

For each question the model sees the image and the prompt (teacher forcing, no generation); hooks
on the decoder reduce what they see to the LAST PROMPT TOKEN (the position whose next-token logits
answer the question) and to the image-token span, so no layer's full attention matrix outlives its
own hook. A second forward on a grey image of the same size gives the blank-image logit lens for
the visual-attribution margin.

Arrays written per shard (n = questions in the shard, L = decoder layers, d = hidden size,
S = image tokens, H = query heads; all float32):

==================  ================  =====================================================
name                shape             meaning
==================  ================  =====================================================
hidden              (n, L+1, d)       residual stream at the last token: embeddings, then after each layer
mlp_out             (n, L, d)         MLP output (its residual contribution) at the last token
image_attention     (n, L, S)         last token -> image-token attention, mean over heads
head_attention      (n, L, H, S)      the same per head (``per_head``)
head_logit          (n, L, H)         each head's direct logit contribution to the answer token (``per_head``)
attn_logit          (n, L)            attention-block direct logit contribution to the answer token
mlp_logit           (n, L)            MLP direct logit contribution to the answer token
embed_logit         (n,)              the embeddings' direct logit contribution
lens_margin         (n, L+1)          logit lens margin of the answer token (final norm applied once)
lens_margin_blank   (n, L+1)          the same with a grey image
lens_margin_pred    (n, L+1)          logit lens margin of the model's own predicted answer token
visual_update_norm  (n, L)            mean over image tokens of ||h_l - h_(l-1)||_2
==================  ================  =====================================================

"Answer token" is the first token of the best-scoring surface form of the ground-truth answer
(the paper's "correct token"; :mod:`vrp.scoring` defines forms, scores and every readout).
Margin = its logit minus the largest other logit. ``lens_margin_pred`` reads the first token of
the predicted answer's best form instead, so it needs no ground truth (a deployable margin
readout). Direct logit
contributions linearise the final RMSNorm at the sample's own final residual scale, so embed + sum(attn) + sum(mlp) equals the
answer token's final logit exactly (the decoders here are pure residual sums); per-head values sum
to the attention block's. Images with fewer than S_max tokens (Qwen2-VL's dynamic grid) are
NaN-padded; ``grid_rows``/``grid_cols`` in samples.parquet give each grid.

``head_attention`` is float32, although its n x L x H x S values dominate the shards (LLaVA-1.5 on
POPE's 9,000 questions: 21 GB). float16 was tried and failed: trained heads that look away from
the image put under 3e-8 on every image token, which float16 rounds to 0, so such a map becomes all zeros, and Table
1's L1-normalised head mixes are then undefined. The readers memory-map the shards and read only
the heads they need.

Shards are written atomically (temp folder, then rename). Each shard's meta.json records its
fingerprint (the model spec, checkpoint file contents, settings, answer candidates, the code's
EXTRACTION_VERSION, and a content hash of each of its question rows, image bytes included) and the
size of every file written. A restarted run keeps a shard only when the fingerprint matches and
every file is there with its recorded size, and logs why it redoes any other, so a killed run
resumes and ends with the same files as an uninterrupted one. Arrays must be finite when written
(:func:`check_finite`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import transformers
from PIL import Image
from tqdm.auto import tqdm

from vrp.adapters.base import FamilyAdapter
from vrp.benchmark.images import decode_images
from vrp.benchmark.schema import validate_questions
from vrp.io import atomic_dir, write_json, write_parquet
from vrp.prompt_pass import (
    PromptPass,
    PromptState,
    SharedPrompts,
    full_pass,
    image_groups,
    last_token_index,
    pass_record,
    prefix_pass,
    prompt_passes,
    suffix_pass,
    uses_shared_prefix,
)
from vrp.scoring import (
    DEFAULT_MAX_CONTINUATION_ROWS,
    SCORED_TASKS_EXCLUDED,
    CandidateIndex,
    candidate_sets,
    generation_selected,
    generation_summary,
    greedy_generations,
    in_batch_order,
    parse_generation,
    question_batches,
    score_pass,
)
from vrp.shards import REPAIR_ADVICE, ShardError, pad_last

BLANK_GREY = (128, 128, 128)
MANIFEST_VERSION = 2
# Bump when a change to this module changes what a shard holds: old shards are then redone.
EXTRACTION_VERSION = 5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractionSettings:
    batch_size: int = 16
    shard_size: int = 256
    per_head: bool = True
    # answer scoring (vrp.scoring): continuation rows per forward over the prompt's KV cache
    max_continuation_rows: int = DEFAULT_MAX_CONTINUATION_ROWS
    # attention kernel of the answer-scoring pass; None = the loaded one (eager), which also
    # reads the attention. "sdpa": answers from an sdpa pass, attention from the eager pass.
    score_attn_implementation: str | None = None
    # greedy-generation cross-check: seeded share of questions generated, tokens per answer
    generation_fraction: float = 0.1
    generation_max_new_tokens: int = 5
    generation_seed: int = 0
    # one prefix pass per image, reused by its questions, where the family allows it
    # (vrp.prompt_pass); false: one full forward per batch of prompts
    prefix_sharing: bool = True

    def __post_init__(self):
        if self.shard_size % self.batch_size:
            raise ValueError(
                f"shard_size ({self.shard_size}) must be a multiple of batch_size ({self.batch_size})"
            )
        if not 0.0 <= self.generation_fraction <= 1.0:
            raise ValueError(
                f"generation_fraction must lie in [0, 1], got {self.generation_fraction}"
            )


class _HookSet:
    """Forward hooks registered on entry and removed on exit."""

    handles: list

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def _layer_io(args, kwargs, output) -> tuple[torch.Tensor, torch.Tensor]:
    """A decoder layer's residual stream in and out, as its forward hook sees them."""
    resid_in = args[0] if args else kwargs["hidden_states"]
    return resid_in, output[0] if isinstance(output, tuple) else output


class _LastTokenRecorder(_HookSet):
    """Forward hooks that keep only the last-token / image-span reductions of one batch.

    ``key_image_mask`` (B, K) marks the image-token keys of the attention rows; ``last_index``
    (B,) is each row's last prompt position in this pass (None: -1, the left-padded full pass);
    ``query_image_mask`` (B, T), when given, marks the image tokens whose residual updates are
    averaged (the full pass; a shared-prefix pass reads them off the prefix instead).
    """

    def __init__(
        self,
        adapter: FamilyAdapter,
        key_image_mask: torch.Tensor,
        per_head: bool,
        last_index: torch.Tensor | None = None,
        query_image_mask: torch.Tensor | None = None,
    ):
        self.adapter = adapter
        self.image_mask = key_image_mask
        self.query_image_mask = query_image_mask
        self.last_index = last_index
        self.per_head = per_head
        self.resid_in0: torch.Tensor | None = None
        self.resid: dict[int, torch.Tensor] = {}
        self.update_norm: dict[int, torch.Tensor] = {}
        self.attn_out: dict[int, torch.Tensor] = {}
        self.attn_map: dict[int, torch.Tensor] = {}
        self.head_map: dict[int, torch.Tensor] = {}
        self.head_z: dict[int, torch.Tensor] = {}
        # layers whose attention output is normed before the residual add: the norm's gain, and
        # per row the factor it multiplies its input by (gain / rms) at the last prompt token
        self.output_gain: dict[int, torch.Tensor] = {}
        self.head_scale: dict[int, torch.Tensor] = {}
        self.mlp_out: dict[int, torch.Tensor] = {}
        self.handles: list = []

    def _last(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (B, ...) at each row's last prompt position."""
        if self.last_index is None:
            return x[:, -1]
        return x[torch.arange(x.shape[0], device=x.device), self.last_index.to(x.device)]

    def __enter__(self):
        for index, layer in enumerate(self.adapter.decoder_layers()):
            self.handles.append(
                layer.register_forward_hook(self._layer_hook(index), with_kwargs=True)
            )
            attention = self.adapter.attention_module(index)
            self.handles.append(attention.register_forward_hook(self._attention_hook(index)))
            output = self.adapter.attention_output_module(index)
            if output is not attention:
                self.output_gain[index] = _rms_gain(output, self.adapter.hidden_size)
                self.handles.append(
                    output.register_forward_hook(self._attention_output_hook(index))
                )
            self.handles.append(
                self.adapter.mlp_module(index).register_forward_hook(self._mlp_hook(index))
            )
            if self.per_head:
                projection = self.adapter.output_projection(index)
                self.handles.append(projection.register_forward_pre_hook(self._head_hook(index)))
        return self

    def _layer_hook(self, index):
        def hook(module, args, kwargs, output):
            resid_in, resid_out = _layer_io(args, kwargs, output)
            if index == 0:
                self.resid_in0 = self._last(resid_in).detach().float()
            self.resid[index] = self._last(resid_out).detach().float()
            if self.query_image_mask is not None:
                self.update_norm[index] = _image_update_norm(
                    resid_in, resid_out, self.query_image_mask
                )

        return hook

    def _attention_hook(self, index):
        def hook(module, args, output):
            attn_output, weights = output[0], output[1]
            if weights is None:
                raise RuntimeError(
                    "attention weights are None: load the model with attn_implementation='eager'"
                )
            if index not in self.output_gain:  # else the norm after it gives the contribution
                self.attn_out[index] = self._last(attn_output).detach().float()
            last_row = (
                self._last(weights.transpose(1, 2)).detach().float()
            )  # (B, H, K): the only row kept
            per_head = _gather_image_columns(last_row, self.image_mask)  # (B, H, S_max)
            self.attn_map[index] = per_head.mean(dim=1)
            if self.per_head:
                self.head_map[index] = per_head

        return hook

    def _attention_output_hook(self, index):
        """The norm the attention output passes before the residual add: its output is the
        attention's contribution; at this row's scale it multiplies its input by gain / rms."""

        def hook(module, args, output):
            attn_output = self._last(args[0]).detach().float()
            rms = attn_output.pow(2).mean(-1, keepdim=True).add(_rms_eps(module)).sqrt()
            self.head_scale[index] = self.output_gain[index] / rms  # (B, d)
            self.attn_out[index] = self._last(output).detach().float()

        return hook

    def _mlp_hook(self, index):
        def hook(module, args, output):
            self.mlp_out[index] = self._last(output).detach().float()

        return hook

    def _head_hook(self, index):
        def hook(module, args):
            self.head_z[index] = self._last(args[0]).detach().float()

        return hook


def _image_update_norm(resid_in, resid_out, mask: torch.Tensor) -> torch.Tensor:
    """(B,) mean over a row's image tokens of ||h_l - h_(l-1)||_2."""
    update = (resid_out - resid_in).detach().float().norm(dim=-1)  # (B, T)
    mask = mask.to(update.dtype)
    return (update * mask).sum(1) / mask.sum(1).clamp(min=1)


class _PrefixUpdateRecorder(_HookSet):
    """Hooks on a shared prefix pass: the image tokens' residual updates per layer (question-
    independent in a causal decoder, so one prefix serves all of the image's questions)."""

    def __init__(self, adapter: FamilyAdapter, image_mask: torch.Tensor):
        self.adapter, self.image_mask = adapter, image_mask
        self.update_norm: dict[int, torch.Tensor] = {}
        self.handles: list = []

    def __enter__(self):
        for index, layer in enumerate(self.adapter.decoder_layers()):
            self.handles.append(layer.register_forward_hook(self._hook(index), with_kwargs=True))
        return self

    def _hook(self, index):
        def hook(module, args, kwargs, output):
            resid_in, resid_out = _layer_io(args, kwargs, output)
            self.update_norm[index] = _image_update_norm(resid_in, resid_out, self.image_mask)

        return hook


def _rms_eps(norm: torch.nn.Module) -> float:
    """The epsilon an RMSNorm adds to the mean square (``eps`` or ``variance_epsilon``)."""
    return float(getattr(norm, "eps", getattr(norm, "variance_epsilon", 1e-6)))


def _rms_gain(norm: torch.nn.Module, size: int) -> torch.Tensor:
    """(size,) float32: the elementwise gain of RMSNorm ``norm`` (its output for a ones vector,
    whose rms is sqrt(1 + eps), rescaled by that rms)."""
    device = next(norm.parameters()).device
    with torch.no_grad():
        out = norm(torch.ones(size, device=device, dtype=torch.float32)).float()
    return out * (1.0 + _rms_eps(norm)) ** 0.5


def _gather_image_columns(rows: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
    """(B, H, T) -> (B, H, S_max): the image-token columns of each row, NaN-padded."""
    counts = image_mask.sum(1)
    s_max = int(counts.max())
    out = torch.full(
        (rows.shape[0], rows.shape[1], s_max), float("nan"), dtype=rows.dtype, device=rows.device
    )
    for b in range(rows.shape[0]):
        cols = image_mask[b].nonzero(as_tuple=True)[0]
        out[b, :, : len(cols)] = rows[b][:, cols]
    return out


@contextmanager
def attention_kernel(model: torch.nn.Module, name: str | None):
    """Run the block with attention kernel ``name`` (None: the loaded one); yields the kernel."""
    current = model.config._attn_implementation
    if name is None or name == current:
        yield current
        return
    model.set_attn_implementation(name)
    try:
        yield name
    finally:
        model.set_attn_implementation(current)


@dataclass
class _Pass:
    """One prompt pass's rows (indices into the batch) with what the hooks recorded there."""

    rows: list[int]
    prompt: PromptPass
    rec: _LastTokenRecorder
    update_norm: torch.Tensor  # (n, L)
    grids: list[tuple[int, int]]


class Extractor:
    """Runs the one-pass extraction of one model on one question table."""

    # blank-image prefixes kept (one per image size and prefix; POPE's COCO images come in a few sizes)
    BLANK_PREFIXES_KEPT = 8

    def __init__(
        self, adapter: FamilyAdapter, candidates: dict[str, list[str]], settings: ExtractionSettings
    ):
        self.adapter = adapter
        self.settings = settings
        self.share = uses_shared_prefix(adapter, settings.prefix_sharing)
        self.index = CandidateIndex(adapter, candidates)
        self.lm_head = adapter.lm_head()
        self.final_norm = adapter.final_norm()
        self.readout_kernel = adapter.model.config._attn_implementation
        self.answer_kernel = settings.score_attn_implementation or self.readout_kernel
        self._blank_prefixes: OrderedDict[tuple, PromptState] = OrderedDict()
        with torch.no_grad():
            ones = torch.ones(adapter.hidden_size, device=adapter.device, dtype=adapter.dtype)
            self.norm_gain = self.final_norm(ones).float()  # RMSNorm of a ones vector = its gain

    def _lens_logits(self, resid: torch.Tensor) -> torch.Tensor:
        """(B, K, d) residuals -> (B, K, V) logit-lens logits (final norm applied once, then lm_head)."""
        return self.lm_head(self.final_norm(resid.to(self.adapter.dtype))).float()

    @staticmethod
    def _lens_margin(logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """(B, K, V) lens logits -> (B, K) margin of ``token_ids`` (one per row) over the best other token."""
        index = token_ids[:, None, None].expand(-1, logits.shape[1], 1)
        token = logits.gather(-1, index).squeeze(-1)
        others = logits.scatter(-1, index, float("-inf"))
        return token - others.max(-1).values

    # ------------------------------------------------------------------ the hooked passes
    @torch.no_grad()
    def _passes(
        self, images: list[Image.Image], questions: list[str]
    ) -> Iterator[tuple[_Pass, _Pass]]:
        """The hooked prompt passes (image, then grey image), one pair per group of rows: the
        whole batch as one full pass, or one group per image sharing its prefix. The grey image's
        prefix is computed once per image size (:meth:`_blank_prefix`); its suffixes are the
        image's own."""
        if not self.share:
            blanks = [Image.new("RGB", im.size, BLANK_GREY) for im in images]
            rows = list(range(len(questions)))
            yield (
                self._full(rows, images, questions),
                self._full(rows, blanks, questions, blank=True),
            )
            return
        for rows in image_groups(images):
            image = images[rows[0]]
            shared = self.adapter.encode_shared(image, [questions[r] for r in rows])
            with _PrefixUpdateRecorder(self.adapter, shared.image_mask) as prefix_rec:
                prefix = prefix_pass(self.adapter, shared)
            update = _stack_layers(prefix_rec.update_norm).expand(len(rows), -1)
            real = self._suffixes(rows, shared, prefix, update)
            blank_prefix = self._blank_prefix(image.size, shared, questions[rows[0]])
            blank = self._suffixes(rows, shared, blank_prefix, torch.zeros_like(update), blank=True)
            yield real, blank  # one group's passes (and caches) alive at a time

    def _full(self, rows, images, questions, blank: bool = False) -> _Pass:
        inputs = self.adapter.encode(images, questions)
        mask = self.adapter.image_token_mask(inputs)
        per_head = self.settings.per_head and not blank
        with _LastTokenRecorder(self.adapter, mask, per_head, query_image_mask=mask) as rec:
            prompt = full_pass(self.adapter, inputs, self.index.needs_continuation)
        return _Pass(
            rows, prompt, rec, _stack_layers(rec.update_norm), self.adapter.patch_grids(inputs)
        )

    def _suffixes(
        self, rows, shared: SharedPrompts, prefix: PromptState, update, blank: bool = False
    ) -> _Pass:
        per_head = self.settings.per_head and not blank
        recorder = _LastTokenRecorder(
            self.adapter, shared.key_image_mask(), per_head, last_index=last_token_index(shared)
        )
        with recorder as rec:
            prompt = suffix_pass(self.adapter, shared, prefix, self.index.needs_continuation)
        grids = self.adapter.patch_grids(shared.prefix_inputs) * len(rows)
        return _Pass(rows, prompt, rec, update, grids)

    def batches(self, questions: pd.DataFrame) -> list[list[int]]:
        """Row indices of ``questions`` in batches: whole images together when prefixes are
        shared (each image's prefix computed once), else consecutive rows."""
        return question_batches(questions, self.settings.batch_size, self.share)

    def _blank_prefix(
        self, size: tuple[int, int], shared: SharedPrompts, question: str
    ) -> PromptState:
        """The grey image's prefix state for an image of ``size`` whose prefix is ``shared``'s:
        computed once per size and prefix for the run (the grey image's tokens are the image's)."""
        key = (size, tuple(shared.prefix_inputs["input_ids"][0].tolist()))
        state = self._blank_prefixes.get(key)
        if state is None:
            grey = self.adapter.encode_shared(Image.new("RGB", size, BLANK_GREY), [question])
            if not torch.equal(grey.prefix_inputs["input_ids"], shared.prefix_inputs["input_ids"]):
                raise RuntimeError(
                    f"{self.adapter.family}: the grey image's prefix tokens differ from the image's"
                )
            state = prefix_pass(self.adapter, grey)
            self._blank_prefixes[key] = state
            if len(self._blank_prefixes) > self.BLANK_PREFIXES_KEPT:
                self._blank_prefixes.popitem(last=False)
        else:
            self._blank_prefixes.move_to_end(key)
        return state

    def _score(self, prompt: PromptPass, tasks, answers) -> pd.DataFrame:
        return score_pass(
            self.adapter, self.index, prompt, tasks, answers, self.settings.max_continuation_rows
        )

    @torch.no_grad()
    def run_batch(self, batch: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        images = decode_images(batch["image"])
        questions = batch["question"].tolist()
        tasks, answers = batch["task"].tolist(), batch["answer"].tolist()
        sample_parts, array_parts = [], []
        for part, blank in self._passes(images, questions):
            rows = part.rows
            samples, arrays = self._readouts(
                part,
                blank,
                [images[r] for r in rows],
                [questions[r] for r in rows],
                [tasks[r] for r in rows],
                [answers[r] for r in rows],
            )
            sample_parts.append((rows, samples))
            array_parts.append((rows, arrays))
        samples = in_batch_order(sample_parts)
        samples = self._generation_check(batch, images, samples)
        order = np.argsort(np.concatenate([rows for rows, _ in array_parts]), kind="stable")
        names = array_parts[0][1].keys()
        arrays = {}
        for name in names:
            chunks = [a[name] for _, a in array_parts]
            if name.endswith("attention"):
                s_max = max(c.shape[-1] for c in chunks)
                chunks = [pad_last(c, s_max) for c in chunks]
            arrays[name] = np.concatenate(chunks)[order]
        meta = batch[
            ["question_id", "image_id", "task", "pope_setting", "object", "answer"]
        ].reset_index(drop=True)
        return pd.concat([meta, samples], axis=1), arrays

    def _readouts(self, part: _Pass, blank: _Pass, images, questions, tasks, answers):
        """Answers, readouts and arrays of one pass's rows (and their blank-image pass)."""
        rec, prompt = part.rec, part.prompt
        samples = self._score(prompt, tasks, answers)
        prompt.state.cache = None
        if self.answer_kernel != self.readout_kernel:
            # answers from the scoring kernel; the readout (eager) pass's answers kept beside them
            with attention_kernel(self.adapter.model, self.answer_kernel):
                # these rows share one image (or are the full batch): one pass covers them
                ((_, answer_pass),) = prompt_passes(
                    self.adapter, images, questions, self.index.needs_continuation, self.share
                )
                scored = self._score(answer_pass, tasks, answers)
                del answer_pass
            scored["prediction_readout_kernel"] = samples["prediction"]
            samples = scored
        layers = len(rec.resid)
        # the lens margins and direct logit contributions read the first token of the best-scoring
        # form of the ground-truth answer (vrp.scoring's module docstring)
        device = prompt.logits.device
        answer_ids = torch.tensor(samples["answer_token_id"].to_numpy(), device=device)
        resid = torch.stack(
            [rec.resid_in0] + [rec.resid[i] for i in range(layers)], dim=1
        )  # (B, L+1, d)

        # direct logit attribution through the final norm, linearised at this sample's scale
        final = resid[:, -1, :]
        rms = final.pow(2).mean(-1, keepdim=True).add(self._norm_eps()).sqrt()  # (B, 1)
        unembed = self.lm_head.weight.float()[answer_ids] * self.norm_gain  # (B, d)

        def contribution(x):  # (B, ..., d) -> (B, ...)
            shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
            return (x * unembed.view(shape)).sum(-1) / rms.view(shape[:-1])

        mlp_out = _stack_layers(rec.mlp_out)
        attn_out = _stack_layers(rec.attn_out)
        arrays = {
            "hidden": resid,
            "mlp_out": mlp_out,
            "image_attention": _stack_layers(rec.attn_map),
            "attn_logit": contribution(attn_out),
            "mlp_logit": contribution(mlp_out),
            "embed_logit": contribution(resid[:, 0, :]),
            "visual_update_norm": part.update_norm,
        }
        if self.settings.per_head:
            arrays["head_attention"] = _stack_layers(rec.head_map)
            arrays["head_logit"] = torch.stack(
                [
                    contribution(self._head_outputs(i, rec.head_z[i], rec.head_scale.get(i)))
                    for i in range(layers)
                ],
                dim=1,
            )
        predicted_ids = torch.tensor(samples["prediction_token_id"].to_numpy(), device=device)
        lens_logits = self._lens_logits(resid)  # one lm_head pass serves both margins
        arrays["lens_margin"] = self._lens_margin(lens_logits, answer_ids)
        arrays["lens_margin_pred"] = self._lens_margin(lens_logits, predicted_ids)
        del lens_logits

        blank_rec = blank.rec
        blank_resid = torch.stack(
            [blank_rec.resid_in0] + [blank_rec.resid[i] for i in range(layers)], dim=1
        )
        arrays["lens_margin_blank"] = self._lens_margin(self._lens_logits(blank_resid), answer_ids)
        blank_scored = self._score(blank.prompt, tasks, answers)
        blank.prompt.state.cache = None
        samples["blank_prediction"] = blank_scored["prediction"]
        samples["grid_rows"] = [g[0] for g in part.grids]
        samples["grid_cols"] = [g[1] for g in part.grids]
        return samples, {k: v.cpu().numpy().astype(np.float32) for k, v in arrays.items()}

    def _generation_check(self, batch: pd.DataFrame, images, samples: pd.DataFrame) -> pd.DataFrame:
        """Greedy generations of the seeded sample's rows, parsed the lmms-eval way."""
        settings = self.settings
        chosen = generation_selected(
            batch["question_id"].tolist(), settings.generation_fraction, settings.generation_seed
        )
        texts = [""] * len(batch)
        parsed = [""] * len(batch)
        rows = np.flatnonzero(chosen)
        if len(rows):
            with attention_kernel(self.adapter.model, self.answer_kernel):
                generated = greedy_generations(
                    self.adapter,
                    [images[i] for i in rows],
                    [batch["question"].iloc[i] for i in rows],
                    settings.generation_max_new_tokens,
                    share_prefix=self.share,
                )
            for i, text in zip(rows, generated):
                task = batch["task"].iloc[i]
                texts[i] = text
                parsed[i] = parse_generation(text, task, self.index.candidates[task])
        samples["generation_checked"] = chosen
        samples["generated_text"] = texts
        samples["generated_answer"] = parsed
        return samples

    def scoring_record(self, samples: pd.DataFrame) -> dict:
        """What the manifest records about how answers were produced and checked."""
        record = {
            "answer_attention_kernel": self.answer_kernel,
            "readout_attention_kernel": self.readout_kernel,
            "prompt_pass": pass_record(self.adapter, self.settings.prefix_sharing),
            "post_prompt": self.adapter.post_prompt,
            "prompt_example": self.adapter.build_prompt(self.adapter.question_text("<question>")),
            "answer_forms": {
                task: [[self.index.candidates[task][f.answer], f.text, list(f.ids)] for f in forms]
                for task, forms in self.index.forms.items()
            },
            "generation_check": generation_summary(samples),
        }
        if "prediction_readout_kernel" in samples:
            agree = samples["prediction"] == samples["prediction_readout_kernel"]
            record["kernel_agreement"] = float(agree.mean())
        return record

    def _head_outputs(
        self, layer: int, z: torch.Tensor, scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, H*hd) o_proj input -> (B, H, d): each head's share of the attention contribution.

        ``scale`` (B, d): the factor of the norm the family applies to the attention output before
        the residual add, at each row's own rms (RMSNorm is linear there), so the heads' shares
        sum to the normed output; None where the output is added as it is.
        """
        projection = self.adapter.output_projection(layer)
        heads = self.adapter.num_heads
        z = z.view(z.shape[0], heads, -1)  # (B, H, hd)
        weight = projection.weight.float().view(projection.out_features, heads, -1)  # (d, H, hd)
        shares = torch.einsum("bhk,dhk->bhd", z, weight)
        return shares if scale is None else shares * scale[:, None, :]

    def _norm_eps(self) -> float:
        return _rms_eps(self.final_norm)


def _stack_layers(values: dict[int, torch.Tensor]) -> torch.Tensor:
    """{layer: (B, ...)} -> (B, L, ...) in layer order."""
    return torch.stack([values[i] for i in range(len(values))], dim=1)


def _checkpoint_identity(path: str) -> list | None:
    """(name, size, sha256) of a local checkpoint's files: a retrained model must not reuse old shards.

    Content, not mtime: a copy or a touch keeps the shards, new weights under the same path do not.
    A Hub id returns None: its revision in the spec identifies it.
    """
    folder = Path(path)
    if not folder.is_dir():
        return None
    identity = []
    for file in sorted(f for f in folder.rglob("*") if f.is_file()):
        digest = hashlib.sha256()
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        identity.append((str(file.relative_to(folder)), file.stat().st_size, digest.hexdigest()))
    return identity


def question_row_hashes(questions: pd.DataFrame) -> list[str]:
    """One content hash per question row over every column, the image's encoded bytes included."""
    columns = sorted(questions.columns)
    hashes = []
    for row in questions[columns].itertuples(index=False, name=None):
        digest = hashlib.sha256()
        for column, value in zip(columns, row):
            raw = (
                bytes(value)
                if isinstance(value, (bytes, bytearray, memoryview))
                else repr(value).encode()
            )
            digest.update(column.encode() + b"\0" + hashlib.sha256(raw).digest())
        hashes.append(digest.hexdigest()[:16])
    return hashes


def fingerprint_parts(
    model_spec: dict, settings: ExtractionSettings, candidates: dict
) -> dict[str, str]:
    """What every shard depends on besides its own question rows, each part hashed on its own.

    A part that differs from a shard's recorded one names the reason it is redone in the log.
    """
    parts = {
        "code": str(EXTRACTION_VERSION),
        "model": model_spec,
        "settings": asdict(settings),
        "checkpoint": _checkpoint_identity(str(model_spec.get("path", ""))),
        "candidates": candidates,
    }
    return {
        name: hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]
        for name, value in parts.items()
    }


def _combine(parts: dict[str, str], row_hashes: list[str]) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    digest.update("".join(row_hashes).encode())
    return digest.hexdigest()[:16]


def fingerprint(model_spec: dict, settings: ExtractionSettings, questions: pd.DataFrame) -> str:
    """Hash of everything that determines the extraction's content: model files, settings, code
    version, and every question row's content (image bytes included)."""
    questions = _scored_questions(questions, "question table")
    parts = fingerprint_parts(model_spec, settings, candidate_sets(questions))
    return _combine(parts, question_row_hashes(questions))


def _scored_questions(questions: pd.DataFrame, source: str) -> pd.DataFrame:
    """The validated table without the rows no answer is scored for (what the shards hold)."""
    questions = validate_questions(questions, source=source)
    questions = questions[~questions["task"].isin(SCORED_TASKS_EXCLUDED)].reset_index(drop=True)
    if questions.empty:
        raise ValueError(
            f"{source}: no scored questions to extract (the table holds only caption rows?)"
        )
    return questions


class NonFiniteArrayError(ValueError):
    """An extracted array holds NaN or inf where a value belongs."""


def check_finite(arrays: dict[str, np.ndarray], samples: pd.DataFrame, shard: str) -> None:
    """Refuse NaN/inf in any array, except the NaN padding of image-token axes past each row's grid.

    Image-attention arrays are NaN-padded to the shard's widest image (Qwen2-VL's dynamic grid):
    columns ``grid_rows * grid_cols`` onward of a row are padding, everything before must be finite.
    """
    tokens = (samples["grid_rows"].to_numpy() * samples["grid_cols"].to_numpy()).astype(np.int64)
    ids = samples["question_id"].astype(str).to_numpy()
    for name, array in arrays.items():
        flat = (
            array.reshape(len(array), -1, array.shape[-1])
            if array.ndim > 1
            else array[:, None, None]
        )
        if name.endswith("attention"):
            real = np.arange(array.shape[-1])[None, :] < tokens[:, None]  # (n, S)
            bad_cell = ~np.isfinite(flat) & real[:, None, :]
        else:
            bad_cell = ~np.isfinite(flat)
        bad = bad_cell.any(axis=(1, 2))
        if bad.any():
            shown = ", ".join(ids[bad][:10]) + (" ..." if bad.sum() > 10 else "")
            raise NonFiniteArrayError(
                f"extraction shard {shard}: array {name!r} holds NaN/inf for {int(bad.sum())} question(s) "
                f"({shown}); nothing was written for this shard. A NaN here means the model's forward "
                "overflowed or the image is degenerate: check models.<name>.dtype (float16 overflows; use "
                "bfloat16 or float32) and these questions' images"
            )


def _write_shard(
    shard_dir: Path, samples: pd.DataFrame, arrays: dict[str, np.ndarray], meta: dict
) -> None:
    """Write one shard atomically (temp folder, then rename); meta.json records every file's size."""
    with atomic_dir(shard_dir) as tmp:
        samples.to_parquet(tmp / "samples.parquet", index=False)
        for name, array in arrays.items():
            np.save(
                tmp / f"{name}.npy",
                np.ascontiguousarray(array, dtype=np.float32),
                allow_pickle=False,
            )
        files = {f.name: f.stat().st_size for f in sorted(tmp.iterdir())}
        (tmp / "meta.json").write_text(json.dumps({**meta, "files": files}, sort_keys=True))


def shard_state(
    shard_dir: Path, key: str, parts: dict | None = None, row_hashes: dict | None = None
) -> str | None:
    """None when the shard is complete for ``key``, else why it must be (re)done.

    Complete = meta.json exists with this fingerprint and every file it lists exists with the size
    recorded when it was written.
    """
    meta_path = shard_dir / "meta.json"
    if not meta_path.exists():
        return "not written yet" if not shard_dir.exists() else "meta.json is missing"
    meta = json.loads(meta_path.read_text())
    if meta.get("fingerprint") != key:
        changed = [
            name
            for name, value in (parts or {}).items()
            if meta.get("parts", {}).get(name) != value
        ]
        reasons = [f"{name} changed" for name in changed]
        old_rows = meta.get("row_hashes", {})
        if row_hashes is not None:
            moved = [q for q, h in row_hashes.items() if old_rows.get(q) != h]
            dropped = sorted(set(old_rows) - set(row_hashes))
            if moved:
                reasons.append(
                    f"question rows changed or new ({', '.join(moved[:5])}"
                    f"{' ...' if len(moved) > 5 else ''}: question, answer, image bytes or columns)"
                )
            if dropped:
                reasons.append(f"questions no longer in this shard ({', '.join(dropped[:5])})")
        return "fingerprint differs: " + ("; ".join(reasons) or "written by an older vrp")
    listed = meta.get("files")
    if listed is None:
        return "written by an older vrp (no file sizes recorded)"
    for name, size in sorted(listed.items()):
        path = shard_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} were written"
    return None


def _shard_is_complete(shard_dir: Path, key: str) -> bool:
    return shard_state(shard_dir, key) is None


def extract(
    adapter: FamilyAdapter,
    questions: pd.DataFrame,
    out_dir: str | os.PathLike,
    model_spec: dict,
    settings: ExtractionSettings = ExtractionSettings(),
    progress: bool = True,
) -> dict:
    """Extract every shard not already complete under ``out_dir``; write samples.parquet + manifest.json."""
    out_dir = Path(out_dir)
    questions = _scored_questions(questions, f"question table for {out_dir}")
    candidates = candidate_sets(questions)
    extractor = Extractor(adapter, candidates, settings)
    parts = fingerprint_parts(model_spec, settings, candidates)
    row_hashes = question_row_hashes(questions)
    key = _combine(parts, row_hashes)
    n_shards = -(-len(questions) // settings.shard_size)
    shard_dirs = [out_dir / "shards" / f"{k:05d}" for k in range(n_shards)]
    shard_keys, shard_rows, todo = [], [], []
    for k in range(n_shards):
        rows = slice(k * settings.shard_size, (k + 1) * settings.shard_size)
        hashes = row_hashes[rows]
        shard_rows.append(dict(zip(questions["question_id"].iloc[rows], hashes)))
        shard_keys.append(_combine(parts, hashes))
        reason = shard_state(shard_dirs[k], shard_keys[k], parts, shard_rows[k])
        if reason is not None:
            todo.append(k)
            if reason != "not written yet":
                log.warning("shard %s is redone: %s", shard_dirs[k].relative_to(out_dir), reason)
    _remove_stale_shards(out_dir / "shards", n_shards)
    for output in (
        "manifest.json",
        "samples.parquet",
    ):  # rewritten at the end, once all shards agree
        (out_dir / output).unlink(missing_ok=True)
    bar = tqdm(
        total=len(questions), desc=f"extract {adapter.family}", mininterval=5, disable=not progress
    )
    if len(todo) < n_shards:
        done = [k for k in range(n_shards) if k not in todo]
        bar.write(f"resuming: {len(done)} complete shard(s) kept")
    for k in todo:
        shard = questions.iloc[k * settings.shard_size : (k + 1) * settings.shard_size]
        parts_k, arrays, rows_k = [], {}, []
        for rows in extractor.batches(shard):
            batch_samples, batch_arrays = extractor.run_batch(shard.iloc[rows])
            parts_k.append(batch_samples)
            rows_k.extend(rows)
            for name, array in batch_arrays.items():
                arrays.setdefault(name, []).append(array)
            bar.update(len(batch_samples))
        order = np.argsort(np.asarray(rows_k), kind="stable")  # back to the shard's row order
        s_max = max(a.shape[-1] for a in arrays["image_attention"])
        stacked = {
            name: np.concatenate(
                [pad_last(a, s_max) if name.endswith("attention") else a for a in chunks]
            )[order]
            for name, chunks in arrays.items()
        }
        samples = pd.concat(parts_k, ignore_index=True).iloc[order].reset_index(drop=True)
        check_finite(stacked, samples, str(shard_dirs[k].relative_to(out_dir)))
        meta = {
            "fingerprint": shard_keys[k],
            "rows": len(shard),
            "parts": parts,
            "row_hashes": shard_rows[k],
        }
        _write_shard(shard_dirs[k], samples, stacked, meta)
    bar.close()
    return _finalise(out_dir, shard_dirs, key, adapter, model_spec, settings, candidates, extractor)


def _remove_stale_shards(shards_root: Path, n_shards: int) -> None:
    """Remove what nobody lists: shard folders past the current count (a shorter question table)
    and temp folders of a killed job (``.NNNNN.*``, never renamed into place)."""
    if shards_root.is_dir():
        for folder in shards_root.iterdir():
            stale = folder.name.isdigit() and int(folder.name) >= n_shards
            if folder.is_dir() and (stale or folder.name.startswith(".")):
                shutil.rmtree(folder)


def _finalise(
    out_dir, shard_dirs, key, adapter, model_spec, settings, candidates, extractor
) -> dict:
    samples = pd.concat(
        [pd.read_parquet(d / "samples.parquet") for d in shard_dirs], ignore_index=True
    )
    listed = [sorted(p.stem for p in d.glob("*.npy")) for d in shard_dirs]
    names = sorted(set().union(*listed))
    for d, have in zip(shard_dirs, listed):
        lacking = sorted(set(names) - set(have))
        if lacking:
            raise ShardError(
                f"shard {d} lacks array(s) {lacking} that other shards of {out_dir} hold; no manifest was "
                f"written. {REPAIR_ADVICE}"
            )
    arrays = {}
    for name in names:
        files = [d / f"{name}.npy" for d in shard_dirs]
        heads = [np.load(f, mmap_mode="r") for f in files]
        shapes = [h.shape for h in heads]
        arrays[name] = {
            "shape": [sum(s[0] for s in shapes), *shapes[0][1:-1], max(s[-1] for s in shapes)]
            if len(shapes[0]) > 1
            else [sum(s[0] for s in shapes)],
            "dtype": str(heads[0].dtype),
            "shards": [str(f.relative_to(out_dir)) for f in files],
            "bytes": [f.stat().st_size for f in files],
        }
        del heads
    manifest = {
        "version": MANIFEST_VERSION,
        "fingerprint": key,
        "model": model_spec,
        "family": adapter.family,
        "num_layers": adapter.num_layers,
        "hidden_size": adapter.hidden_size,
        "num_heads": adapter.num_heads,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "settings": asdict(settings),
        "candidates": candidates,
        "answer_scoring": extractor.scoring_record(samples),
        "n_samples": len(samples),
        "arrays": arrays,
    }
    write_parquet(samples, out_dir / "samples.parquet")
    write_json(manifest, out_dir / "manifest.json")
    return manifest
