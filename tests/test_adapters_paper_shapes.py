"""The paper-scale token geometry: processors shaped like the released checkpoints' (random,
narrow models so it runs on CPU), on a 640x480 COCO-sized image.

* LLaVA-1.5: CLIP ViT-L/14 at 336 px, shortest-edge resize + center crop -> 24x24 = 576 tokens
  covering only the central 480x480 square.
* PaliGemma-224: SigLIP /14 at 224 px, plain resize -> 16x16 = 256 tokens over the whole image.
* Qwen2-VL: patch 14, merge 2, min/max pixels of the release -> smart_resize to 476x644 ->
  image_grid_thw (1, 34, 46) -> 17x23 = 391 tokens.
* Qwen2.5-VL: the same processor settings, so the same 391 tokens (read off image_grid_thw);
  its tower's 112-px windows do not change the count.
* Gemma 3: SigLIP /14 at 896 px, plain resize, 64x64 patches pooled 4x4 -> 16x16 = 256 tokens
  over the whole image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vrp.adapters import get_adapter_class
from vrp.zoo.tokenizer import build_word_tokenizer, template_words

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

QUESTION = "Is there a dog in the image ?"
NARROW = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "vision_hidden_size": 32,
    "vision_num_hidden_layers": 1,
    "vision_num_attention_heads": 2,
}
PAPER_CONFIGS = {
    "llava": {**NARROW, "image_size": 336, "patch_size": 14, "num_key_value_heads": 2},
    "paligemma": {**NARROW, "image_size": 224, "patch_size": 14, "head_dim": 16},
    "qwen2vl": {
        **NARROW,
        "patch_size": 14,
        "merge_size": 2,
        "min_pixels": 56 * 56,  # Qwen2-VL-*-Instruct preprocessor_config.json
        "max_pixels": 28 * 28 * 16384,
        "image_size": 448,
        "num_key_value_heads": 1,
    },
    "qwen25vl": {
        **NARROW,
        "patch_size": 14,
        "merge_size": 2,
        "min_pixels": 56 * 56,  # Qwen2.5-VL-*-Instruct preprocessor_config.json
        "max_pixels": 28 * 28 * 16384,
        "window_size": 112,  # its vision_config
        "image_size": 448,
        "num_key_value_heads": 1,
    },
    "gemma3": {
        **NARROW,
        "image_size": 896,  # gemma-3-4b-it: SigLIP 896 px, patch 14, mm_tokens_per_image 256
        "patch_size": 14,
        "tokens_per_side": 16,
        "head_dim": 16,
        "num_key_value_heads": 1,
        "sliding_window": 1024,
    },
}
# family: (grid, image tokens, box of cell (0,0), box of the last cell, box of cell (0,1))
EXPECTED = {
    # resize 640x480 -> 448x336 (x0.7), crop 56 px each side: x in [80, 560) of the original
    "llava": ((24, 24), 576, [80, 0, 100, 20], [540, 460, 560, 480], [100, 0, 120, 20]),
    # resize 640x480 -> 224x224: 40x30-px cells
    "paligemma": ((16, 16), 256, [0, 0, 40, 30], [600, 450, 640, 480], [40, 0, 80, 30]),
    # 28-px blocks of a 644x476 resize: x edge k*28*640/644, y edge k*28*480/476, rounded
    "qwen2vl": ((17, 23), 391, [0, 0, 28, 28], [612, 452, 640, 480], [28, 0, 56, 28]),
    "qwen25vl": ((17, 23), 391, [0, 0, 28, 28], [612, 452, 640, 480], [28, 0, 56, 28]),
    # resize 640x480 -> 896x896, 56-px pooled cells: 40x30 px of the original
    "gemma3": ((16, 16), 256, [0, 0, 40, 30], [600, 450, 640, 480], [40, 0, 80, 30]),
}


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer([QUESTION, "yes", "no"], template_words())


@pytest.fixture(scope="module")
def coco_sized_image():
    return Image.fromarray(
        np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    )


@pytest.mark.parametrize("family", sorted(PAPER_CONFIGS))
def test_paper_geometry(tokenizer, coco_sized_image, family):
    torch.set_num_threads(1)
    grid, n_tokens, first_box, last_box, second_box = EXPECTED[family]
    adapter = get_adapter_class(family).build_tiny(tokenizer, PAPER_CONFIGS[family], seed=0)
    batch = adapter.encode([coco_sized_image], [QUESTION])
    assert int(adapter.image_token_mask(batch).sum()) == n_tokens
    assert adapter.patch_grids(batch) == [grid]
    if "image_grid_thw" in batch:  # Qwen2-VL, Qwen2.5-VL: the count comes from the grid
        assert batch["image_grid_thw"].tolist() == [[1, 34, 46]]
    # the image tokens form one contiguous span
    positions = adapter.image_token_mask(batch)[0].nonzero().flatten()
    assert positions[-1] - positions[0] + 1 == n_tokens

    boxes = adapter.cell_boxes(coco_sized_image.size, grid)
    assert boxes.shape == (*grid, 4)
    assert boxes[0, 0].tolist() == first_box
    assert boxes[-1, -1].tolist() == last_box
    assert boxes[0, 1].tolist() == second_box

    with torch.no_grad():
        out = adapter.model(**batch, output_attentions=True)
    assert len(out.attentions) == adapter.num_layers
    assert out.attentions[0].shape[-1] == batch["input_ids"].shape[1]


def brightest_token(adapter, image: Image.Image, grid: tuple[int, int]) -> tuple[int, int]:
    """The grid cell whose processed pixels are brightest, read from the image processor's output.

    LLaVA/PaliGemma/Gemma 3: mean over each token's square of the (1, 3, H, W) pixel array (Gemma 3:
    a 4x4 block of patches). Qwen2-VL/Qwen2.5-VL: the
    processor stores patches in merge-window order, so merged token k is patch rows
    k*merge^2 ... (k+1)*merge^2 - 1 of the flat (patches, C*T*p*p) array.
    """
    out = adapter.processor.image_processor(images=[image], return_tensors="pt")
    pixels = out["pixel_values"]
    if "image_grid_thw" in out:
        per_token = adapter.merge_size**2
        brightness = pixels.reshape(-1, per_token * pixels.shape[-1]).mean(dim=1)
    else:
        patch = pixels.shape[-1] // grid[1]
        brightness = torch.nn.functional.avg_pool2d(
            pixels.mean(dim=1, keepdim=True), patch
        ).flatten()
    assert brightness.numel() == grid[0] * grid[1]
    k = int(brightness.argmax())
    return k // grid[1], k % grid[1]


def probe_cells(
    adapter, size: tuple[int, int], grid: tuple[int, int], cells: list[tuple[int, int]]
) -> None:
    """A white blob at the centre of cell_boxes[r, c] on a grey image lands in token (r, c)."""
    boxes = adapter.cell_boxes(size, grid)
    for r, c in cells:
        x0, y0, x1, y1 = boxes[r, c]
        assert x1 > x0 and y1 > y0
        # background at the CLIP mean colour, which is also what LLaVA's do_pad fills with, so the
        # padding is not brighter than the image
        canvas = np.empty((size[1], size[0], 3), dtype=np.uint8)
        canvas[:] = (122, 116, 104)
        cx, cy, rx, ry = (
            (x0 + x1) // 2,
            (y0 + y1) // 2,
            max(1, (x1 - x0) // 6),
            max(1, (y1 - y0) // 6),
        )
        canvas[cy - ry : cy + ry, cx - rx : cx + rx] = 255
        assert brightest_token(adapter, Image.fromarray(canvas), grid) == (r, c)


PROBED = [(0, 0), (0, 1), (1, 0), (5, 11), (15, 15)]


@pytest.mark.parametrize("family", sorted(PAPER_CONFIGS))
def test_cell_boxes_agree_with_the_processor(tokenizer, family):
    adapter = get_adapter_class(family).build_tiny(tokenizer, PAPER_CONFIGS[family], seed=0)
    grid = EXPECTED[family][0]
    probe_cells(adapter, (640, 480), grid, PROBED + [(grid[0] - 1, grid[1] - 1), (grid[0] - 1, 0)])


def test_llava_do_pad_maps_through_the_padded_square(tokenizer):
    """Original LLaVA pads to a square instead of cropping: the whole 640x480 image is visible."""
    from transformers import LlavaImageProcessorPil

    adapter = get_adapter_class("llava").build_tiny(tokenizer, PAPER_CONFIGS["llava"], seed=0)
    adapter.processor.image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, do_pad=True
    )
    boxes = adapter.cell_boxes((640, 480), (24, 24))
    # padded to 640x640 (80 px above and below), scaled by 336/640: cells of 26.67 px
    assert boxes[0, 0].tolist() == [0, 0, 27, 0]  # rows 0-2 lie in the padding: empty boxes
    assert boxes[3, 0].tolist() == [0, 0, 27, 27]  # y from 3*26.67-80 = 0 to 4*26.67-80 = 26.67
    assert boxes[-1, -1].tolist() == [613, 480, 640, 480]
    probe_cells(adapter, (640, 480), (24, 24), [(3, 0), (3, 1), (12, 12), (20, 23)])


# The release tokenizers of the two newer families, with a release-shaped build on top (what the
# workflow's zoo_random_model does): the prompt's token ids as the released checkpoint sees them.
RELEASE_PROMPTS = {
    # <bos> once, then the real chat template: <start_of_turn> user, the turn's "\n" merged with the
    # "\n\n" the processor puts before <start_of_image> (one "\n\n\n" token), 256 soft tokens,
    # <end_of_image>, "\n\n", the text
    "gemma3": ("gemma3", [2, 105, 2364, 109, 255999], [256000, 108], 262144),
    # no BOS: <|im_start|> user \n <|vision_start|> ... <|vision_end|>
    "qwen25vl": ("qwen3", [151644, 872, 198, 151652], [151653], 151655),
}


@pytest.mark.parametrize("family", sorted(RELEASE_PROMPTS))
def test_release_shaped_build_on_the_real_tokenizer(coco_sized_image, family):
    from conftest import real_tokenizer_dir

    folder, before_image, after_image, image_id = RELEASE_PROMPTS[family]
    adapter_class = get_adapter_class(family)
    tokenizer = adapter_class.load_release_tokenizer(real_tokenizer_dir(folder))
    adapter = adapter_class.build_tiny(tokenizer, PAPER_CONFIGS[family], seed=0)
    assert adapter.image_token_id == image_id
    ids = adapter.encode([coco_sized_image], [QUESTION])["input_ids"][0].tolist()
    n_tokens = EXPECTED[family][1]
    first = ids.index(image_id)
    assert ids[:first] == before_image
    assert (
        ids[first : first + n_tokens] == [image_id] * n_tokens and ids.count(image_id) == n_tokens
    )
    assert ids[first + n_tokens : first + n_tokens + len(after_image)] == after_image
