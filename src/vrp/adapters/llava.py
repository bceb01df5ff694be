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

from vrp.adapters.base import TINY_VIT_DEFAULTS, FamilyAdapter, ProcessedView, unique_module


class LlavaAdapter(FamilyAdapter):
    """Adapter for ``LlavaForConditionalGeneration`` checkpoints (e.g. llava-hf/llava-1.5-7b-hf):
    LLaVA-1.5's plain-text prompt, one image token per CLIP patch of the center crop."""

    family: ClassVar[str] = "llava"
    display_name: ClassVar[str] = "LLaVA"
    display_colour: ClassVar[str] = "#1f77b4"
    model_class: ClassVar[type] = LlavaForConditionalGeneration
    processor_class: ClassVar[type] = LlavaProcessor
    special_tokens: ClassVar[tuple[str, ...]] = ("<image>",)
    # "{image}" is replaced by the processor's own placeholder token ("<image>" for llava-hf).
    default_prompt_template: ClassVar[str] = "USER: {image}\n{question}\nASSISTANT:"
    answer_separator: ClassVar[str] = " "
    shares_prefix: ClassVar[bool] = True
    prefix_sharing_note: ClassVar[str] = "causal decoder: no prefix token attends to the question"
    # image_size is both the shortest-edge resize and the square center crop
    tiny_defaults: ClassVar[dict[str, Any]] = {
        **TINY_VIT_DEFAULTS,
        "patch_size": 8,
        "num_key_value_heads": 4,
        "vision_num_hidden_layers": 3,
        # None: the penultimate vision layer (-2) as in LLaVA-1.5, or -1 when the tower has < 2 layers
        "vision_feature_layer": None,
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
        tokenizer.add_special_tokens(
            {"pad_token": AddedToken("<pad>", normalized=False, special=True)}
        )
        return tokenizer

    def build_prompt(self, question: str) -> str:
        return self.prompt_template.replace("{image}", self.processor.image_token).replace(
            "{question}", question
        )

    # ------------------------------------------------------------------ tiny build
    @classmethod
    def _build_tiny(
        cls, tokenizer: PreTrainedTokenizerBase, s: dict
    ) -> tuple[torch.nn.Module, Any]:
        image_size, patch = s["image_size"], s["patch_size"]
        vision = cls._tiny_vision_config(s)  # checks the patch size
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
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        )
        processor = LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=patch,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,  # CLIP's CLS, counted then dropped by "default"
            image_token="<image>",
        )
        vision_config = CLIPVisionConfig(**vision, projection_dim=s["vision_hidden_size"])
        text_config = LlamaConfig(**cls._tiny_text_config(tokenizer, s), tie_word_embeddings=True)
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
        if ip.do_resize and size.get("shortest_edge") and not size.get("longest_edge"):
            # the library's own rule (int() truncation of the long side), on a zero-cost dummy
            dummy = np.broadcast_to(np.zeros((1, 1, 1), np.uint8), (3, height_p, width_p))
            new_h, new_w = get_resize_output_image_size(
                dummy,
                size=size["shortest_edge"],
                default_to_square=False,
                input_data_format="channels_first",
            )
        else:
            new_h, new_w = self._fixed_size(width_p, height_p)
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
