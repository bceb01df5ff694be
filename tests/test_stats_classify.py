"""Tests for vrp.stats.classify: AUROC CI, image-grouped CV, planted-signal probes."""

import functools

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from vrp.stats import classify as C


@pytest.fixture(scope="module")
def planted():
    """400 questions about 100 images (4 each); correctness written into one hidden direction."""
    rng = np.random.default_rng(0)
    n, d = 400, 32
    groups = np.repeat(np.arange(100), 4)
    y = (rng.random(n) < 0.5).astype(int)
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    X = rng.normal(size=(n, d)) + np.outer(2 * y - 1, direction) * 1.5
    return X, y, groups


def test_auroc_equals_sklearn_with_ties_and_ci_brackets_it():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.4).astype(int)
    score = np.round(rng.normal(size=300) + y, 1)  # rounded: many ties
    out = C.auroc_with_ci(y, score, n_boot=500, seed=0)
    assert out["auroc"] == roc_auc_score(y, score)
    assert out["lo"] < out["auroc"] < out["hi"] and out["n_boot_used"] == 500
    assert (out["n"], out["n_pos"]) == (300, int(y.sum()))
    # The vectorised rank AUROC used in the bootstrap equals roc_auc_score too.
    assert C._batched_auroc(y[None], score[None])[0] == pytest.approx(
        roc_auc_score(y, score), abs=1e-12
    )
    plain = C.auroc_with_ci(y, score, n_boot=500, seed=0, stratified=False)
    assert plain["auroc"] == out["auroc"] and abs(plain["lo"] - out["lo"]) < 0.03
    assert C.auroc_with_ci(y, score, n_boot=500, seed=0) == out
    with pytest.raises(ValueError, match="both classes"):
        C.auroc_with_ci(np.ones(5, dtype=int), np.arange(5.0))


def test_plain_bootstrap_skips_one_class_resamples():
    y = np.array([1, 0, 0, 0, 0, 0])  # one positive: many plain resamples miss it
    out = C.auroc_with_ci(y, np.arange(6.0)[::-1], n_boot=200, seed=0, stratified=False)
    assert out["auroc"] == 1.0 and 0 < out["n_boot_used"] < 200


def test_grouped_splits_never_share_an_image(planted):
    _, y, groups = planted
    folds = C.grouped_splits(y, groups, n_splits=5, seed=0)
    assert len(folds) == 5
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(y)))  # every sample tested exactly once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    again = C.grouped_splits(y, groups, n_splits=5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    with pytest.raises(ValueError, match="number of images"):
        C.grouped_splits(y[:8], groups[:8], n_splits=5)
    C.check_group_folds(2, 2)
    for n_splits, n_groups in ((1, 10), (5, 4)):
        with pytest.raises(
            ValueError,
            match=rf"Table 1 needs 2 <= attention.x <= number of images; got n_splits={n_splits}, {n_groups} images",
        ):
            C.check_group_folds(n_splits, n_groups, "Table 1", "attention.x")


def test_planted_signal_probe_finds_it_and_shuffled_does_not(planted):
    X, y, groups = planted
    out = C.probe_auroc(X, y, groups, C.logistic_probe, n_splits=5, seed=0, n_boot=300)
    assert out["auroc"] > 0.95 and out["lo"] > 0.9
    assert out["auroc_in_sample"] >= out["auroc"]
    shuffled = np.random.default_rng(7).permutation(y)
    null = C.probe_auroc(X, shuffled, groups, C.logistic_probe, n_splits=5, seed=0, n_boot=300)
    assert abs(null["auroc"] - 0.5) < 0.1
    # The in-sample AUROC on shuffled labels is optimistic: that is why it is labelled, not reported.
    assert null["auroc_in_sample"] > null["auroc"] + 0.1


def test_mlp_and_l1_probes_find_the_planted_signal(planted):
    X, y, groups = planted
    oof = C.grouped_cv_scores(X, y, groups, functools.partial(C.mlp_probe, hidden=32, seed=0))
    assert roc_auc_score(y, oof) > 0.93
    oof = C.grouped_cv_scores(X, y, groups, C.l1_probe(C=0.1))  # an estimator is cloned per fold
    assert roc_auc_score(y, oof) > 0.95


def test_l1_probe_reaches_the_tightly_converged_saga_optimum():
    # known answer: the paper's objective (L1 logistic, C = 0.1, standardised features, intercept
    # unpenalised) solved by saga to tol 1e-8; liblinear must land on the same optimum
    rng = np.random.default_rng(5)
    n, d = 600, 15
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + rng.normal(size=d)
    Z = StandardScaler().fit_transform(X)
    logit = 1.5 * Z[:, 2] - 1.0 * Z[:, 9] + 0.5 * Z[:, 4] + 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    reference = LogisticRegression(
        C=0.1, l1_ratio=1.0, solver="saga", tol=1e-8, max_iter=100_000, random_state=0
    ).fit(Z, y)
    fitted = C.l1_probe(C=0.1).fit(X, y)[-1]
    assert fitted.solver == "liblinear"
    np.testing.assert_allclose(fitted.coef_, reference.coef_, atol=2e-3)
    np.testing.assert_allclose(fitted.intercept_, reference.intercept_, atol=5e-3)
    np.testing.assert_array_equal(fitted.coef_ != 0, reference.coef_ != 0)
    assert 0 < (reference.coef_ != 0).sum() < d  # the penalty is active: some channels are zero


def test_l1_channel_ranking_puts_planted_channels_first():
    rng = np.random.default_rng(4)
    y = (rng.random(300) < 0.5).astype(int)
    X = rng.normal(size=(300, 20))
    X[:, 7] += 2.0 * y  # strong success channel
    X[:, 3] -= 1.0 * y  # weaker failure channel
    ranking = C.l1_channel_ranking(X, y, C=0.1)
    assert ranking["channel"].tolist()[:2] == [7, 3]
    assert ranking.loc[0, "weight"] > 0 > ranking.loc[1, "weight"]
    assert (ranking["abs_weight"].diff().dropna() <= 0).all()


def test_stress_test_accuracy_on_signal_and_noise():
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(60), 3)
    y = (rng.random(180) < 0.5).astype(int)
    X = rng.normal(size=(180, 4))
    X[:, 0] += 3.0 * y
    model = functools.partial(C.ensemble_classifier, seed=0)
    out = C.cv_accuracy_auroc(X, y, groups, model, n_splits=3, n_boot=100)
    assert out["accuracy"] > 0.85 and out["auroc"] > 0.9
    assert out["majority_accuracy"] == pytest.approx(max(y.mean(), 1 - y.mean()))
    noise = C.cv_accuracy_auroc(X[:, 1:], y, groups, C.logistic_probe, n_splits=3, n_boot=100)
    assert abs(noise["accuracy"] - 0.5) < 0.12
