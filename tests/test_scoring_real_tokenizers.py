"""Answer scoring on the real vocabularies of every family (LLaVA: Llama-2; Qwen2-VL, Qwen2.5-VL:
Qwen; PaliGemma, Gemma 3: Gemma).

* Planted logits: for every COCO category name, the counts 0..10 and every case form of yes/no,
  a near-certain sequence planted on ONE surface form makes that answer the prediction, in every
  family -- including forms whose first token other candidates share (Llama's bare "▁"
  before digits, "baseball bat" / "baseball glove").
* The fast path (continuations over the prompt's KV cache, padded, chunked) equals a plain
  full-sequence forward of prompt + form for tiny random-init models of the real classes (float32).

The tokenizers come from scripts/fetch_tokenizers.sh; a missing one FAILS
(tests/real_tokenizers.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from real_tokenizers import family_tokenizer
from vrp import scoring
from vrp.adapters import FAMILIES, get_adapter_class
from vrp.benchmark.coco import COCO_CATEGORY_NAMES
from vrp.prompt_pass import PromptState, full_pass, prompt_passes
from vrp.scoring import CandidateIndex, score_answers, score_batch

CANDIDATES = {
    "presence": ["no", "yes"],
    "counting": [str(k) for k in range(11)],
    "object_id": sorted(COCO_CATEGORY_NAMES),
}
TINY = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "vision_hidden_size": 16,
    "vision_num_hidden_layers": 1,
    "vision_num_attention_heads": 2,
}
FAMILY_TINY = {
    "llava": {**TINY, "vision_intermediate_size": 32, "num_key_value_heads": 1},
    "qwen2vl": {**TINY, "num_key_value_heads": 1},
    "paligemma": {**TINY, "vision_intermediate_size": 32, "num_key_value_heads": 1, "head_dim": 8},
    "qwen25vl": {**TINY, "vision_intermediate_size": 32, "num_key_value_heads": 1},
    "gemma3": {**TINY, "vision_intermediate_size": 32, "num_key_value_heads": 1, "head_dim": 8},
}
PLANTED = 30.0


@pytest.fixture(scope="module", params=FAMILIES)
def adapter(request):
    torch.set_num_threads(1)
    family = request.param
    return get_adapter_class(family).build_tiny(
        family_tokenizer(family), FAMILY_TINY[family], seed=0
    )


@pytest.fixture(scope="module")
def index(adapter):
    return CandidateIndex(adapter, CANDIDATES)


def test_forms_cover_case_spacing_and_number_words(adapter, index):
    tokens = adapter.tokenizer.convert_ids_to_tokens
    texts = {(adapter.family, f.text) for f in index.forms["presence"]}
    for word in ("yes", "Yes", "YES", "no", "No", "NO"):
        for spacing in ("", " "):
            assert (adapter.family, spacing + word) in texts
    counting = {f.text: f for f in index.forms["counting"]}
    assert {" 3", "3", " three", " Three", "three"} <= set(counting)
    # a digit after a space is two tokens in all three vocabularies: a bare space, then the digit
    assert len(counting[" 3"].ids) == 2 and tokens(list(counting[" 3"].ids))[1] == "3"
    assert index.needs_continuation
    # "baseball bat" / "baseball glove" share their first token; both stay candidates
    objects = {f.text: f for f in index.forms["object_id"]}
    sep = adapter.answer_separator
    assert objects[sep + "baseball bat"].ids[0] == objects[sep + "baseball glove"].ids[0]


class _PlantedRow:
    """Log-probs of one continuation position: ~0 for the planted next token, -PLANTED otherwise."""

    device = torch.device("cpu")

    def __init__(self, token: int | None):
        self.token = token

    def __getitem__(self, tokens):
        tokens = torch.as_tensor(tokens)
        return torch.where(tokens == (-1 if self.token is None else self.token), 0.0, -PLANTED)


def test_planted_form_makes_its_answer_the_prediction(adapter, index, monkeypatch):
    """A planted form wins for its own answer: every case/spacing form of yes/no, and for every
    count and COCO name its form as the model would emit it (the family's separator, as written)."""
    sep = adapter.answer_separator
    targets = [("presence", form) for form in index.forms["presence"]]
    for task in ("counting", "object_id"):
        primary = {
            form.answer: form
            for form in reversed(index.forms[task])
            if form.text == sep + index.candidates[task][form.answer]
        }
        assert len(primary) == len(index.candidates[task])
        targets += [(task, primary[c]) for c in sorted(primary)]
    # the collisions of the issue are among them: " 1" vs " 10", "baseball bat" vs "baseball glove"
    planted_by_row: dict[int, tuple[int, ...]] = {}

    def planted_continuations(adapter_, prefixes, state, max_rows):
        seen = set()
        for b, prefix in prefixes:
            target = planted_by_row[b]
            for j in range(len(prefix)):
                if (b, prefix[: j + 1]) in seen:
                    continue
                seen.add((b, prefix[: j + 1]))
                on_path = target[: j + 1] == prefix[: j + 1] and len(target) > j + 1
                yield (b, prefix[: j + 1]), _PlantedRow(target[j + 1] if on_path else None)

    monkeypatch.setattr(scoring, "_continuation_log_probs", planted_continuations)
    vocab = adapter.model.get_output_embeddings().weight.shape[0]
    chunk = 32
    for start in range(0, len(targets), chunk):
        part = targets[start : start + chunk]
        planted_by_row.clear()
        planted_by_row.update({b: form.ids for b, (_, form) in enumerate(part)})
        logits = torch.zeros(len(part), vocab)
        for b, (_, form) in enumerate(part):
            logits[b, form.ids[0]] = PLANTED
        tasks = [task for task, _ in part]
        planted_state = PromptState(cache=object(), key_mask=None, next_positions=None)
        scores = score_answers(adapter, index, tasks, torch.log_softmax(logits, -1), planted_state)
        for b, (task, form) in enumerate(part):
            names = index.candidates[task]
            predicted = names[int(scores.log_mass[b].argmax())]
            assert predicted == names[form.answer], (adapter.family, form.text, predicted)
            assert scores.best_form[b][form.answer] == form
            assert float(scores.log_mass[b][form.answer].exp()) > 0.99, (adapter.family, form.text)


def _image(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _full_sequence_log_prob(adapter, image, question, ids) -> float:
    """log p(ids | prompt) from one plain forward of prompt + ids (no cache, no padding)."""
    inputs = adapter.encode([image], [question])
    n = len(ids)
    tail = torch.tensor([ids], dtype=inputs["input_ids"].dtype)
    full = dict(inputs)
    full["input_ids"] = torch.cat([inputs["input_ids"], tail], dim=1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    for key, value in adapter._per_token_answer_values.items():  # prefix-LM / M-RoPE token types
        if key in inputs:
            full[key] = torch.cat(
                [inputs[key], torch.full((1, n), value, dtype=inputs[key].dtype)], dim=1
            )
    with torch.no_grad():
        logits = adapter.model(**full, use_cache=False, logits_to_keep=n + 1).logits[0, :-1]
    log_probs = torch.log_softmax(logits.float(), -1)
    return float(sum(log_probs[j, token] for j, token in enumerate(ids)))


@pytest.mark.parametrize("share_prefix", [False, True], ids=["full", "shared_prefix"])
def test_cached_continuation_equals_full_sequence_forward(adapter, monkeypatch, share_prefix):
    """Three questions of different lengths, two about one image: every form's score is the plain
    forward of its own prompt + form, whether the prompts are one left-padded full pass or share
    each image's prefix (right-padded suffixes, whose pads sit between prompt and continuation);
    continuation rows in chunks of 5. The prediction is the reference's best answer."""
    candidates = {
        "counting": CANDIDATES["counting"],
        "object_id": ["baseball bat", "baseball glove", "hot dog", "teddy bear", "person"],
    }
    index = CandidateIndex(adapter, candidates)
    questions = [
        "How many dogs are there?",
        "What is the object in the top left of the picture?",
        "How many dogs are there in this photograph taken outdoors?",
    ]
    tasks = ["counting", "object_id", "counting"]
    images = [_image(1), _image(2), _image(1)]
    monkeypatch.setattr(scoring, "DEFAULT_MAX_CONTINUATION_ROWS", 5)
    passes = list(prompt_passes(adapter, images, questions, True, share_prefix))
    shared = share_prefix and adapter.shares_prefix
    assert len(passes) == (2 if shared else 1)
    for rows, prompt in passes:
        if not shared:
            assert not prompt.state.key_mask.all()  # the shorter questions are left-padded
        elif len(rows) > 1:
            assert not prompt.state.key_mask.all()  # and here right-padded after the prefix
        with torch.no_grad():
            scores = score_answers(
                adapter,
                index,
                [tasks[r] for r in rows],
                torch.log_softmax(prompt.logits.float(), -1),
                prompt.state,
                max_rows=5,
            )
        for k, b in enumerate(rows):
            forms = index.forms[tasks[b]]
            reference = torch.tensor(
                [
                    _full_sequence_log_prob(adapter, images[b], questions[b], list(f.ids))
                    for f in forms
                ]
            )
            # a batched prompt pass differs from an unpadded one at float32 rounding level
            torch.testing.assert_close(scores.form_log_probs[k], reference, atol=1e-4, rtol=1e-5)
            owner = torch.tensor([f.answer for f in forms])
            n_candidates = len(candidates[tasks[b]])
            mass = torch.stack(
                [torch.logsumexp(reference[owner == c], 0) for c in range(n_candidates)]
            )
            torch.testing.assert_close(scores.log_mass[k], mass, atol=1e-4, rtol=1e-5)
    frame = score_batch(
        adapter,
        index,
        images,
        questions,
        tasks,
        ["3", "baseball glove", "2"],
        share_prefix=share_prefix,
    )
    for b, task in enumerate(tasks):
        reference = torch.tensor(
            [
                _full_sequence_log_prob(adapter, images[b], questions[b], list(f.ids))
                for f in index.forms[task]
            ]
        )
        owner = torch.tensor([f.answer for f in index.forms[task]])
        best = max(
            range(len(candidates[task])),
            key=lambda c: float(torch.logsumexp(reference[owner == c], 0)),
        )
        assert frame["prediction"][b] == candidates[task][best]


def test_unpadded_continuation_matches_to_float32_precision(adapter):
    """One question, no padding: the cache path and the full forward agree to ~1e-5."""
    index = CandidateIndex(adapter, {"counting": CANDIDATES["counting"]})
    image, question = _image(3), "How many cats are there?"
    inputs = adapter.encode([image], [question])
    with torch.no_grad():
        prompt = full_pass(adapter, inputs, True)
        scores = score_answers(
            adapter, index, ["counting"], torch.log_softmax(prompt.logits, -1), prompt.state
        )
    multi = [k for k, f in enumerate(index.forms["counting"]) if len(f.ids) > 1]
    assert multi
    reference = torch.tensor(
        [
            _full_sequence_log_prob(adapter, image, question, list(index.forms["counting"][k].ids))
            for k in multi
        ]
    )
    torch.testing.assert_close(scores.form_log_probs[0][multi], reference, atol=1e-5, rtol=1e-6)


def test_greedy_generation_runs_with_the_real_tokenizer(adapter):
    texts = scoring.greedy_generations(adapter, [_image(4)], ["Is there a dog?"], max_new_tokens=3)
    assert len(texts) == 1 and isinstance(texts[0], str)


def test_extractor_reads_the_best_forms_first_token(adapter):
    """The one-pass extraction on a real vocabulary: multi-token answers scored, and the lens margin
    and direct logit contributions read the first token of the best-scoring form."""
    import io

    import pandas as pd

    from vrp.extract import ExtractionSettings, Extractor

    def png(seed):
        buffer = io.BytesIO()
        _image(seed).save(buffer, format="PNG")
        return buffer.getvalue()

    batch = pd.DataFrame(
        {
            "question_id": ["q0", "q1", "q2"],
            "image_id": ["i0", "i1", "i2"],
            "image": [png(5), png(6), png(7)],
            "question": [
                "How many dogs are there?",
                "What is the object in the top left?",
                "Is there a cat?",
            ],
            "task": ["counting", "object_id", "presence"],
            "answer": ["10", "baseball glove", "yes"],
            "pope_setting": ["", "", "random"],
            "object": ["dog", "baseball glove", "cat"],
        }
    )
    candidates = {
        "counting": CANDIDATES["counting"],
        "object_id": ["baseball bat", "baseball glove", "person"],
        "presence": ["no", "yes"],
    }
    extractor = Extractor(
        adapter,
        candidates,
        ExtractionSettings(
            batch_size=4,
            shard_size=4,
            per_head=False,
            generation_fraction=1.0,
            generation_max_new_tokens=2,
        ),
    )
    samples, arrays = extractor.run_batch(batch)
    forms = {(task, f.text): f for task, fs in extractor.index.forms.items() for f in fs}
    for row in samples.itertuples():
        assert row.answer_token_id == forms[(row.task, row.answer_form)].ids[0]
        assert row.prediction_token_id == forms[(row.task, row.prediction_form)].ids[0]
        assert row.prediction in candidates[row.task] and 0 < row.confidence <= 1
    inputs = adapter.encode(decode_images_of(batch), batch["question"].tolist())
    with torch.no_grad():
        logits = adapter.model(**inputs).logits[:, -1].float()
    ids = torch.tensor(samples["answer_token_id"].to_numpy())
    token = logits.gather(1, ids[:, None]).squeeze(1)
    others = logits.scatter(1, ids[:, None], float("-inf")).max(1).values
    np.testing.assert_allclose(arrays["lens_margin"][:, -1], (token - others).numpy(), atol=1e-4)
    assert samples["generation_checked"].all()
    total = arrays["embed_logit"] + arrays["attn_logit"].sum(1) + arrays["mlp_logit"].sum(1)
    np.testing.assert_allclose(total, token.numpy(), rtol=1e-4, atol=1e-4)


def decode_images_of(batch):
    from vrp.benchmark.images import decode_images

    return decode_images(batch["image"])


def test_a_missing_tokenizer_fails_naming_the_fetch_command(monkeypatch, tmp_path):
    import real_tokenizers

    monkeypatch.setattr(real_tokenizers, "TOKENIZER_DIR", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="bash scripts/fetch_tokenizers.sh"):
        real_tokenizers.tokenizer_folder("llama2")


def test_last_layer_ablation_replay_equals_the_hooked_forward(adapter):
    """The replay (vrp.interventions.ablation) over real vocabularies: multi-token COCO names whose
    first tokens other candidates share, so continuation forwards are replayed too."""
    import io

    import pandas as pd

    from vrp.interventions.ablation import build_conditions, run_ablation

    def png(seed):
        pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return buffer.getvalue()

    rows = [
        ("object_id", "What is the object in the image?", "baseball bat"),
        ("object_id", "What is the object in the image?", "traffic light"),
        ("presence", "Is there a dog in the image?", "yes"),
        ("counting", "How many dogs are there?", "2"),
    ]
    questions = pd.DataFrame(
        [
            {
                "question_id": f"q{i}",
                "image_id": f"img{i % 2}",
                "image": png(i % 2),
                "question": question,
                "answer": answer,
                "task": task,
                "pope_setting": "",
            }
            for i, (task, question, answer) in enumerate(rows)
        ]
    )
    assert CandidateIndex(adapter, CANDIDATES).needs_continuation
    last = adapter.num_layers - 1
    conditions = build_conditions({"kind": "bypass"}, last, None, adapter.hidden_size)
    replayed, hooked = (
        run_ablation(adapter, questions, CANDIDATES, conditions, batch_size=4, replay_last_layer=r)
        for r in (True, False)
    )
    assert replayed["prediction"].tolist() == hooked["prediction"].tolist()
    a, b = replayed["p_answer"].to_numpy(), hooked["p_answer"].to_numpy()
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
