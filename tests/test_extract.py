"""The one-pass extraction against the model's own outputs, and its resume-after-kill guarantee."""

import filecmp

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import synthetic_eval_questions, tiny_adapter
from vrp.adapters import FAMILIES
from vrp.benchmark.images import decode_images
from vrp.extract import ExtractionSettings, Extractor, extract
from vrp.scoring import candidate_sets, generation_selected
from vrp.shards import load_array


@pytest.fixture(scope="module")
def questions() -> pd.DataFrame:
    return synthetic_eval_questions(seed=3, n_eval_images=4)


@pytest.fixture(scope="module", params=FAMILIES)
def adapter(request, tokenizer):
    return tiny_adapter(request.param, tokenizer, num_hidden_layers=3, seed=1)


def _batch(questions, n=6):
    # mixed tasks and lengths, so left padding and per-task candidates are exercised
    return questions.groupby("task", sort=True).head(2).head(n).reset_index(drop=True)


def test_readouts_match_the_models_own_outputs(adapter, questions):
    batch = _batch(questions)
    extractor = Extractor(
        adapter, candidate_sets(questions), ExtractionSettings(batch_size=8, shard_size=8)
    )
    samples, arrays = extractor.run_batch(batch)
    inputs = adapter.encode(decode_images(batch["image"]), batch["question"].tolist())
    with torch.no_grad():
        out = adapter.model(
            **inputs, output_attentions=True, output_hidden_states=True, use_cache=False
        )
    layers = adapter.num_layers
    n = len(batch)
    assert arrays["hidden"].shape == (n, layers + 1, adapter.hidden_size)

    # residual stream at the last token: identical to hidden_states, whose last entry is normed
    for layer in range(layers):
        np.testing.assert_allclose(
            arrays["hidden"][:, layer], out.hidden_states[layer][:, -1].numpy(), atol=1e-5
        )
    final = adapter.final_norm()(torch.from_numpy(arrays["hidden"][:, -1]))
    np.testing.assert_allclose(
        final.detach().numpy(), out.hidden_states[-1][:, -1].numpy(), atol=1e-5
    )

    # image attention from the hooks equals output_attentions' last row over the image span
    mask = adapter.image_token_mask(inputs)
    for layer in range(layers):
        expected = torch.stack([out.attentions[layer][b, :, -1, mask[b]].mean(0) for b in range(n)])
        np.testing.assert_allclose(arrays["image_attention"][:, layer], expected.numpy(), atol=1e-6)
    assert arrays["image_attention"].shape[-1] == 64

    # logit lens at the last layer is the model's logits; direct attributions add up exactly
    logits = out.logits[:, -1].float()
    answer_ids = samples["answer_token_id"].tolist()
    # one-token-per-word vocabulary: the answer token is the answer's own word
    assert answer_ids == adapter.tokenizer.convert_tokens_to_ids(batch["answer"].tolist())
    answer_logit = logits[torch.arange(n), answer_ids]
    others = logits.clone()
    others[torch.arange(n), answer_ids] = -torch.inf
    np.testing.assert_allclose(
        arrays["lens_margin"][:, -1], (answer_logit - others.max(-1).values).numpy(), atol=1e-4
    )
    # the deployable margin reads the predicted token: at the last layer, its logit minus the best other
    predicted_ids = samples["prediction_token_id"].tolist()
    predicted_logit = logits[torch.arange(n), predicted_ids]
    others = logits.clone()
    others[torch.arange(n), predicted_ids] = -torch.inf
    np.testing.assert_allclose(
        arrays["lens_margin_pred"][:, -1],
        (predicted_logit - others.max(-1).values).numpy(),
        atol=1e-4,
    )
    correct = samples["correct"].to_numpy()
    np.testing.assert_allclose(
        arrays["lens_margin_pred"][correct], arrays["lens_margin"][correct], atol=1e-5
    )
    total = arrays["embed_logit"] + arrays["attn_logit"].sum(1) + arrays["mlp_logit"].sum(1)
    np.testing.assert_allclose(total, answer_logit.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        arrays["head_logit"].sum(-1), arrays["attn_logit"], rtol=1e-4, atol=1e-5
    )

    # greedy prediction = best candidate logit; grids recorded
    assert (samples["grid_rows"] == 8).all() and (samples["grid_cols"] == 8).all()
    assert samples["correct"].dtype == bool
    assert np.isfinite(arrays["lens_margin_blank"]).all()
    assert (arrays["visual_update_norm"] > 0).all()


