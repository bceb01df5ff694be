"""Token <-> patch <-> pixel geometry of every family adapter, on tiny random models.

With a vision tower that cannot mix patches (no encoder layers, or LLaVA reading the
pre-encoder embeddings), changing the pixels of one grid cell must change exactly one LM
image-token embedding: the one the adapter maps to that cell. Any off-by-one, transposed or
offset mapping moves or multiplies the changed token.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vrp.adapters import FAMILIES, get_adapter_class
from vrp.zoo.tokenizer import build_word_tokenizer, template_words

# PaliGemma's processor calls np.array on tensors internally (harmless, transformers-side).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

QUESTION = "Is there a apple in the image ?"

# Towers whose image-token embeddings are per-patch functions of the pixels (no attention mixing).
NON_MIXING = {
    # transformers 5 records CLIP hidden states per encoder layer, so LLaVA keeps one layer and
    # reads its input (the patch embeddings) with vision_feature_layer=0
    "llava": {"vision_num_hidden_layers": 1, "vision_feature_layer": 0},
    "paligemma": {"vision_num_hidden_layers": 0},
    "qwen2vl": {"vision_num_hidden_layers": 0},
    # the window permutation still runs (patches in window order through the merger and back)
    "qwen25vl": {"vision_num_hidden_layers": 0},
    # patch embeddings and post-norm are per patch; the projector pools whole 2x2 blocks
    "gemma3": {"vision_num_hidden_layers": 0},
}


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer([QUESTION, "yes", "no"], template_words())


def random_image(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def image_token_embeddings(adapter, pixels: np.ndarray):
    """(LM input embeddings at the image-token positions, projector/merger output rows, grid).

    The projector rows are put in the LM tokens' raster order: Qwen2.5-VL's merger runs in its
    tower's window order (the adapter's ``image_embedding_order``), the others' in raster order.
    """
    batch = adapter.encode([Image.fromarray(pixels)], [QUESTION])
    captured = []
    hook = adapter.image_embedding_module().register_forward_hook(
        lambda m, i, o: captured.append(o.detach())
    )
    try:
        with torch.no_grad():
            out = adapter.model(**batch, output_hidden_states=True)
    finally:
        hook.remove()
    mask = adapter.image_token_mask(batch)[0]
    projector_rows = captured[0].reshape(-1, captured[0].shape[-1])
    raster = torch.empty_like(projector_rows)
    raster[adapter.image_embedding_order(batch)] = projector_rows
    return out.hidden_states[0][0][mask], raster, adapter.patch_grids(batch)[0]


def changed_rows(a: torch.Tensor, b: torch.Tensor) -> list[int]:
    return ((a - b).abs().amax(dim=-1) > 1e-6).nonzero().flatten().tolist()


CASES = [
    ("llava", (64, 64), (8, 8), (2, 5)),
    ("paligemma", (64, 64), (8, 8), (2, 5)),
    ("qwen2vl", (64, 64), (8, 8), (2, 5)),
    # dynamic resolution: a landscape and a portrait image give non-square grids
    ("qwen2vl", (64, 48), (6, 8), (4, 7)),
    ("qwen2vl", (48, 64), (8, 6), (7, 4)),
    # window attention: 4x4-token windows, so (2, 5) sits in the second window of the first row
    ("qwen25vl", (64, 64), (8, 8), (2, 5)),
    ("qwen25vl", (64, 48), (6, 8), (4, 7)),
    ("qwen25vl", (48, 64), (8, 6), (7, 4)),
    # 4-px patches pooled 2x2: one LM token per 8-px cell
    ("gemma3", (64, 64), (8, 8), (2, 5)),
]


@pytest.mark.parametrize("family, size, grid, cell", CASES)
def test_one_cell_changes_exactly_its_token(tokenizer, family, size, grid, cell):
    adapter = get_adapter_class(family).build_tiny(tokenizer, NON_MIXING[family], seed=0)
    width, height = size
    pixels = random_image(width, height, seed=1)
    before, projector_before, found_grid = image_token_embeddings(adapter, pixels)
    assert found_grid == grid
    assert before.shape[0] == grid[0] * grid[1]  # the span is exactly rows*cols tokens

    boxes = adapter.cell_boxes((width, height), found_grid)
    assert boxes.shape == (*grid, 4)
    r, c = cell
    # 8-px cells, and the processor does not resample a 64/48-px image at these settings
    assert boxes[r, c].tolist() == [8 * c, 8 * r, 8 * c + 8, 8 * r + 8]
    x0, y0, x1, y1 = boxes[r, c]
    edited = pixels.copy()
    edited[y0:y1, x0:x1] = 255 - edited[y0:y1, x0:x1]
    after, projector_after, _ = image_token_embeddings(adapter, edited)

    expected = r * grid[1] + c  # row-major
    assert changed_rows(before, after) == [expected]
    assert changed_rows(projector_before, projector_after) == [expected]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_mixing_tower_spreads_the_change(tokenizer, family):
    """Control: with the default (attention) tower, one cell's pixels reach many tokens."""
    adapter = get_adapter_class(family).build_tiny(tokenizer, {}, seed=0)
    pixels = random_image(64, 64, seed=1)
    before, _, grid = image_token_embeddings(adapter, pixels)
    x0, y0, x1, y1 = adapter.cell_boxes((64, 64), grid)[2, 5]
    edited = pixels.copy()
    edited[y0:y1, x0:x1] = 255 - edited[y0:y1, x0:x1]
    after, _, _ = image_token_embeddings(adapter, edited)
    assert len(changed_rows(before, after)) > 32


