"""Shared figure conventions: a colour and label per family, one model label, a PDF + PNG writer."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # workflow jobs have no display

import matplotlib.pyplot as plt  # noqa: E402

from vrp.adapters import FAMILIES  # noqa: E402
from vrp.adapters.catalog import family_attribute  # noqa: E402
from vrp.io import atomic_path  # noqa: E402

# one colour and one label per family, both declared by the family's adapter (read off its source:
# importing the adapters would import torch and transformers into every figure job)
FAMILY_COLOURS = {family: family_attribute(family, "display_colour") for family in FAMILIES}
FAMILY_LABELS = {family: family_attribute(family, "display_name") for family in FAMILIES}


def model_label(model: str, family: str) -> str:
    """The legend / title name of a model: its family's label, plus the model key if it differs."""
    label = FAMILY_LABELS.get(family, family)
    return label if model == family else f"{model} ({label})"


def save_figure(
    fig, pdf_path: str | os.PathLike, png_path: str | os.PathLike, dpi: int = 150
) -> None:
    """Write ``fig`` as PDF and PNG (atomically) and close it."""
    with atomic_path(pdf_path, ".pdf") as tmp:
        # no creation date, so an unchanged figure gives the same bytes on a rerun
        fig.savefig(tmp, format="pdf", bbox_inches="tight", metadata={"CreationDate": None})
    with atomic_path(png_path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
