"""Gemma 3: SigLIP -> average pool -> RMSNorm + linear projector -> a causal Gemma 3 decoder.

Prompt: one chat turn, ``<bos><start_of_turn>user\\n<start_of_image>{question}<end_of_turn>\\n
<start_of_turn>model\\n`` (the released chat template; the text is trimmed). The processor expands
the ``<start_of_image>`` placeholder into ``"\\n\\n<start_of_image>"`` + ``<image_soft_token>`` x
``mm_tokens_per_image`` + ``"<end_of_image>\\n\\n"``; the soft tokens are the image tokens and get
``token_type_ids`` = 1. The decoder is causal except inside one image's soft-token block, whose
tokens attend to each other both ways (``Gemma3Model``'s block mask); text never sees ahead.

Geometry: SigLIP resizes the whole image to ``size`` (896 x 896 in the release; no crop, so a
non-square image is stretched), cuts 14-px patches (64 x 64) and the projector average-pools them
in k x k blocks to a ``tokens_per_side`` x ``tokens_per_side`` grid (16 x 16 = 256 tokens, k = 4),
row-major: every LM token covers one cell of a 16 x 16 division of the original image. Pan-and-scan
(``do_pan_and_scan``) would add crops, each with its own 256-token span, whose pixels this adapter
does not map; it is refused until crops are mapped.

Prefix sharing is valid: image tokens attend to each other but to no text after them, and text is
causal, so the KV cache of the prompt through the end of the image span does not depend on the
question. This holds as long as the suffix carries no image tokens (a cached suffix is run without
``token_type_ids``, i.e. causally).

Module roles: each decoder sub-block's output is normed before the residual add (sandwich norms).
:meth:`Gemma3Adapter.attention_output_module` and :meth:`Gemma3Adapter.mlp_module` are therefore the
post-attention and post-feedforward norms, whose outputs are the two sub-blocks' contributions to the
residual (what ``attn_logit`` and ``head_logit`` read, and ``mlp_out``, the neuron probes and the
ablations);
the per-head contributions are the heads' ``o_proj`` shares through the post-attention norm at the
sample's own scale, so they sum to the block's.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    Gemma3TextConfig,
    PreTrainedTokenizerBase,
    SiglipVisionConfig,
)
from transformers.models.gemma3.modeling_gemma3 import Gemma3MultiModalProjector

from vrp.adapters.base import TINY_VIT_DEFAULTS, FamilyAdapter, ProcessedView, unique_module

BOI, IMAGE_SOFT, EOI = "<start_of_image>", "<image_soft_token>", "<end_of_image>"
START_TURN, END_TURN = "<start_of_turn>", "<end_of_turn>"
# Gemma 3's multimodal token ids (its tokenizer.json: 262,144 pieces, then <image_soft_token>)
RELEASE_SPECIAL_IDS: dict[str, int] = {
    "<pad>": 0,
    "<eos>": 1,
    "<bos>": 2,
    START_TURN: 105,
    END_TURN: 106,
    BOI: 255999,
    EOI: 256000,
    IMAGE_SOFT: 262144,
}
# The named multimodal tokens Gemma3Processor reads off its tokenizer (tokenizer.boi_token, ...).
NAMED_TOKENS: dict[str, str] = {"boi_token": BOI, "image_token": IMAGE_SOFT, "eoi_token": EOI}

# The released template's shape for one user turn of [image, text] (no system turn): the role
# "assistant" is written "model", text is trimmed, the image part is <start_of_image>.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _name_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    """Name the multimodal tokens as Gemma3Processor reads them (``tokenizer.boi_token``, ...)
    where the tokenizer does not yet."""
    if any(getattr(tokenizer, name, None) != token for name, token in NAMED_TOKENS.items()):
        tokenizer._set_model_specific_special_tokens(dict(NAMED_TOKENS))


class PanAndScanError(NotImplementedError):
    """Gemma 3's pan-and-scan crops are on; their image spans are not mapped to pixels."""


