"""Qwen2.5-VL: Qwen2-VL's processor family and M-RoPE decoder, a window-attention vision tower.

What is the same as Qwen2-VL (inherited from :class:`~vrp.adapters.qwen2vl.Qwen2VLAdapter`): the
image processor (``smart_resize`` to multiples of ``patch_size * merge_size`` within
[min_pixels, max_pixels], no crop; one LM token per merged block, ``image_grid_thw // merge`` in
raster order), the chat template and special tokens (same ids), and the M-RoPE positions of a
cached suffix, read off ``get_rope_index`` (its signature adds only ``second_per_grid_ts``, for
videos).

What differs: the model class (``model_type`` ``qwen2_5_vl``) and the vision tower. Its blocks
attend within windows of ``window_size`` pixels (``window_size / patch_size / merge_size`` merged
tokens a side) except the ``fullatt_block_indexes`` blocks, which attend over the whole image; the
tower permutes the patches into window order first and undoes it after the merger, so the
merger's output rows are in window order (:meth:`Qwen25VLAdapter.image_embedding_order`), while the
LM's image tokens are in raster order as for Qwen2-VL. Vision blocks use RMSNorm and a gated MLP
(``intermediate_size`` instead of Qwen2-VL's ``mlp_ratio``).

Prefix sharing is valid, as for Qwen2-VL: the decoder is causal, so the prompt's KV cache through
the image span does not depend on the question; the suffix continues from the M-RoPE position of
the last prompt token.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from transformers import (
    PreTrainedTokenizerBase,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
)
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLPatchMerger
from transformers.vision_utils import get_vision_window_index

from vrp.adapters.base import tiny_text_config, unique_module
from vrp.adapters.qwen2vl import TINY_CHAT_TEMPLATE, Qwen2VLAdapter, _default_mrope_section


class Qwen25VLImageOnlyProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` without its video processor (which needs torchvision, not
    installable here); images are all the project uses. Saving and loading work as for the parent."""

    @classmethod
    def get_attributes(cls) -> list[str]:
        return ["image_processor", "tokenizer"]


