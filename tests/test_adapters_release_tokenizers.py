"""Each adapter turns its base LM's real tokenizer into the one its release ships (release ids)."""

import pytest

from conftest import real_tokenizer_dir
from vrp.adapters import get_adapter_class

GEMMA_SIZE = 262145  # the Gemma-3 tokenizer.json: 262,144 pieces + <image_soft_token>


@pytest.fixture(scope="module")
def release():
    folders = {
        "llava": "llama2",
        "paligemma": "gemma3",
        "qwen2vl": "qwen3",
        "qwen25vl": "qwen3",
        "gemma3": "gemma3",
    }
    return {
        f: get_adapter_class(f).load_release_tokenizer(real_tokenizer_dir(n))
        for f, n in folders.items()
    }


def test_llava_adds_image_and_pad_as_llava_hf_does(release):
    tok = release["llava"]
    assert len(tok) == 32002
    assert tok.convert_tokens_to_ids(["<image>", "<pad>"]) == [32000, 32001]
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<pad>", "<s>", "</s>")
    # <image> is one special token, never split
    assert tok("<image>", add_special_tokens=False)["input_ids"] == [32000]


def test_paligemma_appends_loc_seg_then_image_to_the_gemma_vocabulary(release):
    tok = release["paligemma"]
    assert len(tok) == GEMMA_SIZE + 1024 + 128 + 1
    assert tok.convert_tokens_to_ids(
        ["<loc0000>", "<loc1023>", "<seg000>", "<seg127>", "<image>"]
    ) == [GEMMA_SIZE, GEMMA_SIZE + 1023, GEMMA_SIZE + 1024, GEMMA_SIZE + 1151, GEMMA_SIZE + 1152]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (
        2,
        1,
        0,
    )  # <bos>, <eos>, <pad>
    assert not hasattr(tok, "image_token")  # the Gemma-3 chat model's <image_soft_token> is dropped
    assert tok("<loc0512><seg003>", add_special_tokens=False)["input_ids"] == [
        GEMMA_SIZE + 512,
        GEMMA_SIZE + 1027,
    ]


def test_qwen2vl_keeps_the_vision_tokens_at_their_release_ids(release):
    tok = release["qwen2vl"]
    assert tok.convert_tokens_to_ids(
        ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    ) == [151652, 151653, 151655, 151656]
    assert (tok.bos_token, tok.eos_token_id, tok.pad_token_id) == (None, 151645, 151643)
    assert tok("Is there a dog?")["input_ids"][0] != tok.bos_token_id


def test_qwen25vl_uses_qwen2vl_s_vision_ids(release):
    tok = release["qwen25vl"]
    tokens = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
    assert tok.convert_tokens_to_ids(tokens) == [151644, 151645, 151652, 151653, 151655]
    assert tok.convert_tokens_to_ids(tokens) == release["qwen2vl"].convert_tokens_to_ids(tokens)
    assert (tok.bos_token, tok.eos_token_id, tok.pad_token_id) == (None, 151645, 151643)


def test_gemma3_keeps_its_multimodal_tokens_at_the_release_ids(release):
    tok = release["gemma3"]
    assert len(tok) == GEMMA_SIZE  # nothing added: the Gemma 3 vocabulary is the release's
    assert tok.convert_tokens_to_ids(
        [
            "<start_of_image>",
            "<end_of_image>",
            "<image_soft_token>",
            "<start_of_turn>",
            "<end_of_turn>",
        ]
    ) == [255999, 256000, 262144, 105, 106]
    # the names Gemma3Processor reads, and one whole token each
    assert (tok.boi_token, tok.image_token, tok.eoi_token) == (
        "<start_of_image>",
        "<image_soft_token>",
        "<end_of_image>",
    )
    assert tok("<start_of_image><image_soft_token>", add_special_tokens=False)["input_ids"] == [
        255999,
        262144,
    ]
    # <bos>, <eos> (the instruction-tuned release's tokenizer eos; it also stops at <end_of_turn>), <pad>
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (2, 1, 0)
    assert tok("Is there a dog?")["input_ids"][0] == 2  # prompts start with <bos>


def test_gemma3_release_names_its_tokens_on_a_bare_gemma_tokenizer(release):
    """A tokenizer.json without the Gemma 3 config still gets the names and the chat template."""
    from transformers import PreTrainedTokenizerFast

    bare = PreTrainedTokenizerFast(
        tokenizer_object=release["gemma3"].backend_tokenizer, bos_token="<bos>", eos_token="<eos>"
    )
    tok = get_adapter_class("gemma3").release_tokenizer(bare)
    assert tok.image_token_id == 262144 and tok.boi_token_id == 255999
    assert "<start_of_turn>" in tok.chat_template
    assert getattr(bare, "image_token", None) is None  # the input is left unchanged


def test_raw_tokenizers_are_left_unchanged():
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(real_tokenizer_dir("llama2"))
    get_adapter_class("llava").release_tokenizer(raw)
    assert len(raw) == 32000 and raw.pad_token is None


def test_a_missing_tokenizer_folder_is_a_clear_error(tmp_path):
    with pytest.raises(
        FileNotFoundError, match="tokenizer.json does not exist.*models.<name>.tokenizer"
    ):
        get_adapter_class("llava").load_release_tokenizer(tmp_path)
