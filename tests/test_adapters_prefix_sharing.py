"""Each adapter's ``shares_prefix`` claim, checked on its tiny model: with sharing valid, the
prompt's states through the end of the image span do not depend on the question (so its KV
cache may serve every question about the image); Gemma 3's image block is bidirectional inside
and causal to the text around it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vrp.adapters import FAMILIES, get_adapter_class
from vrp.zoo.tokenizer import build_word_tokenizer, template_words

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

QUESTIONS = ["Is there a kite ?", "How many apple are there in the image ?"]
# the families that state the claim (the base interface is to declare it for all)
DECLARING = [f for f in FAMILIES if hasattr(get_adapter_class(f), "shares_prefix")]


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer([*QUESTIONS, "yes", "no"], template_words())


@pytest.fixture(scope="module")
def image():
    return Image.fromarray(
        np.random.default_rng(3).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    )


def prefix_states(adapter, image, question):
    """Hidden states of every layer at the positions up to the last image token (batch of one)."""
    batch = adapter.encode([image], [question])
    end = int(adapter.image_token_mask(batch)[0].nonzero().max()) + 1
    with torch.no_grad():
        hidden = adapter.model(**batch, output_hidden_states=True).hidden_states
    return batch["input_ids"][0, :end], torch.stack([h[0, :end] for h in hidden])


def test_the_claim_is_declared_with_a_reason():
    assert {"qwen25vl", "gemma3"} <= set(DECLARING)
    for family in DECLARING:
        adapter_class = get_adapter_class(family)
        assert isinstance(adapter_class.shares_prefix, bool)
        assert len(adapter_class.prefix_sharing_note) > 20


@pytest.mark.parametrize("family", DECLARING)
def test_prefix_through_the_image_span_is_question_independent(tokenizer, image, family):
    adapter = get_adapter_class(family).build_tiny(tokenizer, {}, seed=0)
    ids_a, states_a = prefix_states(adapter, image, QUESTIONS[0])
    ids_b, states_b = prefix_states(adapter, image, QUESTIONS[1])
    assert torch.equal(ids_a, ids_b)  # the same tokens through the image span
    same = torch.allclose(states_a, states_b, atol=1e-6, rtol=1e-5)
    assert same == adapter.shares_prefix


def test_paligemma_prefix_depends_on_the_question(tokenizer, image):
    """Control: PaliGemma's prefix LM lets the image tokens read the question."""
    adapter = get_adapter_class("paligemma").build_tiny(tokenizer, {}, seed=0)
    _, states_a = prefix_states(adapter, image, QUESTIONS[0])
    _, states_b = prefix_states(adapter, image, QUESTIONS[1])
    assert not torch.allclose(states_a[1:], states_b[1:], atol=1e-4)


def test_gemma3_image_block_is_bidirectional_and_text_is_causal(tokenizer, image):
    adapter = get_adapter_class("gemma3").build_tiny(tokenizer, {}, seed=0)
    batch = adapter.encode([image], [QUESTIONS[0]])
    positions = adapter.image_token_mask(batch)[0].nonzero().flatten()
    first, last = int(positions[0]), int(positions[-1])
    with torch.no_grad():
        attentions = adapter.model(**batch, output_attentions=True).attentions
    for layer in attentions:  # sliding and global layers alike
        weights = layer[0]  # (heads, T, T)
        assert float(weights[:, first, last].sum()) > 0.0  # an image token sees a later one
        assert float(weights[:, first, last + 1 :].sum()) == 0.0  # ... but no text after the image
        assert float(weights[:, first - 1, first:].sum()) == 0.0  # text before it never sees it
        text = last + 2  # a question token
        assert float(weights[:, text, text + 1 :].sum()) == 0.0  # text is causal
