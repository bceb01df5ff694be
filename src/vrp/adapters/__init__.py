"""Family adapters: the only place that knows how the model families (LLaVA, PaliGemma, Qwen2-VL,
Qwen2.5-VL, Gemma 3) differ.

Use :func:`get_adapter_class` / :func:`load_adapter` with a family name from :data:`FAMILIES`;
code elsewhere never branches on the family. Adding a family = its adapter module (named after
the family: the config check reads its ``tiny_defaults`` from ``<family>.py``) and one line each
below (import, ``FAMILIES``, ``ADAPTERS``); tests/test_layout.py holds every other file to that.
"""

from __future__ import annotations

import os

from vrp.adapters.base import FamilyAdapter
from vrp.adapters.gemma3 import Gemma3Adapter
from vrp.adapters.llava import LlavaAdapter
from vrp.adapters.paligemma import PaliGemmaAdapter
from vrp.adapters.qwen2vl import Qwen2VLAdapter
from vrp.adapters.qwen25vl import Qwen25VLAdapter

# Order matters: the zoo tokenizer's special-token ids follow it (new families go last, so the
# earlier special tokens keep their ids).
FAMILIES: tuple[str, ...] = ("llava", "paligemma", "qwen2vl", "qwen25vl", "gemma3")
ADAPTERS: dict[str, type[FamilyAdapter]] = {
    LlavaAdapter.family: LlavaAdapter,
    PaliGemmaAdapter.family: PaliGemmaAdapter,
    Qwen2VLAdapter.family: Qwen2VLAdapter,
    Qwen25VLAdapter.family: Qwen25VLAdapter,
    Gemma3Adapter.family: Gemma3Adapter,
}
assert tuple(ADAPTERS) == FAMILIES and ADAPTERS == FamilyAdapter.registry


def get_adapter_class(family: str) -> type[FamilyAdapter]:
    """The adapter class of ``family``; an unknown name raises ``ValueError`` listing the families."""
    try:
        return ADAPTERS[family]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown model family {family!r}; choose one of {list(FAMILIES)}"
        ) from None


def load_adapter(family: str, path_or_id: str | os.PathLike, **kwargs) -> FamilyAdapter:
    """``get_adapter_class(family).load(path_or_id, **kwargs)`` (see :meth:`FamilyAdapter.load`)."""
    return get_adapter_class(family).load(path_or_id, **kwargs)


__all__ = [
    "ADAPTERS",
    "FAMILIES",
    "FamilyAdapter",
    "Gemma3Adapter",
    "LlavaAdapter",
    "PaliGemmaAdapter",
    "Qwen2VLAdapter",
    "Qwen25VLAdapter",
    "get_adapter_class",
    "load_adapter",
]
