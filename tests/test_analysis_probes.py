"""Tests for vrp.analysis.probes: grouped splits, planted-signal probes, neuron ranking, readout tables."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from vrp import stats
from vrp.analysis import probes as P

FAST = P.ProbeSettings(
    C=0.1, l1_C=0.1, mlp_hidden=16, mlp_max_iter=200, n_splits=5, n_boot=200, seed=0
)


@pytest.fixture(scope="module")
def planted():
    """300 questions about 100 images; correctness written into one direction of decoder layer 1 only.

    hidden has L+1 = 4 entries (embeddings, layers 0, 1, 2); hidden[:, 2] (= layer 1) carries the
    signal, everything else is noise. mlp_out channel 5 of layer 1 is shifted by +2 when correct.
    """
    rng = np.random.default_rng(0)
    n, d, layers = 300, 24, 3
    groups = np.repeat(np.arange(100), 3)
    y = (rng.random(n) < 0.45).astype(int)
    hidden = rng.normal(size=(n, layers + 1, d))
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    hidden[:, 2] += np.outer(2 * y - 1, direction) * 2.0
    mlp_out = rng.normal(size=(n, layers, d))
    mlp_out[:, 1, 5] += 2.0 * y
    return hidden, mlp_out, y, groups


def test_probe_folds_never_put_one_image_in_train_and_test(planted):
    _, _, y, groups = planted
    folds = P.probe_folds(y, groups, FAST)
    assert len(folds) == FAST.n_splits
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(len(y)))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert 0 < y[test].mean() < 1  # stratified: both classes in every test fold


def test_grouped_split_removes_the_image_leak():
    """Labels are per image and features are an image fingerprint: only a leaky split can "learn" them."""
    rng = np.random.default_rng(1)
    n_images, per_image, d = 200, 3, 256
    groups = np.repeat(np.arange(n_images), per_image)
    y = rng.permutation(np.arange(n_images) % 2)[groups]
    X = rng.normal(size=(n_images, d))[groups] + 0.3 * rng.normal(size=(len(groups), d))
    grouped = stats.probe_auroc(
        X,
        y,
        groups,
        FAST.logistic(),
        folds=P.probe_folds(y, groups, FAST),
        n_boot=100,
        in_sample=False,
    )
    leaky_folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    leaky = stats.probe_auroc(
        X, y, groups, FAST.logistic(), folds=leaky_folds, n_boot=100, in_sample=False
    )
    assert (
        leaky["auroc"] > 0.95
    )  # question-level split: siblings of a test question were trained on
    assert abs(grouped["auroc"] - 0.5) < 0.1


def test_planted_signal_found_at_its_layer_and_shuffled_labels_at_chance(planted):
    hidden, mlp_out, y, groups = planted
    table = P.layer_probes(hidden, mlp_out, y, groups, FAST)
    assert list(table.columns) == P.LAYER_COLUMNS
    logistic = table[table["probe"] == "logistic"].set_index("layer")
    assert list(logistic.index) == [-1, 0, 1, 2]  # -1 = embeddings, then decoder layers
    assert (logistic["array_index"] == logistic.index + 1).all()  # layer l reads hidden[:, l + 1]
    assert logistic.loc[1, "auroc"] > 0.97 and logistic.loc[1, "lo"] > 0.93
    assert all(abs(logistic.loc[layer, "auroc"] - 0.5) < 0.15 for layer in (-1, 0, 2))
    assert table[(table["probe"] == "mlp") & (table["layer"] == 1)]["auroc"].item() > 0.9
    l1 = table[table["probe"] == "l1"].set_index("layer")
    assert list(l1.index) == [0, 1, 2] and (l1["features"] == "mlp_out").all()
    assert l1.loc[1, "auroc"] > 0.8 and l1.loc[1, "auroc"] > l1.loc[0, "auroc"]

    peak = P.peak_summary(table)
    assert (peak["peak_layer"], peak["hidden_index"], peak["num_layers"]) == (1, 2, 3)
    assert peak["auroc"] == logistic.loc[1, "auroc"] and peak["probe"] == "logistic"

    shuffled = np.random.default_rng(7).permutation(y)
    null = P.layer_probes(
        hidden[:, 1:3], mlp_out[:, 1:2], shuffled, groups, FAST
    )  # its layer 0 = planted
    null_logistic = null[(null["probe"] == "logistic") & (null["layer"] == 0)].iloc[0]
    assert abs(null_logistic["auroc"] - 0.5) < 0.1
    # the in-sample AUROC is optimistic on noise, which is why it is only a labelled side column
    assert null_logistic["auroc_in_sample"] > null_logistic["auroc"] + 0.1


def test_layer_probes_in_worker_processes_give_the_same_table(planted):
    hidden, mlp_out, y, groups = planted
    settings = P.ProbeSettings(mlp_hidden=4, mlp_max_iter=5, n_splits=3, n_boot=20)
    one = P.layer_probes(hidden[:, :2], mlp_out[:, :1], y, groups, settings)
    two = P.layer_probes(hidden[:, :2], mlp_out[:, :1], y, groups, settings, n_jobs=2)
    pd.testing.assert_frame_equal(one, two)


def test_neuron_ranking_puts_the_planted_channel_first(planted):
    _, mlp_out, y, _ = planted
    ranking = P.neuron_ranking(mlp_out, y, l1_C=0.1, seed=0)
    assert list(ranking.columns) == [
        "layer",
        "channel",
        "weight",
        "abs_weight",
        "rank",
        "delta_act",
    ]
    assert len(ranking) == 3 * 24
    layer1 = ranking[ranking["layer"] == 1].set_index("rank")
    assert layer1.loc[0, "channel"] == 5 and layer1.loc[0, "weight"] > 0
    assert sorted(layer1.index) == list(range(24))  # ranks 0..d-1 within each layer
    assert (np.diff(layer1.sort_index()["abs_weight"].to_numpy()) <= 0).all()
    expected = mlp_out[y == 1, 1, 5].mean() - mlp_out[y == 0, 1, 5].mean()
    assert layer1.loc[0, "delta_act"] == pytest.approx(expected)
    assert expected == pytest.approx(2.0, abs=0.35)


def _samples(y, groups, rng):
    n = len(y)
    tasks = np.array(["presence", "counting", "spatial", "object_id"])[np.arange(n) % 4]
    pope = np.array(["random", "popular", "adversarial"])[(np.arange(n) // 4) % 3]
    settings = np.where(tasks == "presence", pope, "")
    return pd.DataFrame(
        {
            "question_id": [f"q{i}" for i in range(n)],
            "image_id": [f"img{g}" for g in groups],
            "task": tasks,
            "pope_setting": settings,
            "answer": "yes",
            "correct": y.astype(bool),
            "confidence": np.clip(0.5 + 0.3 * (y - 0.5) + 0.2 * rng.random(n), 0, 1),
            "entropy": rng.random(n),
            "margin_top2": rng.normal(size=n) + y,
            "grid_rows": 2,
            "grid_cols": 2,
        }
    )


@pytest.fixture(scope="module")
def scored(planted):
    _, _, y, groups = planted
    rng = np.random.default_rng(3)
    samples = _samples(y, groups, rng)
    arrays = _arrays(planted, rng, margin_signal=1.0)
    settings = P.ProbeSettings(
        mlp_hidden=8, mlp_max_iter=20, n_splits=5, n_boot=100, last_k_layers=2
    )
    attention_stats = _attention_stats(samples, rng)
    scores = P.reliability_scores(
        samples, arrays, peak_layer=1, settings=settings, attention_stats=attention_stats
    )
    return scores, samples, attention_stats


def _arrays(planted, rng, margin_signal: float) -> dict:
    """The extraction arrays of the planted questions; the logit-lens margin carries ``margin_signal`` x y."""
    hidden, mlp_out, y, _ = planted
    return {
        "hidden": hidden,
        "mlp_out": mlp_out,
        "image_attention": rng.random((len(y), 3, 4)),
        "lens_margin": rng.normal(size=(len(y), 4)) + margin_signal * y[:, None],
        "lens_margin_pred": rng.normal(size=(len(y), 4)),
    }


def _attention_stats(samples, rng):
    """Stand-in for the attention stage's stats.parquet: question ids with H_s and C_k."""
    n = len(samples)
    return pd.DataFrame(
        {
            "question_id": samples["question_id"],
            "hs": rng.random(n) * np.log(4),
            "ck": rng.integers(0, 3, n),
        }
    )


