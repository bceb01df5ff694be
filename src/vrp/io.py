"""Atomic writers: every output is written to a temp file in the same folder, then renamed.

A killed job therefore never leaves a half-written file under the final name, so Snakemake
(and a resumed run) can trust that a file that exists is complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with disk_full_reported(path):
            yield tmp_path
            os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder beside ``path`` (named ``.<name>.*``); on success it replaces ``path``
    (an older folder there is removed first), else it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        with disk_full_reported(path):
            yield tmp
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


class DiskFullError(OSError):
    """A write ran out of space; the message says where, how much is free and what to do."""


def _is_disk_full(err: OSError) -> bool:
    # numpy's tofile reports a short write as "N requested and M written" without an errno
    return err.errno in (errno.ENOSPC, errno.EDQUOT) or "requested and" in str(err)


@contextlib.contextmanager
def disk_full_reported(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise a full disk (ENOSPC, a quota, or numpy's short write) as a :class:`DiskFullError`."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as err:
        if not _is_disk_full(err):
            raise
        folder = Path(path).parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            free = f"{shutil.disk_usage(folder).free / 1e6:.1f} MB free"
        except OSError:
            free = "free space unknown"
        raise DiskFullError(
            errno.ENOSPC,
            f"disk full while writing {path} ({free} under {folder}; {err}). Free space or move the "
            "workdir to a larger disk, then rerun: the partial file was removed, nothing was left "
            "under the final name",
        ) from err


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as Parquet (pyarrow), atomically, without the pandas index."""
    with atomic_path(path, ".parquet") as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False)


def write_csv(df: pd.DataFrame, path: str | os.PathLike, float_format: str = "%.6g") -> None:
    """Write a DataFrame as CSV atomically; a fixed float format keeps reruns byte-identical."""
    with atomic_path(path, ".csv") as tmp:
        df.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")


def write_npy(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write one array as .npy atomically."""
    with atomic_path(path, ".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON atomically with sorted keys (stable bytes for identical content)."""
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
