"""Tests for vrp.interventions.sampling: settings, seeded sampling, prefix stability, new tokens only."""

import pandas as pd
import pytest
import torch

from conftest import synthetic_eval_questions
from vrp.adapters import FAMILIES, get_adapter_class
from vrp.interventions import sampling as S
from vrp.stats import normalize_answer
from vrp.zoo.tokenizer import questions_tokenizer


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="temperature"):
        S.ConsistencySettings(temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        S.ConsistencySettings(top_p=1.5)
    assert S.ConsistencySettings.from_params({"k_max": 4, "k_values": [2, 4], "seed": 3}).k_max == 4
    assert S.sample_seed(0, "q1", 2) != S.sample_seed(0, "q2", 2) != S.sample_seed(0, "q2", 1)
    with pytest.raises(ValueError, match="decode_rows"):
        S.ConsistencySettings(decode_rows=0)


@pytest.fixture(scope="module")
def questions() -> pd.DataFrame:
    table = synthetic_eval_questions(seed=5, n_eval_images=2)
    return table.groupby("task", sort=True).head(2).head(7).reset_index(drop=True)


@pytest.fixture(scope="module", params=FAMILIES)
def adapter(request, questions):
    torch.set_num_threads(1)
    tokenizer = questions_tokenizer(questions)
    adapter = get_adapter_class(request.param).build_tiny(
        tokenizer, {"num_hidden_layers": 1}, seed=2
    )
    # a checkpoint default that would make every sample the greedy answer (Qwen2-VL-Instruct ships top_k=1)
    adapter.model.generation_config.top_k = 1
    return adapter


def test_sampling_is_seeded_prefix_stable_and_decodes_only_new_tokens(adapter, questions):
    settings = S.ConsistencySettings(
        k_max=3, temperature=1.0, top_p=0.95, max_new_tokens=3, batch_size=4, seed=7
    )
    with_caption = pd.concat(
        [questions, questions.head(1).assign(task="caption", question_id="cap")]
    )
    first = S.sample_answers(adapter, with_caption, settings, progress=False)
    assert list(first.columns) == S.SAMPLE_COLUMNS
    assert len(first) == 3 * len(questions) and "cap" not in set(
        first["question_id"]
    )  # captions skipped
    assert first["sample"].tolist() == [0, 1, 2] * len(questions)
    assert first["normalized"].tolist() == [normalize_answer(t) for t in first["text"]]
    # only the generated tokens are decoded (the prompts are longer than max_new_tokens words) ...
    assert first["text"].map(lambda t: len(t.split()) <= 3).all()
    # ... and every sample is the plain pattern's: one generate per question and sample, seeded
    # with sample_seed(seed, question, s), its own prefill; whichever prompt pass and chunking
    reference = S.sample_answers_reference(adapter, questions, settings)
    pd.testing.assert_frame_equal(first, reference)
    for share_prefix, decode_rows in ((False, 64), (True, 2)):
        chunked = S.ConsistencySettings(**{**settings.__dict__, "decode_rows": decode_rows})
        other = S.sample_answers(
            adapter, questions, chunked, progress=False, share_prefix=share_prefix
        )
        pd.testing.assert_frame_equal(other, reference)
    # a question's samples do not depend on the other questions of its batch
    alone = S.sample_answers(adapter, questions.iloc[[3]], settings, progress=False)
    pd.testing.assert_frame_equal(
        alone, first[first["question_id"] == questions["question_id"][3]].reset_index(drop=True)
    )

    again = S.sample_answers(adapter, questions, settings, progress=False)
    pd.testing.assert_frame_equal(first, again)
    longer = S.sample_answers(
        adapter,
        questions,
        S.ConsistencySettings(**{**settings.__dict__, "k_max": 5}),
        progress=False,
    )
    pd.testing.assert_frame_equal(longer[longer["sample"] < 3].reset_index(drop=True), first)
    other_seed = S.sample_answers(
        adapter,
        questions,
        S.ConsistencySettings(**{**settings.__dict__, "seed": 8}),
        progress=False,
    )
    assert (other_seed["text"] != first["text"]).any()
    # the checkpoint's top_k=1 is overridden: samples of one question differ
    assert first.groupby("question_id")["text"].nunique().max() > 1