def test_reliability_scores_read_hs_and_ck_from_the_attention_stage(scored):
    scores, _, attention_stats = scored
    np.testing.assert_array_equal(scores["hs"], attention_stats["hs"])
    np.testing.assert_array_equal(scores["ck"], attention_stats["ck"])
    np.testing.assert_array_equal(scores["spatial_entropy"], -attention_stats["hs"])
    np.testing.assert_array_equal(scores["cluster_count"], -attention_stats["ck"])


def test_reliability_scores_refuse_misaligned_attention_stats(planted):
    _, _, y, groups = planted
    rng = np.random.default_rng(3)
    samples = _samples(y, groups, rng)
    arrays = _arrays(planted, rng, margin_signal=0.0)
    shuffled = _attention_stats(samples, rng).iloc[::-1].reset_index(drop=True)
    with pytest.raises(ValueError, match="rerun attention_stats"):
        P.reliability_scores(samples, arrays, peak_layer=1, attention_stats=shuffled)


def test_reliability_scores_columns_signs_and_held_out_probes(scored):
    scores, samples, _ = scored
    assert list(scores.columns[-len(P.READOUTS) :]) == list(P.READOUTS)
    assert (scores["question_id"] == samples["question_id"]).all()
    np.testing.assert_array_equal(scores["logit_entropy"], -samples["entropy"])
    np.testing.assert_array_equal(scores["cluster_count"], -scores["ck"])
    y = scores["correct"].to_numpy()
    assert roc_auc_score(y, scores["probe_peak"]) > 0.95  # the planted layer, out-of-fold
    assert roc_auc_score(y, scores["probe_last_k"]) > 0.9  # last 2 layers include it
    assert abs(roc_auc_score(y, scores["probe_last_layer"]) - 0.5) < 0.15  # layer 2 is noise
    assert abs(roc_auc_score(y, scores["random"]) - 0.5) < 0.1
    assert scores[list(P.READOUTS)].notna().all().all()
    # nested: every fold's training folds pick the planted layer, so the nested probe equals the
    # probe at the layer chosen on all folds (same folds, same fits)
    assert (scores["nested_layer"] == 1).all() and sorted(scores["fold"].unique()) == list(range(5))
    np.testing.assert_allclose(scores["probe_peak"], scores["probe_peak_in_sample_layer"])


