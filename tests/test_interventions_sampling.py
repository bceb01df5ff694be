"""Tests for vrp.interventions.sampling: settings, seeded sampling, prefix stability, new tokens only."""

import pandas as pd
import pytest
import torch

from conftest import synthetic_eval_questions
from vrp.adapters import FAMILIES, get_adapter_class
from vrp.benchmark.images import decode_images
from vrp.interventions import sampling as S
from vrp.stats import normalize_answer
from vrp.zoo.tokenizer import questions_tokenizer


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="temperature"):
        S.ConsistencySettings(temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        S.ConsistencySettings(top_p=1.5)
    assert S.ConsistencySettings.from_params({"k_max": 4, "k_values": [2, 4], "seed": 3}).k_max == 4
    assert S.sampling_seed(0, 1, 2) != S.sampling_seed(0, 2, 1)


@pytest.fixture(scope="module")
def questions() -> pd.DataFrame:
    table = synthetic_eval_questions(seed=5, n_eval_images=2)
    return table.groupby("task", sort=True).head(2).head(7).reset_index(drop=True)


@pytest.fixture(scope="module", params=FAMILIES)
def adapter(request, questions):
    torch.set_num_threads(1)
    tokenizer = questions_tokenizer(questions)
    adapter = get_adapter_class(request.param).build_tiny(tokenizer, {"num_hidden_layers": 1}, seed=2)
    # a checkpoint default that would make every sample the greedy answer (Qwen2-VL-Instruct ships top_k=1)
    adapter.model.generation_config.top_k = 1
    return adapter


def test_sampling_is_seeded_prefix_stable_and_decodes_only_new_tokens(adapter, questions):
    settings = S.ConsistencySettings(k_max=3, temperature=1.0, top_p=0.95, max_new_tokens=3, batch_size=4, seed=7)
    with_caption = pd.concat([questions, questions.head(1).assign(task="caption", question_id="cap")])
    first = S.sample_answers(adapter, with_caption, settings, progress=False)
    assert list(first.columns) == S.SAMPLE_COLUMNS
    assert len(first) == 3 * len(questions) and "cap" not in set(first["question_id"])  # captions skipped
    assert first["sample"].tolist() == [0, 1, 2] * len(questions)
    assert first["normalized"].tolist() == [normalize_answer(t) for t in first["text"]]
    # only the generated tokens are decoded (the prompts are longer than max_new_tokens words) ...
    assert first["text"].map(lambda t: len(t.split()) <= 3).all()
    # ... and sample s of batch b is the generate call seeded with sampling_seed(seed, b, s)
    batch = questions.iloc[4:]  # batch 1 (batch_size 4)
    inputs = adapter.encode(decode_images(batch["image"]), batch["question"].tolist())
    torch.manual_seed(S.sampling_seed(7, 1, 2))
    output = adapter.model.generate(**inputs, do_sample=True, temperature=1.0, top_p=0.95, top_k=0,
                                    repetition_penalty=1.0, max_new_tokens=3,
                                    pad_token_id=adapter.tokenizer.pad_token_id)
    expected = adapter.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert first[first["sample"] == 2]["text"].tolist()[4:] == [t.strip() for t in expected]

    again = S.sample_answers(adapter, questions, settings, progress=False)
    pd.testing.assert_frame_equal(first, again)
    longer = S.sample_answers(adapter, questions, S.ConsistencySettings(**{**settings.__dict__, "k_max": 5}),
                              progress=False)
    pd.testing.assert_frame_equal(longer[longer["sample"] < 3].reset_index(drop=True), first)
    other_seed = S.sample_answers(adapter, questions, S.ConsistencySettings(**{**settings.__dict__, "seed": 8}),
                                  progress=False)
    assert (other_seed["text"] != first["text"]).any()
    # the checkpoint's top_k=1 is overridden: samples of one question differ
    assert first.groupby("question_id")["text"].nunique().max() > 1
