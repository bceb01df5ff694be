"""Host memory of a job that loads a model, from the checkpoint's size and dtype (``mem_mb``).

The weights' size is the parameter count times the bytes of the configured dtype. The parameter
count is ``models.<name>.n_params`` when the config gives it (the paper face does, from the model
cards: a Hub checkpoint's size is not known before it is downloaded), else it is read from a local
folder's safetensors files (the index's ``total_size`` or the single file's size, divided by the
bytes per parameter of the dtype the checkpoint was saved in).

Host memory then depends on where the weights end up:

* on the CPU (tiny models, ``runtime.device: cpu``) the job holds all of them: weights + overhead;
* on a GPU they are loaded straight to the device (``device_map``), tensor by tensor from the
  memory-mapped safetensors files, so the host never holds a full copy; page cache of the mapped
  files still counts against a cluster job's memory cgroup until the kernel reclaims it, so a
  quarter of the weights is reserved on top of the overhead.

The overhead (:data:`JOB_OVERHEAD_MB`) covers the interpreter, torch, the processor, the question
table with its images and the arrays of one shard. Every value scales with Snakemake's ``attempt``
so a retried job gets more.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
JOB_OVERHEAD_MB = 6000
GPU_HOST_SHARE = 0.25
TINY_MODEL_MB = 4000


def _saved_bytes_per_param(folder: Path) -> int:
    config_path = folder / "config.json"
    saved = "float32"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        text = config.get("text_config") or {}
        saved = (
            config.get("dtype")
            or config.get("torch_dtype")
            or text.get("dtype")
            or text.get("torch_dtype")
            or saved
        )
    return DTYPE_BYTES.get(str(saved).replace("torch.", ""), 4)


def local_checkpoint_params(folder: str | Path) -> int | None:
    """Parameter count of a local safetensors checkpoint (None when the folder holds none)."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        total = json.loads(index.read_text(encoding="utf-8")).get("metadata", {}).get("total_size")
        size = int(total) if total else sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    else:
        files = list(folder.glob("*.safetensors")) or list(folder.glob("pytorch_model*.bin"))
        if not files:
            return None
        size = sum(p.stat().st_size for p in files)
    return size // _saved_bytes_per_param(folder)


def checkpoint_params(model: dict) -> int | None:
    """``n_params`` from the config, else counted from a local folder; None when unknown."""
    if model.get("n_params"):
        return int(model["n_params"])
    path = model.get("path")
    if path and Path(str(path)).expanduser().is_dir():
        return local_checkpoint_params(Path(str(path)).expanduser())
    return None


def weights_mb(model: dict) -> int | None:
    """Size of the model's weights in the configured dtype, in MB (None when unknown)."""
    params = checkpoint_params(model)
    if params is None:
        return None
    return math.ceil(params * DTYPE_BYTES[model.get("dtype", "float32")] / 1e6)


def model_mem_mb(model: dict, device: str, attempt: int = 1, name: str = "<name>") -> int:
    """Host memory (MB) of a job that loads ``model`` (a validated ``models.<name>`` section).

    ``device`` is ``runtime.device``; a Hub model on "cuda" / "auto" runs in a GPU job (its rules
    request ``gpu=1``), so its weights go to the GPU. An unknown size (a Hub id without
    ``n_params``) raises ``ValueError`` naming the key to set.
    """
    if model.get("source") in ("tiny", "random"):  # built by the workflow: small by construction
        return TINY_MODEL_MB * attempt
    size = weights_mb(model)
    if size is None:
        raise ValueError(
            f"the size of model {model.get('path')!r} is unknown before it is downloaded: set "
            f"models.{name}.n_params (its parameter count, e.g. 7063427072 from the model card) "
            "so the "
            "jobs that load it request enough memory"
        )
    on_gpu = device != "cpu"
    host = JOB_OVERHEAD_MB + (math.ceil(size * GPU_HOST_SHARE) if on_gpu else size)
    return int(host * attempt)
