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
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLPatchMerger
from transformers.vision_utils import get_vision_window_index

from vrp.adapters.base import unique_module
from vrp.adapters.qwen2vl import QWEN_TINY_DEFAULTS, Qwen2VLAdapter, _tiny_patch_geometry


class Qwen25VLImageOnlyProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` without its video processor (which needs torchvision, not
    installable here); images are all the project uses. Saving and loading work as for the parent."""

    @classmethod
    def get_attributes(cls) -> list[str]:
        return ["image_processor", "tokenizer"]


class Qwen25VLAdapter(Qwen2VLAdapter):
    """Adapter for ``Qwen2_5_VLForConditionalGeneration`` checkpoints (e.g. Qwen/Qwen2.5-VL-7B-Instruct):
    Qwen2-VL's adapter but for the model class, the window-attention tower and its tiny build."""

    family: ClassVar[str] = "qwen25vl"
    display_name: ClassVar[str] = "Qwen2.5-VL"
    display_colour: ClassVar[str] = "#9467bd"
    model_class: ClassVar[type] = Qwen2_5_VLForConditionalGeneration
    processor_class: ClassVar[type] = Qwen25VLImageOnlyProcessor
    prefix_sharing_note: ClassVar[str] = (
        "a causal decoder: the prompt through the image span never sees the question; the "
        "suffix continues from the last prompt token's M-RoPE position (get_rope_index)"
    )
    # Qwen2-VL's keys with its own tower's: window attention, and the gated MLP's width
    # (vision_intermediate_size) in place of vision_mlp_ratio
    tiny_defaults: ClassVar[dict[str, Any]] = {
        **QWEN_TINY_DEFAULTS,
        "window_size": 32,  # px: windows of 4x4 LM tokens, as the release's 112 px at patch 14
        # vision blocks that attend over the whole image; None: every 8th from the 8th (the
        # release's 7, 15, 23, 31 of 32), or the last block of a shorter tower
        "fullatt_block_indexes": None,
        "vision_intermediate_size": 128,
    }
    _tiny_block_multiples: ClassVar[tuple[str, ...]] = ("image_size", "window_size")

    # ------------------------------------------------------------------ tiny build
    @classmethod
    def _tiny_vision_config(cls, s: dict) -> dict[str, Any]:
        """The window-attention tower: RMSNorm blocks with a gated MLP, full attention in the
        ``fullatt_block_indexes`` blocks only."""
        depth = s["vision_num_hidden_layers"]
        full_blocks = s["fullatt_block_indexes"]
        if full_blocks is None:
            full_blocks = [i for i in range(depth) if (i + 1) % 8 == 0] or [max(depth - 1, 0)]
        return dict(
            depth=depth,
            hidden_size=s["vision_hidden_size"],
            intermediate_size=s["vision_intermediate_size"],
            out_hidden_size=s["hidden_size"],  # the merger's output width = the LM's
            window_size=s["window_size"],
            fullatt_block_indexes=list(full_blocks),
            **_tiny_patch_geometry(s),
        )

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
