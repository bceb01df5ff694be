"""Loading a configured model: the same ``from_pretrained`` path for a tiny checkpoint and a Hub id."""

from __future__ import annotations

import torch

from vrp.adapters import get_adapter_class
from vrp.adapters.base import FamilyAdapter
from vrp.hub import apply_offline_env, locate_checkpoint
from vrp.pins import PinError


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
    """Load from a rule's ``model_spec`` params (name, family, path, revision, dtype, ...).

    A Hub id the config's lock file does not pin (``spec["unpinned"]``, set by rules/common.smk)
    is refused with the fix. Before any weights are read, :func:`vrp.hub.locate_checkpoint`
    checks that the model can be had (local folder, cached Hub id, or a Hub that answers) and
    otherwise fails in seconds with the fix, naming ``models.<name>.path``. Offline mode itself
    is set in the job's environment before it starts (rules/common.smk); setting it here again
    only covers callers outside a job.
    """
    if spec.get("unpinned"):
        raise PinError(spec["unpinned"])
    apply_offline_env(spec.get("hf_offline", True))
    key = f"models.{spec.get('name', '<name>')}.path"
    path = locate_checkpoint(str(spec["path"]), spec.get("revision"), key)
    adapter_class = get_adapter_class(spec["family"])
    return adapter_class.load(
        path,
        revision=spec.get("revision"),
        dtype=spec.get("dtype", "float32"),
        device=resolve_device(spec.get("device", "cpu")),
        prompt_template=spec.get("prompt_template"),
    )
