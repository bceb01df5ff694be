"""Decoding the question table's ``image`` column (encoded bytes, :mod:`vrp.benchmark.schema`)."""

from __future__ import annotations

import io
from collections.abc import Iterable

from PIL import Image


def decode_images(image_bytes: Iterable[bytes]) -> list[Image.Image]:
    """Decode encoded image bytes (PNG, JPEG, ...) into RGB PIL images, in order."""
    return [Image.open(io.BytesIO(b)).convert("RGB") for b in image_bytes]
