"""Known-answer tests for the attention / dynamics analyses (Tables 1, 2, 4; Figures 2a-5)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vrp.analysis import attention_tables as T
from vrp.analysis import dynamics as D
from vrp.analysis import figures_attention as F


def blobs(rows, cols, corners, size=3):
    """A map with tiny background and equal square blobs of side ``size`` at the given corners."""
    grid = np.full((rows, cols), 1e-6)
    for r, c in corners:
        grid[r : r + size, c : c + size] = 1.0
    return grid


def samples_for(n, rows=12, cols=12, correct=None, image_ids=None):
    correct = np.zeros(n, dtype=bool) if correct is None else np.asarray(correct, dtype=bool)
    return pd.DataFrame(
        {
            "question_id": [f"q{i:03d}" for i in range(n)],
            "image_id": image_ids if image_ids is not None else [f"img{i:03d}" for i in range(n)],
            "task": "presence",
            "answer": "yes",
            "prediction": np.where(correct, "yes", "no"),
            "correct": correct,
            "confidence": np.linspace(0.5, 0.9, n),
            "grid_rows": rows,
            "grid_cols": cols,
        }
    )


def as_attention(maps, n_layers=1):
    """(n, rows, cols) maps -> the extraction's (n, L, S) layout, the same map at every layer."""
    flat = np.asarray(maps, dtype=np.float32).reshape(len(maps), 1, -1)
    return np.repeat(flat, n_layers, axis=1)


# --------------------------------------------------------------------------------------------
# H_s and C_k through the per-sample statistics
# --------------------------------------------------------------------------------------------
def test_entropy_of_uniform_is_log_s_and_of_one_hot_is_zero():
    uniform = np.ones((12, 12))
    one_hot = np.zeros((12, 12))
    one_hot[4, 7] = 1.0
    table, maps = T.attention_statistics(samples_for(2), as_attention([uniform, one_hot]), (0, 0))
    assert table["hs"].iloc[0] == pytest.approx(math.log(144), abs=1e-6)
    assert table["entropy_normalized"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    assert table["hs"].iloc[1] == pytest.approx(0.0, abs=1e-7)
    assert table["ck"].tolist() == [0, 0]  # uniform keeps every patch: one component
    assert np.nansum(maps, axis=1) == pytest.approx([1.0, 1.0])
    normalised, _ = T.attention_statistics(
        samples_for(2), as_attention([uniform, one_hot]), (0, 0), entropy_normalized=True
    )
    assert normalised["hs"].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)


@pytest.mark.parametrize(
    "corners,components,dbscan",
    [
        ([(1, 1)], 0, 1),
        ([(1, 1), (1, 7)], 1, 2),
        ([(1, 1), (1, 7), (7, 4)], 2, 3),
    ],
)
def test_cluster_count_of_hand_drawn_blobs(corners, components, dbscan):
    # 4x4 blobs: each holds more than a tenth of the 144 patches, so the DBSCAN top decile is the blobs
    maps = as_attention([blobs(12, 12, corners, size=4)])
    by_components, _ = T.attention_statistics(samples_for(1), maps, (0, 0))
    by_dbscan, _ = T.attention_statistics(samples_for(1), maps, (0, 0), ck_method="dbscan")
    assert by_components["ck"].iloc[0] == components
    assert by_dbscan["ck"].iloc[0] == dbscan
    # both definitions are stress-test features whatever the configured method
    assert by_components["ck_dbscan"].iloc[0] == dbscan
    assert by_dbscan["ck_components"].iloc[0] == components


def test_diagonal_blobs_join_only_under_8_connectivity():
    grid = np.full((6, 6), 1e-6)
    grid[1, 1] = grid[2, 2] = 1.0  # two patches touching at a corner hold all the mass
    eight, _ = T.attention_statistics(samples_for(1, 6, 6), as_attention([grid]), (0, 0))
    four, _ = T.attention_statistics(
        samples_for(1, 6, 6),
        as_attention([grid]),
        (0, 0),
        ck_components={"connectivity": 4, "mass": 0.9},
    )
    assert eight["ck"].iloc[0] == 0
    assert four["ck"].iloc[0] == 1


