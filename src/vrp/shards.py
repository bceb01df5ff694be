"""Reading the extraction's NPY shards through their manifest (no torch import: analysis jobs stay light).

Two ways in:

* :func:`open_array` returns a :class:`ShardedArray`, a lazy view over one array's shards. Indexing
  it (``hidden[:, layer, :]``) reads only that slice from each shard's memory map and unmaps the
  shard again, so a loop over layers holds one layer in memory, not layers x questions.
  :func:`load_layer` is the one-layer shortcut.
* :func:`load_array` returns the whole array (memory-mapped when there is one shard, else one
  concatenated copy in RAM): for small arrays such as (n, L) margins.

Both check the manifest's record of every shard file (it exists and has the size written), so a
deleted or truncated shard is reported with the fix instead of a bare FileNotFoundError.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from vrp.io import read_json

# The workflow checks every manifest at start-up (rules/extract.smk) and reruns a broken extraction.
REPAIR_ADVICE = (
    "rerun the workflow (snakemake --cores N ..., or -R extract_activations): at start-up it finds "
    "the broken shard and reruns extract_activations, which keeps the intact shards and redoes this one"
)


class ShardError(FileNotFoundError):
    """A shard file listed in a manifest is missing or not the size recorded when it was written."""


def pad_last(array: np.ndarray, size: int) -> np.ndarray:
    """NaN-pad the last axis to ``size`` (image-token axes differ under Qwen2-VL's dynamic grid)."""
    if array.shape[-1] == size:
        return array
    pad = [(0, 0)] * (array.ndim - 1) + [(0, size - array.shape[-1])]
    return np.pad(array, pad, constant_values=np.nan)


def shard_problems(manifest_path: str | os.PathLike, manifest: dict | None = None) -> list[str]:
    """Every listed shard file that is missing or differs from its recorded size (empty = intact)."""
    manifest_path = Path(manifest_path)
    manifest = read_json(manifest_path) if manifest is None else manifest
    problems = []
    for _name, entry in sorted(manifest.get("arrays", {}).items()):
        sizes = entry.get("bytes") or [None] * len(entry["shards"])
        for rel, size in zip(entry["shards"], sizes):
            path = manifest_path.parent / rel
            if not path.is_file():
                problems.append(f"{rel} is missing")
            elif size is not None and path.stat().st_size != size:
                problems.append(f"{rel} has {path.stat().st_size} bytes, {size} were written")
    return problems


def broken_shards(manifest_path: str | os.PathLike) -> list[str]:
    """What is wrong with an existing manifest's shards (empty when intact or when there is no manifest).

    The shards are not declared Snakemake outputs (their number depends on the question table), so
    Snakemake cannot see a deleted or truncated one. The workflow calls this at start-up for every
    extraction it plans and forces a broken one to rerun (rules/extract.smk).
    """
    manifest_path = Path(manifest_path)
    if not manifest_path.is_file():
        return []
    try:
        return shard_problems(manifest_path)
    except (ValueError, KeyError, TypeError) as err:  # unreadable JSON or an old layout
        return [f"the manifest is unreadable ({err})"]


def mark_shard_check(path: str | os.PathLike, problems: list[str]) -> None:
    """Keep the extraction rule's marker input: created with an epoch mtime (never newer than a
    manifest, so it triggers nothing); rewritten when the shards are broken (``problems``), so it
    is newer than the manifest and its content differs from the checksum Snakemake recorded for
    small inputs: Snakemake reruns the extraction and everything that reads it."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("start-up shard check of this extraction (rules/extract.smk)\n")
        os.utime(path, (0, 0))
    if problems:
        text = f"broken shards found at {time.time_ns()} ns:\n" + "\n".join(problems) + "\n"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


def _entry(manifest_path: Path, name: str) -> dict:
    manifest = read_json(manifest_path)
    if name not in manifest["arrays"]:
        raise KeyError(
            f"{manifest_path} has no array {name!r}; it has {sorted(manifest['arrays'])}. It was written by an "
            "older vrp or with other extraction settings: rerun the extraction (snakemake -R extract_activations)"
        )
    entry = manifest["arrays"][name]
    sizes = entry.get("bytes") or [None] * len(entry["shards"])
    for rel, size in zip(entry["shards"], sizes):
        path = manifest_path.parent / rel
        if not path.is_file() or (size is not None and path.stat().st_size != size):
            state = (
                "is missing"
                if not path.is_file()
                else f"has {path.stat().st_size} bytes, {size} were written"
            )
            raise ShardError(f"shard file {path} of {manifest_path} {state}: {REPAIR_ADVICE}")
    return entry


class ShardedArray:
    """A lazy (n, ...) array over one array's shards; ``view[rows, ...]`` reads only that slice.

    Each access memory-maps the shards it needs, copies the slice out and unmaps them again, so
    the pages read do not stay in the process's resident set.
    """

    def __init__(self, manifest_path: str | os.PathLike, name: str):
        self.manifest_path = Path(manifest_path)
        self.name = name
        entry = _entry(self.manifest_path, name)
        self.paths = [self.manifest_path.parent / rel for rel in entry["shards"]]
        self.shape = tuple(int(s) for s in entry["shape"])
        self.dtype = np.dtype(entry.get("dtype", "float32"))
        heads = [np.load(p, mmap_mode="r").shape for p in self.paths]
        self.offsets = np.cumsum([0] + [h[0] for h in heads])
        self.widths = [h[-1] for h in heads]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        scalar_row = isinstance(first, (int, np.integer))
        rows = np.arange(self.shape[0])[first]
        rows = np.atleast_1d(rows)
        shard_of = np.searchsorted(self.offsets, rows, side="right") - 1
        parts, order = [], []
        for k in np.unique(shard_of):
            picked = np.flatnonzero(shard_of == k)
            local = rows[picked] - self.offsets[k]
            contiguous = len(local) and np.all(np.diff(local) == 1)
            local_key = slice(int(local[0]), int(local[-1]) + 1) if contiguous else local
            parts.append(self._read(int(k), (local_key, *rest)))
            order.append(picked)
        if not parts:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)[(slice(None), *rest)]
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        positions = np.concatenate(order)
        if not np.array_equal(positions, np.arange(len(positions))):
            inverse = np.empty_like(positions)
            inverse[positions] = np.arange(len(positions))
            out = out[inverse]
        return out[0] if scalar_row else out

    def _read(self, k: int, key: tuple) -> np.ndarray:
        shard = np.load(self.paths[k], mmap_mode="r")
        try:
            width = self.shape[-1]
            if self.widths[k] == width:
                return np.array(shard[key])
            touches_last = len(key) >= self.ndim and key[self.ndim - 1] != slice(None)
            if touches_last:  # pad first, then index (rare: a slice along the image-token axis)
                return np.array(pad_last(np.asarray(shard[key[0]]), width)[(slice(None), *key[1:])])
            return pad_last(np.array(shard[key]), width)
        finally:
            del shard  # unmaps the shard: its pages leave the resident set


def open_array(manifest_path: str | os.PathLike, name: str) -> ShardedArray:
    """A lazy view of one array's shards (see :class:`ShardedArray`)."""
    return ShardedArray(manifest_path, name)


def load_layer(manifest_path: str | os.PathLike, name: str, layer: int) -> np.ndarray:
    """``array[:, layer]`` of one (n, L, ...) array, read slice by slice from the shards' memory maps."""
    return open_array(manifest_path, name)[:, layer]


def load_array(manifest_path: str | os.PathLike, name: str, mmap: bool = True) -> np.ndarray:
    """Concatenate one array's shards listed in a manifest (memory-mapped reads)."""
    manifest_path = Path(manifest_path)
    entry = _entry(manifest_path, name)
    shards = entry["shards"]
    parts = [np.load(manifest_path.parent / rel, mmap_mode="r" if mmap else None) for rel in shards]
    if len(parts) == 1:
        return parts[0]
    if name.endswith("attention"):  # dynamic grids: shards may differ in S_max
        width = max(p.shape[-1] for p in parts)
        parts = [pad_last(np.asarray(p), width) for p in parts]
    return np.concatenate(parts)
