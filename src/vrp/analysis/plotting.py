"""Shared figure conventions: one colour and label per model family, and a PDF + PNG writer."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # workflow jobs have no display

import matplotlib.pyplot as plt  # noqa: E402

from vrp.io import atomic_path  # noqa: E402

FAMILY_COLOURS = {"llava": "#1f77b4", "paligemma": "#d62728", "qwen2vl": "#2ca02c"}
FAMILY_LABELS = {"llava": "LLaVA", "paligemma": "PaliGemma", "qwen2vl": "Qwen2-VL"}


def save_figure(fig, pdf_path: str | os.PathLike, png_path: str | os.PathLike, dpi: int = 150) -> None:
    """Write ``fig`` as PDF and PNG (atomically) and close it."""
    with atomic_path(pdf_path, ".pdf") as tmp:
        # no creation date, so an unchanged figure gives the same bytes on a rerun
        fig.savefig(tmp, format="pdf", bbox_inches="tight", metadata={"CreationDate": None})
    with atomic_path(png_path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