@pytest.mark.parametrize("family", FAMILIES)
def test_last_hidden_state_is_already_normed(tokenizer, family):
    """hidden_states[-1] is the final-norm output fed to lm_head; earlier layers need final_norm()."""
    adapter = get_adapter_class(family).build_tiny(tokenizer, {}, seed=0)
    batch = adapter.encode([Image.fromarray(random_image(64, 64, seed=2))], [QUESTION])
    captured = {}
    hooks = [
        adapter.decoder_layers()[-1].register_forward_hook(
            lambda m, i, o: captured.__setitem__("last_layer", o)
        ),
        adapter.final_norm().register_forward_hook(
            lambda m, i, o: captured.__setitem__("normed", o)
        ),
    ]
    try:
        with torch.no_grad():
            out = adapter.model(**batch, output_hidden_states=True, output_attentions=True)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(out.hidden_states) == adapter.num_layers + 1
    assert len(out.attentions) == adapter.num_layers  # eager attention returns every layer's map
    last = out.hidden_states[-1]
    torch.testing.assert_close(last, captured["normed"])
    with torch.no_grad():
        torch.testing.assert_close(adapter.lm_head()(last), out.logits)
        # the logit lens of the last layer = final_norm applied to the layer's raw output
        torch.testing.assert_close(adapter.final_norm()(captured["last_layer"]), last)
    assert not torch.allclose(captured["last_layer"], last)  # the norm is not the identity here


def test_cell_boxes_rejects_a_transposed_grid(tokenizer):
    adapter = get_adapter_class("qwen2vl").build_tiny(tokenizer, {}, seed=0)
    assert adapter.expected_grid((64, 48)) == (6, 8)
    with pytest.raises(ValueError, match=r"\(rows, cols\)=\(6, 8\), not \(8, 6\)"):
        adapter.cell_boxes((64, 48), (8, 6))


def test_llava_center_crop_boxes_cover_the_central_square(tokenizer):
    """A 96x64 image: shortest edge 64 is kept, the crop drops 16 px on each side."""
    adapter = get_adapter_class("llava").build_tiny(tokenizer, {}, seed=0)
    boxes = adapter.cell_boxes((96, 64), (8, 8))
    assert boxes[0, 0].tolist() == [16, 0, 24, 8]
    assert boxes[7, 7].tolist() == [72, 56, 80, 64]
    # boxes tile the crop: every right edge is the next box's left edge
    assert (boxes[:, 1:, 0] == boxes[:, :-1, 2]).all()
    assert (boxes[1:, :, 1] == boxes[:-1, :, 3]).all()


def test_paligemma_boxes_stretch_over_the_whole_image(tokenizer):
    """SigLIP resizes without cropping: a 128x96 image maps 16x12-px cells onto the 8x8 grid."""
    adapter = get_adapter_class("paligemma").build_tiny(tokenizer, {}, seed=0)
    boxes = adapter.cell_boxes((128, 96), (8, 8))
    assert boxes[0, 0].tolist() == [0, 0, 16, 12]
    assert boxes[7, 7].tolist() == [112, 84, 128, 96]


def test_qwen25vl_merger_rows_are_in_window_order(tokenizer):
    """The order the projector check above undoes is a real permutation: 4x4-token windows."""
    adapter = get_adapter_class("qwen25vl").build_tiny(tokenizer, {}, seed=0)
    batch = adapter.encode([Image.fromarray(random_image(64, 64, seed=2))], [QUESTION])
    order = adapter.image_embedding_order(batch).tolist()
    # first window: tokens of rows 0-3, columns 0-3 of the 8x8 grid; then columns 4-7
    assert order[:16] == [r * 8 + c for r in range(4) for c in range(4)]
    assert order[16:32] == [r * 8 + c for r in range(4) for c in range(4, 8)]
    assert sorted(order) == list(range(64))


def test_gemma3_boxes_stretch_over_the_whole_image(tokenizer):
    """SigLIP resizes without cropping: a 128x96 image maps 16x12-px cells onto the 8x8 grid."""
    adapter = get_adapter_class("gemma3").build_tiny(tokenizer, {}, seed=0)
    assert adapter.expected_grid((128, 96)) == (8, 8)
    boxes = adapter.cell_boxes((128, 96), (8, 8))
    assert boxes[0, 0].tolist() == [0, 0, 16, 12]
    assert boxes[7, 7].tolist() == [112, 84, 128, 96]


def test_gemma3_refuses_pan_and_scan_until_crops_are_mapped(tokenizer):
    from vrp.adapters.gemma3 import PanAndScanError

    adapter = get_adapter_class("gemma3").build_tiny(tokenizer, {}, seed=0)
    assert not adapter.processor.image_processor.do_pan_and_scan  # off by default
    adapter.processor.image_processor.do_pan_and_scan = True
    image = Image.fromarray(random_image(128, 48, seed=3))  # wide enough to be cropped
    with pytest.raises(PanAndScanError, match=r"do_pan_and_scan=True.*do_pan_and_scan = False"):
        adapter.encode([image], [QUESTION])
    with pytest.raises(PanAndScanError, match="not map"):
        adapter.cell_boxes((128, 48), (8, 8))
    with pytest.raises(PanAndScanError):
        type(adapter)(adapter.model, adapter.processor)
