"""LLaVA-1.5: CLIP vision tower -> MLP projector -> image tokens inside a causal Llama decoder.

Geometry: the HF processor resizes the shortest edge to ``size["shortest_edge"]`` and center
crops ``crop_size`` (optionally after padding to a square, ``do_pad``); the CLIP patches of the
crop, CLS dropped, become the image tokens in row-major order. A 640x480 image at 336 px
therefore shows the LM only its central 480x480 square.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
from transformers import (
    AddedToken,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerBase,
)
from transformers.image_transforms import get_resize_output_image_size
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from vrp.adapters.base import FamilyAdapter, ProcessedView, tiny_text_config, unique_module


class LlavaAdapter(FamilyAdapter):
    """Adapter for ``LlavaForConditionalGeneration`` checkpoints (e.g. llava-hf/llava-1.5-7b-hf)."""

    family: ClassVar[str] = "llava"
    display_name: ClassVar[str] = "LLaVA"
    display_colour: ClassVar[str] = "#1f77b4"
    model_type: ClassVar[str] = "llava"
    model_class: ClassVar[type] = LlavaForConditionalGeneration
    processor_class: ClassVar[type] = LlavaProcessor
    # "{image}" is replaced by the processor's own placeholder token ("<image>" for llava-hf).
    default_prompt_template: ClassVar[str] = "USER: {image}\n{question}\nASSISTANT:"
    answer_separator: ClassVar[str] = " "
    special_tokens: ClassVar[tuple[str, ...]] = ("<image>",)
    output_projection_name: ClassVar[str] = "o_proj"  # LlamaAttention.o_proj
    shares_prefix: ClassVar[bool] = True
    prefix_sharing_note: ClassVar[str] = "causal decoder: no prefix token attends to the question"
    tiny_defaults: ClassVar[dict[str, Any]] = {
        "image_size": 64,  # shortest-edge resize and square center crop
        "patch_size": 8,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "vision_hidden_size": 64,
        "vision_intermediate_size": 128,
        "vision_num_hidden_layers": 3,
        "vision_num_attention_heads": 4,
        # None: the penultimate vision layer (-2) as in LLaVA-1.5, or -1 when the tower has < 2 layers
        "vision_feature_layer": None,
        "initializer_range": 0.08,
        "max_position_embeddings": 2048,
    }

    def _check_template(self, template: str) -> None:
        super()._check_template(template)
        if template.count("{image}") != 1:
            raise ValueError(
                f"LLaVA prompt template must contain '{{image}}' (the image placeholder) exactly once, got {template!r}"
            )

    @classmethod
    def template_words(cls) -> list[str]:
        return ["USER", ":", "ASSISTANT"]

    @classmethod
    def release_tokenizer(cls, raw: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
        """Llama-2's tokenizer as llava-hf ships it: ``<image>`` then ``<pad>`` appended as special
        tokens (ids 32000 and 32001 on the 32,000-token vocabulary), ``<pad>`` the pad token."""
        tokenizer = copy.deepcopy(raw)
        tokenizer.add_special_tokens(
            {"additional_special_tokens": [AddedToken("<image>", normalized=False, special=True)]}
        )
        tokenizer.add_special_tokens({"pad_token": AddedToken("<pad>", normalized=False, special=True)})
        return tokenizer

    def build_prompt(self, question: str) -> str:
        return self.prompt_template.replace("{image}", self.processor.image_token).replace(
            "{question}", question
        )

    # ------------------------------------------------------------------ tiny build
    @classmethod
    def _build_tiny(cls, tokenizer: PreTrainedTokenizerBase, s: dict) -> tuple[torch.nn.Module, Any]:
        image_size, patch = s["image_size"], s["patch_size"]
        if image_size % patch:
            raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch}")
        vision_layers = s["vision_num_hidden_layers"]
        if vision_layers < 1:
            # transformers 5 records CLIP hidden_states per encoder layer, so a tower without layers
            # has none for LLaVA to select from.
            raise ValueError(
                "LLaVA needs vision_num_hidden_layers >= 1; for a tower that does not mix patches use "
                "vision_num_hidden_layers=1 with vision_feature_layer=0 (the pre-encoder patch embeddings)"
            )
        feature_layer = s["vision_feature_layer"]
        if feature_layer is None:
            feature_layer = -2 if vision_layers >= 2 else -1
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        )
        processor = LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=patch,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,  # CLIP's CLS, counted then dropped by "default"
            image_token="<image>",
        )
        vision_config = CLIPVisionConfig(
            hidden_size=s["vision_hidden_size"],
            intermediate_size=s["vision_intermediate_size"],
            num_hidden_layers=vision_layers,
            num_attention_heads=s["vision_num_attention_heads"],
            image_size=image_size,
            patch_size=patch,
            projection_dim=s["vision_hidden_size"],
            initializer_range=s["initializer_range"],
        )
        text_config = LlamaConfig(**tiny_text_config(tokenizer, s), tie_word_embeddings=True)
        config = LlavaConfig(
            vision_config=vision_config,
            text_config=text_config,
            image_token_index=processor.image_token_id,
            image_seq_length=(image_size // patch) ** 2,
            vision_feature_layer=feature_layer,
            vision_feature_select_strategy="default",
            projector_hidden_act="gelu",
            tie_word_embeddings=True,
        )
        return LlavaForConditionalGeneration(config), processor

    # ------------------------------------------------------------------ geometry
    def _grids_from_inputs(self, inputs: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
        pixel_values = inputs["pixel_values"]
        patch = int(self.model.config.vision_config.patch_size)
        height, width = pixel_values.shape[-2:]
        return [(height // patch, width // patch)] * pixel_values.shape[0]

    def expected_grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        view = self._processed_view(*image_size)
        patch = int(self.model.config.vision_config.patch_size)
        return view.view_height // patch, view.view_width // patch

    def _processed_view(self, width: int, height: int) -> ProcessedView:
        ip = self.processor.image_processor
        pad_x = pad_y = 0
        # LlavaImageProcessor's do_pad pads to a centred square before resizing (original LLaVA);
        # CLIPImageProcessor's do_pad only pads a batch after cropping, which moves nothing.
        if getattr(ip, "do_pad", False) and hasattr(ip, "pad_to_square"):
            side = max(width, height)
            pad_x, pad_y = (side - width) // 2, (side - height) // 2
            width_p = height_p = side
        else:
            width_p, height_p = width, height
        size = dict(ip.size)
        if not ip.do_resize:
            new_h, new_w = height_p, width_p
        elif size.get("shortest_edge") and not size.get("longest_edge"):
            # the library's own rule (int() truncation of the long side), on a zero-cost dummy
            dummy = np.broadcast_to(np.zeros((1, 1, 1), np.uint8), (3, height_p, width_p))
            new_h, new_w = get_resize_output_image_size(
                dummy, size=size["shortest_edge"], default_to_square=False, input_data_format="channels_first"
            )
        elif size.get("height") and size.get("width"):
            new_h, new_w = size["height"], size["width"]
        else:
            raise NotImplementedError(f"LLaVA geometry: image processor size {size} is not supported")
        if ip.do_center_crop:
            crop_h, crop_w = ip.crop_size["height"], ip.crop_size["width"]
            if crop_h > new_h or crop_w > new_w:
                raise NotImplementedError(
                    "LLaVA geometry: a crop larger than the resized image (zero padding)"
                )
            top, left = (new_h - crop_h) // 2, (new_w - crop_w) // 2  # np_center_crop's offsets
        else:
            crop_h, crop_w, top, left = new_h, new_w, 0, 0
        # the padded square is the unit that gets scaled; pad offsets are in original pixels
        return ProcessedView(
            width,
            height,
            scale_x=new_w / width_p,
            scale_y=new_h / height_p,
            view_width=crop_w,
            view_height=crop_h,
            crop_left=left,
            crop_top=top,
            pad_x=pad_x,
            pad_y=pad_y,
        )

    # ------------------------------------------------------------------ modules
    def image_embedding_module(self) -> torch.nn.Module:
        return unique_module(self.model, LlavaMultiModalProjector, self.family)
