"""Loading a configured model: the same ``from_pretrained`` path for a tiny checkpoint and a Hub id."""

from __future__ import annotations

import os

import torch

from vrp.adapters import get_adapter_class
from vrp.adapters.base import FamilyAdapter


def resolve_device(device: str) -> str:
    """'auto' picks CUDA when present; asking for CUDA without one is an error, not a silent CPU run."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "runtime.device is 'cuda' but torch sees no GPU; set runtime.device to 'cpu' or 'auto'"
        )
    return device


def load_model_from_spec(spec: dict) -> FamilyAdapter:
    """Load from a rule's ``model_spec`` params (family, path, revision, dtype, prompt_template,
    post_prompt, ...)."""
    if spec.get("hf_offline", True):
        # the demo never touches the network; a Hub id then fails fast with a clear error
        os.environ["HF_HUB_OFFLINE"] = "1"
    adapter_class = get_adapter_class(spec["family"])
    adapter = adapter_class.load(
        spec["path"],
        revision=spec.get("revision"),
        dtype=spec.get("dtype", "float32"),
        device=resolve_device(spec.get("device", "cpu")),
        prompt_template=spec.get("prompt_template"),
    )
    adapter.post_prompt = spec.get("post_prompt") or ""
    return adapter
