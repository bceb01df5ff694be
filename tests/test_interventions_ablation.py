"""Neuron ablation: the hook, layer scaling, condition plans, a planted-signal model, Tables 5/6 rows."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import tiny_adapters
from vrp.adapters import FAMILIES
from vrp.adapters.llava import LlavaAdapter
from vrp.analysis.causal_tables import ablation_table
from vrp.interventions.ablation import (
    LastLayerReplay,
    ablate_mlp_channels,
    build_conditions,
    channel_means,
    layer_plan,
    ranked_channels,
    replays_last_layer,
    run_ablation,
    run_ablation_plans,
    scale_layers,
)
from vrp.scoring import CandidateIndex, candidate_sets, predict, predict_batch
from vrp.zoo.tokenizer import build_word_tokenizer, template_words

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

YES_WORDS = ["apple", "ball", "kite", "star"]
NO_WORDS = ["brick", "leaf", "grape", "window"]
PREFIXES = ["is it", "is there"]


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def questions() -> pd.DataFrame:
    rows = []
    for i, (prefix, word) in enumerate((p, w) for p in PREFIXES for w in YES_WORDS + NO_WORDS):
        rows.append(
            {
                "question_id": f"q{i}",
                "image_id": f"img{i % 3}",
                "image": _png(i % 3),
                "question": f"{prefix} {word}",
                "answer": "yes" if word in YES_WORDS else "no",
                "task": "presence" if i % 2 else "object_id",
                "pope_setting": "random" if i % 2 else "",
                "object": word,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tokenizer(questions):
    return build_word_tokenizer([*questions["question"], "yes", "no"], template_words())


@pytest.fixture(scope="module")
def adapters(tokenizer):
    return tiny_adapters(tokenizer, num_hidden_layers=2, seed=3)


def _mlp_outputs(adapter, questions, layer):
    captured = []
    handle = adapter.mlp_module(layer).register_forward_hook(
        lambda m, a, o: captured.append(o.detach().clone())
    )
    try:
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in questions["image"]]
        inputs = adapter.encode(images, questions["question"].tolist())
        with torch.no_grad():
            logits = adapter.model(**inputs, use_cache=False).logits
    finally:
        handle.remove()
    return captured[0], logits


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_ablation_changes_exactly_the_chosen_channels_at_every_position(
    adapters, questions, family
):
    adapter, batch = adapters[family], questions.head(3)
    channels = [3, 50, 127]
    clean, clean_logits = _mlp_outputs(adapter, batch, 1)
    with ablate_mlp_channels(adapter, 1, channels):
        ablated, ablated_logits = _mlp_outputs(
            adapter, batch, 1
        )  # recorder runs after the ablation hook
    assert (ablated[..., channels] == 0).all()
    assert (
        (clean[..., channels] != 0).any(dim=-1).all()
    )  # the chosen channels were live at every position
    others = [c for c in range(adapter.hidden_size) if c not in channels]
    assert torch.equal(ablated[..., others], clean[..., others])
    assert not torch.allclose(ablated_logits, clean_logits)  # it reaches the answer
    after, after_logits = _mlp_outputs(adapter, batch, 1)
    assert torch.equal(after, clean) and torch.equal(after_logits, clean_logits)  # hook removed


def test_mean_replacement_and_bypass(adapters, questions):
    adapter, batch = adapters["paligemma"], questions.head(2)
    values = torch.tensor([0.5, -2.0])
    with ablate_mlp_channels(adapter, 0, [7, 9], values):
        replaced, _ = _mlp_outputs(adapter, batch, 0)
    assert (replaced[..., 7] == 0.5).all() and (replaced[..., 9] == -2.0).all()
    with ablate_mlp_channels(adapter, 0, None):
        bypassed, _ = _mlp_outputs(adapter, batch, 0)
    assert (bypassed == 0).all()
    means = channel_means(adapter, batch, 0, batch_size=2)
    clean, _ = _mlp_outputs(adapter, batch, 0)
    inputs = adapter.encode(
        [Image.open(io.BytesIO(b)) for b in batch["image"]], batch["question"].tolist()
    )
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(means, clean[real].mean(0), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 128\)"):
        with ablate_mlp_channels(adapter, 0, [128]):
            pass


def test_scale_layers_maps_the_papers_llava_layers_to_each_depth():
    paper = [10, 17, 21, 27, 29, 31]
    assert scale_layers(paper, 32, 32) == paper
    assert scale_layers(paper, 18, 32) == [5, 9, 12, 15, 16, 17]  # PaliGemma's 18 layers
    assert scale_layers(paper, 28, 32) == [9, 15, 18, 24, 25, 27]  # Qwen2-VL's 28 layers
    assert scale_layers(paper, 4, 32) == [1, 2, 3]  # the tiny zoo; duplicates dropped
    assert scale_layers([-1, 0], 4, None) == [3, 0]
    assert layer_plan(4, paper, 32, 31) == {
        "num_layers": 4,
        "k_sweep_layer": 3,
        "sweep_layers": [1, 2, 3],
    }
    with pytest.raises(ValueError, match="does not exist"):
        scale_layers([4], 4, None)


def _ranking(layer: int, top: list[int], hidden: int = 128, first_rank: int = 0) -> pd.DataFrame:
    rest = [c for c in range(hidden) if c not in top]
    channels = top + rest
    weights = np.r_[np.linspace(3, 2, len(top)), np.zeros(len(rest))]
    return pd.DataFrame(
        {
            "layer": layer,
            "channel": channels,
            "weight": weights,
            "abs_weight": np.abs(weights),
            "rank": np.arange(len(channels)) + first_rank,
        }
    )


def test_conditions_from_plans():
    ranking = pd.concat([_ranking(1, [40, 5, 17]), _ranking(0, [1, 2, 3])])
    assert ranked_channels(ranking, 1, 2) == [40, 5]
    assert ranked_channels(ranking.assign(rank=ranking["rank"] + 1), 1, 2) == [
        40,
        5,
    ]  # 1-based ranks too
    conds = build_conditions(
        {"kind": "top_k", "k": 3, "random_seeds": [0, 1]}, 1, ranking, 128, global_seed=0
    )
    assert [c.condition for c in conds] == ["top_k", "random_k", "random_k"]
    assert conds[0].channels == (40, 5, 17)
    for c in conds[1:]:
        assert len(c.channels) == 3 and not set(c.channels) & {40, 5, 17}
    assert conds[1].channels != conds[2].channels
    again = build_conditions(
        {"kind": "top_k", "k": 3, "random_seeds": [0, 1]}, 1, ranking, 128, global_seed=0
    )
    assert again == conds  # deterministic from the seeds
    (single,) = build_conditions({"kind": "single", "rank": 2}, 1, ranking, 128)
    assert single.channels == (5,) and single.rank == 2
    fractions = build_conditions(
        {"kind": "random_fraction", "fraction": 0.25, "random_seeds": [0, 1, 2]}, 0, None, 128
    )
    assert [len(c.channels) for c in fractions] == [32, 32, 32] and len(
        {c.channels for c in fractions}
    ) == 3
    (bypass,) = build_conditions({"kind": "bypass"}, 0, None, 128)
    assert bypass.channels is None and bypass.labels(128)["n_channels"] == 128
    with pytest.raises(ValueError, match="no channels for decoder layer 3"):
        build_conditions({"kind": "top_k", "k": 3}, 3, ranking, 128)


PLANTED = [5, 17, 40]  # the channels of layer 1's MLP output that carry the answer
OBJECT_CHANNEL = 0  # the residual channel of the last word's embedding that says yes (+) or no (-)


@pytest.fixture(scope="module")
def planted(tokenizer):
    """A tiny LLaVA whose yes/no answer is carried only by channels PLANTED of layer 1's MLP output.

    Attention outputs and every other MLP are zeroed, so the last token's residual is its own
    embedding plus layer 1's MLP. The prompt ends with the object word, whose embedding has +3 / -3
    on OBJECT_CHANNEL; layer 1's MLP reads that sign and writes it (odd function) to PLANTED, which
    the unembedding reads: "yes" = +1 and "no" = -1 on PLANTED, 0 elsewhere.
    """
    tiny = LlavaAdapter.build_tiny(tokenizer, {"num_hidden_layers": 2}, seed=4)
    adapter = LlavaAdapter(
        tiny.model, tiny.processor, prompt_template="USER: {image}\nASSISTANT: {question}"
    )
    embed = adapter.input_embeddings().weight
    assert adapter.lm_head().weight is embed  # tied: the same matrix reads and writes
    yes, no = (adapter.form_token_ids(word, adapter.answer_separator)[0] for word in ("yes", "no"))
    with torch.no_grad():
        for layer in adapter.decoder_layers():
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed[:, [OBJECT_CHANNEL, *PLANTED]] = 0.0
        embed[[yes, no]] = 0.0
        embed[yes, PLANTED], embed[no, PLANTED] = 1.0, -1.0
        for word in YES_WORDS + NO_WORDS:
            (token,) = tokenizer(word, add_special_tokens=False)["input_ids"]
            embed[token, OBJECT_CHANNEL] = 3.0 if word in YES_WORDS else -3.0
        mlp = adapter.mlp_module(1)
        for unit, sign in ((0, 1.0), (1, -1.0)):
            mlp.gate_proj.weight[unit].zero_()
            mlp.up_proj.weight[unit].zero_()
            mlp.gate_proj.weight[unit, OBJECT_CHANNEL] = 4.0 * sign
            mlp.up_proj.weight[unit, OBJECT_CHANNEL] = 4.0 * sign
            mlp.down_proj.weight[PLANTED, unit] = sign
    return adapter


def test_planted_signal_top_k_ablation_drops_accuracy_random_does_not(planted, questions):
    candidates = {"object_id": ["no", "yes"], "presence": ["no", "yes"]}
    ranking = pd.concat([_ranking(1, PLANTED), _ranking(0, [1, 2, 3])])
    conditions = build_conditions(
        {"kind": "top_k", "k": 3, "random_seeds": [0, 1, 2]}, 1, ranking, 128
    )
    conditions += build_conditions({"kind": "single", "rank": 1}, 1, ranking, 128)
    baseline = predict(planted, questions, candidates, batch_size=8)
    assert baseline["correct"].all()  # the planted circuit answers every question
    runs = run_ablation(planted, questions, candidates, conditions, batch_size=8)
    table = ablation_table(baseline, runs, n_boot=200)
    overall = table[table["subset"] == "all"].set_index(["condition", "seed"])
    assert overall.loc[("top_k", -1), "accuracy"] == 50.0  # every "yes" question now ties -> "no"
    assert overall.loc[("top_k", -1), "drop_pp"] == 50.0
    assert overall.loc[("top_k", -1), "right_to_wrong"] == 8
    assert overall.loc[("top_k", -1), "mcnemar_p"] == pytest.approx(2 * 0.5**8)
    for seed in (0, 1, 2):
        assert overall.loc[("random_k", seed), "drop_pp"] == 0.0
        assert overall.loc[("random_k", seed), "mcnemar_p"] == 1.0
    assert overall.loc[("single", -1), "drop_pp"] == 0.0  # two planted channels still carry it
    assert overall.loc[("baseline", -1), "accuracy"] == 100.0
    by_task = table[(table["condition"] == "top_k")].set_index("subset")
    assert set(by_task.index) == {"all", "object_id", "presence"}
    assert by_task.loc["object_id", "n"] == 8 and by_task.loc["object_id", "drop_pp"] == 50.0
    assert table.loc[table["condition"] == "top_k", "channels"].iloc[0] == "5 17 40"

    # mean replacement: layer 1's MLP is ~0 except at object words, so its mean kills the signal too
    mean_runs = run_ablation(
        planted, questions, candidates, conditions[:1], mode="mean", batch_size=8
    )
    assert mean_runs["correct"].mean() < 1.0 and (mean_runs["mode"] == "mean").all()


# ------------------------------------------------------------------ the last-layer replay
REPLAY_LAYERS = 3
TWO_WORD_ANSWERS = {"apple": "red apple", "kite": "red kite"}  # "red ..." vs "window": continuation


@pytest.fixture(scope="module")
def replay_questions() -> pd.DataFrame:
    """Every task about three images, object answers of one and two words (so the scoring takes
    continuation forwards and stop probabilities), interleaved so batches mix images."""
    from conftest import synthetic_eval_questions

    table = synthetic_eval_questions(seed=5, n_eval_images=3)
    table["answer"] = table["answer"].replace(TWO_WORD_ANSWERS)
    picked = table.groupby(["image_id", "task"], sort=True).head(3)
    return picked.sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.fixture(scope="module")
def replay_adapters(replay_questions):
    words = [*replay_questions["question"], *replay_questions["answer"], "yes", "no"]
    tokenizer = build_word_tokenizer(words, template_words())
    return tiny_adapters(tokenizer, num_hidden_layers=REPLAY_LAYERS, seed=6)


def _replay_conditions():
    last = REPLAY_LAYERS - 1
    ranking = _ranking(last, [7, 70, 100, 12, 90])
    conditions = build_conditions(
        {"kind": "top_k", "k": 5, "random_seeds": [0, 1]}, last, ranking, 128
    )
    conditions += build_conditions({"kind": "single", "rank": 1}, last, ranking, 128)
    conditions += build_conditions({"kind": "bypass"}, last, None, 128)
    conditions += build_conditions({"kind": "bypass"}, 0, None, 128)  # not the last: hooked
    return conditions


def _relative_change(a: pd.Series, b: pd.Series) -> float:
    a, b = a.to_numpy(), b.to_numpy()
    return float(np.abs(a - b).max()) / max(float(np.abs(b).max()), 1e-12)


def _assert_same_scores(replayed: pd.DataFrame, hooked: pd.DataFrame) -> None:
    assert replayed["question_id"].tolist() == hooked["question_id"].tolist()
    assert replayed["prediction"].tolist() == hooked["prediction"].tolist()
    assert _relative_change(replayed["p_answer"], hooked["p_answer"]) <= 1e-5


@pytest.mark.parametrize("share_prefix", [True, False], ids=["shared", "full"])
@pytest.mark.parametrize("family", FAMILIES)
def test_last_layer_replay_equals_the_hooked_forward(
    replay_adapters, replay_questions, family, share_prefix
):
    adapter = replay_adapters[family]
    candidates = candidate_sets(replay_questions)
    assert any(len(c.split()) > 1 for c in candidates["object_id"])
    assert CandidateIndex(adapter, candidates).needs_continuation
    conditions = _replay_conditions()
    assert [replays_last_layer(adapter, c, True) for c in conditions] == [True] * 5 + [False]
    runs = {
        replay: run_ablation(
            adapter,
            replay_questions,
            candidates,
            conditions,
            batch_size=8,
            share_prefix=share_prefix,
            replay_last_layer=replay,
        )
        for replay in (True, False)
    }
    _assert_same_scores(runs[True], runs[False])
    for mode in ("mean",):
        replayed, hooked = (
            run_ablation(
                adapter,
                replay_questions,
                candidates,
                conditions[:1],
                mode=mode,
                batch_size=8,
                share_prefix=share_prefix,
                replay_last_layer=replay,
            )
            for replay in (True, False)
        )
        _assert_same_scores(replayed, hooked)
    # the ablations change the answers' probabilities, so the comparison above has teeth
    clean = predict(adapter, replay_questions, candidates, batch_size=8)
    top_k = runs[True][runs[True]["condition"] == "top_k"].reset_index(drop=True)
    assert _relative_change(top_k["p_answer"], clean["p_answer"]) > 1e-3


def test_last_layer_replay_in_bfloat16_stays_within_its_rounding(replay_questions):
    words = [*replay_questions["question"], *replay_questions["answer"], "yes", "no"]
    tokenizer = build_word_tokenizer(words, template_words())
    adapter = LlavaAdapter.build_tiny(tokenizer, {"num_hidden_layers": REPLAY_LAYERS}, seed=6)
    adapter.model.to(torch.bfloat16)
    candidates = candidate_sets(replay_questions)
    conditions = _replay_conditions()[:1]
    replayed, hooked = (
        run_ablation(
            adapter, replay_questions, candidates, conditions, batch_size=8, replay_last_layer=r
        )
        for r in (True, False)
    )
    # one bfloat16 rounding of the last residual (8 bits of mantissa; measured 4.9e-4), where a
    # wrong scheme moves the scores by far more (the float32 test above)
    assert _relative_change(replayed["p_answer"], hooked["p_answer"]) <= 1e-2
    assert replayed["prediction"].tolist() == hooked["prediction"].tolist()


def test_plans_in_one_sweep_equal_each_plan_alone(replay_adapters, replay_questions):
    adapter = replay_adapters["qwen2vl"]
    candidates = candidate_sets(replay_questions)
    conditions = _replay_conditions()
    plans = [conditions[:3], conditions[3:4], conditions[4:]]
    together = run_ablation_plans(adapter, replay_questions, candidates, plans, batch_size=8)
    assert [len(frame) for frame in together] == [len(replay_questions) * len(p) for p in plans]
    for plan, frame in zip(plans, together):
        alone = run_ablation(adapter, replay_questions, candidates, plan, batch_size=8)
        pd.testing.assert_frame_equal(frame, alone)


def test_a_replay_that_drops_the_edit_or_loses_step_is_caught(replay_adapters, replay_questions):
    adapter = replay_adapters["llava"]
    candidates = candidate_sets(replay_questions)
    batch = replay_questions.head(8)
    index = CandidateIndex(adapter, candidates)
    rows = list(range(len(batch)))
    replay = LastLayerReplay(adapter)
    with replay.recording():
        clean = predict_batch(adapter, index, batch, rows, True)
    with replay.replaying(lambda m: m):  # the identity edit gives the unablated scores back
        same = predict_batch(adapter, index, batch, rows, True)
    _assert_same_scores(same, clean)
    with pytest.raises(AssertionError):  # a replay that ignored the edit would be caught
        with replay.replaying(lambda m: torch.zeros_like(m)):
            bypassed = predict_batch(adapter, index, batch, rows, True)
        _assert_same_scores(bypassed, clean)
    with pytest.raises(RuntimeError, match="not the recorded one"):
        with replay.replaying(lambda m: m):
            predict_batch(adapter, index, batch, rows[:4], True)
    with pytest.raises(RuntimeError, match="already set"):
        with adapter.standing_in(lambda **kwargs: None):
            with replay.replaying(lambda m: m):
                pass
