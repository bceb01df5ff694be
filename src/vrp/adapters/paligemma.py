"""PaliGemma: SigLIP -> linear projector -> Gemma decoder (multi-query attention) as a prefix LM.

The processor lays a prompt out as ``<image>``*N + ``<bos>`` + prefix + ``"\\n"``; image and
prefix tokens attend to each other both ways (``token_type_ids`` = 0), the answer (suffix,
``token_type_ids`` = 1) is causal. Geometry: SigLIP resizes the whole image to a square
(no crop), so every token covers a full-image cell, stretched if the image is not square.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from transformers import (
    AddedToken,
    GemmaConfig,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedTokenizerBase,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
)
from transformers.models.paligemma.modeling_paligemma import PaliGemmaMultiModalProjector

from vrp.adapters.base import TINY_VIT_DEFAULTS, FamilyAdapter, ProcessedView, unique_module

# PaliGemma's detection and segmentation vocabulary, in the release's order
LOCATION_AND_SEGMENT_TOKENS: tuple[str, ...] = tuple(
    [f"<loc{i:04d}>" for i in range(1024)] + [f"<seg{i:03d}>" for i in range(128)]
)


class PaliGemmaAdapter(FamilyAdapter):
    """Adapter for ``PaliGemmaForConditionalGeneration`` checkpoints (e.g. google/paligemma-3b-mix-224):
    a task-prefix prompt whose image and text attend to each other both ways (a prefix LM)."""

    family: ClassVar[str] = "paligemma"
    display_name: ClassVar[str] = "PaliGemma"
    display_colour: ClassVar[str] = "#d62728"
    model_class: ClassVar[type] = PaliGemmaForConditionalGeneration
    processor_class: ClassVar[type] = PaliGemmaProcessor
    # The mix checkpoints' task prefix; the processor adds <bos> after the image and a final "\n".
    default_prompt_template: ClassVar[str] = "answer en {question}"
    special_tokens: ClassVar[tuple[str, ...]] = ("<image>",)
    prefix_sharing_note: ClassVar[str] = (
        "prefix-LM: image and prompt tokens attend to each other bidirectionally, so the image "
        "tokens' states depend on the question; every prompt is one full forward"
    )
    _per_token_answer_values: ClassVar[dict[str, int]] = {"token_type_ids": 1}
    tiny_defaults: ClassVar[dict[str, Any]] = {
        **TINY_VIT_DEFAULTS,
        "patch_size": 8,
        "num_key_value_heads": 1,  # Gemma-2B's multi-query attention
        "head_dim": 32,
    }

    @classmethod
    def template_words(cls) -> list[str]:
        return ["answer", "en"]

    @classmethod
    def release_tokenizer(cls, raw: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
        """A Gemma tokenizer laid out like PaliGemma's: the 1,024 ``<locNNNN>`` and 128 ``<segNNN>``
        tokens appended to the Gemma vocabulary, then ``<image>`` (PaliGemma-1: 256000-257151 and
        257152 on Gemma-1's 256,000), with ``<bos>``/``<eos>``/``<pad>`` as bos/eos/pad.

        Only the SentencePiece model of ``raw`` is kept: a newer Gemma tokenizer's chat-model
        settings (an ``<image_soft_token>`` image token, ``<end_of_turn>`` as eos) are not PaliGemma's.
        """
        tokenizer = type(raw)(
            tokenizer_object=copy.deepcopy(raw.backend_tokenizer),
            bos_token="<bos>",
            eos_token="<eos>",
            pad_token="<pad>",
            unk_token="<unk>",
        )
        tokenizer.add_tokens(list(LOCATION_AND_SEGMENT_TOKENS))
        tokenizer.add_special_tokens(
            {"additional_special_tokens": [AddedToken("<image>", normalized=False, special=True)]}
        )
        return tokenizer

    def build_prompt(self, question: str) -> str:
        return self.processor.image_token + self.prompt_template.replace("{question}", question)

    def next_positions(self, inputs):
        """PaliGemma counts positions from 1 (its forward adds one to the default ``arange``)."""
        return super().next_positions(inputs) + 1

    def _generation_context(self) -> str:
        return self.build_prompt("") + "\n"  # the processor ends every prefix with a newline

    # ------------------------------------------------------------------ tiny build
    @classmethod
    def _build_tiny(
        cls, tokenizer: PreTrainedTokenizerBase, s: dict
    ) -> tuple[torch.nn.Module, Any]:
        vision = cls._tiny_vision_config(s)
        image_size, patch = s["image_size"], s["patch_size"]
        image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
        image_processor.image_seq_length = (
            image_size // patch
        ) ** 2  # PaliGemmaProcessor requires it
        # The processor adds <loc>/<seg> tokens to the tokenizer, so size the model after building it.
        processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
        vocab_size = len(processor.tokenizer)
        vision_config = SiglipVisionConfig(
            **vision, vision_use_head=False
        )  # the pooling head is unused
        text_config = GemmaConfig(
            **cls._tiny_text_config(processor.tokenizer, s), head_dim=s["head_dim"]
        )
        config = PaliGemmaConfig(
            vision_config=vision_config,
            text_config=text_config,
            image_token_index=processor.image_token_id,
            vocab_size=vocab_size,
            projection_dim=s["hidden_size"],
            hidden_size=s["hidden_size"],
            tie_word_embeddings=True,
        )
        return PaliGemmaForConditionalGeneration(config), processor

    # ------------------------------------------------------------------ geometry
    def _processed_view(self, width: int, height: int) -> ProcessedView:
        if getattr(self.processor.image_processor, "do_center_crop", False):
            raise NotImplementedError(
                "PaliGemma geometry: a center-cropping SigLIP processor is not supported"
            )
        return ProcessedView.stretched(width, height, *self._fixed_size(width, height))

    # ------------------------------------------------------------------ modules
    def image_embedding_module(self) -> torch.nn.Module:
        return unique_module(self.model, PaliGemmaMultiModalProjector, self.family)
