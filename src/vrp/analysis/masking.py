"""Attention-guided patch masking (paper §3.11) and the paired comparisons shared by the causal sweeps.

Masking
-------
Each question's image patches are ranked by the last-token attention of one decoder layer, read
from the extraction (``image_attention[:, rank_layer, :]``, mean over heads, row-major over the
question's own grid), so ranking needs no new forward pass. For a share ``p`` exactly
:func:`vrp.stats.n_masked` ``(p, S)`` patches are chosen by :func:`vrp.stats.select_patches`:

* ``high``: the most-attended patches, ``low``: the least-attended, ``random``: uniform, drawn from
  a generator seeded by (config seed, random seed, the question's row in the extraction), so a
  question's random mask does not depend on which other questions are scored.

The chosen patches' pixel boxes in the ORIGINAL image come from ``adapter.cell_boxes`` (the
processor's own resize / crop geometry) and are painted with the fill colour (grey by default);
the masked images are re-scored with :func:`vrp.scoring.predict`.

The paper's dev code used an unseeded random mask, a fixed 14-px grid that ignored the
processor's crop, and a paired t-test on 0/1 outcomes; here the random mask is seeded, the boxes
follow the processor, and the paired test is McNemar's clustered by image (headline; the exact
question-level McNemar and the t-test beside it).

Paired comparisons
------------------
:func:`paired_comparison` / :func:`compare_by_subset` turn two per-question prediction tables of
the same questions into one row of statistics (:mod:`vrp.stats.paired`): n, both accuracies with
image-clustered intervals (the questions of one image are one cluster) beside the question-level
ones (Wilson / question bootstrap), the accuracy drop (percentage points) likewise, the clustered
McNemar test (headline by default) beside the exact McNemar test and the paired t-test, correctness
flips and the number of changed answers. The ablation sweeps (:mod:`vrp.analysis.ablation`) use the
same functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from vrp.adapters.base import FamilyAdapter
from vrp.benchmark.schema import read_questions
from vrp.io import read_json
from vrp.scoring import SCORED_TASKS_EXCLUDED, predict
from vrp.stats import (
    clustered_mcnemar,
    flips,
    mcnemar_exact,
    paired_ttest,
    select_patches,
    unit_intervals,
    weighted_mean,
    wilson_interval,
)
from vrp.benchmark.images import decode_images

MASK_MODES: tuple[str, ...] = ("high", "low", "random")
GREY = (128, 128, 128)
ALL_TASKS = "all"
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
def causal_questions(eval_table: pd.DataFrame, samples: pd.DataFrame, max_images: int | None = None) -> pd.DataFrame:
    """The questions the causal sweeps score, aligned with the extraction's rows.

    ``eval_table`` is the dataset's question table (``results/data/{dataset}/eval.parquet``),
    ``samples`` the extraction's ``samples.parquet``. Returns the scored questions (caption rows
    dropped, as the extraction does) with a column ``row``: the question's row in ``samples`` and
    in every extracted array. ``max_images`` keeps the questions of the first ``max_images``
    distinct images (table order; every question of a kept image is kept), for a cheaper demo.
    """
    scored = eval_table[~eval_table["task"].isin(SCORED_TASKS_EXCLUDED)].reset_index(drop=True)
    if len(scored) != len(samples) or not (scored["question_id"].to_numpy() == samples["question_id"].to_numpy()).all():
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


def load_causal_inputs(questions_path, samples_path, manifest_path, max_images: int | None = None):
    """(questions from :func:`causal_questions`, samples.parquet, manifest) of one model on one dataset."""
    samples = pd.read_parquet(samples_path)
    questions = causal_questions(read_questions(questions_path), samples, max_images)
    return questions, samples, read_json(manifest_path)


# ---------------------------------------------------------------------------- patch geometry
def patch_scores(image_attention: np.ndarray, rows: Sequence[int], layer: int, grids: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Per question, the 1-D attention scores of its ``rows*cols`` patches at decoder ``layer``.

    ``image_attention`` is the extraction's ``(n, L, S_max)`` array (NaN-padded beyond a
    question's own grid); ``rows`` index it; ``layer`` may be negative (-1 = last).
    """
    n_layers = image_attention.shape[1]
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"rank_layer {layer} does not exist: the extraction has {n_layers} decoder layers "
                         f"(use 0..{n_layers - 1}, or -1 for the last)")
    scores = []
    for row, (grid_rows, grid_cols) in zip(rows, grids):
        size = int(grid_rows) * int(grid_cols)
        values = np.asarray(image_attention[row, layer, :size], dtype=np.float64)
        if values.shape[0] != size or not np.all(np.isfinite(values)):
            raise ValueError(f"extraction row {row}: image attention has no finite score for each of its "
                             f"{grid_rows}x{grid_cols} patches; the extraction and samples.parquet disagree")
        scores.append(values)
    return scores


def mask_cells(image: Image.Image, boxes: np.ndarray, cells: Sequence[int], fill=GREY) -> Image.Image:
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


