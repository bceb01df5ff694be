"""Family adapters: the only place that knows how LLaVA, PaliGemma and Qwen2-VL differ.

Use :func:`get_adapter_class` / :func:`load_adapter` with a family name from :data:`FAMILIES`;
code elsewhere never branches on the family.
"""

from __future__ import annotations

import os

from vrp.adapters.base import FamilyAdapter
from vrp.adapters.llava import LlavaAdapter
from vrp.adapters.paligemma import PaliGemmaAdapter
from vrp.adapters.qwen2vl import Qwen2VLAdapter

FAMILIES: tuple[str, ...] = ("llava", "paligemma", "qwen2vl")
ADAPTERS: dict[str, type[FamilyAdapter]] = {
    LlavaAdapter.family: LlavaAdapter,
    PaliGemmaAdapter.family: PaliGemmaAdapter,
    Qwen2VLAdapter.family: Qwen2VLAdapter,
}
assert tuple(ADAPTERS) == FAMILIES and ADAPTERS == FamilyAdapter.registry


def get_adapter_class(family: str) -> type[FamilyAdapter]:
    """The adapter class of ``family``; an unknown name raises ``ValueError`` listing the families."""
    try:
        return ADAPTERS[family]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model family {family!r}; choose one of {list(FAMILIES)}") from None


def load_adapter(family: str, path_or_id: str | os.PathLike, **kwargs) -> FamilyAdapter:
    """``get_adapter_class(family).load(path_or_id, **kwargs)`` (see :meth:`FamilyAdapter.load`)."""
    return get_adapter_class(family).load(path_or_id, **kwargs)


__all__ = [
    "ADAPTERS",
    "FAMILIES",
    "FamilyAdapter",
    "LlavaAdapter",
    "PaliGemmaAdapter",
    "Qwen2VLAdapter",
    "get_adapter_class",
    "load_adapter",
]