class Gemma3Adapter(FamilyAdapter):
    """Adapter for ``Gemma3ForConditionalGeneration`` checkpoints (e.g. google/gemma-3-4b-it): a
    chat-template prompt, a fixed grid of pooled SigLIP patches, norms on each sub-block's output."""

    family: ClassVar[str] = "gemma3"
    display_name: ClassVar[str] = "Gemma 3"
    display_colour: ClassVar[str] = "#ff7f0e"
    model_class: ClassVar[type] = Gemma3ForConditionalGeneration
    # Gemma3Processor has no video processor, so it needs no torchvision; the image processor is
    # the PIL backend where torchvision is missing (AutoImageProcessor picks it).
    processor_class: ClassVar[type] = Gemma3Processor
    shares_prefix: ClassVar[bool] = True
    prefix_sharing_note: ClassVar[str] = (
        "image tokens attend bidirectionally only among themselves and text is causal, so the "
        "prefix through the image span never sees the question (valid while the suffix carries "
        "no image tokens)"
    )
    # the image placeholder, the soft image token, the end-of-image marker and the turn markers
    special_tokens: ClassVar[tuple[str, ...]] = (BOI, IMAGE_SOFT, EOI, START_TURN, END_TURN)
    # answer tokens are text: token type 0 (causal)
    _per_token_answer_values: ClassVar[dict[str, int]] = {"token_type_ids": 0}
    tiny_defaults: ClassVar[dict[str, Any]] = {
        **TINY_VIT_DEFAULTS,
        "patch_size": 4,  # 16 x 16 patches ...
        "tokens_per_side": 8,  # ... pooled 2 x 2: 64 LM tokens of 8 px (the release: 64 -> 16)
        "num_key_value_heads": 2,
        "head_dim": 32,
        # every n-th decoder layer global, the others sliding-window (the release: 6, window 1024)
        "sliding_window_pattern": 2,
        "sliding_window": 512,
    }

    def __init__(self, model: torch.nn.Module, processor: Any, prompt_template: str | None = None):
        super().__init__(model, processor, prompt_template)
        self._check_no_pan_and_scan()

    @classmethod
    def template_words(cls) -> list[str]:
        return ["user", "model"]

    @classmethod
    def release_tokenizer(cls, raw: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
        """Gemma 3's tokenizer as the release ships it: a Gemma 3 ``tokenizer.json`` already has the
        release's multimodal ids (``<start_of_image>`` 255999, ``<end_of_image>`` 256000,
        ``<image_soft_token>`` 262144; checked, as nothing is added here); the named tokens
        Gemma3Processor reads (``boi_token``, ``image_token``, ``eoi_token``) and the chat template
        are set where the tokenizer's config lacks them. ``raw`` itself is left unchanged."""
        tokenizer = copy.deepcopy(raw)
        # the instruction-tuned release keeps <eos> as the tokenizer's eos (its generation config
        # also stops at <end_of_turn>, as the tiny build's does); a tokenizer.json may say otherwise
        tokenizer.add_special_tokens(
            {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"}
        )
        cls._check_release_ids(
            tokenizer, RELEASE_SPECIAL_IDS, "Gemma", "Gemma 3", "use the Gemma 3 tokenizer.json"
        )
        _name_tokens(tokenizer)
        if not getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = CHAT_TEMPLATE
        return tokenizer

    def build_prompt(self, question: str) -> str:
        prompt = self._user_turn_prompt(question)
        # the template writes <bos> and so does the tokenizer when the processor encodes the text:
        # keep the tokenizer's (as for PaliGemma), not two
        bos = self.tokenizer.bos_token
        return prompt[len(bos) :] if bos and prompt.startswith(bos) else prompt

    def _processor_call(self, images, prompts, padding_side):
        """As the base class, with one image per prompt passed as Gemma3Processor wants it: a
        list per prompt (a flat list of images is read as several images of one prompt)."""
        self._check_no_pan_and_scan()
        return super()._processor_call([[image] for image in images], prompts, padding_side)

    def _check_no_pan_and_scan(self) -> None:
        image_processor = self.processor.image_processor
        if getattr(image_processor, "do_pan_and_scan", None):
            raise PanAndScanError(
                "gemma3: the image processor has do_pan_and_scan=True; its crops add image-token "
                "spans whose pixels this adapter does not map, so the grid and cell boxes would be "
                "wrong. Turn it off (processor.image_processor.do_pan_and_scan = False, or "
                '"do_pan_and_scan": null in the checkpoint\'s preprocessor_config.json)'
            )

    # ------------------------------------------------------------------ tiny build
    @classmethod
    def _build_tiny(
        cls, tokenizer: PreTrainedTokenizerBase, s: dict
    ) -> tuple[torch.nn.Module, Any]:
        vision = cls._tiny_vision_config(s)
        image_size, patch, side = s["image_size"], s["patch_size"], s["tokens_per_side"]
        if (image_size // patch) % side:
            raise ValueError(
                f"the {image_size // patch} patches per side (image_size / patch_size) must be a "
                f"multiple of tokens_per_side {side}: the projector average-pools whole blocks"
            )
        cls._require_special_tokens(tokenizer)
        ids = tokenizer.convert_tokens_to_ids
        _name_tokens(tokenizer)  # the zoo's word-level tokenizer has the tokens but not their names
        image_processor = Gemma3ImageProcessorPil(
            size={"height": image_size, "width": image_size}, do_pan_and_scan=False
        )
        processor = Gemma3Processor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            # a release tokenizer's own template, else (the zoo's tokenizer) the same-shaped one
            chat_template=getattr(tokenizer, "chat_template", None) or CHAT_TEMPLATE,
            image_seq_length=side * side,
        )
        # Gemma 3 reads the last hidden state, not the pooling head
        vision_config = SiglipVisionConfig(**vision, vision_use_head=False)
        layers, pattern = s["num_hidden_layers"], s["sliding_window_pattern"]
        text = cls._tiny_text_config(tokenizer, s)
        # generation stops at the end of the model's turn as well (the release: eos [1, 106])
        text["eos_token_id"] = [tokenizer.eos_token_id, ids(END_TURN)]
        text_config = Gemma3TextConfig(
            **text,
            head_dim=s["head_dim"],
            query_pre_attn_scalar=s["head_dim"],  # as the release (256 = its head_dim)
            sliding_window=s["sliding_window"],
            layer_types=[
                "full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
                for i in range(layers)
            ],
        )
        config = Gemma3Config(
            vision_config=vision_config,
            text_config=text_config,
            mm_tokens_per_image=side * side,
            boi_token_index=ids(BOI),
            eoi_token_index=ids(EOI),
            image_token_index=ids(IMAGE_SOFT),
            initializer_range=s["initializer_range"],
            tie_word_embeddings=True,
        )
        model = Gemma3ForConditionalGeneration(config)
        # transformers starts the projector at zero (a checkpoint overwrites it); a random model
        # would then see no image at all, so draw it like every other weight
        projector = unique_module(model, Gemma3MultiModalProjector, cls.family)
        with torch.no_grad():
            projector.mm_input_projection_weight.normal_(0.0, s["initializer_range"])
        return model, processor

    # ------------------------------------------------------------------ geometry
    @property
    def tokens_per_side(self) -> int:
        side = round(int(self.model.config.mm_tokens_per_image) ** 0.5)
        if side * side != int(self.model.config.mm_tokens_per_image):
            raise ValueError(
                f"gemma3: mm_tokens_per_image {self.model.config.mm_tokens_per_image} is not square"
            )
        return side

    def _grids_from_inputs(self, inputs: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
        pixel_values = inputs["pixel_values"]
        expected = int(self.model.config.vision_config.image_size)
        if tuple(pixel_values.shape[-2:]) != (expected, expected):
            raise ValueError(
                f"gemma3: pixel_values are {tuple(pixel_values.shape[-2:])}, the vision tower "
                f"expects {expected}x{expected}; the processor's size and the model disagree"
            )
        side = self.tokens_per_side
        return [(side, side)] * pixel_values.shape[0]

    def expected_grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        self._processed_view(*image_size)  # refuses what the geometry does not cover
        return self.tokens_per_side, self.tokens_per_side

    def _processed_view(self, width: int, height: int) -> ProcessedView:
        self._check_no_pan_and_scan()
        new_h, new_w = self._fixed_size(width, height)
        side = int(self.model.config.vision_config.image_size)
        if (new_h, new_w) != (side, side):
            raise NotImplementedError(
                f"Gemma 3 geometry: the processor gives {new_w}x{new_h} pixels, the vision tower "
                f"takes {side}x{side}"
            )
        return ProcessedView.stretched(width, height, new_h, new_w)

    # ------------------------------------------------------------------ modules
    def attention_output_module(self, layer: int) -> torch.nn.Module:
        """The post-attention norm of decoder layer ``layer``: Gemma 3 norms the attention output
        (``o_proj``'s) before the residual add, so this module's output is the attention's
        contribution to the residual."""
        return self._layer(layer).post_attention_layernorm

    def mlp_module(self, layer: int) -> torch.nn.Module:
        """The post-feedforward norm of decoder layer ``layer``: Gemma 3 norms the MLP's output
        before the residual add, so this module's output is the MLP's contribution to the residual."""
        return self._layer(layer).post_feedforward_layernorm

    def image_embedding_module(self) -> torch.nn.Module:
        """The pooling projector; its output is (images, tokens_per_side**2, hidden), raster order."""
        return unique_module(self.model, Gemma3MultiModalProjector, self.family)
