"""Family adapters: build, save/load, batching conventions, training batches, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from vrp.adapters import FAMILIES, get_adapter_class, load_adapter
from vrp.zoo.tokenizer import (
    SPECIAL_TOKENS,
    build_word_tokenizer,
    questions_tokenizer,
    special_tokens,
    template_words,
)

# PaliGemma's processor calls np.array on tensors internally (harmless, transformers-side).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TEXTS = [
    "Is there a apple in the image ?",
    "Is there a kite ?",
    "List the objects .",
    "apple ball kite",
    "yes",
    "no",
]
LONG_Q, SHORT_Q, CAPTION_Q = TEXTS[0], TEXTS[1], TEXTS[2]


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(TEXTS, template_words())


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)) for _ in range(2)
    ]


@pytest.fixture(scope="module")
def adapters(tokenizer):
    return {
        family: get_adapter_class(family).build_tiny(tokenizer, {}, seed=0) for family in FAMILIES
    }


def test_word_tokenizer_ids_are_deterministic(tokenizer):
    vocab = tokenizer.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    # the adapters' special tokens, collected in family order: a change here moves every token id
    pinned = "<bos> <eos> <pad> <unk> <image> <|image_pad|> <|video_pad|> <|vision_start|>"
    pinned += " <|vision_end|> <|im_start|> <|im_end|> <start_of_image> <image_soft_token>"
    pinned += " <end_of_image> <start_of_turn> <end_of_turn>"
    assert SPECIAL_TOKENS == tuple(pinned.split())
    words = sorted(set(vocab) - set(SPECIAL_TOKENS))
    assert [vocab[w] for w in words] == list(range(len(SPECIAL_TOKENS), len(vocab)))
    assert {
        "ASSISTANT",
        ":",
        "USER",
        "answer",
        "en",
        "user",
        "assistant",
        "model",
        "?",
        "kite",
    } <= set(words)
    rebuilt = build_word_tokenizer(reversed(TEXTS), reversed(template_words()))
    assert rebuilt.get_vocab() == vocab
    ids = tokenizer("USER: <image>\nIs there a kite ?\nASSISTANT:")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "<bos>",
        "USER",
        ":",
        "<image>",
        "Is",
        "there",
        "a",
        "kite",
        "?",
        "ASSISTANT",
        ":",
    ]


def test_questions_tokenizer_covers_questions_answers_and_templates():
    questions = pd.DataFrame({"question": ["Is there a kite ?"], "answer": ["yes"]})
    vocab = questions_tokenizer(questions).get_vocab()
    assert vocab == build_word_tokenizer(["Is there a kite ?", "yes"], template_words()).get_vocab()
    assert {"kite", "yes", "ASSISTANT", "en", "user"} <= set(vocab)
    assert (
        "en" not in questions_tokenizer(questions, ["llava"]).get_vocab()
    )  # PaliGemma's prefix word


def test_a_runs_tokenizer_holds_only_its_families_tokens_at_fixed_ids():
    """A run's tokenizer is built for its models' families: a family it leaves out adds no token,
    so adding one to the package leaves the ids of a run without it as they were."""
    questions = pd.DataFrame({"question": ["Is there a kite ?"], "answer": ["yes"]})
    paper = ["qwen2vl", "llava", "paligemma"]  # any order: the ids follow FAMILIES
    assert special_tokens(paper) == SPECIAL_TOKENS[:11]
    vocab = questions_tokenizer(questions, paper).get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS[:11]] == list(range(11))
    assert not set(SPECIAL_TOKENS[11:]) & set(vocab)  # no Gemma 3 token
    words = sorted(set(vocab) - set(SPECIAL_TOKENS))
    assert [vocab[w] for w in words] == list(range(11, len(vocab)))
    tokenizer = questions_tokenizer(questions, paper)
    ids = tokenizer("<|im_start|>user")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["<bos>", "<|im_start|>", "user"]
    # every family's tokens keep their ids whatever families follow it in FAMILIES
    for end in range(1, len(FAMILIES) + 1):
        assert SPECIAL_TOKENS[: len(special_tokens(FAMILIES[:end]))] == special_tokens(
            FAMILIES[:end]
        )
    assert special_tokens(["gemma3"]) == ("<bos>", "<eos>", "<pad>", "<unk>", *SPECIAL_TOKENS[11:])
    with pytest.raises(ValueError, match="unknown model family 'lava'"):
        special_tokens(["lava"])


def test_build_tiny_does_not_touch_the_shared_tokenizer(tokenizer, adapters):
    # PaliGemma's processor adds 1152 <loc>/<seg> tokens and Qwen drops BOS: on their own copies
    assert len(adapters["paligemma"].tokenizer) == len(tokenizer) + 1152
    assert len(tokenizer) == len(tokenizer.get_vocab())
    assert tokenizer("yes")["input_ids"][0] == tokenizer.bos_token_id


@pytest.mark.parametrize("family", FAMILIES)
def test_prompts_use_the_family_template(adapters, family):
    adapter = adapters[family]
    expected = {
        "llava": "USER: <image>\nIs there a kite ?\nASSISTANT:",
        "paligemma": "<image>answer en Is there a kite ?",
        "qwen2vl": "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Is there a kite ?<|im_end|>\n"
        "<|im_start|>assistant\n",
        "qwen25vl": "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Is there a kite ?<|im_end|>\n"
        "<|im_start|>assistant\n",
        # the template's <bos> is left to the tokenizer (one, not two)
        "gemma3": "<start_of_turn>user\n<start_of_image>Is there a kite ?<end_of_turn>\n<start_of_turn>model\n",
    }[family]
    assert adapter.build_prompt(SHORT_Q) == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip_offline(adapters, images, family, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)
    adapter = adapters[family]
    adapter.save(tmp_path)
    loaded = load_adapter(family, tmp_path)
    assert type(loaded) is type(adapter)
    assert loaded.model.config._attn_implementation == "eager"
    batch = adapter.encode(images, [LONG_Q, SHORT_Q])
    loaded_batch = loaded.encode(images, [LONG_Q, SHORT_Q])
    assert batch.keys() == loaded_batch.keys()
    for key in batch:
        assert torch.equal(batch[key], loaded_batch[key]), key
    with torch.no_grad():
        assert torch.equal(adapter.model(**batch).logits, loaded.model(**loaded_batch).logits)
    assert [loaded.form_token_ids(w, " ") for w in ("yes", "no")] == [
        adapter.form_token_ids(w, " ") for w in ("yes", "no")
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_tokens_are_all_in_vocabulary(adapters, images, family):
    adapter = adapters[family]
    batch = adapter.encode(images[:1], [LONG_Q])
    assert adapter.tokenizer.unk_token_id not in batch["input_ids"].tolist()[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_answer_forms_on_the_word_vocabulary(adapters, tokenizer, family):
    adapter = adapters[family]
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
    # whitespace is dropped by the word-level pre-tokenizer: both spacings give the word's own id
    for spacing in adapter.answer_spacings():
        assert adapter.form_token_ids("yes", spacing) == [yes]
        assert adapter.form_token_ids("no", spacing) == [no]
        assert adapter.form_token_ids("Yes", spacing) is None  # <unk>: not a form here
    two_words = adapter.form_token_ids("apple ball", adapter.answer_separator)
    assert two_words == tokenizer.convert_tokens_to_ids(["apple", "ball"])
    assert set(adapter.answer_spacings()) == {"", " "}


@pytest.mark.parametrize("family", FAMILIES)
def test_post_prompt_follows_the_question(adapters, family):
    adapter = adapters[family]
    # no post-prompt: the question is passed unchanged (Gemma 3's template trims it, as released)
    assert adapter.question_text(SHORT_Q + "  ") == SHORT_Q + "  "
    assert SHORT_Q in adapter.build_prompt(adapter.question_text(SHORT_Q + "  "))
    adapter.post_prompt = "\nAnswer ."
    try:
        prompt = adapter.build_prompt(adapter.question_text(SHORT_Q + "  "))
        assert SHORT_Q + "\nAnswer ." in prompt  # lmms-eval: question.strip() + post_prompt
        batch = adapter.encode([Image.new("RGB", (64, 64))], [SHORT_Q])
        tokens = adapter.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
        assert tokens.count("<unk>") == 1  # "Answer" is not in this vocabulary; "." is
    finally:
        adapter.post_prompt = ""


@pytest.mark.parametrize("family", FAMILIES)
def test_encode_is_left_padded(adapters, images, family):
    adapter = adapters[family]
    batch = adapter.encode(images, [LONG_Q, SHORT_Q])
    mask = batch["attention_mask"]
    assert mask[:, -1].all()  # last column is a real token in every row
    assert mask[0].all() and not mask[1, 0]  # the shorter prompt is padded on the left
    with torch.no_grad():
        batched = adapter.model(**batch).logits[:, -1]
        for row, (image, question) in enumerate(zip(images, [LONG_Q, SHORT_Q])):
            alone = adapter.model(**adapter.encode([image], [question])).logits[0, -1]
            torch.testing.assert_close(batched[row], alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_training_batch_labels_only_answer_and_eos(adapters, images, family):
    adapter = adapters[family]
    tok = adapter.tokenizer
    answers = ["yes", "apple ball kite"]
    batch = adapter.encode_for_training(images, [SHORT_Q, CAPTION_Q], answers)
    prompt_lengths = (
        adapter.encode(images[:1], [SHORT_Q])["input_ids"].shape[1],
        adapter.encode(images[1:], [CAPTION_Q])["input_ids"].shape[1],
    )
    for row, (answer, prompt_length) in enumerate(zip(answers, prompt_lengths)):
        labelled = (batch["labels"][row] != -100).nonzero().flatten()
        answer_ids = [tok.convert_tokens_to_ids(w) for w in answer.split()] + [tok.eos_token_id]
        # labels sit right after the prompt, on the answer words and eos, nowhere else
        assert labelled.tolist() == list(range(prompt_length, prompt_length + len(answer_ids)))
        assert batch["labels"][row, labelled].tolist() == answer_ids
        assert batch["input_ids"][row, labelled].tolist() == answer_ids
        assert batch["attention_mask"][row].tolist() == [1] * (prompt_length + len(answer_ids)) + [
            0
        ] * (batch["input_ids"].shape[1] - prompt_length - len(answer_ids))
    # right padding: the longest row ends at the last column
    assert batch["attention_mask"][1, -1] == 1 and batch["attention_mask"][0, -1] == 0
    if family == "paligemma":
        token_types = batch["token_type_ids"]
        assert torch.equal(token_types == 1, batch["labels"] != -100)  # suffix = answer + eos
    if family in ("qwen2vl", "qwen25vl"):
        assert torch.equal(batch["mm_token_type_ids"] == 1, adapter.image_token_mask(batch))
    if family == "gemma3":  # the bidirectional block: the image's soft tokens, nothing else
        assert torch.equal(batch["token_type_ids"] == 1, adapter.image_token_mask(batch))


@pytest.mark.parametrize("family", FAMILIES)
def test_training_forward_and_backward(tokenizer, images, family):
    adapter = get_adapter_class(family).build_tiny(tokenizer, {}, seed=0)
    adapter.model.train()
    batch = adapter.encode_for_training(images, [SHORT_Q, CAPTION_Q], ["no", "apple ball kite"])
    loss = adapter.model(**batch).loss
    assert torch.isfinite(loss)
    # an untrained model is near uniform over the vocabulary: loss ~ ln(vocab)
    assert abs(loss.item() - np.log(len(adapter.tokenizer))) < 1.5
    loss.backward()
    without_grad = [name for name, p in adapter.model.named_parameters() if p.grad is None]
    if family == "llava":
        # LLaVA-1.5 reads the penultimate CLIP layer, so the last layer and post-norm are unused
        assert without_grad and all(
            ".encoder.layers.2." in name or "post_layernorm" in name for name in without_grad
        )
    else:
        assert without_grad == []
    assert all(
        torch.isfinite(p.grad).all() for p in adapter.model.parameters() if p.grad is not None
    )
    assert all(p.grad.abs().sum() > 0 for p in adapter.image_embedding_module().parameters())


def test_paligemma_is_a_prefix_lm_and_llava_is_causal(adapters, images):
    """Image tokens attend forward to the prompt in PaliGemma (prefix LM), never in LLaVA."""
    looks_ahead = {}
    for family in ("llava", "paligemma"):
        adapter = adapters[family]
        batch = adapter.encode(images[:1], [SHORT_Q])
        first_image = int(adapter.image_token_mask(batch)[0].nonzero()[0])
        with torch.no_grad():
            attentions = adapter.model(**batch, output_attentions=True).attentions
        looks_ahead[family] = float(attentions[0][0, :, first_image, -1].sum())
    assert looks_ahead["llava"] == 0.0
    assert looks_ahead["paligemma"] > 0.0


def test_paligemma_suffix_is_causal(adapters, images):
    adapter = adapters["paligemma"]
    batch = adapter.encode_for_training(images[:1], [CAPTION_Q], ["apple ball kite"])
    answer = (batch["labels"][0] != -100).nonzero().flatten()
    with torch.no_grad():
        attentions = adapter.model(**batch, output_attentions=True).attentions
    first, last = int(answer[0]), int(answer[-1])
    assert (
        float(attentions[0][0, :, first, last].sum()) == 0.0
    )  # the first answer token cannot see ahead
    assert float(attentions[0][0, :, last, first].sum()) > 0.0


def test_unknown_family_lists_the_families():
    with pytest.raises(
        ValueError, match=r"unknown model family 'blip2'.*'llava', 'paligemma', 'qwen2vl'"
    ):
        get_adapter_class("blip2")


@pytest.mark.parametrize("family", FAMILIES)
def test_unknown_tiny_key_is_named(tokenizer, family):
    with pytest.raises(
        ValueError, match=r"unknown tiny-model config key\(s\) \['hiden_size'\].*known keys"
    ):
        get_adapter_class(family).build_tiny(tokenizer, {"hiden_size": 64}, seed=0)


def test_llava_without_vision_layers_explains_the_alternative(tokenizer):
    with pytest.raises(ValueError, match="vision_feature_layer=0"):
        get_adapter_class("llava").build_tiny(tokenizer, {"vision_num_hidden_layers": 0}, seed=0)


def test_loading_the_wrong_family_names_both(adapters, tmp_path):
    adapters["paligemma"].save(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"model_type 'paligemma'.*family 'llava'.*models\.<name>\.family.*'paligemma'",
    ):
        load_adapter("llava", tmp_path)


def test_same_seed_same_weights_different_seed_different(tokenizer):
    cls = get_adapter_class("llava")
    a, b, c = (cls.build_tiny(tokenizer, {}, seed=s) for s in (3, 3, 4))
    weights = [torch.cat([p.flatten() for p in m.model.parameters()]) for m in (a, b, c)]
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


@pytest.mark.parametrize("family", FAMILIES)
def test_module_roles(adapters, family):
    adapter = adapters[family]
    assert adapter.num_layers == 4 and len(adapter.decoder_layers()) == 4
    assert adapter.hidden_size == 128 and adapter.num_heads == 4
    assert adapter.lm_head().weight.shape == (len(adapter.tokenizer), 128)
    # the MLP's contribution to the residual: the MLP itself, or Gemma 3's norm after it
    mlp_output = {"gemma3": "post_feedforward_layernorm"}.get(family, "mlp")
    assert adapter.mlp_module(0) is getattr(adapter.decoder_layers()[0], mlp_output)
    assert adapter.attention_module(3) is adapter.decoder_layers()[3].self_attn
    assert adapter.output_projection(2) is adapter.decoder_layers()[2].self_attn.o_proj
    # initializer_range 0.08 (docs/method.md, "The tiny zoo"), not HF's 0.02
    std = adapter.decoder_layers()[0].mlp.down_proj.weight.std().item()
    assert 0.07 < std < 0.09
    with pytest.raises(IndexError, match="4 decoder layers"):
        adapter.attention_module(4)
    assert adapter.device == torch.device("cpu") and adapter.dtype == torch.float32


@pytest.mark.parametrize("family", FAMILIES)
def test_mlp_module_output_is_what_the_layer_adds_last(adapters, images, family):
    """The contract the extraction's mlp_out and the ablations rely on: zeroing mlp_module's output
    changes the layer's output by exactly that output (it is the residual's last summand)."""
    adapter = adapters[family]
    batch = adapter.encode(images[:1], [SHORT_Q])
    layer, captured = adapter.decoder_layers()[1], {}

    def keep(name):
        def hook(module, args, output):
            captured[name] = (output[0] if isinstance(output, tuple) else output).detach().clone()

        return hook

    def run(zero_mlp: bool):
        handles = [layer.register_forward_hook(keep("layer"))]
        mlp = adapter.mlp_module(1)
        handles.append(mlp.register_forward_hook(keep("mlp")))
        if zero_mlp:
            handles.append(mlp.register_forward_hook(lambda m, i, o: torch.zeros_like(o)))
        try:
            with torch.no_grad():
                adapter.model(**batch)
        finally:
            for handle in handles:
                handle.remove()
        return captured["layer"], captured["mlp"]

    full, mlp_out = run(False)
    ablated, _ = run(True)
    assert mlp_out.abs().max() > 1e-3
    torch.testing.assert_close(full - ablated, mlp_out, atol=1e-5, rtol=1e-4)