def test_nested_layer_choice_ignores_the_held_out_fold():
    y = np.array([0, 1] * 6)
    folds = [(np.arange(6, 12), np.arange(6)), (np.arange(6), np.arange(6, 12))]
    good_second = y[::-1].copy() + 0.0
    good_second[6:] = y[6:]  # layer 1 is perfect on the second half only
    scores = pd.DataFrame(
        {"logistic_L0": np.r_[y[:6], 1 - y[6:]].astype(float), "logistic_L1": good_second}
    )
    # fold 0 (test = first half) chooses on the second half -> layer 1;
    # fold 1 chooses on the first half -> layer 0
    assert P.nested_layer_choice(scores, y, folds) == [1, 0]


def test_readout_aurocs_equal_sklearn_per_subset(scored):
    scores, _, _ = scored
    table = P.readout_aurocs(scores, ["probe_peak", "output_confidence"], n_boot=100)
    subsets = {(t, s) for t, s in zip(table["task"], table["pope_setting"])}
    assert subsets == {
        ("all", ""),
        ("counting", ""),
        ("object_id", ""),
        ("spatial", ""),
        ("presence", "random"),
        ("presence", "popular"),
        ("presence", "adversarial"),
        ("presence", "all"),
    }
    row = table[
        (table["task"] == "presence")
        & (table["pope_setting"] == "adversarial")
        & (table["method"] == "output_confidence")
    ].iloc[0]
    part = scores[(scores["task"] == "presence") & (scores["pope_setting"] == "adversarial")]
    assert row["auroc"] == roc_auc_score(part["correct"], part["output_confidence"])
    assert row["n"] == len(part) and row["lo"] <= row["auroc"] <= row["hi"]
    every = table[(table["task"] == "all") & (table["method"] == "probe_peak")].iloc[0]
    assert every["auroc"] == roc_auc_score(scores["correct"], scores["probe_peak"])


