"""Shared-prefix prompt passes against the plain full forward: same answers, same arrays.

Tiny float32 models of every family that shares prefixes (the causal decoders), questions of
different lengths about several images mixed in one batch. A family that cannot share (PaliGemma's
prefix-LM) must take the full pass; a wrong position offset after the prefix must be caught.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import synthetic_eval_questions
from vrp.adapters import FAMILIES, get_adapter_class
from vrp.benchmark.images import decode_images
from vrp.extract import ExtractionSettings, Extractor
from vrp.prompt_pass import (
    generate,
    generate_shared,
    image_groups,
    pass_record,
    prompt_passes,
    select_rows,
    uses_shared_prefix,
)
from vrp.scoring import candidate_sets, greedy_generations, image_batches, predict
from vrp.zoo.tokenizer import questions_tokenizer

SHARING = [f for f in FAMILIES if get_adapter_class(f).shares_prefix]
RELATIVE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def questions() -> pd.DataFrame:
    return synthetic_eval_questions(seed=5, n_eval_images=3)


@pytest.fixture(scope="module")
def tokenizer(questions):
    return questions_tokenizer(questions)


def _tiny(family, tokenizer):
    torch.set_num_threads(1)
    return get_adapter_class(family).build_tiny(tokenizer, {"num_hidden_layers": 3}, seed=2)


@pytest.fixture(scope="module", params=SHARING)
def adapter(request, tokenizer):
    return _tiny(request.param, tokenizer)


def _mixed_batch(questions: pd.DataFrame, n: int = 14) -> pd.DataFrame:
    """Rows of three images interleaved (groups are not contiguous), every task, so the question
    lengths differ within an image's group."""
    scored = questions[questions["task"] != "caption"]
    picked = scored.groupby(["image_id", "task"], sort=True).head(1)
    return picked.sample(frac=1.0, random_state=0).head(n).reset_index(drop=True)


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over max |b|, NaN padding (which must coincide) ignored."""
    assert np.array_equal(np.isnan(a), np.isnan(b))
    real = ~np.isnan(b)
    scale = max(float(np.abs(b[real]).max()), 1e-12)
    return float(np.abs(a[real] - b[real]).max()) / scale


def _run(adapter, questions, batch, share: bool):
    settings = ExtractionSettings(
        batch_size=16, shard_size=16, prefix_sharing=share, generation_fraction=0.0
    )
    return Extractor(adapter, candidate_sets(questions), settings).run_batch(batch)


def _worst(adapter, questions, batch) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    full_samples, full_arrays = _run(adapter, questions, batch, share=False)
    shared_samples, shared_arrays = _run(adapter, questions, batch, share=True)
    assert set(full_arrays) == set(shared_arrays)
    errors = {name: _relative_error(shared_arrays[name], full_arrays[name]) for name in full_arrays}
    return full_samples, shared_samples, errors


def test_the_batch_mixes_images_and_lengths(adapter, questions):
    batch = _mixed_batch(questions)
    groups = image_groups(decode_images(batch["image"]))
    assert len(groups) == 3 and any(g != list(range(g[0], g[0] + len(g))) for g in groups)
    lengths = [len(adapter.tokenizer(q)["input_ids"]) for q in batch["question"]]
    assert len(set(lengths)) > 2


def test_shared_prefix_extraction_equals_the_full_forward(adapter, questions):
    batch = _mixed_batch(questions)
    full, shared, errors = _worst(adapter, questions, batch)
    for column in ("prediction", "blank_prediction", "prediction_token_id", "answer_token_id"):
        assert shared[column].tolist() == full[column].tolist(), column
    for column in ("confidence", "p_answer"):
        np.testing.assert_allclose(shared[column], full[column], rtol=RELATIVE_TOLERANCE, atol=1e-7)
    # entropy (nats) and the top-2 margin (logits) against the batch's largest, as the arrays below:
    # a peaked row's entropy near 0 moves by ~1e-6 under the passes' float32 noise in the logits
    for column in ("entropy", "margin_top2"):
        error = _relative_error(shared[column].to_numpy(), full[column].to_numpy())
        assert error <= RELATIVE_TOLERANCE, (column, error)
    assert shared[["grid_rows", "grid_cols"]].equals(full[["grid_rows", "grid_cols"]])
    # every array the analyses read: hidden states, attention per layer and head, lens margins,
    # direct logit contributions, the visual tokens' update norms (from the prefix pass)
    assert {
        "hidden",
        "head_attention",
        "lens_margin",
        "lens_margin_blank",
        "head_logit",
        "visual_update_norm",
    } <= set(errors)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= RELATIVE_TOLERANCE, (worst, errors)


def test_a_wrong_position_offset_is_caught(adapter, questions, monkeypatch):
    """The suffix continuing one position late (Qwen2-VL: its rope deltas dropped, so the suffix
    would start at the prefix length, not at the compressed M-RoPE position) changes the arrays
    far beyond the tolerance: the comparison above can fail."""
    batch = _mixed_batch(questions, n=6)
    cls = type(adapter)
    honest = cls.next_positions

    def dropped_offset(self, inputs):
        # plain prefix length: what a 1-D RoPE model without rope deltas would use
        length = inputs["input_ids"].shape[1]
        if torch.equal(honest(self, inputs), torch.full_like(honest(self, inputs), length)):
            return honest(self, inputs) + 1  # a 1-D model: shift by one instead
        return torch.full_like(honest(self, inputs), length)

    monkeypatch.setattr(cls, "next_positions", dropped_offset)
    _, _, errors = _worst(adapter, questions, batch)
    assert max(errors.values()) > 100 * RELATIVE_TOLERANCE, errors


def test_predict_and_greedy_generation_agree_across_paths(adapter, questions):
    batch = _mixed_batch(questions)
    candidates = candidate_sets(questions)
    full = predict(adapter, batch, candidates, batch_size=5, share_prefix=False)
    shared = predict(adapter, batch, candidates, batch_size=5, share_prefix=True)
    assert shared["question_id"].tolist() == batch["question_id"].tolist()
    assert shared["prediction"].tolist() == full["prediction"].tolist()
    np.testing.assert_allclose(shared["confidence"], full["confidence"], rtol=RELATIVE_TOLERANCE)

    images, texts = decode_images(batch["image"]), batch["question"].tolist()
    reference = _hf_greedy(adapter, images, texts, max_new_tokens=3)
    assert greedy_generations(adapter, images, texts, 3, share_prefix=False) == reference
    assert greedy_generations(adapter, images, texts, 3, share_prefix=True) == reference


def _hf_greedy(adapter, images, texts, max_new_tokens):
    """transformers' own greedy decoding, one unpadded prompt at a time (the reference)."""
    out = []
    for image, text in zip(images, texts):
        inputs = adapter.encode([image], [text])
        with torch.no_grad():
            ids = adapter.model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=adapter.tokenizer.pad_token_id,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        new = ids[0, inputs["input_ids"].shape[1] :]
        out.append(adapter.tokenizer.decode(new, skip_special_tokens=True).strip())
    return out