class Qwen25VLAdapter(Qwen2VLAdapter):
    """Adapter for ``Qwen2_5_VLForConditionalGeneration`` checkpoints (e.g. Qwen/Qwen2.5-VL-7B-Instruct)."""

    family: ClassVar[str] = "qwen25vl"
    display_name: ClassVar[str] = "Qwen2.5-VL"
    display_colour: ClassVar[str] = "#9467bd"
    model_type: ClassVar[str] = "qwen2_5_vl"
    model_class: ClassVar[type] = Qwen2_5_VLForConditionalGeneration
    processor_class: ClassVar[type] = Qwen25VLImageOnlyProcessor
    shares_prefix: ClassVar[bool] = True
    prefix_sharing_note: ClassVar[str] = (
        "a causal decoder: the prompt through the image span never sees the question; the "
        "suffix continues from the last prompt token's M-RoPE position (get_rope_index)"
    )
    output_projection_name: ClassVar[str] = "o_proj"  # Qwen2_5_VLAttention.o_proj
    # A literal (vrp.config reads it from this file without importing torch).
    tiny_defaults: ClassVar[dict[str, Any]] = {
        "image_size": 64,  # max_pixels = image_size**2 unless given
        "patch_size": 4,
        "merge_size": 2,  # 4-px patches merged 2x2: one LM token per 8-px cell
        "min_pixels": None,  # None: (2 * patch_size * merge_size) ** 2, like the released 56*56
        "max_pixels": None,  # None: image_size ** 2
        "window_size": 32,  # px: windows of 4x4 LM tokens, as the release's 112 px at patch 14
        # vision blocks that attend over the whole image; None: every 8th from the 8th (the
        # release's 7, 15, 23, 31 of 32), or the last block of a shorter tower
        "fullatt_block_indexes": None,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "mrope_section": None,  # None: head_dim/2 split as in the release ([16, 24, 24] for head_dim 128)
        "vision_hidden_size": 64,
        "vision_intermediate_size": 128,
        "vision_num_hidden_layers": 2,
        "vision_num_attention_heads": 4,
        "initializer_range": 0.08,
        "max_position_embeddings": 2048,
    }

    # ------------------------------------------------------------------ tiny build
    @classmethod
    def _build_tiny(cls, tokenizer: PreTrainedTokenizerBase, s: dict) -> tuple[torch.nn.Module, Any]:
        patch, merge = s["patch_size"], s["merge_size"]
        factor = patch * merge
        if s["image_size"] % factor:
            raise ValueError(
                f"image_size {s['image_size']} must be a multiple of patch_size*merge_size = {factor}"
            )
        if s["window_size"] % factor:
            raise ValueError(
                f"window_size {s['window_size']} must be a multiple of patch_size*merge_size = {factor}"
            )
        min_pixels = s["min_pixels"] if s["min_pixels"] is not None else (2 * factor) ** 2
        max_pixels = s["max_pixels"] if s["max_pixels"] is not None else s["image_size"] ** 2
        hidden, heads = s["hidden_size"], s["num_attention_heads"]
        head_dim = hidden // heads
        mrope_section = s["mrope_section"] or _default_mrope_section(head_dim)
        if sum(mrope_section) != head_dim // 2:
            raise ValueError(f"mrope_section {mrope_section} must sum to head_dim/2 = {head_dim // 2}")
        depth = s["vision_num_hidden_layers"]
        full_blocks = s["fullatt_block_indexes"]
        if full_blocks is None:
            full_blocks = [i for i in range(depth) if (i + 1) % 8 == 0] or [max(depth - 1, 0)]

        tokenizer.add_bos_token = False  # Qwen prompts start at <|im_start|>, with no BOS
        image_processor = Qwen2VLImageProcessorPil(
            patch_size=patch,
            merge_size=merge,
            temporal_patch_size=2,
            size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        )
        processor = Qwen25VLImageOnlyProcessor(
            image_processor=image_processor, tokenizer=tokenizer, chat_template=TINY_CHAT_TEMPLATE
        )
        ids = tokenizer.convert_tokens_to_ids
        missing = [
            t for t in cls.special_tokens if ids(t) is None or ids(t) == tokenizer.unk_token_id
        ]
        if missing:
            raise ValueError(
                f"the tokenizer lacks Qwen2.5-VL's special tokens {missing}; build it with vrp.zoo.tokenizer"
            )
        config = Qwen2_5_VLConfig(
            text_config=dict(
                **tiny_text_config(tokenizer, s),
                rope_parameters={
                    "rope_type": "default",
                    "rope_theta": 10000.0,
                    "mrope_section": list(mrope_section),
                },
                tie_word_embeddings=True,
            ),
            vision_config=dict(
                depth=depth,
                hidden_size=s["vision_hidden_size"],
                intermediate_size=s["vision_intermediate_size"],
                num_heads=s["vision_num_attention_heads"],
                out_hidden_size=hidden,  # the merger's output width = the LM's
                patch_size=patch,
                spatial_merge_size=merge,
                temporal_patch_size=2,
                window_size=s["window_size"],
                fullatt_block_indexes=list(full_blocks),
                in_channels=3,
                initializer_range=s["initializer_range"],
            ),
            image_token_id=ids("<|image_pad|>"),
            video_token_id=ids("<|video_pad|>"),
            vision_start_token_id=ids("<|vision_start|>"),
            vision_end_token_id=ids("<|vision_end|>"),
            tie_word_embeddings=True,
        )
        return Qwen2_5_VLForConditionalGeneration(config), processor

    # ------------------------------------------------------------------ modules
    def image_embedding_module(self) -> torch.nn.Module:
        """The patch merger; its output is (total tokens of the batch, hidden), rows in WINDOW
        order (:meth:`image_embedding_order` maps them to the raster order of the LM's tokens)."""
        return unique_module(self.model, Qwen2_5_VLPatchMerger, self.family)

    def image_embedding_order(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(total tokens,) long: for each row of :meth:`image_embedding_module`'s output, the index
        of the LM image token it becomes (raster order over the batch's images, row by row).

        The vision tower's own window permutation (``get_vision_window_index``, the function the
        tower calls), so this is the order the tower undoes after the merger.
        """
        vision = self.model.config.vision_config
        window_index, _ = get_vision_window_index(
            inputs["image_grid_thw"],
            spatial_merge_size=vision.spatial_merge_size,
            window_size=vision.window_size,
            patch_size=vision.patch_size,
        )
        return window_index
