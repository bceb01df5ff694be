"""Reading one result file per model (and dataset) in a table or figure job, with its labels.

A job that pools models gets its input files and, as ``params.labels``, the matching
``[model, family, dataset]`` or ``[model, dataset]`` lists in the same order (rules/common.smk).
These helpers are the one loop that pairs them up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

Reader = Callable[[str | os.PathLike], Any]


def _pairs(labels: Iterable[Sequence[str]], paths: Iterable) -> list[tuple[tuple[str, ...], Any]]:
    labels, paths = [tuple(label) for label in labels], list(paths)
    if len(labels) != len(paths):
        raise ValueError(
            f"{len(labels)} labels for {len(paths)} input files; they must pair up in order"
        )
    return list(zip(labels, paths))


def read_keyed(
    labels: Iterable[Sequence[str]], paths: Iterable, reader: Reader = pd.read_parquet
) -> dict:
    """``{label tuple: reader(path)}`` for each label and its file, in order."""
    return {label: reader(path) for label, path in _pairs(labels, paths)}


def read_labelled(
    labels: Iterable[Sequence[str]],
    paths: Iterable,
    names: Sequence[str],
    reader: Reader = pd.read_parquet,
) -> pd.DataFrame:
    """Every file's table with its label appended as columns ``names``, concatenated in order."""
    frames = []
    for label, path in _pairs(labels, paths):
        if len(label) != len(names):
            raise ValueError(f"label {list(label)} does not match the column names {list(names)}")
        frames.append(reader(path).assign(**dict(zip(names, label))))
    return pd.concat(frames, ignore_index=True)


def prepend_labels(table: pd.DataFrame, **labels: Any) -> pd.DataFrame:
    """``table`` with the label columns first, in the order given (it is changed in place)."""
    for position, (name, value) in enumerate(labels.items()):
        table.insert(position, name, value)
    return table
