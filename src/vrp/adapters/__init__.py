"""Family adapters: the only place that knows how the model families (LLaVA, PaliGemma, Qwen2-VL,
Qwen2.5-VL, Gemma 3) differ.

Use :func:`get_adapter_class` / :func:`load_adapter` with a family name from :data:`FAMILIES`;
code elsewhere never branches on the family. Adding a family = its adapter module (named after
the family: the config check reads its ``tiny_defaults`` and the figures its label and colour from
``<family>.py``, see :mod:`vrp.adapters.catalog`) and one line each below (``FAMILIES``, the
``TYPE_CHECKING`` import, ``__all__``); tests/test_layout.py holds every other file to that.

The package is lazy: importing it imports neither torch nor any adapter module.
:func:`get_adapter_class` imports the one family's module (a model job pays for one family's
transformers classes); ``ADAPTERS``, ``FamilyAdapter`` and the adapter classes are imported on
first use (PEP 562 ``__getattr__``; ``ADAPTERS`` imports every family).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vrp.adapters.base import FamilyAdapter
    from vrp.adapters.gemma3 import Gemma3Adapter
    from vrp.adapters.llava import LlavaAdapter
    from vrp.adapters.paligemma import PaliGemmaAdapter
    from vrp.adapters.qwen2vl import Qwen2VLAdapter
    from vrp.adapters.qwen25vl import Qwen25VLAdapter

    ADAPTERS: dict[str, type[FamilyAdapter]]

# Order matters: the zoo tokenizer's special-token ids follow it (new families go last, so the
# earlier special tokens keep their ids).
FAMILIES: tuple[str, ...] = ("llava", "paligemma", "qwen2vl", "qwen25vl", "gemma3")


def get_adapter_class(family: str) -> type[FamilyAdapter]:
    """The adapter class of ``family``; an unknown name raises ``ValueError`` listing the families.

    Imports ``vrp.adapters.<family>`` (and what it imports) only.
    """
    if not isinstance(family, str) or family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {list(FAMILIES)}")
    from vrp.adapters.base import FamilyAdapter

    importlib.import_module(f"{__name__}.{family}")
    return FamilyAdapter.registry[family]


def load_adapter(family: str, path_or_id: str | os.PathLike, **kwargs) -> FamilyAdapter:
    """``get_adapter_class(family).load(path_or_id, **kwargs)`` (see :meth:`FamilyAdapter.load`)."""
    return get_adapter_class(family).load(path_or_id, **kwargs)


def _all_adapters() -> dict[str, type[FamilyAdapter]]:
    adapters = {family: get_adapter_class(family) for family in FAMILIES}
    for family, adapter in adapters.items():
        assert adapter.family == family and adapter.__module__ == f"{__name__}.{family}"
    return adapters


def __getattr__(name: str):
    """``ADAPTERS``, ``FamilyAdapter`` and the adapter classes, imported on first use."""
    if name == "FamilyAdapter":
        from vrp.adapters.base import FamilyAdapter

        return FamilyAdapter
    if name == "ADAPTERS":
        value = globals()["ADAPTERS"] = _all_adapters()
        return value
    if name in __all__:
        for adapter in _all_adapters().values():
            if adapter.__name__ == name:
                return adapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