def sample_rng(global_seed: int, seed: int, row: int) -> np.random.Generator:
    """The generator of one question's random mask: seeded by (config seed, random seed, extraction row)."""
    return np.random.default_rng([int(global_seed), int(seed), int(row)])


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
    fill=GREY,
    batch_size: int = 16,
    chunk_size: int = 256,
) -> pd.DataFrame:
    """Re-score ``questions`` (from :func:`causal_questions`) with HIGH, LOW and seeded RANDOM masks.

    ``grids`` gives each question's (rows, cols) patch grid (``samples.parquet``'s grid_rows /
    grid_cols). Returns one row per question and condition: condition (high / low / random),
    seed (-1 unless random), p, n_patches, n_masked and the prediction columns. Images are masked
    ``chunk_size`` questions at a time, so memory stays flat for large sets.
    """
    if len(grids) != len(questions):
        raise ValueError(f"got {len(grids)} grids for {len(questions)} questions")
    questions = questions.reset_index(drop=True)
    scores = patch_scores(image_attention, questions["row"].to_numpy(), rank_layer, grids)
    conditions = [("high", -1), ("low", -1)] + [("random", int(s)) for s in random_seeds]
    parts = []
    for mode, seed in conditions:
        for start in range(0, len(questions), chunk_size):
            chunk = questions.iloc[start : start + chunk_size]
            stop = start + len(chunk)
            rngs = [sample_rng(global_seed, seed, r) for r in chunk["row"]] if mode == "random" else None
            images, counts = masked_images(
                adapter, decode_images(chunk["image"]), scores[start:stop], grids[start:stop], p, mode, rngs, fill
            )
            scored = predict(adapter, chunk, candidates, batch_size=batch_size, images=images)
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


# ---------------------------------------------------------------------------- paired statistics
def _aligned(reference: pd.DataFrame, changed: pd.DataFrame) -> pd.DataFrame:
    if reference["question_id"].duplicated().any() or changed["question_id"].duplicated().any():
        raise ValueError("paired comparison needs one row per question_id in each condition")
    if "image_id" not in reference.columns:
        raise ValueError(
            "paired comparison needs the questions' image_id (the clusters of the intervals); "
            "rerun the causal baseline / masking / ablation jobs, whose outputs now carry it"
        )
    merged = reference.merge(changed.drop(columns=["image_id"], errors="ignore"), on="question_id",
                             suffixes=("_ref", "_new"), validate="one_to_one")
    if len(merged) != len(reference) or len(merged) != len(changed):
        raise ValueError(
            f"paired comparison needs the same questions in both conditions: {len(reference)} and "
            f"{len(changed)} rows share {len(merged)} question_ids"
        )
    return merged


PAIRED_TESTS = {"image": "clustered McNemar by image (Obuchowski/Durkalski)",
                "question": "exact McNemar (questions independent)"}


def paired_comparison(
    reference: pd.DataFrame,
    changed: pd.DataFrame,
    n_boot: int = 2000,
    seed: int = 0,
    unit: str = "image",
) -> dict:
    """Statistics of ``changed`` against ``reference`` on the same questions (matched by question_id).

    Both frames need question_id, prediction and correct; ``reference`` also image_id (the
    cluster of each question). Returns n, n_images; acc_reference / acc_changed (percent) and
    drop_pp (reference minus changed), each with :func:`vrp.stats.unit_intervals` columns
    (``*_lo``/``*_hi`` the configured ``unit``, ``*_ci_method``, ``*_lo_image``/``*_hi_image`` the
    cluster bootstrap by image, ``*_lo_question``/``*_hi_question`` questions independent: Wilson
    for the accuracies, the paired question bootstrap for the drop); ``paired_p`` / ``paired_test``
    the headline paired test (the clustered McNemar of :func:`vrp.stats.clustered_mcnemar` for
    ``unit="image"``, the exact McNemar for ``"question"``); the question-level exact McNemar
    (mcnemar_b = right->wrong, mcnemar_c = wrong->right, mcnemar_p), the clustered one
    (mcnemar_clustered_stat, mcnemar_clustered_p), the paired t-test (ttest_t, ttest_p; the
    paper's),
    right_to_wrong, wrong_to_right and answers_changed (questions whose predicted answer differs).
    """
    if unit not in PAIRED_TESTS:
        raise ValueError(f"stats.interval_unit must be one of {list(PAIRED_TESTS)}, got {unit!r}")
    merged = _aligned(reference, changed)
    a = merged["correct_ref"].to_numpy(dtype=bool)
    b = merged["correct_new"].to_numpy(dtype=bool)
    groups = merged["image_id"].to_numpy()
    mcnemar = mcnemar_exact(a, b)
    clustered = clustered_mcnemar(a, b, groups)
    ttest = paired_ttest(a, b)
    flip = flips(a, b)
    n = len(merged)
    ref_lo, ref_hi = wilson_interval(int(a.sum()), n)
    new_lo, new_hi = wilson_interval(int(b.sum()), n)
    wilson = "Wilson (questions independent)"
    acc_ref = unit_intervals(
        weighted_mean(100.0 * a),
        groups,
        n_boot,
        seed,
        unit,
        prefix="acc_reference_",
        question=(100.0 * ref_lo, 100.0 * ref_hi, wilson),
    )
    acc_new = unit_intervals(
        weighted_mean(100.0 * b),
        groups,
        n_boot,
        seed,
        unit,
        prefix="acc_changed_",
        question=(100.0 * new_lo, 100.0 * new_hi, wilson),
    )
    diff_pp = 100.0 * (a.astype(np.float64) - b.astype(np.float64))
    drop = unit_intervals(weighted_mean(diff_pp), groups, n_boot, seed, unit, prefix="drop_")
    return {
        "n": n,
        "n_images": int(len(pd.unique(groups))),
        "acc_reference": 100.0 * float(a.mean()),
        **acc_ref,
        "acc_changed": 100.0 * float(b.mean()),
        **acc_new,
        "drop_pp": float(diff_pp.mean()),
        **drop,
        "paired_p": clustered["p"] if unit == "image" else mcnemar["p"],
        "paired_test": PAIRED_TESTS[unit],
        "mcnemar_b": mcnemar["b"],
        "mcnemar_c": mcnemar["c"],
        "mcnemar_p": mcnemar["p"],
        "mcnemar_clustered_stat": clustered["statistic"],
        "mcnemar_clustered_p": clustered["p"],
        "ttest_t": ttest["statistic"],
        "ttest_p": ttest["p"],
        "right_to_wrong": flip["right_to_wrong"],
        "wrong_to_right": flip["wrong_to_right"],
        "answers_changed": int((merged["prediction_ref"] != merged["prediction_new"]).sum()),
    }