def test_one_class_subset_gives_nan_not_an_error():
    out = P.auroc_or_nan(np.ones(5, dtype=bool), np.arange(5.0), ["a", "a", "b", "b", "c"])
    assert np.isnan(out["auroc"]) and (out["n"], out["n_pos"], out["n_images"]) == (5, 5, 3)
    assert np.isnan(out["lo"]) and out["ci_method"].startswith("cluster bootstrap by image")
    with pytest.raises(ValueError, match="both correct and incorrect"):
        P.layer_probes(
            np.zeros((6, 2, 3)), np.zeros((6, 1, 3)), np.ones(6, dtype=int), np.arange(6)
        )


def test_table3_and_method_table(scored):
    scores, _, _ = scored
    peaks = {("llava", "synthetic"): {"peak_layer": 1, "num_layers": 3}}
    t3 = P.table3({("llava", "synthetic"): scores}, peaks, n_boot=100)
    spatial = t3[t3["task"] == "spatial"].iloc[0]
    part = scores[scores["task"] == "spatial"]
    assert spatial["probe_auroc"] == roc_auc_score(part["correct"], part["probe_peak"])
    assert spatial["confidence_auroc"] == roc_auc_score(part["correct"], part["output_confidence"])
    assert spatial["probe_layer_in_sample"] == 1 and spatial["n"] == len(part)
    assert (
        spatial["probe_layers_nested"] == "1;1;1;1;1"
    )  # every training fold finds the planted layer
    assert spatial["probe_in_sample_layer_auroc"] == roc_auc_score(
        part["correct"], part["probe_peak_in_sample_layer"]
    )
    assert spatial["probe_lo_image"] <= spatial["probe_auroc"] <= spatial["probe_hi_image"]
    assert (spatial["probe_lo"], spatial["probe_hi"]) == (
        spatial["probe_lo_image"],
        spatial["probe_hi_image"],
    )

    consistency = pd.DataFrame(
        {
            "model": ["llava", "llava"],
            "dataset": ["synthetic"] * 2,
            "task": ["all", "spatial"],
            "pope_setting": ["", ""],
            "k": [10, 10],
            "auroc": [0.8, 0.7],
            "lo": [0.7, 0.6],
            "hi": [0.9, 0.8],
            "n": [300, 75],
            "n_pos": [135, 30],
            "ci_method": "cluster bootstrap by image (percentile, 100 resamples)",
        }
    )
    table = P.method_table(
        {("llava", "synthetic"): scores},
        peaks,
        consistency,
        P.TABLE7_METHODS,
        subsets=[("all", ""), ("presence", "adversarial")],
        n_boot=100,
        last_k_layers=5,
    )
    assert table["method"].tolist()[: len(P.TABLE7_METHODS)] == list(P.TABLE7_METHODS)
    sc = table[table["method"] == "self_consistency"]
    assert (
        len(sc) == 1 and sc["cost"].item() == "10x" and sc["auroc"].item() == 0.8
    )  # spatial not requested
    combined = table[table["method"] == "probe_last_k"].iloc[0]
    assert combined["label"] == "Combined (last 3 layers)"  # clamped to the model's 3 layers
    assert table.loc[table["method"] == "margin_only", "note"].str.contains("ground-truth").all()
    assert table.loc[table["method"] == "probe_peak_in_sample_layer", "layer"].eq(1).all()
    assert table.loc[table["method"] == "probe_peak", "layer"].isna().all()
    assert table.loc[table["method"] == "probe_peak", "note"].str.contains("1;1;1;1;1").all()
    assert table["ci_method"].str.len().gt(0).all()
