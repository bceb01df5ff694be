"""Reading the extraction's NPY shards through their manifest (no torch import: analysis jobs stay light)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vrp.io import read_json


def pad_last(array: np.ndarray, size: int) -> np.ndarray:
    """NaN-pad the last axis to ``size`` (image-token axes differ under Qwen2-VL's dynamic grid)."""
    if array.shape[-1] == size:
        return array
    pad = [(0, 0)] * (array.ndim - 1) + [(0, size - array.shape[-1])]
    return np.pad(array, pad, constant_values=np.nan)


def load_array(manifest_path: str | os.PathLike, name: str, mmap: bool = True) -> np.ndarray:
    """Concatenate one array's shards listed in a manifest (memory-mapped reads)."""
    manifest_path = Path(manifest_path)
    manifest = read_json(manifest_path)
    if name not in manifest["arrays"]:
        raise KeyError(
            f"{manifest_path} has no array {name!r}; it has {sorted(manifest['arrays'])}. It was written by an "
            "older vrp: rerun the extraction (snakemake -R extract_activations)"
        )
    shards = manifest["arrays"][name]["shards"]
    parts = [np.load(manifest_path.parent / rel, mmap_mode="r" if mmap else None) for rel in shards]
    if len(parts) == 1:
        return parts[0]
    if name.endswith("attention"):  # dynamic grids: shards may differ in S_max
        width = max(p.shape[-1] for p in parts)
        parts = [pad_last(np.asarray(p), width) for p in parts]
    return np.concatenate(parts)