def test_killed_run_resumes_to_identical_files(adapter, questions, tmp_path, monkeypatch):
    subset = questions.head(24).reset_index(drop=True)
    settings = ExtractionSettings(batch_size=4, shard_size=8, per_head=False)
    spec = {"family": adapter.family, "path": "tiny"}
    clean = tmp_path / "clean"
    extract(adapter, subset, clean, spec, settings, progress=False)

    resumed = tmp_path / "resumed"
    calls = {"n": 0}
    original = Extractor.run_batch

    def dying(self, batch):
        calls["n"] += 1
        if calls["n"] == 5:  # inside the third shard: two shards are complete
            raise KeyboardInterrupt("killed")
        return original(self, batch)

    monkeypatch.setattr(Extractor, "run_batch", dying)
    with pytest.raises(KeyboardInterrupt):
        extract(adapter, subset, resumed, spec, settings, progress=False)
    assert sorted(p.name for p in (resumed / "shards").iterdir()) == ["00000", "00001"]
    assert not (resumed / "manifest.json").exists()

    monkeypatch.setattr(Extractor, "run_batch", original)
    calls["n"] = 0
    counted = {"n": 0}

    def counting(self, batch):
        counted["n"] += 1
        return original(self, batch)

    monkeypatch.setattr(Extractor, "run_batch", counting)
    extract(adapter, subset, resumed, spec, settings, progress=False)
    assert counted["n"] == 2  # only the missing shard's two batches ran

    clean_files = sorted(p.relative_to(clean) for p in clean.rglob("*") if p.is_file())
    resumed_files = sorted(p.relative_to(resumed) for p in resumed.rglob("*") if p.is_file())
    assert clean_files == resumed_files
    for rel in clean_files:
        assert filecmp.cmp(clean / rel, resumed / rel, shallow=False), rel
    hidden = load_array(resumed / "manifest.json", "hidden")
    assert hidden.shape[0] == 24


def test_changed_settings_do_not_reuse_stale_shards(adapter, questions, tmp_path):
    subset = questions.head(8).reset_index(drop=True)
    spec = {"family": adapter.family, "path": "tiny"}
    for per_head in (False, True):  # the second run asks for arrays the first one's shards lack
        settings = ExtractionSettings(batch_size=4, shard_size=8, per_head=per_head)
        manifest = extract(adapter, subset, tmp_path, spec, settings, progress=False)
    assert "head_logit" in manifest["arrays"]


def test_retrained_checkpoint_does_not_reuse_shards(adapter, questions, tmp_path):
    subset = questions.head(4).reset_index(drop=True)
    checkpoint = tmp_path / "checkpoint"
    adapter.save(checkpoint)
    spec = {"family": adapter.family, "path": str(checkpoint)}
    settings = ExtractionSettings(batch_size=4, shard_size=4, per_head=False)
    first = extract(adapter, subset, tmp_path / "out", spec, settings, progress=False)
    with torch.no_grad():
        adapter.lm_head().weight.add_(0.5)  # "retraining": new weights under the same path
    adapter.save(checkpoint)
    second = extract(adapter, subset, tmp_path / "out", spec, settings, progress=False)
    assert first["fingerprint"] != second["fingerprint"]


def test_generation_cross_check_and_answer_kernel_are_recorded(adapter, questions, tmp_path):
    """Every question generated (fraction 1) and parsed; answers scored with sdpa, attention read
    with eager; the manifest records kernels, prompt, forms and the agreement."""
    subset = _batch(questions, n=8)
    settings = ExtractionSettings(
        batch_size=4,
        shard_size=8,
        per_head=False,
        generation_fraction=1.0,
        generation_max_new_tokens=2,
        score_attn_implementation="sdpa",
    )
    spec = {"family": adapter.family, "path": "tiny"}
    manifest = extract(adapter, subset, tmp_path, spec, settings, progress=False)
    samples = pd.read_parquet(tmp_path / "samples.parquet")
    assert samples["generation_checked"].all()
    assert samples["generated_text"].map(lambda t: isinstance(t, str)).all()
    # float32 tiny models: the two kernels give the same answers
    assert (samples["prediction"] == samples["prediction_readout_kernel"]).all()
    scoring = manifest["answer_scoring"]
    assert scoring["answer_attention_kernel"] == "sdpa"
    assert scoring["readout_attention_kernel"] == "eager"
    assert adapter.model.config._attn_implementation == "eager"  # restored after the scoring pass
    assert scoring["kernel_agreement"] == 1.0
    agreement = float((samples["generated_answer"] == samples["prediction"]).mean())
    assert scoring["generation_check"]["n_checked"] == len(samples)
    assert scoring["generation_check"]["agreement"] == pytest.approx(agreement)
    assert set(scoring["answer_forms"]) == set(subset["task"])


def test_generation_sample_default_is_a_seeded_share(adapter, questions):
    settings = ExtractionSettings(batch_size=64, shard_size=64, per_head=False)  # fraction 0.1
    extractor = Extractor(adapter, candidate_sets(questions), settings)
    batch = questions[questions["task"] != "caption"].head(64).reset_index(drop=True)
    samples, _ = extractor.run_batch(batch)
    expected = generation_selected(batch["question_id"].tolist(), 0.1, seed=0)
    np.testing.assert_array_equal(samples["generation_checked"].to_numpy(), expected)
    assert 0 < expected.sum() < 20
    assert (samples.loc[~expected, "generated_answer"] == "").all()
    assert (samples.loc[expected, "generated_text"].map(len) >= 0).all()
