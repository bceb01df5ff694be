"""Shared figure conventions: a colour and label per family, one model label, a PDF + PNG writer."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # workflow jobs have no display

import matplotlib.pyplot as plt  # noqa: E402

from vrp.adapters import ADAPTERS, FAMILIES  # noqa: E402
from vrp.io import atomic_path  # noqa: E402

# Colours of the adapters that do not declare a display_colour yet, by their position in
# FAMILIES (the first three families'); an adapter's own display_colour wins.
_POSITIONAL_COLOURS = ("#1f77b4", "#d62728", "#2ca02c")


def _family_colour(position: int, family: str) -> str:
    colour = getattr(ADAPTERS[family], "display_colour", None)
    if colour:
        return colour
    if position < len(_POSITIONAL_COLOURS):
        return _POSITIONAL_COLOURS[position]
    raise ValueError(
        f"family {family!r} has no figure colour: set display_colour on {ADAPTERS[family].__name__}"
    )


# one colour and one label per family, both from the adapters
FAMILY_COLOURS = {family: _family_colour(i, family) for i, family in enumerate(FAMILIES)}
FAMILY_LABELS = {family: adapter.display_name for family, adapter in ADAPTERS.items()}


def model_label(model: str, family: str) -> str:
    """The legend / title name of a model: its family's label, plus the model key if it differs."""
    label = FAMILY_LABELS.get(family, family)
    return label if model == family else f"{model} ({label})"


def save_figure(fig, pdf_path: str | os.PathLike, png_path: str | os.PathLike, dpi: int = 150) -> None:
    """Write ``fig`` as PDF and PNG (atomically) and close it."""
    with atomic_path(pdf_path, ".pdf") as tmp:
        # no creation date, so an unchanged figure gives the same bytes on a rerun
        fig.savefig(tmp, format="pdf", bbox_inches="tight", metadata={"CreationDate": None})
    with atomic_path(png_path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
