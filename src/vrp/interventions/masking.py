"""Attention-guided patch masking (paper §3.11): choose patches, paint them, re-score the questions.

Masking
-------
Each question's image patches are ranked by the last-token attention of one decoder layer, read
from the extraction (``image_attention[:, rank_layer, :]``, mean over heads, row-major over the
question's own grid), so ranking needs no new forward pass. For a share ``p`` exactly
:func:`vrp.stats.n_masked` ``(p, S)`` patches are chosen by :func:`vrp.stats.select_patches`:

* ``high``: the most-attended patches, ``low``: the least-attended, ``random``: uniform, drawn from
  a generator seeded by (config seed, random seed, unit), so a random mask does not depend on
  which other questions are scored. The unit (``masking.random_unit``) is the image by default:
  one random mask per image and seed, the same patches for every question about that image, as
  a control should be (it does not look at the question), and those questions share one prefix
  pass. ``question`` draws one per question (seeded by its extraction row). The paper's dev set
  has one question per image, where the two agree.

The chosen patches' pixel boxes in the ORIGINAL image come from ``adapter.cell_boxes`` (the
processor's own resize / crop geometry) and are painted with the fill colour (grey by default);
the masked images are re-scored with :func:`vrp.scoring.predict`. Questions whose masked images
are pixel-identical (an image's RANDOM mask; HIGH / LOW masks that rank the same patches first)
share one prefix pass (causal families), the others run as batched full passes.

The paper's dev code used an unseeded random mask, a fixed 14-px grid that ignored the
processor's crop, and a paired t-test on 0/1 outcomes; here the random mask is seeded, the boxes
follow the processor, and the paired test is McNemar's clustered by image (headline; the exact
question-level McNemar and the t-test beside it).

Paired comparisons
------------------
The paired statistics of the masked runs against the unmasked baseline (the masking table) and
the ablation sweeps' Tables 5 and 6 are in :mod:`vrp.analysis.causal_tables`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from vrp.adapters.base import FamilyAdapter
from vrp.benchmark.images import decode_images
from vrp.benchmark.schema import read_questions
from vrp.io import read_json
from vrp.scoring import SCORED_TASKS_EXCLUDED, predict
from vrp.stats import select_patches

MASK_MODES: tuple[str, ...] = ("high", "low", "random")
GREY = (128, 128, 128)
# per-question columns every causal run writes (plus its condition columns)
PREDICTION_COLUMNS = (
    "question_id",
    "image_id",
    "task",
    "answer",
    "prediction",
    "correct",
    "p_answer",
)


# ---------------------------------------------------------------------------- questions
def causal_questions(
    eval_table: pd.DataFrame, samples: pd.DataFrame, max_images: int | None = None
) -> pd.DataFrame:
    """The questions the causal sweeps score, aligned with the extraction's rows.

    ``eval_table`` is the dataset's question table (``results/data/{dataset}/eval.parquet``),
    ``samples`` the extraction's ``samples.parquet``. Returns the scored questions (caption rows
    dropped, as the extraction does) with a column ``row``: the question's row in ``samples`` and
    in every extracted array. ``max_images`` keeps the questions of the first ``max_images``
    distinct images (table order; every question of a kept image is kept), for a cheaper demo.
    """
    scored = eval_table[~eval_table["task"].isin(SCORED_TASKS_EXCLUDED)].reset_index(drop=True)
    if (
        len(scored) != len(samples)
        or not (scored["question_id"].to_numpy() == samples["question_id"].to_numpy()).all()
    ):
        raise ValueError(
            "the question table and the extraction's samples.parquet list different questions "
            f"({len(scored)} vs {len(samples)} rows); rerun the extraction for this dataset"
        )
    scored = scored.assign(row=np.arange(len(scored)))
    if max_images is not None:
        if max_images < 1:
            raise ValueError(f"max_images must be a positive integer or None, got {max_images}")
        kept = pd.unique(scored["image_id"])[:max_images]
        scored = scored[scored["image_id"].isin(kept)].reset_index(drop=True)
    return scored


def load_causal_inputs(inputs, max_images: int | None = None):
    """(questions from :func:`causal_questions`, samples.parquet, manifest) of one model on one
    dataset; ``inputs`` names the files as ``.questions``, ``.samples`` and ``.manifest`` (a causal
    rule's ``input``)."""
    samples = pd.read_parquet(inputs.samples)
    questions = causal_questions(read_questions(inputs.questions), samples, max_images)
    return questions, samples, read_json(inputs.manifest)


# ---------------------------------------------------------------------------- patch geometry
def patch_scores(
    image_attention: np.ndarray, rows: Sequence[int], layer: int, grids: Sequence[tuple[int, int]]
) -> list[np.ndarray]:
    """Per question, the 1-D attention scores of its ``rows*cols`` patches at decoder ``layer``.

    ``image_attention`` is the extraction's ``(n, L, S_max)`` array (NaN-padded beyond a
    question's own grid); ``rows`` index it; ``layer`` may be negative (-1 = last).
    """
    n_layers = image_attention.shape[1]
    if not -n_layers <= layer < n_layers:
        raise ValueError(
            f"rank_layer {layer} does not exist: the extraction has {n_layers} decoder layers "
            f"(use 0..{n_layers - 1}, or -1 for the last)"
        )
    scores = []
    for row, (grid_rows, grid_cols) in zip(rows, grids):
        size = int(grid_rows) * int(grid_cols)
        values = np.asarray(image_attention[row, layer, :size], dtype=np.float64)
        if values.shape[0] != size or not np.all(np.isfinite(values)):
            raise ValueError(
                f"extraction row {row}: image attention has no finite score for each of its "
                f"{grid_rows}x{grid_cols} patches; the extraction and samples.parquet disagree"
            )
        scores.append(values)
    return scores


def mask_cells(
    image: Image.Image, boxes: np.ndarray, cells: Sequence[int], fill=GREY
) -> Image.Image:
    """A copy of ``image`` with the pixel boxes of the flat (row-major) ``cells`` painted ``fill``.

    ``boxes`` is ``adapter.cell_boxes(image.size, grid)``: ``(rows, cols, 4)`` half-open
    ``(x0, y0, x1, y1)`` boxes in original-image pixels.
    """
    grid_cols = boxes.shape[1]
    pixels = np.array(image.convert("RGB"))
    colour = np.asarray(fill, dtype=np.uint8)
    for cell in cells:
        x0, y0, x1, y1 = boxes[int(cell) // grid_cols, int(cell) % grid_cols]
        pixels[y0:y1, x0:x1] = colour
    return Image.fromarray(pixels)


RANDOM_UNITS: tuple[str, ...] = ("image", "question")


def sample_rng(global_seed: int, seed: int, row: int) -> np.random.Generator:
    """The generator of one question's random mask: seeded by (config seed, random seed, extraction row)."""
    return np.random.default_rng([int(global_seed), int(seed), int(row)])


def image_rng(global_seed: int, seed: int, image_id) -> np.random.Generator:
    """The generator of one image's random mask: seeded by (config seed, random seed, image id)."""
    digest = hashlib.sha256(str(image_id).encode()).digest()
    return np.random.default_rng([int(global_seed), int(seed), int.from_bytes(digest[:8], "big")])


def random_mask_rngs(
    chunk: pd.DataFrame, global_seed: int, seed: int, unit: str
) -> list[np.random.Generator]:
    """One generator per question of ``chunk``; with ``unit`` image, questions about one image get
    generators in the same state, so they draw the same patches (their grids are the image's)."""
    check_random_unit(unit)
    if unit == "question":
        return [sample_rng(global_seed, seed, row) for row in chunk["row"]]
    return [image_rng(global_seed, seed, image_id) for image_id in chunk["image_id"]]


def check_random_unit(unit: str) -> None:
    if unit not in RANDOM_UNITS:
        raise ValueError(f"masking.random_unit must be one of {RANDOM_UNITS}, got {unit!r}")


def masked_images(
    adapter: FamilyAdapter,
    images: Sequence[Image.Image],
    scores: Sequence[np.ndarray],
    grids: Sequence[tuple[int, int]],
    p: float,
    mode: str,
    rngs: Sequence[np.random.Generator] | None = None,
    fill=GREY,
) -> tuple[list[Image.Image], list[int]]:
    """Mask share ``p`` of each image's patches (``mode`` high / low / random); returns (images, counts)."""
    if mode not in MASK_MODES:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
    if mode == "random" and (rngs is None or len(rngs) != len(images)):
        raise ValueError("mode 'random' needs one numpy Generator per image (rngs)")
    out, counts = [], []
    for i, (image, score, grid) in enumerate(zip(images, scores, grids)):
        cells = select_patches(score, p, mode, rng=rngs[i] if mode == "random" else None)
        boxes = adapter.cell_boxes(image.size, grid)
        out.append(mask_cells(image, boxes, cells, fill))
        counts.append(len(cells))
    return out, counts


def run_masking(
    adapter: FamilyAdapter,
    questions: pd.DataFrame,
    candidates: dict[str, list[str]],
    image_attention: np.ndarray,
    grids: Sequence[tuple[int, int]],
    p: float,
    rank_layer: int = -1,
    random_seeds: Sequence[int] = (0, 1, 2),
    global_seed: int = 0,
    random_unit: str = "image",
    fill=GREY,
    batch_size: int = 16,
    chunk_size: int = 256,
    share_prefix: bool = True,
) -> pd.DataFrame:
    """Re-score ``questions`` (from :func:`causal_questions`) with HIGH, LOW and seeded RANDOM masks.

    ``grids`` gives each question's (rows, cols) patch grid (``samples.parquet``'s grid_rows /
    grid_cols). Returns one row per question and condition: condition (high / low / random),
    seed (-1 unless random), p, n_patches, n_masked and the prediction columns. Images are masked
    ``chunk_size`` questions at a time, so memory stays flat for large sets.
    """
    if len(grids) != len(questions):
        raise ValueError(f"got {len(grids)} grids for {len(questions)} questions")
    check_random_unit(random_unit)  # before any pass, not at the first RANDOM condition
    questions = questions.reset_index(drop=True)
    scores = patch_scores(image_attention, questions["row"].to_numpy(), rank_layer, grids)
    conditions = [("high", -1), ("low", -1)] + [("random", int(s)) for s in random_seeds]
    parts = []
    for mode, seed in conditions:
        for start in range(0, len(questions), chunk_size):
            chunk = questions.iloc[start : start + chunk_size]
            stop = start + len(chunk)
            rngs = (
                random_mask_rngs(chunk, global_seed, seed, random_unit)
                if mode == "random"
                else None
            )
            images, counts = masked_images(
                adapter,
                decode_images(chunk["image"]),
                scores[start:stop],
                grids[start:stop],
                p,
                mode,
                rngs,
                fill,
            )
            # questions with pixel-identical masked images share a prefix (predict groups them)
            scored = predict(
                adapter,
                chunk,
                candidates,
                batch_size=batch_size,
                images=images,
                share_prefix=share_prefix,
            )
            parts.append(
                scored.loc[:, list(PREDICTION_COLUMNS)].assign(
                    condition=mode,
                    seed=seed,
                    p=float(p),
                    n_patches=[len(s) for s in scores[start:stop]],
                    n_masked=counts,
                )
            )
    return pd.concat(parts, ignore_index=True)
