"""An offline word-level tokenizer shared by the tiny model families.

The Hub is out of reach, so the tiny zoo cannot download a real sentencepiece/BPE tokenizer.
A word-level tokenizer over the benchmark's own words is enough for a synthetic question set,
and it is a real ``PreTrainedTokenizerFast`` that every real processor class accepts
(docs/method.md, "The tiny zoo").

Ids are deterministic: the special tokens first (bos, eos, pad, unk, then the placeholder / turn
tokens of the families it is built for, in ``FAMILIES`` order), then the sorted words. A run builds
ONE tokenizer for its models' families from all texts plus :func:`template_words` and hands it to
each family's ``build_tiny``; the families a run does not configure add nothing, so adding a
family to the package leaves the ids (and the tiny models trained on them) of a run without it
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from vrp.adapters import ADAPTERS, FAMILIES, get_adapter_class

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"


def multimodal_tokens(families: Iterable[str] = FAMILIES) -> tuple[str, ...]:
    """The placeholder / turn tokens of ``families`` (FamilyAdapter.special_tokens), in FAMILIES
    order without repeats (so a family's tokens keep their ids whichever families follow it);
    they are registered as special tokens, so they are matched whole before pre-tokenisation."""
    chosen = {get_adapter_class(family).family for family in families}  # unknown names fail here
    return tuple(
        dict.fromkeys(
            token
            for family in FAMILIES
            if family in chosen
            for token in ADAPTERS[family].special_tokens
        )
    )


def special_tokens(families: Iterable[str] = FAMILIES) -> tuple[str, ...]:
    """The tokens a tokenizer for ``families`` starts with, at ids 0, 1, ...: bos, eos, pad, unk,
    then :func:`multimodal_tokens`."""
    return (BOS, EOS, PAD, UNK, *multimodal_tokens(families))


# Every family's (the default of the functions below)
MULTIMODAL_TOKENS: tuple[str, ...] = multimodal_tokens()
SPECIAL_TOKENS: tuple[str, ...] = special_tokens()


def template_words(families: Iterable[str] = FAMILIES) -> list[str]:
    """The words the prompt templates of ``families`` add to the vocabulary (sorted, no repeats)."""
    adapters = [get_adapter_class(family) for family in families]
    return sorted({word for adapter in adapters for word in adapter.template_words()})


def questions_tokenizer(
    questions, families: Iterable[str] = FAMILIES, extra_words: Iterable[str] = ()
) -> PreTrainedTokenizerFast:
    """The zoo tokenizer of a question table for ``families``: their special tokens, every word of
    the questions and answers, the families' prompt-template words and ``extra_words`` (e.g. a
    post-prompt instruction)."""
    families = tuple(families)
    texts = [*questions["question"], *questions["answer"]]
    return build_word_tokenizer(
        texts, extra_words=[*template_words(families), *extra_words], families=families
    )


def word_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """Newlines isolated, then whitespace split (drops them), then punctuation split off words."""
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split("\n", behavior="isolated"),
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
        ]
    )


def split_words(text: str) -> list[str]:
    """The words ``text`` falls into under :func:`word_pre_tokenizer` (what becomes one token each)."""
    return [piece for piece, _ in word_pre_tokenizer().pre_tokenize_str(text)]


def build_word_tokenizer(
    texts: Iterable[str], extra_words: Iterable[str] = (), families: Iterable[str] = FAMILIES
) -> PreTrainedTokenizerFast:
    """Build a word-level tokenizer whose vocabulary is the special tokens of ``families`` and every
    word of ``texts`` plus ``extra_words``.

    ``texts`` are split with the tokenizer's own pre-tokenizer, so every word of every text is
    in the vocabulary; ``extra_words`` are added as given (split the same way, so "ASSISTANT:"
    contributes "ASSISTANT" and ":"). Out-of-vocabulary words map to ``<unk>``.
    """
    families = tuple(families)
    specials = special_tokens(families)
    words: set[str] = set()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(
                f"build_word_tokenizer: texts must be strings, got {type(text).__name__}"
            )
        words.update(split_words(text))
    for word in extra_words:
        words.update(split_words(word))
    words -= set(specials)
    vocab = {token: i for i, token in enumerate(specials)}
    for word in sorted(words):
        vocab[word] = len(vocab)

    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = word_pre_tokenizer()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        add_bos_token=True,  # installs a post-processor that prepends <bos> (LLaVA/Qwen prompts)
        # the models take no token_type_ids except PaliGemma, whose processor asks for them itself
        model_input_names=["input_ids", "attention_mask"],
    )
    # Registering them as special makes them match whole and survive skip_special_tokens logic;
    # they are already in the vocabulary, so their ids do not change.
    tokenizer.add_special_tokens({"additional_special_tokens": list(multimodal_tokens(families))})
    return tokenizer
