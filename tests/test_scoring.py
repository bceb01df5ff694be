"""Answer scoring pieces that need no real vocabulary: forms, generation parsing, the seeded
cross-check sample, and the demo's one-token-per-word path (no continuation pass at all)."""

import numpy as np
import pytest
import torch

from vrp.adapters import FAMILIES, get_adapter_class
from vrp.benchmark.images import decode_images
from vrp.benchmark.synthetic import SyntheticBenchmarkConfig, generate_split
from vrp.scoring import (
    CandidateIndex,
    candidate_sets,
    generation_selected,
    parse_generation,
    predict,
    surface_forms,
)
from vrp.zoo.tokenizer import build_word_tokenizer

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_surface_forms():
    assert surface_forms("yes") == ["yes", "Yes", "YES"]
    assert surface_forms("3") == ["3", "three", "Three", "THREE"]
    assert surface_forms("10") == ["10", "ten", "Ten", "TEN"]
    assert surface_forms("two") == ["two", "Two", "TWO", "2"]
    assert surface_forms("baseball bat") == ["baseball bat", "Baseball bat", "BASEBALL BAT"]
    assert surface_forms("11") == ["11"]


@pytest.mark.parametrize(
    ("text", "task", "expected"),
    [
        ("Yes", "presence", "yes"),
        ("Yes, there is a dog.", "presence", "yes"),
        ("No.", "presence", "no"),
        ("there is no dog", "presence", "no"),  # the first whole word yes/no, wherever it is
        ("Nope", "presence", "nope"),  # neither: the stripped lower-case text
        ("yesterday", "spatial", "yesterday"),
        ("Three apples", "counting", "3"),
        ("3.", "counting", "3"),
        ("10", "counting", "10"),
        ("Baseball glove.", "object_id", "baseball glove"),
        ("baseball", "object_id", "baseball"),
        ("hot dogs", "object_id", "hot dogs"),
        ("hot dog with mustard", "object_id", "hot dog"),
    ],
)
def test_parse_generation(text, task, expected):
    candidates = {
        "presence": ["no", "yes"],
        "spatial": ["no", "yes"],
        "counting": [str(k) for k in range(11)],
        "object_id": ["baseball bat", "baseball glove", "hot dog", "dog"],
    }[task]
    assert parse_generation(text, task, candidates) == expected


def test_generation_sample_is_seeded_and_independent_of_order():
    ids = [f"q{k}" for k in range(4000)]
    chosen = generation_selected(ids, 0.1, seed=7)
    assert 0.08 < chosen.mean() < 0.12
    reordered = generation_selected(ids[::-1], 0.1, seed=7)[::-1]
    np.testing.assert_array_equal(chosen, reordered)
    assert (generation_selected(ids, 0.1, seed=8) != chosen).any()
    assert (
        generation_selected(ids, 1.0, seed=7).all()
        and not generation_selected(ids, 0.0, seed=7).any()
    )


@pytest.fixture(scope="module")
def questions():
    config = SyntheticBenchmarkConfig.from_dict(
        {"seed": 5, "n_train_images": 1, "n_eval_images": 3}
    )
    return generate_split(config, "eval")


@pytest.fixture(scope="module")
def tokenizer(questions):
    extra = [w for f in FAMILIES for w in get_adapter_class(f).template_words()]
    return build_word_tokenizer([*questions["question"], *questions["answer"]], extra_words=extra)


@pytest.mark.parametrize("family", FAMILIES)
def test_demo_vocabulary_scores_one_token_per_answer(family, questions, tokenizer):
    """The demo's word-level vocabulary: each candidate is one single-token form, so scoring needs
    no cache and no continuation, and equals the first-token rule (argmax of candidate logits)."""
    torch.set_num_threads(1)
    adapter = get_adapter_class(family).build_tiny(tokenizer, {"num_hidden_layers": 2}, seed=2)
    candidates = candidate_sets(questions)
    index = CandidateIndex(adapter, candidates)
    assert not index.needs_continuation
    for task, forms in index.forms.items():
        assert [f.answer for f in forms] == list(range(len(candidates[task])))  # one form each
    batch = questions[questions["task"] != "caption"].groupby("task").head(3).reset_index(drop=True)
    scored = predict(adapter, batch, candidates, batch_size=16)
    inputs = adapter.encode(decode_images(batch["image"]), batch["question"].tolist())
    with torch.no_grad():
        probs = torch.softmax(adapter.model(**inputs).logits[:, -1].float(), -1)
    for b, row in scored.iterrows():
        names = candidates[row["task"]]
        ids = tokenizer.convert_tokens_to_ids(names)
        best = int(probs[b, ids].argmax())
        assert row["prediction"] == names[best]
        assert row["prediction_token_id"] == ids[best]
        assert row["confidence"] == pytest.approx(float(probs[b, ids[best]]), rel=1e-4)
        assert row["p_answer"] == pytest.approx(
            float(probs[b, ids[names.index(row["answer"])]]), rel=1e-4
        )
        assert row["candidate_confidence"] == pytest.approx(
            float((probs[b, ids] / probs[b, ids].sum())[best]), rel=1e-4
        )


def test_ambiguous_and_unknown_candidates_are_errors(tokenizer):
    adapter = get_adapter_class("llava").build_tiny(tokenizer, {"num_hidden_layers": 1}, seed=0)
    with pytest.raises(
        ValueError, match="'maybe' of task 'presence' is not in the llava tokenizer"
    ):
        CandidateIndex(adapter, {"presence": ["maybe", "yes"]})
    with pytest.raises(ValueError, match="cannot be told apart"):
        CandidateIndex(
            adapter,
            (
                {"counting": ["2", "two"]}
                if "two" in tokenizer.get_vocab()
                else {"presence": ["yes", "Yes"]}
            ),
        )