def test_layer_span_selects_the_layers_averaged():
    uniform = np.ones(144, dtype=np.float32)
    one_hot = np.zeros(144, dtype=np.float32)
    one_hot[5] = 1.0
    attention = np.stack([uniform / 144, one_hot])[None]  # (1, 2 layers, 144)
    only_first, _ = T.attention_statistics(samples_for(1), attention, (0, 0))
    only_second, _ = T.attention_statistics(samples_for(1), attention, (1, 1))
    both, maps = T.attention_statistics(samples_for(1), attention, (0, 1))
    assert only_first["hs"].iloc[0] == pytest.approx(math.log(144), abs=1e-6)
    assert only_second["hs"].iloc[0] == pytest.approx(0.0, abs=1e-7)
    # mean of the two layers: patch 5 holds (1/144 + 1)/2, the others (1/144)/2
    assert maps[0, 5] == pytest.approx((1 / 144 + 1) / 2)
    assert maps[0, 0] == pytest.approx(1 / 288)
    assert (both["layer_first"].iloc[0], both["layer_last"].iloc[0]) == (0, 1)


def test_mixed_grids_use_each_samples_own_grid():
    a = np.ones((2, 3))  # 6 tokens, padded to 9 with NaN as the extraction does
    b = blobs(3, 3, [(0, 0)], size=1)
    attention = np.full((2, 1, 9), np.nan, dtype=np.float32)
    attention[0, 0, :6] = a.ravel()
    attention[1, 0, :] = b.ravel()
    samples = samples_for(2)
    samples["grid_rows"] = [2, 3]
    samples["grid_cols"] = [3, 3]
    table, maps = T.attention_statistics(samples, attention, (0, 0))
    assert table["hs"].iloc[0] == pytest.approx(math.log(6), abs=1e-6)
    assert np.isnan(maps[0, 6:]).all() and not np.isnan(maps[1]).any()
    samples["grid_rows"] = [3, 3]  # a grid larger than the tokens present is a bug upstream
    with pytest.raises(ValueError, match="NaN inside the 3x3 grid"):
        T.attention_statistics(samples, attention, (0, 0))


def test_layer_span_errors_name_the_config_key():
    assert T.resolve_layer_span(None, 32) == (0, 31)
    assert T.resolve_layer_span([16, 31], 32) == (16, 31)
    with pytest.raises(ValueError, match=r"attention.layer_range.llava = \[16, 32\].*0..31"):
        T.resolve_layer_span([16, 32], 32, what="attention.layer_range.llava")
    with pytest.raises(ValueError, match="ck_method"):
        T.attention_statistics(
            samples_for(1), as_attention([np.ones((12, 12))]), (0, 0), ck_method="kmeans"
        )
    with pytest.raises(ValueError, match="same extraction"):
        T.attention_statistics(samples_for(2), as_attention([np.ones((12, 12))]), (0, 0))


def test_layer_entropy_table_deltas():
    uniform = np.full(16, 1 / 16, dtype=np.float32)
    one_hot = np.eye(16, dtype=np.float32)[3]
    attention = np.stack([np.stack([uniform, one_hot, uniform])] * 2)  # (2 samples, 3 layers, 16)
    table = T.layer_entropy_table(samples_for(2, 4, 4), attention)
    first = table[table["question_id"] == "q000"]
    assert first["entropy"].to_numpy() == pytest.approx([math.log(16), 0.0, math.log(16)], abs=1e-6)
    assert np.isnan(first["delta_entropy"].iloc[0])
    assert first["delta_entropy"].iloc[1:].to_numpy() == pytest.approx(
        [-math.log(16), math.log(16)], abs=1e-6
    )
    assert first["delta_entropy_normalized"].iloc[1] == pytest.approx(-1.0, abs=1e-6)


