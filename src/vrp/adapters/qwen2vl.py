"""Qwen2-VL: its own ViT with 2x2 patch merging, dynamic resolution, M-RoPE in a Qwen2 decoder.

Geometry: ``smart_resize`` rounds each side to a multiple of ``patch_size * merge_size`` within
[min_pixels, max_pixels] (no crop), so a non-square image gives a non-square grid; the LM sees
one token per merged ``merge x merge`` block, ``image_grid_thw // merge`` in raster order.
Positions are 3-D (M-RoPE) and are computed by the model from ``image_grid_thw`` and the
attention mask, never by hand.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from transformers import (
    PreTrainedTokenizerBase,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
from transformers.models.qwen2_vl.modeling_qwen2_vl import PatchMerger

from vrp.adapters.base import TINY_DEFAULTS, FamilyAdapter, ProcessedView, unique_module

# Qwen2-VL-*-Instruct's special tokens and their ids (its tokenizer.json)
RELEASE_SPECIAL_IDS: dict[str, int] = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
}

# The tiny-build keys of the Qwen-VL families (their image processor and M-RoPE decoder)
QWEN_TINY_DEFAULTS: dict[str, Any] = {
    **TINY_DEFAULTS,  # image_size: max_pixels = image_size**2 unless given
    "patch_size": 4,
    "merge_size": 2,  # 4-px patches merged 2x2: one LM token per 8-px cell
    "min_pixels": None,  # None: (2 * patch_size * merge_size) ** 2, like the released 56*56
    "max_pixels": None,  # None: image_size ** 2
    "num_key_value_heads": 2,
    "mrope_section": None,  # None: head_dim/2 split as in the release ([16, 24, 24] for head_dim 128)
}

# Same shape as the released Qwen2-VL template for one user turn of [image, text] (without its
# default system turn, which would only add tokens): image parts become
# <|vision_start|><|image_pad|><|vision_end|>, each turn ends with <|im_end|>\n.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class Qwen2VLImageOnlyProcessor(Qwen2VLProcessor):
    """``Qwen2VLProcessor`` without its video processor.

    The video processor needs torchvision, which this environment cannot install; images are
    all the project uses. Saving and loading work as for the parent class.
    """

    @classmethod
    def get_attributes(cls) -> list[str]:
        return ["image_processor", "tokenizer"]


class Qwen2VLAdapter(FamilyAdapter):
    """Adapter for ``Qwen2VLForConditionalGeneration`` checkpoints (e.g. Qwen/Qwen2-VL-2B-Instruct):
    a chat-template prompt, a dynamic grid of merged patches, M-RoPE positions."""

    family: ClassVar[str] = "qwen2vl"
    display_name: ClassVar[str] = "Qwen2-VL"
    display_colour: ClassVar[str] = "#2ca02c"
    model_class: ClassVar[type] = Qwen2VLForConditionalGeneration
    processor_class: ClassVar[type] = Qwen2VLImageOnlyProcessor
    # the image placeholder, its video twin, the vision span markers and the chat-turn markers
    special_tokens: ClassVar[tuple[str, ...]] = (
        "<|image_pad|>",
        "<|video_pad|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|im_start|>",
        "<|im_end|>",
    )
    shares_prefix: ClassVar[bool] = True
    prefix_sharing_note: ClassVar[str] = (
        "causal decoder: no prefix token attends to the question; suffix positions continue the "
        "prefix's M-RoPE positions (get_rope_index), not its length"
    )
    _per_token_answer_values: ClassVar[dict[str, int]] = {"mm_token_type_ids": 0}
    tiny_defaults: ClassVar[dict[str, Any]] = {**QWEN_TINY_DEFAULTS, "vision_mlp_ratio": 2}
    # settings that must be whole merged blocks (patch_size * merge_size pixels)
    _tiny_block_multiples: ClassVar[tuple[str, ...]] = ("image_size",)

    @classmethod
    def template_words(cls) -> list[str]:
        return ["user", "assistant"]

    @classmethod
    def release_tokenizer(cls, raw: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
        """Qwen's byte-level BPE as Qwen2-VL ships it: no BOS, ``<|im_end|>`` eos, ``<|endoftext|>`` pad,
        and the vision special tokens at the release's ids (checked, as they are never added here)."""
        tokenizer = copy.deepcopy(raw)
        tokenizer.add_bos_token = False
        tokenizer.add_special_tokens({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
        cls._check_release_ids(
            tokenizer,
            RELEASE_SPECIAL_IDS,
            "Qwen",
            "Qwen2-VL",
            "use a Qwen2 / Qwen2.5 / Qwen3 tokenizer.json",
        )
        return tokenizer

    def build_prompt(self, question: str) -> str:
        return self._user_turn_prompt(question)

    def next_positions(self, inputs):
        """M-RoPE: image tokens share compressed positions, so the next text position is not the
        prompt length. Read off ``get_rope_index`` on the prompt (not the model's mutable
        ``rope_deltas``, which any forward on another image overwrites): one past the largest
        position of each row (its last real token under left padding; all three rows agree on
        text tokens)."""
        positions, _ = self.model.model.get_rope_index(
            inputs["input_ids"],
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs.get("image_grid_thw"),
            attention_mask=inputs["attention_mask"],
        )
        return positions.amax(dim=(0, 2)).to(torch.long) + 1

    def position_kwargs(self, start, length):
        """Text tokens take the same position in all three M-RoPE rows: (3, R, L)."""
        text = super().position_kwargs(start, length)["position_ids"]
        return {"position_ids": text[None].expand(3, -1, -1)}

    # ------------------------------------------------------------------ tiny build
    @classmethod
    def _build_tiny(
        cls, tokenizer: PreTrainedTokenizerBase, s: dict
    ) -> tuple[torch.nn.Module, Any]:
        factor = s["patch_size"] * s["merge_size"]
        for key in cls._tiny_block_multiples:
            if s[key] % factor:
                raise ValueError(
                    f"{key} {s[key]} must be a multiple of patch_size*merge_size = {factor}"
                )
        min_pixels = s["min_pixels"] if s["min_pixels"] is not None else (2 * factor) ** 2
        max_pixels = s["max_pixels"] if s["max_pixels"] is not None else s["image_size"] ** 2
        head_dim = s["hidden_size"] // s["num_attention_heads"]
        mrope_section = s["mrope_section"] or _default_mrope_section(head_dim)
        if sum(mrope_section) != head_dim // 2:
            raise ValueError(
                f"mrope_section {mrope_section} must sum to head_dim/2 = {head_dim // 2}"
            )
        vision_config = cls._tiny_vision_config(s)

        tokenizer.add_bos_token = False  # Qwen prompts start at <|im_start|>, with no BOS
        image_processor = Qwen2VLImageProcessorPil(
            patch_size=s["patch_size"],
            merge_size=s["merge_size"],
            temporal_patch_size=2,
            size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        )
        processor = cls.processor_class(
            image_processor=image_processor, tokenizer=tokenizer, chat_template=TINY_CHAT_TEMPLATE
        )
        cls._require_special_tokens(tokenizer)
        ids = tokenizer.convert_tokens_to_ids
        rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(mrope_section)}
        config = cls.model_class.config_class(
            text_config=dict(
                **cls._tiny_text_config(tokenizer, s),
                rope_parameters=rope,
                tie_word_embeddings=True,
            ),
            vision_config=vision_config,
            image_token_id=ids("<|image_pad|>"),
            video_token_id=ids("<|video_pad|>"),
            vision_start_token_id=ids("<|vision_start|>"),
            vision_end_token_id=ids("<|vision_end|>"),
            tie_word_embeddings=True,
        )
        return cls.model_class(config), processor

    @classmethod
    def _tiny_vision_config(cls, s: dict) -> dict[str, Any]:
        """The vision tower's config: the patch and merge geometry, and the tower's own shape."""
        return dict(
            depth=s["vision_num_hidden_layers"],
            embed_dim=s["vision_hidden_size"],
            hidden_size=s["hidden_size"],  # the merger's output width = the LM's
            mlp_ratio=s["vision_mlp_ratio"],
            **_tiny_patch_geometry(s),
        )

    # ------------------------------------------------------------------ geometry
    @property
    def merge_size(self) -> int:
        return int(self.model.config.vision_config.spatial_merge_size)

    def _grids_from_inputs(self, inputs: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
        merge = self.merge_size
        grids = []
        for t, h, w in inputs["image_grid_thw"].tolist():
            if t != 1:
                raise ValueError(
                    f"qwen2vl: image_grid_thw has t={t}; only single images are supported"
                )
            grids.append((h // merge, w // merge))
        return grids

    def _resized(self, width: int, height: int) -> tuple[int, int]:
        ip = self.processor.image_processor
        if not ip.do_resize:
            return height, width
        return smart_resize(
            height,
            width,
            factor=ip.patch_size * ip.merge_size,
            min_pixels=ip.size["shortest_edge"],
            max_pixels=ip.size["longest_edge"],
        )

    def expected_grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        ip = self.processor.image_processor
        new_h, new_w = self._resized(*image_size)
        block = ip.patch_size * ip.merge_size
        return new_h // block, new_w // block

    def _processed_view(self, width: int, height: int) -> ProcessedView:
        return ProcessedView.stretched(width, height, *self._resized(width, height))

    # ------------------------------------------------------------------ modules
    def image_embedding_module(self) -> torch.nn.Module:
        """The patch merger; its output is (total tokens of the batch, hidden), rows in batch then raster order."""
        return unique_module(self.model, PatchMerger, self.family)


def _tiny_patch_geometry(s: dict) -> dict[str, Any]:
    """The vision config keys both Qwen-VL towers share: heads, patching, merging, init."""
    return dict(
        num_heads=s["vision_num_attention_heads"],
        patch_size=s["patch_size"],
        spatial_merge_size=s["merge_size"],
        temporal_patch_size=2,
        in_channels=3,
        initializer_range=s["initializer_range"],
    )


def _default_mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies over (time, height, width) in the release's 2:3:3 ratio."""
    half = head_dim // 2
    spatial = half * 3 // 8
    return [half - 2 * spatial, spatial, spatial]
