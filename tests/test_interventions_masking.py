"""Attention-guided patch masking: patch counts, pixel geometry per family, seeding, re-scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import synthetic_eval_questions, tiny_adapters
from vrp.adapters import FAMILIES
from vrp.interventions.masking import (
    causal_questions,
    mask_cells,
    masked_images,
    random_mask_rngs,
    run_masking,
    sample_rng,
)
from vrp.scoring import candidate_sets, content_batches, predict

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# Per family: an image size (width, height) whose processor geometry is exact in integers, the grid
# the processor gives it, and the original-pixel box of cell (row, col) worked out by hand.
GEOMETRY = {
    # shortest edge 160x128 -> 64: resize x0.5 to 64x80, centre-crop 64x64 from row 8 (= 16 original px)
    "llava": ((128, 160), (8, 8), lambda r, c: (16 * c, 16 + 16 * r, 16 * c + 16, 32 + 16 * r)),
    # SigLIP squashes to 64x64: 96 px wide -> 12 px per 8-px cell, 48 px high -> 6 px per cell
    "paligemma": ((96, 48), (8, 8), lambda r, c: (12 * c, 6 * r, 12 * c + 12, 6 * r + 6)),
    # Qwen2-VL keeps 64x48 (multiples of patch*merge = 8, under max_pixels): a 6x8 grid of 8-px cells
    "qwen2vl": ((64, 48), (6, 8), lambda r, c: (8 * c, 8 * r, 8 * c + 8, 8 * r + 8)),
    # Qwen2.5-VL: Qwen2-VL's processor
    "qwen25vl": ((64, 48), (6, 8), lambda r, c: (8 * c, 8 * r, 8 * c + 8, 8 * r + 8)),
    # Gemma 3's SigLIP squashes to 64x64 as PaliGemma's; its 8x8 tokens pool 2x2 patches
    "gemma3": ((96, 48), (8, 8), lambda r, c: (12 * c, 6 * r, 12 * c + 12, 6 * r + 6)),
}
# n_masked(p, S) = floor(p*S + 0.5) for the default sweep, S = 64 and S = 48 (written out by hand)
EXPECTED_COUNTS = {
    64: {0.2: 13, 0.25: 16, 0.3: 19, 0.35: 22, 0.4: 26},
    48: {0.2: 10, 0.25: 12, 0.3: 14, 0.35: 17, 0.4: 19},
}


@pytest.fixture(scope="module")
def questions() -> pd.DataFrame:
    return synthetic_eval_questions(seed=5, n_eval_images=2)


@pytest.fixture(scope="module")
def adapters(tokenizer):
    return tiny_adapters(tokenizer, num_hidden_layers=2, seed=2)


def noise_image(size: tuple[int, int], seed: int = 0) -> Image.Image:
    # values below 100, so no original pixel is already the grey fill (128)
    width, height = size
    return Image.fromarray(
        np.random.default_rng(seed).integers(0, 100, (height, width, 3), dtype=np.uint8)
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_masking_p_masks_round_p_n_patches_and_exactly_their_pixels(adapters, family):
    adapter = adapters[family]
    size, grid, box_of = GEOMETRY[family]
    assert adapter.expected_grid(size) == grid
    n_patches = grid[0] * grid[1]
    image = noise_image(size)
    scores = np.random.default_rng(1).random(n_patches)
    for p, expected in EXPECTED_COUNTS[n_patches].items():
        for mode in ("high", "low", "random"):
            rngs = [np.random.default_rng(3)] if mode == "random" else None
            (masked,), (count,) = masked_images(adapter, [image], [scores], [grid], p, mode, rngs)
            assert count == expected
            changed = np.any(np.array(masked) != np.array(image), axis=-1)
            grey = np.all(np.array(masked) == 128, axis=-1)
            assert (changed == grey).all()  # every changed pixel is grey, every grey pixel changed
            if mode == "high":  # the most attended cells, checked against the hand-made boxes
                cells = np.argsort(-scores, kind="stable")[:expected]
                want = np.zeros_like(changed)
                for cell in cells:
                    x0, y0, x1, y1 = box_of(cell // grid[1], cell % grid[1])
                    want[y0:y1, x0:x1] = True
                assert (changed == want).all()


@pytest.mark.parametrize("family", ["llava", "paligemma", "gemma3"])
def test_masked_cells_are_grey_in_the_pixels_the_vision_tower_sees(adapters, family):
    adapter = adapters[family]
    size, grid, _ = GEOMETRY[family]
    scores = np.random.default_rng(4).random(grid[0] * grid[1])
    (masked,), _ = masked_images(adapter, [noise_image(size, 2)], [scores], [grid], 0.3, "high")
    processor = adapter.processor.image_processor
    pixels = processor(images=[masked], return_tensors="pt")["pixel_values"][
        0
    ].numpy()  # (3, 64, 64)
    grey = (128 / 255 - np.asarray(processor.image_mean)) / np.asarray(processor.image_std)
    masked_cells = set(np.argsort(-scores, kind="stable")[:19].tolist())
    for cell in range(grid[0] * grid[1]):
        r, c = divmod(cell, grid[1])
        # the 4x4 centre of the 8x8 patch: resampling only blurs the 2 px next to a cell edge
        centre = pixels[:, 8 * r + 2 : 8 * r + 6, 8 * c + 2 : 8 * c + 6]
        is_grey = np.allclose(centre, grey[:, None, None], atol=1e-3)
        assert is_grey == (cell in masked_cells), cell


def test_random_masks_are_seeded_per_seed_and_question(adapters):
    adapter = adapters["qwen2vl"]
    image, scores, grid = noise_image((64, 64)), np.zeros(64), (8, 8)

    def cells(seed, row):
        (masked,), _ = masked_images(
            adapter, [image], [scores], [grid], 0.3, "random", [sample_rng(0, seed, row)]
        )
        return np.array(masked)

    assert np.array_equal(cells(1, 7), cells(1, 7))
    assert not np.array_equal(cells(1, 7), cells(2, 7))
    assert not np.array_equal(cells(1, 7), cells(1, 8))


def test_image_unit_random_masks_are_one_per_image_and_seed(adapters):
    adapter = adapters["qwen2vl"]
    image, scores, grid = noise_image((64, 64)), np.zeros(64), (8, 8)
    chunk = pd.DataFrame({"image_id": ["a", "a", "b", "a"], "row": [0, 1, 2, 3]})

    def cells(seed, frame, unit="image"):
        rngs = random_mask_rngs(frame, 0, seed, unit)
        n = len(frame)
        masked, _ = masked_images(
            adapter, [image] * n, [scores] * n, [grid] * n, 0.3, "random", rngs
        )
        return [np.array(m) for m in masked]

    first = cells(1, chunk)
    # every question about image a gets the same patches; image b and another seed get others
    assert np.array_equal(first[0], first[1]) and np.array_equal(first[0], first[3])
    assert not np.array_equal(first[0], first[2])
    assert not np.array_equal(first[0], cells(2, chunk)[0])
    # an image's mask does not depend on which other questions are scored
    assert np.array_equal(cells(1, chunk.iloc[[3]])[0], first[0])
    # the question unit keeps one draw per extraction row
    per_question = cells(1, chunk, "question")
    assert not np.array_equal(per_question[0], per_question[1])
    with pytest.raises(ValueError, match="random_unit"):
        random_mask_rngs(chunk, 0, 1, "pixel")


def test_content_batches_share_only_images_that_enough_rows_repeat():
    grey, white = Image.new("RGB", (8, 8), (128,) * 3), Image.new("RGB", (8, 8), (255,) * 3)
    noise = [noise_image((8, 8), seed) for seed in range(3)]
    images = [grey, noise[0], grey, white, grey, noise[1], white, grey, noise[2]]
    batches = content_batches(images, batch_size=8, min_shared=3)
    assert batches == [([0, 2, 4, 7], True), ([1, 3, 5, 6, 8], False)]
    covered = sorted(row for rows, _ in batches for row in rows)
    assert covered == list(range(len(images)))


@pytest.mark.parametrize("family", FAMILIES)
def test_masked_images_score_the_same_shared_and_in_full_passes(adapters, questions, family):
    """The fast path (rows with equal masked pixels share a prefix) equals the plain one."""
    adapter = adapters[family]
    subset = questions[questions["task"] != "caption"].head(12).reset_index(drop=True)
    images = [noise_image((64, 64), i % 2) for i in range(len(subset))]  # two masks, six rows each
    images[0] = noise_image((64, 64), 7)  # and one row alone
    plain = predict(adapter, subset, candidate_sets(questions), images=images, share_prefix=False)
    shared = predict(
        adapter, subset, candidate_sets(questions), images=images, batch_size=5, share_prefix=True
    )
    assert shared["prediction"].tolist() == plain["prediction"].tolist()
    np.testing.assert_allclose(shared["p_answer"], plain["p_answer"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(shared["confidence"], plain["confidence"], rtol=1e-5, atol=1e-7)


def test_mask_cells_paints_half_open_boxes():
    image = Image.new("RGB", (4, 3), (0, 0, 0))
    boxes = np.array([[[0, 0, 2, 3], [2, 0, 4, 3]]])  # one row, two cells
    out = np.array(mask_cells(image, boxes, [1], fill=(9, 8, 7)))
    assert (out[:, 2:] == [9, 8, 7]).all() and (out[:, :2] == 0).all()


def test_causal_questions_align_with_the_extraction_and_keep_whole_images(questions):
    scored = questions[questions["task"] != "caption"].reset_index(drop=True)
    kept = causal_questions(questions, scored[["question_id"]], max_images=1)
    first_image = scored["image_id"].iloc[0]
    assert set(kept["image_id"]) == {first_image}
    assert kept["row"].tolist() == scored.index[scored["image_id"] == first_image].tolist()
    with pytest.raises(ValueError, match="rerun the extraction"):
        causal_questions(questions, scored[["question_id"]].iloc[::-1].reset_index(drop=True))


@pytest.mark.parametrize("family", FAMILIES)
def test_masking_everything_equals_scoring_a_grey_image(adapters, questions, family):
    adapter = adapters[family]
    subset = causal_questions(
        questions, questions[["question_id"]].iloc[: len(questions)], max_images=None
    )
    subset = subset.groupby("task").head(2).reset_index(drop=True)
    n = len(subset)
    attention = np.random.default_rng(0).random((subset["row"].max() + 1, adapter.num_layers, 64))
    runs = run_masking(
        adapter,
        subset,
        candidate_sets(questions),
        attention,
        [(8, 8)] * n,
        p=1.0,
        random_seeds=[0, 1],
        batch_size=4,
        chunk_size=3,
    )
    assert runs.groupby(["condition", "seed"]).size().to_dict() == {
        ("high", -1): n,
        ("low", -1): n,
        ("random", 0): n,
        ("random", 1): n,
    }
    assert (runs["n_masked"] == 64).all() and (runs["n_patches"] == 64).all()
    grey = predict(
        adapter,
        subset,
        candidate_sets(questions),
        images=[Image.new("RGB", (64, 64), (128,) * 3)] * n,
    )
    for _, group in runs.groupby(["condition", "seed"]):
        assert group["prediction"].tolist() == grey["prediction"].tolist()
        np.testing.assert_allclose(group["p_answer"], grey["p_answer"], rtol=1e-5)
