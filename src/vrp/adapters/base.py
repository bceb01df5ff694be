"""The one interface through which the project touches a vision-language model.

Every family-specific fact (prompt format, prefix-LM token types, how image tokens map to
pixels, where the decoder layers live) is implemented by a :class:`FamilyAdapter` subclass in
this package; the rest of the project is written against this interface only.

Conventions shared by all adapters
----------------------------------
* ``encode`` returns an inference batch LEFT-padded, so position ``-1`` is every row's last
  prompt token (the position whose next-token logits answer the question).
* ``encode_for_training`` returns prompt + answer + eos RIGHT-padded, with ``labels`` = -100
  everywhere except on the answer and eos tokens.
* Image-token positions are ``input_ids == config image token id`` (never an offset); the
  tokens of one image are in row-major order over the grid that :meth:`patch_grids` reports.
* :meth:`cell_boxes` maps that grid back to pixel boxes in the ORIGINAL image, through the
  processor's own resize / crop geometry.
* Image sizes are given as PIL gives them: ``(width, height)``; grids as ``(rows, cols)``.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase

IGNORE_INDEX = -100
# An empty and a non-empty question: the start their prompts share is the template's
# question-independent part (in any tokenizer they part at the question's first token).
_SENTINEL_QUESTIONS = ("", "x")
_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

# The tiny-build keys and defaults every family shares (a family's ``tiny_defaults`` extends them;
# literals only: vrp.config reads them from the source without importing torch).
TINY_DEFAULTS: dict[str, Any] = {
    "image_size": 64,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "vision_hidden_size": 64,
    "vision_num_hidden_layers": 2,
    "vision_num_attention_heads": 4,
    "initializer_range": 0.08,
    "max_position_embeddings": 2048,
}
# ... and those of a fixed-patch ViT tower (CLIP, SigLIP: FamilyAdapter._tiny_vision_config)
TINY_VIT_DEFAULTS: dict[str, Any] = {**TINY_DEFAULTS, "vision_intermediate_size": 128}


class FamilyAdapter(abc.ABC):
    """Wraps a loaded model + processor of one family behind the project-wide interface."""

    family: ClassVar[str]
    display_name: ClassVar[str]  # the family's name in figure legends and titles
    display_colour: ClassVar[str]  # the family's colour in every figure (one per family)
    model_class: ClassVar[type]
    # the checkpoint config's ``model_type`` for this family: its model class's config's, set
    # when the subclass is defined
    model_type: ClassVar[str]
    processor_class: ClassVar[type]
    # The question as it is (a chat-template family's user turn); families with a plain-text
    # prompt format set their own.
    default_prompt_template: ClassVar[str] = "{question}"
    # What separates the prompt text from the answer text when the answer is appended
    # (LLaVA's "ASSISTANT: yes" has a space; PaliGemma's and Qwen's prompts end in a newline).
    answer_separator: ClassVar[str] = ""
    # Text appended to every question before it enters the prompt template (lmms-eval's
    # "post_prompt", e.g. "\nAnswer the question using a single word or phrase."); set per
    # (model, dataset) from the config by vrp.models.load_model_from_spec.
    post_prompt: str = ""
    # Keys build_tiny accepts and their defaults; see build_tiny's docstring.
    tiny_defaults: ClassVar[dict[str, Any]]
    # Placeholder / turn tokens the family's processor and chat template need as whole special
    # tokens of the vocabulary (the zoo's word-level tokenizer registers them, vrp.zoo.tokenizer).
    special_tokens: ClassVar[tuple[str, ...]] = ()
    # Attribute of a decoder layer's attention module that maps the heads back to the residual
    # (Llama's, Gemma's and Qwen's attention modules all call it o_proj).
    output_projection_name: ClassVar[str] = "o_proj"
    # Whether the KV cache of the prompt's prefix through the image span may be computed once per
    # image and reused by every question about it (vrp.prompt_pass): true where no prefix token
    # attends to the question (causal decoders); the note says why, for the docs and manifests.
    shares_prefix: ClassVar[bool] = False
    prefix_sharing_note: ClassVar[str] = ""
    # Every family adapter by family name, filled as each subclass is defined (vrp.adapters
    # imports them all), so this module never imports the package that imports it.
    registry: ClassVar[dict[str, type[FamilyAdapter]]] = {}

    # What every family adapter declares (a subclass of another family's adapter may inherit them).
    _declared: ClassVar[tuple[str, ...]] = (
        "display_name",
        "display_colour",
        "model_class",
        "processor_class",
        "tiny_defaults",
    )

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "model_class" in cls.__dict__:
            cls.model_type = cls.model_class.config_class.model_type
        if "family" in cls.__dict__:
            missing = [name for name in cls._declared if not hasattr(cls, name)]
            if missing:
                raise TypeError(
                    f"{cls.__name__} (family {cls.family!r}) does not set {missing}: set them as "
                    "class attributes (FamilyAdapter lists what each means)"
                )
            FamilyAdapter.registry[cls.family] = cls

    def __init__(self, model: torch.nn.Module, processor: Any, prompt_template: str | None = None):
        if not isinstance(model, self.model_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.model_class.__name__}, got {type(model).__name__}"
            )
        self.model = model
        self.processor = processor
        self.prompt_template = prompt_template or self.default_prompt_template
        self._check_template(self.prompt_template)
        self._answer_ids_cache: dict[str, list[int]] = {}
        self._form_ids_cache: dict[str, list[int] | None] = {}
        self._stand_in: Callable[..., Any] | None = None

    # ------------------------------------------------------------------ the forward
    def forward(self, **kwargs) -> Any:
        """One model call of a prompt pass, a continuation or a decoding step (``self.model``).

        Every such call goes through here, so an intervention that knows the result without the
        full computation may stand in for it (:meth:`standing_in`; the ablation's last-layer
        replay, :mod:`vrp.interventions.ablation`).
        """
        if self._stand_in is not None:
            return self._stand_in(**kwargs)
        return self.model(**kwargs)

    @contextlib.contextmanager
    def standing_in(self, forward: Callable[..., Any]) -> Iterator[None]:
        """Inside the block, :meth:`forward` calls ``forward(**kwargs)`` instead of the model."""
        if self._stand_in is not None:
            raise RuntimeError(f"{self.family}: a stand-in for the model's forward is already set")
        self._stand_in = forward
        try:
            yield
        finally:
            self._stand_in = None

    # ------------------------------------------------------------------ construction / IO
    @classmethod
    def load(
        cls,
        path_or_id: str | os.PathLike,
        *,
        revision: str | None = None,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device = "cpu",
        attn_implementation: str = "eager",
        prompt_template: str | None = None,
    ) -> "FamilyAdapter":
        """Load model and processor with ``from_pretrained`` (a local folder or a Hub id alike).

        The checkpoint's ``model_type`` must be this family's; eager attention is the default
        because attention weights are only returned by the eager kernel. On a GPU the weights are
        placed by ``device_map`` as they are read (no host copy of the whole model).
        """
        path_or_id = str(path_or_id)
        config = AutoConfig.from_pretrained(path_or_id, revision=revision)
        if config.model_type != cls.model_type:
            family_of = {a.model_type: a.family for a in _registered_adapters()}
            hint = family_of.get(config.model_type)
            suggestion = (
                f"set models.<name>.family to {hint!r}"
                if hint
                else f"this family list does not cover model_type {config.model_type!r}"
            )
            raise ValueError(
                f"checkpoint {path_or_id!r} has model_type {config.model_type!r}, but it is being "
                f"loaded as family {cls.family!r} (which expects model_type {cls.model_type!r}); "
                f"check the config key models.<name>.family: {suggestion}"
            )
        # Off the CPU the weights go straight to the device (accelerate's device_map): no full
        # host copy first. On the CPU the plain load is already where the weights belong.
        on_cpu = torch.device(device).type == "cpu"
        model = cls.model_class.from_pretrained(
            path_or_id,
            revision=revision,
            dtype=_resolve_dtype(dtype),
            attn_implementation=attn_implementation,
            device_map=None if on_cpu else {"": str(device)},
        )
        processor = cls.processor_class.from_pretrained(path_or_id, revision=revision)
        model.eval()
        return cls(model, processor, prompt_template=prompt_template)

    def save(self, path: str | os.PathLike) -> None:
        """Write model and processor so that ``load(path)`` gives back an identical adapter."""
        self.model.save_pretrained(path)
        self.processor.save_pretrained(path)

    @classmethod
    @abc.abstractmethod
    def template_words(cls) -> list[str]:
        """Words the default prompt template needs in a word-level vocabulary."""

    @classmethod
    def build_tiny(
        cls, tokenizer: PreTrainedTokenizerBase, config: dict | None = None, seed: int = 0
    ) -> "FamilyAdapter":
        """A small randomly initialised model of the real class, with the real processor class.

        ``tokenizer`` is the shared word-level tokenizer (:func:`vrp.zoo.tokenizer.build_word_tokenizer`);
        it is copied, so processors that add tokens do not change the caller's object.
        ``config`` overrides keys of :attr:`tiny_defaults`; an unknown key raises ``ValueError``.
        Weights are drawn from ``torch.manual_seed(seed)``; attention is eager.
        """
        settings = cls._tiny_settings(config or {})
        tokenizer = copy.deepcopy(tokenizer)
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            model, processor = cls._build_tiny(tokenizer, settings)
        finally:
            torch.random.set_rng_state(generator_state)
        model.set_attn_implementation("eager")
        model.eval()
        return cls(model, processor)

    @classmethod
    def load_release_tokenizer(cls, folder: str | os.PathLike) -> PreTrainedTokenizerBase:
        """The tokenizer this family's released checkpoints ship, made from a raw real one on disk.

        ``folder`` holds the base language model's ``tokenizer.json`` (+ ``tokenizer_config.json``);
        :meth:`release_tokenizer` adds what the vision-language release adds on top of it.
        """
        folder = Path(folder)
        if not (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(
                f"{folder}/tokenizer.json does not exist: the {cls.family} model needs a real tokenizer "
                "there (models.<name>.tokenizer); fetch the tokenizers first"
            )
        return cls.release_tokenizer(AutoTokenizer.from_pretrained(folder))

    @classmethod
    def release_tokenizer(cls, raw: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
        """A copy of the base LM's tokenizer ``raw`` turned into the one the family's release ships.

        Families override this (extra tokens at the release's positions, special tokens set as the
        release sets them); ``raw`` itself is left unchanged.
        """
        raise NotImplementedError(f"{cls.family}: no recipe for its released tokenizer")

    @classmethod
    def _tiny_text_config(
        cls, tokenizer: PreTrainedTokenizerBase, settings: dict
    ) -> dict[str, Any]:
        """The decoder settings every family's tiny text config takes from the settings and tokenizer."""
        return {
            "vocab_size": len(tokenizer),
            "hidden_size": settings["hidden_size"],
            "intermediate_size": settings["intermediate_size"],
            "num_hidden_layers": settings["num_hidden_layers"],
            "num_attention_heads": settings["num_attention_heads"],
            "num_key_value_heads": settings["num_key_value_heads"],
            "max_position_embeddings": settings["max_position_embeddings"],
            "initializer_range": settings["initializer_range"],
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }

    @classmethod
    def _tiny_vision_config(cls, settings: dict) -> dict[str, Any]:
        """The tiny vision tower's config settings: here a fixed-patch ViT's (CLIP, SigLIP; the
        keys of :data:`TINY_VIT_DEFAULTS`); families with another tower override this."""
        image_size, patch = settings["image_size"], settings["patch_size"]
        if image_size % patch:
            raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch}")
        tower = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        return {
            **{key: settings[f"vision_{key}"] for key in tower},
            "image_size": image_size,
            "patch_size": patch,
            "initializer_range": settings["initializer_range"],
        }

    @staticmethod
    def _check_release_ids(
        tokenizer: PreTrainedTokenizerBase,
        expected: dict[str, int],
        vocabulary: str,
        release: str,
        fix: str,
    ) -> None:
        """Refuse a tokenizer whose ``vocabulary`` special tokens are not at ``release``'s ids
        (``expected``, token -> id); ``fix`` says which tokenizer to use instead."""
        found = {t: tokenizer.convert_tokens_to_ids(t) for t in expected}
        if found != expected:
            raise ValueError(
                f"this tokenizer's {vocabulary} special-token ids {found} differ from {release}'s {expected}; {fix}"
            )

    @classmethod
    def _require_special_tokens(cls, tokenizer: PreTrainedTokenizerBase) -> None:
        """Refuse a tokenizer without the family's :attr:`special_tokens` as whole tokens."""
        ids = tokenizer.convert_tokens_to_ids
        missing = [
            t for t in cls.special_tokens if ids(t) is None or ids(t) == tokenizer.unk_token_id
        ]
        if missing:
            raise ValueError(
                f"the tokenizer lacks {cls.display_name}'s special tokens {missing}; build it with vrp.zoo.tokenizer"
            )

    @classmethod
    def _tiny_settings(cls, config: dict) -> dict[str, Any]:
        unknown = sorted(set(config) - set(cls.tiny_defaults))
        if unknown:
            raise ValueError(
                f"unknown tiny-model config key(s) {unknown} for family {cls.family!r}; "
                f"known keys: {sorted(cls.tiny_defaults)}"
            )
        settings = {**cls.tiny_defaults, **config}
        for key, value in settings.items():
            default = cls.tiny_defaults[key]
            if (
                value is not None
                and default is not None
                and type(default) is int
                and type(value) is not int
            ):
                raise TypeError(f"tiny-model config key {key!r} must be an int, got {value!r}")
        return settings

    @classmethod
    @abc.abstractmethod
    def _build_tiny(
        cls, tokenizer: PreTrainedTokenizerBase, settings: dict
    ) -> tuple[torch.nn.Module, Any]:
        """Return (model, processor) for the tiny build (called under a seeded RNG)."""

    # ------------------------------------------------------------------ prompts and batches
    def _check_template(self, template: str) -> None:
        if template.count("{question}") != 1:
            raise ValueError(
                f"prompt template for {self.family!r} must contain '{{question}}' exactly once, got {template!r}"
            )

    def question_text(self, question: str) -> str:
        """The question as the template receives it: with the post-prompt appended (lmms-eval's
        ``f"{question.strip()}{post_prompt}"``), or unchanged when there is none."""
        return f"{question.strip()}{self.post_prompt}" if self.post_prompt else question

    @abc.abstractmethod
    def build_prompt(self, question: str) -> str:
        """The full prompt text for one question, with this family's image placeholder."""

    def _user_turn_prompt(self, question: str) -> str:
        """The processor's chat template on one user turn of [image, template text], with the
        generation prompt (the chat-template families' prompt)."""
        text = self.prompt_template.replace("{question}", question)
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
        ]
        return self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def _generation_context(self) -> str:
        """The text right before the model's first answer token (prompt as the tokenizer sees it)."""
        return self.build_prompt("")

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.processor.tokenizer

    def _processor_call(
        self, images: Sequence[Image.Image], prompts: list[str], padding_side: str
    ) -> dict[str, torch.Tensor]:
        if len(images) != len(prompts):
            raise ValueError(
                f"got {len(images)} images for {len(prompts)} questions; pass one image per question"
            )
        if not prompts:
            raise ValueError("encode needs at least one (image, question) pair")
        batch = self.processor(
            images=list(images),
            text=prompts,
            padding=True,
            padding_side=padding_side,
            return_tensors="pt",
        )
        return dict(batch)

    def _to_model(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        device, dtype = self.device, self.dtype
        return {
            key: value.to(device=device, dtype=dtype)
            if value.is_floating_point()
            else value.to(device)
            for key, value in batch.items()
        }

    def encode(
        self, images: Sequence[Image.Image], questions: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """An inference batch, left-padded: position -1 is every row's last prompt token."""
        prompts = [self.build_prompt(self.question_text(q)) for q in questions]
        batch = self._processor_call(images, prompts, padding_side="left")
        batch.pop(
            "labels", None
        )  # PaliGemma's processor adds training labels; inference needs none
        return self._to_model(batch)

    # Per-token keys (besides input_ids / attention_mask) that must be extended over the answer,
    # mapped to the value the answer tokens get.
    _per_token_answer_values: ClassVar[dict[str, int]] = {}

    def encode_for_training(
        self, images: Sequence[Image.Image], questions: Sequence[str], answers: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Prompt + answer + eos, right-padded, with ``labels`` only on the answer and eos tokens."""
        if len(answers) != len(questions):
            raise ValueError(f"got {len(answers)} answers for {len(questions)} questions")
        prompts = [self.build_prompt(self.question_text(q)) for q in questions]
        batch = self._processor_call(images, prompts, padding_side="right")
        batch.pop("labels", None)
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ValueError(f"the {self.family} tokenizer has no eos token; training needs one")
        answer_ids = [self._answer_token_ids(a) + [eos] for a in answers]
        prompt_lengths = batch["attention_mask"].sum(dim=1).tolist()
        total = max(p + len(a) for p, a in zip(prompt_lengths, answer_ids))
        rows = len(prompts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos

        input_ids = torch.full((rows, total), pad, dtype=batch["input_ids"].dtype)
        attention_mask = torch.zeros((rows, total), dtype=batch["attention_mask"].dtype)
        labels = torch.full((rows, total), IGNORE_INDEX, dtype=torch.long)
        extra = {
            key: torch.zeros((rows, total), dtype=batch[key].dtype)
            for key in self._per_token_answer_values
            if key in batch
        }
        for row, (length, answer) in enumerate(zip(prompt_lengths, answer_ids)):
            end = length + len(answer)
            answer_tensor = torch.tensor(answer, dtype=input_ids.dtype)
            input_ids[row, :length] = batch["input_ids"][row, :length]
            input_ids[row, length:end] = answer_tensor
            attention_mask[row, :end] = 1
            labels[row, length:end] = answer_tensor
            for key, tensor in extra.items():
                tensor[row, :length] = batch[key][row, :length]
                tensor[row, length:end] = self._per_token_answer_values[key]
        batch.update(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **extra)
        return self._to_model(batch)

    def _answer_token_ids(self, answer: str) -> list[int]:
        """Token ids of ``answer`` exactly as they follow the prompt (tokenizer-specific spacing).

        Tokenises context and context + separator + answer and keeps what the answer adds, so a
        sentencepiece "▁yes" versus a bare "yes" is the tokenizer's decision, not ours.
        """
        cached = self._answer_ids_cache.get(answer)
        if cached is not None:
            return list(cached)
        context = self._generation_context()
        context_ids = self.tokenizer(context, add_special_tokens=False)["input_ids"]
        full_ids = self.tokenizer(
            context + self.answer_separator + answer, add_special_tokens=False
        )["input_ids"]
        shared = 0
        for a, b in zip(context_ids, full_ids):
            if a != b:
                break
            shared += 1
        tail = list(full_ids[shared:])
        if not tail:
            raise ValueError(f"answer {answer!r} produced no tokens after the {self.family} prompt")
        self._answer_ids_cache[answer] = tail
        return list(tail)

    # ------------------------------------------------------------------ geometry
    @property
    def image_token_id(self) -> int:
        """The id of the LM image-token placeholder, read from the model config."""
        config = self.model.config
        token_id = getattr(config, "image_token_id", None)
        if token_id is None:
            token_id = getattr(config, "image_token_index", None)
        if token_id is None:
            raise ValueError(f"{self.family} config has no image_token_id / image_token_index")
        return int(token_id)

    def image_token_mask(self, inputs: dict[str, torch.Tensor]) -> torch.BoolTensor:
        """(B, T) bool: True at every image-token position (``input_ids == image token id``)."""
        return inputs["input_ids"] == self.image_token_id

    def patch_grids(self, inputs: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
        """Per row, the (rows, cols) grid of its LM image tokens (row-major in the sequence).

        Checked against the number of image tokens found in that row.
        """
        grids = self._grids_from_inputs(inputs)
        counts = self.image_token_mask(inputs).sum(dim=1).tolist()
        if len(grids) != len(counts):
            raise ValueError(
                f"{self.family}: {len(grids)} image grids for {len(counts)} rows; one image per row"
            )
        for row, ((rows, cols), count) in enumerate(zip(grids, counts)):
            if rows * cols != count:
                raise ValueError(
                    f"{self.family}: row {row} has {count} image tokens but its grid is {rows}x{cols}; "
                    "the processor and model disagree on the image geometry"
                )
        return grids

    def _grids_from_inputs(self, inputs: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
        """Per-row grids from the batch's own tensors: here a fixed-patch ViT's, one LM token per
        patch of the pixel array (families that merge or pool patches override this)."""
        pixel_values = inputs["pixel_values"]
        patch = int(self.model.config.vision_config.patch_size)
        height, width = pixel_values.shape[-2:]
        return [(height // patch, width // patch)] * pixel_values.shape[0]

    def expected_grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """The (rows, cols) grid this processor gives an image of PIL size (width, height): here a
        fixed-patch ViT's, one token per patch of the processed view."""
        view = self._processed_view(*image_size)
        patch = int(self.model.config.vision_config.patch_size)
        return view.view_height // patch, view.view_width // patch

    def cell_boxes(self, image_size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
        """(rows, cols, 4) int boxes ``(x0, y0, x1, y1)`` in original-image pixels, one per LM image token.

        ``image_size`` is PIL's ``(width, height)``; ``grid`` is ``(rows, cols)`` as from
        :meth:`patch_grids`. Boxes use half-open pixel ranges ``[x0, x1)``; neighbouring boxes share
        edges, so the boxes tile the part of the image the model sees (for a center crop, only
        the central region). ``grid`` must be the grid this processor gives that image size.
        """
        width, height = _check_size(image_size)
        grid = (int(grid[0]), int(grid[1]))
        expected = self.expected_grid((width, height))
        if grid != expected:
            raise ValueError(
                f"{self.family}: an image of (width, height)=({width}, {height}) gives a grid of "
                f"(rows, cols)={expected}, not {grid}; pass the grid patch_grids() reports for this image"
            )
        view = self._processed_view(width, height)
        return view.cell_boxes(grid)

    @abc.abstractmethod
    def _processed_view(self, width: int, height: int) -> "ProcessedView":
        """How the processor maps an image of this size onto the pixels the vision tower sees."""

    def _fixed_size(self, width: int, height: int) -> tuple[int, int]:
        """(height, width) the image processor resizes an image to when it resizes to a fixed
        ``size`` (or not at all); another kind of ``size`` is refused."""
        ip = self.processor.image_processor
        size = dict(ip.size)
        if not ip.do_resize:
            return height, width
        if size.get("height") and size.get("width"):
            return size["height"], size["width"]
        raise NotImplementedError(
            f"{self.display_name} geometry: image processor size {size} is not supported"
        )

    # ------------------------------------------------------------------ answer scoring
    def answer_spacings(self) -> tuple[str, ...]:
        """What may stand between the prompt and an answer: the family's separator, then the other
        of "" / " " (a model may emit "Yes" with or without the space its prompt leads it to)."""
        other = "" if self.answer_separator else " "
        return (self.answer_separator, other)

    def form_token_ids(self, text: str, spacing: str) -> list[int] | None:
        """Token ids of ``spacing + text`` as they continue this family's prompt, or None.

        None when the text cannot follow the prompt's own tokens: a token of the context merges
        with the text (the prompt as encoded never ends in that merged token), or a token is the
        tokenizer's unknown token (a word-level vocabulary without this word).
        """
        key = spacing + "\x00" + text
        if key in self._form_ids_cache:
            cached = self._form_ids_cache[key]
            return None if cached is None else list(cached)
        context = self._generation_context()
        context_ids = self.tokenizer(context, add_special_tokens=False)["input_ids"]
        full_ids = self.tokenizer(context + spacing + text, add_special_tokens=False)["input_ids"]
        tail: list[int] | None = list(full_ids[len(context_ids) :])
        unk = self.tokenizer.unk_token_id
        if list(full_ids[: len(context_ids)]) != list(context_ids) or not tail:
            tail = None
        elif unk is not None and unk in tail:
            tail = None
        self._form_ids_cache[key] = tail
        return None if tail is None else list(tail)

    # ------------------------------------------------------------------ continuing a prompt
    def next_positions(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) the position the token after each row's last prompt token takes.

        ``inputs`` is a left-padded (or unpadded) prompt batch as :meth:`encode` gives it. Plain
        1-D RoPE families count positions over the whole padded row (the model's default
        ``arange``; pads sit before the prompt, so every relative distance is the unpadded one):
        the next position is the row length. Families with other position schemes override this.
        """
        rows, length = inputs["input_ids"].shape
        return torch.full((rows,), length, dtype=torch.long, device=inputs["input_ids"].device)

    def position_kwargs(self, start: torch.Tensor, length: int) -> dict[str, torch.Tensor]:
        """Model kwargs placing ``length`` new text tokens per row at ``start`` (R,), ``start + 1``, ..."""
        steps = torch.arange(length, device=start.device)
        return {"position_ids": start[:, None].to(torch.long) + steps[None, :]}

    def continuation_inputs(
        self, state, rows: torch.Tensor, suffix_ids: torch.Tensor, suffix_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Model kwargs feeding ``suffix_ids`` (R, L; right-padded) after the cached prompt ``rows``.

        ``state`` (a :class:`vrp.prompt_pass.PromptState`) holds the prompt's KV cache, which
        mask entries are real tokens, and each row's next position; the cache holds every prompt
        token (image included), so only the text suffix is passed, with explicit positions that
        continue each row from its last real token (a right-padded cache has pads between the
        prompt and the suffix: default positions would count them).
        """
        mask = torch.cat([state.key_mask[rows], suffix_mask], dim=1)
        return {
            "input_ids": suffix_ids,
            "attention_mask": mask,
            **self.position_kwargs(state.next_positions[rows], suffix_ids.shape[1]),
        }

    # ------------------------------------------------------------------ shared image prefix
    def _per_token_keys(self) -> tuple[str, ...]:
        """Batch keys with one value per token (sliced with the tokens); the rest are per image."""
        return ("input_ids", "attention_mask", *self._per_token_answer_values)

    def _prompt_tokens(
        self, image: Image.Image, prompts: list[str]
    ) -> tuple[dict[str, torch.Tensor], list[list[int]]]:
        """The first prompt's processed batch, and each prompt's token ids as the processor gives
        them with ``image`` (image span expanded).

        The processor's expansion depends on the image's size, not its content, and leaves the
        text around the placeholder as the tokenizer cuts it: so the prompts are tokenised as text
        and the one placeholder token replaced by the span of the first prompt's processed row,
        checked against that row. Where the check fails (a processor that rewrites more than the
        placeholder), every prompt is processed with the image.
        """
        first = self._processor_call([image], prompts[:1], padding_side="right")
        first.pop("labels", None)
        expanded = first["input_ids"][0][first["attention_mask"][0].bool()].tolist()
        image_id = self.image_token_id
        span = expanded.count(image_id)
        texts = self.tokenizer(prompts)["input_ids"]

        def expand(ids: list[int]) -> list[int] | None:
            if ids.count(image_id) != 1:
                return None
            j = ids.index(image_id)
            return ids[:j] + [image_id] * span + ids[j + 1 :]

        rows = [expand(list(ids)) for ids in texts]
        if rows[0] == expanded and all(r is not None for r in rows):
            return first, rows
        batch = self._processor_call([image] * len(prompts), prompts, padding_side="right")
        masks = batch["attention_mask"].bool()
        return first, [ids[mask].tolist() for ids, mask in zip(batch["input_ids"], masks)]

    def encode_shared(self, image: Image.Image, questions: Sequence[str]):
        """The questions about one image as one shared prefix and right-padded suffixes.

        The prefix is the question-independent start of the prompt: everything before the
        question text, the image span included (the common start of these prompts and of two
        sentinel prompts, so the cut is the template's, not words the questions happen to share).
        Returns a :class:`vrp.prompt_pass.SharedPrompts`. Needs :attr:`shares_prefix`.
        """
        from vrp.prompt_pass import SharedPrompts

        if not self.shares_prefix:
            raise ValueError(
                f"{self.family}: {self.prefix_sharing_note or 'prefix sharing is off'}"
            )
        if not questions:
            raise ValueError("encode_shared needs at least one question")
        prompts = [self.build_prompt(self.question_text(q)) for q in questions]
        sentinels = [self.build_prompt(self.question_text(q)) for q in _SENTINEL_QUESTIONS]
        first, tokens = self._prompt_tokens(image, prompts + sentinels)
        shared = len(tokens[0])
        for row in tokens[1:]:
            shared = min(shared, len(row))
            shared = next((i for i in range(shared) if row[i] != tokens[0][i]), shared)
        rows = tokens[: len(prompts)]
        shared = min(shared, min(len(r) for r in rows) - 1)  # every row keeps one suffix token
        image_id = self.image_token_id
        last_image = max(i for i, t in enumerate(tokens[0]) if t == image_id)
        if shared <= last_image:
            raise ValueError(
                f"{self.family}: the prompt template {self.prompt_template!r} puts text that depends "
                "on the question before the end of the image span, so no prefix can be shared; "
                "set extraction.prefix_sharing: false or move {question} after the image"
            )
        prefix = {
            key: value[:, :shared] if key in self._per_token_keys() else value
            for key, value in first.items()
        }
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else self.tokenizer.eos_token_id
        width = max(len(r) for r in rows) - shared
        suffix_ids = torch.full((len(rows), width), pad, dtype=first["input_ids"].dtype)
        suffix_mask = torch.zeros((len(rows), width), dtype=first["attention_mask"].dtype)
        for b, row in enumerate(rows):
            suffix_ids[b, : len(row) - shared] = torch.tensor(row[shared:], dtype=suffix_ids.dtype)
            suffix_mask[b, : len(row) - shared] = 1
        prefix = self._to_model(prefix)
        return SharedPrompts(
            prefix_inputs=prefix,
            suffix_ids=suffix_ids.to(self.device),
            suffix_mask=suffix_mask.to(self.device),
            image_mask=self.image_token_mask(prefix),
        )

    # ------------------------------------------------------------------ modules by role
    def language_model(self) -> torch.nn.Module:
        """The text decoder stack (embeddings, decoder layers, final norm), found by role."""
        decoder = self.model.get_decoder()
        if not hasattr(decoder, "layers"):
            raise AttributeError(
                f"{self.family}: the model's decoder {type(decoder).__name__} has no .layers"
            )
        return decoder

    def decoder_layers(self) -> list[torch.nn.Module]:
        """The LM decoder layers in order (each returns the residual stream as a tensor)."""
        return list(self.language_model().layers)

    def _layer(self, layer: int) -> torch.nn.Module:
        layers = self.decoder_layers()
        if not -len(layers) <= layer < len(layers):
            raise IndexError(
                f"{self.family} has {len(layers)} decoder layers; layer {layer} does not exist"
            )
        return layers[layer]

    def attention_module(self, layer: int) -> torch.nn.Module:
        """The self-attention module of decoder layer ``layer``."""
        return _child_by_suffix(self._layer(layer), "Attention", self.family)

    def output_projection(self, layer: int) -> torch.nn.Linear:
        """The attention output projection of decoder layer ``layer`` (input: the heads, joined)."""
        attention = self.attention_module(layer)
        name = self.output_projection_name
        projection = getattr(attention, name, None)
        if (
            not isinstance(projection, torch.nn.Linear)
            or projection.out_features != self.hidden_size
        ):
            raise AttributeError(
                f"{self.family}: {type(attention).__name__}.{name} is not a Linear onto the "
                f"{self.hidden_size}-wide residual; fix {type(self).__name__}.output_projection_name"
            )
        return projection

    def attention_output_module(self, layer: int) -> torch.nn.Module:
        """The module whose output is decoder layer ``layer``'s attention contribution to the residual.

        The attention module itself where its output is added as it is; a family that norms that
        output before the add returns the norm (an RMSNorm taking the attention output as its
        input: at the sample's own scale it is linear, so vrp.extract splits it over the heads).
        """
        return self.attention_module(layer)

    def mlp_module(self, layer: int) -> torch.nn.Module:
        """The MLP of decoder layer ``layer``; its output is the MLP's contribution to the residual."""
        return _child_by_suffix(self._layer(layer), "MLP", self.family)

    def final_norm(self) -> torch.nn.Module:
        """The norm applied to the last layer's output before ``lm_head``.

        ``hidden_states[-1]`` of a forward already went through it; earlier layers need it for a
        logit lens.
        """
        return self.language_model().norm

    def lm_head(self) -> torch.nn.Module:
        """The output projection to vocabulary logits."""
        return self.model.get_output_embeddings()

    def logits_from_residual(self, residual: torch.Tensor) -> torch.Tensor:
        """(..., V) the logits the model computes from the last decoder layer's output ``residual``
        (..., d): the final norm, ``lm_head`` and, where the text config sets one, the final
        logit soft-capping (Gemma 2's; Gemma 3's is unset)."""
        logits = self.lm_head()(self.final_norm()(residual))
        cap = getattr(self.text_config, "final_logit_softcapping", None)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    @abc.abstractmethod
    def image_embedding_module(self) -> torch.nn.Module:
        """The projector/merger whose output rows are the LM's image-token embeddings."""

    def image_embedding_order(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(total image tokens,) long: for each row of :meth:`image_embedding_module`'s output
        (flattened over the batch), the index of the LM image token it becomes, counting the
        batch's image tokens in sequence order. The projector's rows are already in that
        (raster) order here; a tower that permutes its patches overrides this."""
        total = int(self.image_token_mask(inputs).sum())
        return torch.arange(total, device=inputs["input_ids"].device)

    def input_embeddings(self) -> torch.nn.Module:
        """The LM's token embedding table (before image features are scattered in)."""
        return self.model.get_input_embeddings()

    # ------------------------------------------------------------------ properties
    @property
    def text_config(self):
        return self.model.config.get_text_config()

    @property
    def num_layers(self) -> int:
        return len(self.decoder_layers())

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def num_heads(self) -> int:
        """Query heads per layer (attention weights are returned per query head)."""
        return int(self.text_config.num_attention_heads)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(family={self.family!r}, layers={self.num_layers}, "
            f"hidden={self.hidden_size}, heads={self.num_heads}, dtype={self.dtype})"
        )


class ProcessedView:
    """An axis-aligned map from original-image pixels to the pixel array the vision tower sees.

    The processor pads the image (``pad_x``, ``pad_y`` original pixels on the left/top), scales
    it (``scale_x``, ``scale_y`` processed pixels per original pixel) and crops a window of
    ``view_width`` x ``view_height`` starting at (``crop_left``, ``crop_top``) of the scaled image.
    """

    def __init__(
        self,
        width: int,
        height: int,
        scale_x: float,
        scale_y: float,
        view_width: int,
        view_height: int,
        crop_left: int = 0,
        crop_top: int = 0,
        pad_x: int = 0,
        pad_y: int = 0,
    ):
        self.width, self.height = width, height
        self.scale_x, self.scale_y = scale_x, scale_y
        self.view_width, self.view_height = view_width, view_height
        self.crop_left, self.crop_top = crop_left, crop_top
        self.pad_x, self.pad_y = pad_x, pad_y

    @classmethod
    def stretched(cls, width: int, height: int, new_height: int, new_width: int) -> "ProcessedView":
        """The whole image resized to ``new_width`` x ``new_height`` (no pad, no crop)."""
        scale_x, scale_y = new_width / width, new_height / height
        return cls(width, height, scale_x, scale_y, view_width=new_width, view_height=new_height)

    def cell_boxes(self, grid: tuple[int, int]) -> np.ndarray:
        rows, cols = grid
        if self.view_height % rows or self.view_width % cols:
            raise ValueError(
                f"the processed image ({self.view_width}x{self.view_height}) does not divide into a "
                f"{rows}x{cols} grid"
            )
        xs = (
            self.crop_left + np.arange(cols + 1) * (self.view_width // cols)
        ) / self.scale_x - self.pad_x
        ys = (
            self.crop_top + np.arange(rows + 1) * (self.view_height // rows)
        ) / self.scale_y - self.pad_y
        # Round the shared edges once so adjacent boxes tile exactly; clip padding away.
        xs = np.clip(np.round(xs), 0, self.width).astype(np.int64)
        ys = np.clip(np.round(ys), 0, self.height).astype(np.int64)
        boxes = np.empty((rows, cols, 4), dtype=np.int64)
        boxes[..., 0] = xs[None, :-1]
        boxes[..., 1] = ys[:-1, None]
        boxes[..., 2] = xs[None, 1:]
        boxes[..., 3] = ys[1:, None]
        return boxes


def _check_size(image_size: tuple[int, int]) -> tuple[int, int]:
    if len(image_size) != 2 or min(image_size) <= 0:
        raise ValueError(
            f"image_size must be PIL's (width, height) with positive sides, got {image_size}"
        )
    return int(image_size[0]), int(image_size[1])


def _child_by_suffix(layer: torch.nn.Module, suffix: str, family: str) -> torch.nn.Module:
    """The unique direct child of ``layer`` whose class name ends in ``suffix`` (e.g. ``Attention``)."""
    matches = [m for m in layer.children() if type(m).__name__.endswith(suffix)]
    if len(matches) != 1:
        names = [type(m).__name__ for m in layer.children()]
        raise AttributeError(
            f"{family}: expected one *{suffix} module in {type(layer).__name__}, found children {names}"
        )
    return matches[0]


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def _registered_adapters() -> list[type[FamilyAdapter]]:
    """Every family's adapter (the package imports them lazily: this imports all of them)."""
    import vrp.adapters

    vrp.adapters.ADAPTERS  # noqa: B018 (imports every family's adapter module)
    return list(FamilyAdapter.registry.values())


def unique_module(model: torch.nn.Module, cls: type, family: str) -> torch.nn.Module:
    """The single submodule of class ``cls`` (found by class, not by dotted path)."""
    found = [m for m in model.modules() if isinstance(m, cls)]
    if len(found) != 1:
        raise AttributeError(
            f"{family}: expected one {cls.__name__} in the model, found {len(found)}"
        )
    return found[0]