def test_the_prefix_is_the_templates_and_holds_the_image(adapter, questions):
    batch = _mixed_batch(questions)
    images = decode_images(batch["image"])
    prefixes = []
    for rows in image_groups(images):
        shared = adapter.encode_shared(images[rows[0]], [batch["question"][r] for r in rows])
        ids = shared.prefix_inputs["input_ids"][0]
        image_positions = (ids == adapter.image_token_id).nonzero().flatten()
        assert image_positions.numel() == int(np.prod(adapter.expected_grid(images[rows[0]].size)))
        assert int(image_positions.max()) < shared.prefix_length
        assert not (shared.suffix_ids == adapter.image_token_id).any()
        # the same images -> the same prefix tokens for any group of questions (the template's)
        prefixes.append(ids.tolist())
        full = adapter.encode([images[rows[0]]], [batch["question"][rows[0]]])["input_ids"][
            0
        ].tolist()
        suffix = shared.suffix_ids[0][shared.suffix_mask[0].bool()].tolist()
        assert full == ids.tolist() + suffix
    assert all(p == prefixes[0] for p in prefixes)


def test_families_that_cannot_share_take_the_full_pass(tokenizer, questions):
    for family in FAMILIES:
        cls = get_adapter_class(family)
        if cls.shares_prefix:
            continue
        adapter = _tiny(family, tokenizer)
        assert not uses_shared_prefix(adapter, True)
        assert pass_record(adapter, True) == {
            "mode": "full",
            "requested": True,
            "reason": cls.prefix_sharing_note,
        }
        with pytest.raises(ValueError, match=family):
            adapter.encode_shared(decode_images(questions["image"][:1])[0], ["Is there a cat?"])
        batch = _mixed_batch(questions, n=4)
        passes = list(
            prompt_passes(
                adapter, decode_images(batch["image"]), batch["question"].tolist(), False, True
            )
        )
        assert [rows for rows, _ in passes] == [list(range(len(batch)))]


