"""Known-answer tests for vrp.stats.cluster: the weighted statistics, the cluster bootstrap, the
clustered McNemar test, the within-model pooled correlation, and a seeded coverage simulation."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar

from vrp.stats import cluster as C


def _weights(n, rows=5, seed=0):
    return np.random.default_rng(seed).integers(0, 4, size=(rows, n)).astype(np.float64)


def test_weighted_auroc_equals_sklearn_with_sample_weight():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    score = np.round(rng.normal(size=60), 1)  # ties
    w = _weights(60)
    got = C.weighted_auroc(y, score)(w)
    want = [roc_auc_score(y, score, sample_weight=row) for row in w]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(C.weighted_auroc(y, score)(np.where(y == 1, 1.0, 0.0)[None]))[0]


def test_weighted_pearson_equals_scipy_on_repeated_samples():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=40), rng.integers(0, 2, 40)
    w = _weights(40, seed=3)
    got = C.weighted_pearson(x, y)(w)
    for row, value in zip(w, got):
        idx = np.repeat(np.arange(40), row.astype(int))
        assert value == pytest.approx(stats.pointbiserialr(y[idx], x[idx]).statistic, rel=1e-10)
    assert np.isnan(C.weighted_pearson(np.ones(40), y)(w)).all()


def test_weighted_mean_and_resample_counts():
    x = np.arange(6.0)
    w = np.array([[1, 0, 0, 0, 0, 1], [2, 2, 0, 0, 0, 0]], dtype=float)
    np.testing.assert_allclose(C.weighted_mean(x)(w), [2.5, 0.5])
    for counts in C.cluster_resample_counts(7, 30, seed=0, batch=8):
        assert (counts.sum(axis=1) == 7).all()  # G clusters drawn per resample
    a = np.concatenate(list(C.cluster_resample_counts(7, 30, seed=4)))
    b = np.concatenate(list(C.cluster_resample_counts(7, 30, seed=4)))
    np.testing.assert_array_equal(a, b)  # seeded


def test_cluster_sums_fast_path_equals_the_weighted_path():
    rng = np.random.default_rng(6)
    n = 90
    x, y = rng.normal(size=n), rng.integers(0, 2, n).astype(float)
    strata = np.repeat(["a", "b", "c"], 30)
    groups = rng.integers(0, 25, n)
    codes, g = C.cluster_codes(groups)
    counts = next(C.cluster_resample_counts(g, 40, seed=1))
    for statistic in (
        C.weighted_mean(x),
        C.weighted_pearson(x, y),
        C.weighted_within_pearson(x, y, strata),
    ):
        fast = statistic.from_sums(counts @ statistic.cluster_sums(codes, g))
        slow = statistic(counts[:, codes].astype(float))
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_question_unit_is_the_ordinary_bootstrap():
    codes, g = C.cluster_codes(np.array(["a", "a", "b"]), "question")
    np.testing.assert_array_equal(codes, [0, 1, 2])
    codes, g = C.cluster_codes(np.array(["b", "a", "b"]), "image")
    assert g == 2 and list(codes) == [1, 0, 1]
    with pytest.raises(ValueError, match="interval_unit"):
        C.cluster_codes(np.array(["a"]), "pixel")


def test_within_model_pooled_r_equals_stratified_value():
    # two models: A has low scores and low accuracy, B high scores and high accuracy, so the
    # stacked correlation is large while within each model the score barely matters
    x_a, y_a = np.array([0.0, 1, 2, 3, 4, 5]), np.array([0, 0, 1, 0, 0, 1])
    x_b, y_b = np.array([10.0, 11, 12, 13, 14, 15]), np.array([1, 1, 0, 1, 1, 1])
    x, y = np.r_[x_a, x_b], np.r_[y_a, y_b]
    model = np.repeat(["A", "B"], 6)

    # stratified by hand: pooled within-model sums of products over sums of squares
    def centred(v):
        return v - v.mean()

    sxy = (centred(x_a) * centred(y_a)).sum() + (centred(x_b) * centred(y_b)).sum()
    sxx = (centred(x_a) ** 2).sum() + (centred(x_b) ** 2).sum()
    syy = (centred(y_a) ** 2).sum() + (centred(y_b) ** 2).sum()
    want = sxy / np.sqrt(sxx * syy)
    got = C.within_group_pearson(x, y, model)
    assert got == pytest.approx(want, rel=1e-12)
    # = Pearson r of the per-model-centred values
    xc = np.r_[centred(x_a), centred(x_b)]
    yc = np.r_[centred(y_a), centred(y_b)]
    assert got == pytest.approx(stats.pearsonr(xc, yc).statistic, rel=1e-12)
    assert stats.pearsonr(x, y).statistic > 0.5 > got  # the stacked r is driven by the model gap
    # the weighted version with unit weights gives the same number
    assert C.weighted_within_pearson(x, y, model)(np.ones((1, 12)))[0] == pytest.approx(
        got, rel=1e-12
    )


def test_clustered_mcnemar_singletons_is_uncorrected_mcnemar():
    a = np.array([1] * 50 + [1] * 12 + [0] * 3 + [0] * 35)
    b = np.array([1] * 50 + [0] * 12 + [1] * 3 + [0] * 35)
    out = C.clustered_mcnemar(a, b, np.arange(100))
    want = mcnemar([[50, 12], [3, 35]], exact=False, correction=False)
    assert out["statistic"] == pytest.approx(want.statistic, rel=1e-12)
    assert out["p"] == pytest.approx(want.pvalue, rel=1e-12)
    # by hand on clusters: d = (+2, 0, -1) -> X² = (2 + 0 - 1)² / (4 + 0 + 1)
    a2, b2 = np.array([1, 1, 1, 0, 0]), np.array([0, 0, 0, 1, 1])
    out2 = C.clustered_mcnemar(a2, b2, ["g1", "g1", "g2", "g2", "g3"])
    assert out2["statistic"] == pytest.approx(1 / 5)
    assert C.clustered_mcnemar(a2, a2, ["g1"] * 5)["p"] == 1.0


def _coverage(unit: str, n_rep: int = 200, n_images: int = 60, per_image: int = 6, seed: int = 0):
    """Share of replications whose 95% interval of a mean covers the truth (0.5)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_images), per_image)
    covered = 0
    for rep in range(n_rep):
        # a planted image-level random effect: each image shifts all of its questions
        effect = rng.normal(0.0, 1.0, n_images)[groups]
        x = 0.5 + effect + 0.5 * rng.normal(size=len(groups))
        out = C.cluster_bootstrap(C.weighted_mean(x), groups, n_boot=200, seed=rep, unit=unit)
        covered += out["lo"] <= 0.5 <= out["hi"]
    return covered / n_rep


def test_coverage_clustered_is_nominal_question_level_under_covers():
    clustered = _coverage("image")
    question = _coverage("question")
    assert 0.90 <= clustered <= 0.99, clustered
    assert question < 0.75, question  # ICC 0.8 with 6 questions per image: design effect ~5