def subset_question_ids(reference: pd.DataFrame) -> list[tuple[str, set | None]]:
    """(subset, question ids) per reported subset: "all" (None = every question), then each task."""
    subsets: list[tuple[str, set | None]] = [(ALL_TASKS, None)]
    for task in sorted(reference["task"].unique()):
        subsets.append((task, set(reference.loc[reference["task"] == task, "question_id"])))
    return subsets


def compare_by_subset(
    reference: pd.DataFrame,
    changed: pd.DataFrame,
    n_boot: int = 2000,
    seed: int = 0,
    unit: str = "image",
) -> list[dict]:
    """:func:`paired_comparison` on all questions (subset "all") and on each task's questions."""
    rows = []
    for subset, ids in subset_question_ids(reference):
        ref = reference if ids is None else reference[reference["question_id"].isin(ids)]
        new = changed if ids is None else changed[changed["question_id"].isin(ids)]
        rows.append({"subset": subset, **paired_comparison(ref, new, n_boot, seed, unit)})
    return rows


# ---------------------------------------------------------------------------- the masking table
MASKING_CONTRASTS: tuple[tuple[str, str, str], ...] = (
    # (contrast, reference condition, changed condition): drop = accuracy(reference) - accuracy(changed)
    ("full_vs_high", "full", "high"),
    ("full_vs_low", "full", "low"),
    ("full_vs_random", "full", "random"),
    ("low_vs_high", "low", "high"),
    ("random_vs_high", "random", "high"),
)


def masking_table(baseline: pd.DataFrame, masked: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                  unit: str = "image") -> pd.DataFrame:
    """Paired contrasts of one (model, dataset, p) masking run; RANDOM contrasts once per seed.

    ``baseline`` holds the unmasked predictions (:func:`vrp.scoring.predict` of the same
    questions), ``masked`` the output of :func:`run_masking` for one p. ``low_vs_high`` is the
    paper's effect size LOW - HIGH; ``random_vs_high`` is RANDOM - HIGH. ``n_masked_mean`` is the
    mean number of masked patches over the row's own questions (grids vary per image).
    """
    ps = masked["p"].unique()
    if len(ps) != 1:
        raise ValueError(f"masking_table takes the runs of one p, got p values {sorted(ps)}")
    seeds = sorted(masked.loc[masked["condition"] == "random", "seed"].unique())

    def condition(name: str, random_seed: int) -> pd.DataFrame:
        if name == "full":
            return baseline
        rows = masked[masked["condition"] == name]
        return rows[rows["seed"] == random_seed] if name == "random" else rows

    subsets = dict(subset_question_ids(baseline))
    rows = []
    for contrast, reference, changed in MASKING_CONTRASTS:
        for random_seed in seeds if "random" in (reference, changed) else [-1]:
            ref, new = condition(reference, random_seed), condition(changed, random_seed)
            masked_side = new if changed != "full" else ref
            for stats in compare_by_subset(ref, new, n_boot, seed, unit):
                ids = subsets[stats["subset"]]
                own = (
                    masked_side
                    if ids is None
                    else masked_side[masked_side["question_id"].isin(ids)]
                )
                rows.append({
                    "p": float(ps[0]),
                    "contrast": contrast,
                    "reference": reference,
                    "changed": changed,
                    "seed": random_seed,
                    "n_masked_mean": float(own["n_masked"].mean()),
                    **stats,
                })
    return pd.DataFrame(rows)