# --------------------------------------------------------------------------------------------
# Table 4: R_pb with Fisher-z and bootstrap intervals
# --------------------------------------------------------------------------------------------
def _stats_frame(seed=0, n=120):
    rng = np.random.default_rng(seed)
    frames = []
    for model, shift in (("llava", 0.0), ("paligemma", 0.8)):
        correct = rng.random(n) < 0.5
        frames.append(
            pd.DataFrame(
                {
                    "model": model,
                    "family": model,
                    "dataset": "synthetic",
                    "ck": rng.integers(0, 3, n),
                    "hs": rng.normal(3.0, 0.4, n) + shift * correct,
                    "correct": correct,
                    "image_id": [f"img{i // 4}" for i in range(n)],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_correlation_table_matches_scipy_and_hand_computed_fisher_z():
    frame = _stats_frame()
    table = T.correlation_table(frame, n_boot=300, seed=1)
    assert table[["model", "metric"]].values.tolist() == [
        ["llava", "C_k"],
        ["llava", "H_s"],
        ["paligemma", "C_k"],
        ["paligemma", "H_s"],
        ["pooled", "C_k"],
        ["pooled", "H_s"],
        ["pooled_stacked", "C_k"],
        ["pooled_stacked", "H_s"],
    ]
    for (model, metric), row in table.set_index(["model", "metric"]).iterrows():
        column = "ck" if metric == "C_k" else "hs"
        if model == "pooled":  # within-model: Pearson r of per-model-centred values
            centred = frame[[column, "correct"]].astype(float) - frame.groupby("model")[
                [column, "correct"]
            ].transform("mean").astype(float)
            want = stats.pearsonr(centred[column], centred["correct"]).statistic
            assert row["r"] == pytest.approx(want, abs=1e-12)
            assert row["pooling"] == T.POOLING_WITHIN
            assert row["lo_image"] < row["r"] < row["hi_image"]
            continue
        part = frame if model == "pooled_stacked" else frame[frame["model"] == model]
        expected = stats.pointbiserialr(part["correct"], part[column])
        assert row["r"] == pytest.approx(expected.statistic, abs=1e-12)
        assert row["p"] == pytest.approx(expected.pvalue, rel=1e-9)
        n = len(part)
        z = math.atanh(expected.statistic)
        assert row["fisher_lo"] == pytest.approx(
            math.tanh(z - 1.959963984540054 / math.sqrt(n - 3)), abs=1e-12
        )
        assert row["fisher_hi"] == pytest.approx(
            math.tanh(z + 1.959963984540054 / math.sqrt(n - 3)), abs=1e-12
        )
        assert row["lo_image"] < row["r"] < row["hi_image"]
        # the headline is the image-clustered interval; the question-level one is Fisher-z
        assert (row["lo"], row["hi"]) == (row["lo_image"], row["hi_image"])
        assert (row["lo_question"], row["hi_question"]) == (row["fisher_lo"], row["fisher_hi"])
        assert row["ci_method"].startswith("cluster bootstrap by image")
        assert row["n"] == n and row["n_correct"] == int(part["correct"].sum())
    # the paper's pooled numbers: r = 0.001 at n = 3,090 gives [-0.034, 0.036]
    lo, hi = (
        math.tanh(math.atanh(0.001) + s * 1.959963984540054 / math.sqrt(3087)) for s in (-1, 1)
    )
    assert (round(lo, 3), round(hi, 3)) == (-0.034, 0.036)
    # paligemma's entropy was built to rise with correctness: a clearly positive R_pb
    assert table.set_index(["model", "metric"]).loc[("paligemma", "H_s"), "r"] > 0.5


def test_correlation_table_adds_all_datasets_rows():
    frame = _stats_frame()
    other = frame.assign(dataset="pope")
    table = T.correlation_table(pd.concat([frame, other], ignore_index=True), n_boot=0)
    assert sorted(table["dataset"].unique()) == ["all", "pope", "synthetic"]
    pooled_all = table[(table["model"] == "pooled") & (table["dataset"] == "all")]
    assert pooled_all["n"].tolist() == [480, 480]
    # the same image in both datasets is one cluster: 30 images per model, shared across datasets
    assert pooled_all["n_images"].tolist() == [30, 30]
    question = T.correlation_table(frame, n_boot=0, unit="question")
    assert (question["lo"].fillna(9) == question["fisher_lo"].fillna(9)).all()
    assert question["ci_method"].str.startswith("Fisher-z").all()


# --------------------------------------------------------------------------------------------
# Top-K heads
# --------------------------------------------------------------------------------------------
def test_rank_heads_by_mean_absolute_contribution():
    logit = np.zeros((4, 2, 3))
    logit[:, 1, 2] = [-5, 5, -5, 5]  # largest |.|, though its mean is 0
    logit[:, 0, 0] = 2.0
    logit[:, 0, 1] = 2.0  # tie with (0, 0): (layer, head) order decides
    ranking = T.rank_heads(logit)
    assert list(zip(ranking["layer"], ranking["head"]))[:3] == [(1, 2), (0, 0), (0, 1)]
    assert ranking["mean_abs_logit"].iloc[0] == pytest.approx(5.0)
    assert ranking["rank"].tolist() == list(range(1, 7))


def test_combined_map_entropy_weights_heads_by_contribution():
    first = np.eye(16)[0]
    second = np.eye(16)[15] * 0.2  # less total image attention: normalised before mixing
    maps = np.stack([np.stack([first, second])] * 3)  # (3 samples, 2 heads, 16)
    weights = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    entropy = T.combined_map_entropy(samples_for(3, 4, 4), maps, weights)
    half = math.log(2) / math.log(16)
    assert entropy == pytest.approx([0.0, half, half], abs=1e-6)  # all-zero weights -> equal


def test_top_heads_r2_is_one_for_an_exact_linear_relation():
    n, rows = 40, 4
    rng = np.random.default_rng(3)
    head_maps = rng.random((n, 2, rows * rows)) ** 4  # varied sharpness
    logit = np.zeros((n, 1, 2))
    logit[:, 0, 0] = 3.0 + rng.random(n)  # head 0 ranks first
    logit[:, 0, 1] = 0.1
    samples = samples_for(n, rows, rows)
    ranking = T.rank_heads(logit)
    entropy = T.combined_map_entropy(samples, head_maps[:, :1], np.ones((n, 1)))
    samples["confidence"] = np.exp(-1.0 - 2.0 * entropy)  # log confidence linear in the entropy
    table = T.top_heads_r2(samples, logit, head_maps, ranking, ks=[2, 1])
    assert table["k"].tolist() == [1, 2]
    assert table["heads"].tolist() == ["L0H0", "L0H0;L0H1"]
    assert table["r2"].iloc[0] == pytest.approx(1.0, abs=1e-9)
    assert table["r"].iloc[0] == pytest.approx(-1.0, abs=1e-9)
    assert table["r2"].iloc[1] < 1.0
    with pytest.raises(ValueError, match="top_k_heads holds K=3"):
        T.top_heads_r2(samples, logit, head_maps, ranking, ks=[3])


def test_nested_top_heads_equal_in_sample_when_every_fold_picks_the_same_heads():
    n, rows = 60, 4
    rng = np.random.default_rng(5)
    head_maps = rng.random((n, 3, rows * rows)) ** 4
    logit = np.zeros((n, 1, 3))
    logit[:, 0, 0] = 5.0 + rng.random(n)  # head 0 first in every fold
    logit[:, 0, 1] = 2.0 + rng.random(n)
    logit[:, 0, 2] = 0.1
    samples = samples_for(
        n, rows, rows, correct=np.arange(n) % 2 == 0, image_ids=[f"img{i // 3}" for i in range(n)]
    )
    samples["confidence"] = rng.uniform(0.2, 0.9, n)
    ranking = T.rank_heads(logit)
    in_sample = T.top_heads_r2(samples, logit, head_maps, ranking, ks=[1, 2])
    folds = T.nested_head_folds(samples, n_splits=3, seed=0)
    rankings = T.fold_head_rankings(logit, folds, 2)
    nested = T.nested_top_heads_r2(
        samples,
        logit,
        lambda heads: head_maps[:, [h for _, h in heads]],
        [1, 2],
        folds,
        rankings,
        n_boot=100,
    )
    assert nested["heads_by_fold"].tolist() == ["L0H0|L0H0|L0H0", "L0H0;L0H1|L0H0;L0H1|L0H0;L0H1"]
    np.testing.assert_allclose(nested["r2"], in_sample["r2"], rtol=1e-10)
    assert (nested["r_lo"] <= nested["r"]).all() and (nested["r"] <= nested["r_hi"]).all()
    assert T.r2_interval(-0.1, 0.3) == (0.0, pytest.approx(0.09))
    assert T.r2_interval(0.2, 0.3) == (pytest.approx(0.04), pytest.approx(0.09))


def test_read_head_maps_gathers_slices_across_shards(tmp_path):
    rng = np.random.default_rng(0)
    shards = [
        rng.random((3, 2, 4, 6)).astype(np.float32),
        rng.random((2, 2, 4, 5)).astype(np.float32),
    ]
    names = []
    for k, shard in enumerate(shards):
        (tmp_path / f"{k}").mkdir()
        np.save(tmp_path / f"{k}" / "head_attention.npy", shard)
        names.append(f"{k}/head_attention.npy")
    manifest = {"arrays": {"head_attention": {"shape": [5, 2, 4, 6], "shards": names}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    maps = T.read_head_maps(tmp_path / "manifest.json", [(1, 3), (0, 0)])
    assert maps.shape == (5, 2, 6)
    assert maps[4, 0, :5] == pytest.approx(shards[1][1, 1, 3])
    assert maps[0, 1] == pytest.approx(shards[0][0, 0, 0])
    assert np.isnan(maps[3:, :, 5]).all()


# --------------------------------------------------------------------------------------------
# Stress test, Table 1, case study
# --------------------------------------------------------------------------------------------
def _feature_frame(n=90, informative=True, seed=0):
    rng = np.random.default_rng(seed)
    correct = np.arange(n) % 2 == 0
    frame = pd.DataFrame({name: rng.normal(size=n) for name in T.ATTENTION_FEATURES})
    if informative:
        frame["entropy"] = np.where(correct, 1.0, -1.0) + 0.1 * rng.normal(size=n)
    frame["correct"] = correct
    frame["image_id"] = [f"img{i // 3}" for i in range(n)]
    return frame


def test_stress_test_learns_an_informative_feature_and_not_noise():
    informative = T.stress_test(_feature_frame(), n_splits=3, seed=0, n_boot=100)
    noise = T.stress_test(_feature_frame(informative=False), n_splits=3, seed=0, n_boot=100)
    assert (
        informative["status"] == "ok"
        and informative["accuracy"] > 0.9
        and informative["auroc"] > 0.95
    )
    assert noise["auroc"] < 0.75
    assert informative["n"] == 90 and informative["n_images"] == 30


def test_stress_test_reports_why_it_is_skipped():
    frame = _feature_frame()
    frame["correct"] = True
    result = T.stress_test(frame, n_splits=3)
    assert result["status"].startswith("skipped:") and math.isnan(result["accuracy"])


def test_table1_collects_accuracy_r2_max_and_stress():
    heads = pd.DataFrame({"k": [1, 3, 5], "r2": [0.01, 0.08, 0.02]})
    stress = {
        "accuracy": 0.53,
        "auroc": 0.51,
        "lo": 0.45,
        "hi": 0.57,
        "majority_accuracy": 0.6,
        "status": "ok",
    }
    table = T.table1(
        [
            {
                "model": "llava",
                "family": "llava",
                "dataset": "synthetic",
                "samples": samples_for(4, correct=[1, 1, 1, 0]),
                "top_heads": heads,
                "stress": stress,
            }
        ]
    )
    row = table.iloc[0]
    assert row["accuracy"] == 0.75 and row["topk_r2_max"] == 0.08 and row["topk_best_k"] == 3
    assert row["topk_r2_k5"] == 0.02 and row["stress_accuracy"] == 0.53


def test_case_study_rule_and_its_relaxation():
    frame = pd.DataFrame(
        {
            "model": ["a"] * 10 + ["b"] * 10,
            "dataset": "d",
            "question_id": [f"q{i}" for i in range(20)],
            "hs": list(np.linspace(1, 2, 10)) * 2,
            "ck": [0] * 20,
            "correct": [False] * 20,
            "confidence": [0.5] * 20,
        }
    )
    frame.loc[1, "confidence"] = 0.99  # confident but not in the lowest decile (hs rank 2)
    frame.loc[10, "confidence"] = 0.7  # model b's sharpest map
    case = T.select_case_study(frame, entropy_quantile=0.1)
    assert (case["model"], case["question_id"], case["row"], case["tier"]) == ("b", "q10", 0, 0)
    frame["ck"] = 1
    frame.loc[3, "ck"] = 0
    assert T.select_case_study(frame)["question_id"] == "q3"  # tier 1: C_k = 0 only
    frame["ck"] = 1
    assert (
        T.select_case_study(frame)["question_id"] == "q1"
    )  # tier 2: the most confident wrong answer
    frame["correct"] = True
    assert T.select_case_study(frame)["tier"] == 3


# --------------------------------------------------------------------------------------------
# Table 2 dynamics
# --------------------------------------------------------------------------------------------
def test_dynamics_peaks_and_mlp_share():
    margin = np.array([[0.0, 1.0, 5.0, 2.0], [0.0, 3.0, 7.0, 4.0]])  # embeddings + 3 layers
    blank = np.array([[0.0, 1.0, 1.0, 6.0], [0.0, 3.0, 3.0, 9.0]])
    assert D.peak_margin(margin) == (1, 6.0)
    assert D.peak_visual_layer(margin, blank) == (2, -4.5)  # |mean delta| = 0, 4, 4.5
    mlp = np.array([[1.0, -3.0, 1.0], [1.0, 1.0, -1.0]])
    attn = np.array([[1.0, 1.0, 0.0], [-1.0, 0.0, 2.0]])
    assert D.mlp_share(mlp, attn, (1, 2)) == pytest.approx(6.0 / 9.0)
    row = D.dynamics_row(
        {"lens_margin": margin, "lens_margin_blank": blank, "mlp_logit": mlp, "attn_logit": attn},
        D.default_answer_layers(3),
    )
    assert (row["answer_first"], row["answer_last"]) == (2, 2)
    assert row["mlp_share"] == pytest.approx(2.0 / 4.0)
    assert row["mlp_share_all_layers"] == pytest.approx(8.0 / 13.0)
    assert row["final_margin"] == 3.0 and row["n_layers"] == 3
    assert D.default_answer_layers(32) == (24, 31)
    assert D.default_answer_layers(18) == (13, 17)


def test_layer_curves_match_scipy_t_intervals():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(30, 4))
    values[0, 3] = np.nan
    correct = np.arange(30) < 10
    with pytest.raises(
        D.NonFiniteError, match=r"values holds 1 NaN/inf value\(s\) in sample row\(s\) \[0\]"
    ):
        D.layer_curves(values, correct)
    curves = D.layer_curves(
        values, correct, allow_nan=True
    )  # e.g. ΔH_s, undefined for some samples
    assert set(curves["group"]) == {"all", "correct", "incorrect"}
    row = curves[(curves["group"] == "correct") & (curves["layer"] == 3)].iloc[0]
    finite = values[:10, 3][1:]
    lo, hi = stats.t.interval(0.95, len(finite) - 1, loc=finite.mean(), scale=stats.sem(finite))
    assert (row["n"], row["mean"], row["lo"], row["hi"]) == pytest.approx(
        (9, finite.mean(), lo, hi)
    )
    assert row["depth"] == 1.0


# --------------------------------------------------------------------------------------------
# Figure helpers
# --------------------------------------------------------------------------------------------
def test_heatmap_paints_each_cell_over_its_pixels():
    # a 6x4 image cut into 2x3 equal cells of 2x2 pixels: (x0, y0, x1, y1) per cell
    boxes = np.array([[[2 * c, 2 * r, 2 * c + 2, 2 * r + 2] for c in range(3)] for r in range(2)])
    heat = F.heatmap_on_pixels(np.arange(6.0).reshape(2, 3), boxes, (6, 4))
    assert heat.shape == (4, 6)
    assert heat[3, 5] == 5.0 and heat[0, 0] == 0.0 and heat[1, 2] == 1.0
    cropped = boxes.copy()
    cropped[..., 1] = np.minimum(cropped[..., 1] + 1, 4)  # a processor crop leaves row 0 uncovered
    assert np.isnan(F.heatmap_on_pixels(np.ones((2, 3)), cropped, (6, 4))[0]).all()


def test_figures_have_labelled_axes_and_family_colours():
    curves = D.layer_curves(np.random.default_rng(0).normal(size=(20, 5)), np.arange(20) < 8)
    curves = pd.concat(
        [
            curves.assign(model="llava", family="llava"),
            curves.assign(model="qwen2vl", family="qwen2vl"),
        ]
    )
    fig = F.figure_margin_by_layer(curves)
    axes = fig.axes
    assert len(axes) == 2 and axes[0].get_ylabel() and axes[1].get_xlabel() == "decoder layer l"
    assert axes[0].lines[0].get_color() == F.FAMILY_COLOURS["llava"]
    assert [t.get_text() for t in axes[1].get_legend().get_texts()] == [
        "correct (n=8)",
        "incorrect (n=12)",
    ]
    fig3 = F.figure_entropy_dynamics(curves[curves["group"] == "all"])
    assert [t.get_text() for t in fig3.axes[0].get_legend().get_texts()] == ["LLaVA", "Qwen2-VL"]
    assert F.model_label("llava13b", "llava") == "llava13b (LLaVA)"