def test_generate_from_a_selected_state_leaves_the_state_reusable(adapter, questions):
    batch = _mixed_batch(questions, n=4)
    images, texts = decode_images(batch["image"]), batch["question"].tolist()
    rows, prompt = next(iter(prompt_passes(adapter, images, texts, True, True)))
    pick = torch.zeros(3, dtype=torch.long)

    def greedy(logits, step):
        return logits.argmax(-1)

    first = generate(adapter, prompt.logits[pick], select_rows(prompt.state, pick), 3, greedy)
    again = generate(adapter, prompt.logits[pick], select_rows(prompt.state, pick), 3, greedy)
    assert first == again and first[0] == first[1] == first[2]


@pytest.mark.parametrize("share", [True, False], ids=["shared", "full"])
def test_generate_shared_equals_plain_decoding_with_fewer_rows(adapter, questions, share):
    from vrp.interventions.sampling import ConsistencySettings, sample_seed, seeded_sampler

    batch = _mixed_batch(questions, n=6)
    images, texts = decode_images(batch["image"]), batch["question"].tolist()
    rows, prompt = next(iter(prompt_passes(adapter, images, texts, True, share)))
    picks = torch.arange(len(rows)).repeat_interleave(8)  # 8 samples of each prompt row
    settings = ConsistencySettings(temperature=1.5, top_p=1.0)

    def sampler():
        seeds = [sample_seed(0, f"q{int(p)}", s) for s, p in enumerate(picks)]
        return seeded_sampler(settings, [torch.Generator().manual_seed(x) for x in seeds])

    forwarded = []

    def counting(**kwargs):
        forwarded.append(int(kwargs["input_ids"].shape[0]))
        return adapter.model(**kwargs)

    plain = generate(adapter, prompt.logits[picks], select_rows(prompt.state, picks), 4, sampler())
    with adapter.standing_in(counting):
        shared = generate_shared(adapter, prompt, picks, 4, sampler())
    assert shared == plain
    assert len({tuple(t) for t in plain}) > len(rows)  # samples of a prompt row differ ...
    assert 0 < max(forwarded) < len(picks)  # ... yet each step forwards only distinct ones
    again = generate_shared(adapter, prompt, picks, 4, sampler())
    assert again == plain  # the prompt's state was left as it was


def test_image_batches_keep_images_together():
    ids = ["a", "b", "a", "c", "b", "a", "c", "c", "c", "c"]
    batches = image_batches(ids, 4)
    assert sorted(r for b in batches for r in b) == list(range(len(ids)))
    assert all(len(b) <= 4 for b in batches)
    # a's three rows in one batch, b's two, c's five split only because they exceed the size
    where = {row: k for k, batch in enumerate(batches) for row in batch}
    assert len({where[r] for r in (0, 2, 5)}) == 1 and where[1] == where[4]
    assert batches == [[0, 2, 5], [1, 4], [3, 6, 7, 8], [9]]
