"""The reliability monitor: probe and calibration maths, export -> load -> score, errors, CLI."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    roc_auc_score,
)

from vrp import stats
from vrp.adapters import get_adapter_class
from vrp.analysis.probes import ProbeSettings
from vrp.benchmark.images import decode_images
from vrp.benchmark.synthetic import SyntheticBenchmarkConfig, generate_split, vocabulary
from vrp.extract import ExtractionSettings, extract
from vrp.monitor import (
    Calibrator,
    LinearProbe,
    MonitorModelMismatch,
    MonitorSettings,
    ReliabilityMonitor,
    build_monitor,
    expected_calibration_error,
    image_bootstrap_metric_ci,
    main,
    metrics_with_ci,
    read_bundle,
    score_metrics,
    selective_accuracy,
    shift_evaluation,
    weighted_score_metrics,
    write_bundle,
)
from vrp.shards import load_array
from vrp.zoo.tokenizer import build_word_tokenizer, template_words

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
LAYER = 1


# ---------------------------------------------------------------------------------------------
# maths
# ---------------------------------------------------------------------------------------------
def test_linear_probe_equals_the_fitted_pipeline():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * [1, 5, 0.1, 2, 3, 1] + 4
    y = (x[:, 0] + 0.2 * x[:, 1] + rng.normal(size=200) > 5).astype(int)
    pipeline = stats.logistic_probe(C=0.1).fit(x, y)
    probe = LinearProbe.from_pipeline(pipeline)
    np.testing.assert_allclose(
        probe.probability(x), pipeline.predict_proba(x)[:, 1], rtol=1e-10, atol=1e-12
    )
    with pytest.raises(ValueError, match="6-wide"):
        probe.logit(x[:, :5])


def test_calibrators_match_their_definitions():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p**2).astype(int)
    isotonic = Calibrator.fit("isotonic", p, y)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    grid = np.linspace(-0.1, 1.1, 57)
    np.testing.assert_allclose(isotonic.apply(grid), reference.predict(grid), atol=1e-12)
    platt = Calibrator.fit("platt", p, y)
    logit = np.log(p) - np.log1p(-p)
    expected = 1 / (1 + np.exp(-(platt.platt[0] * logit + platt.platt[1])))
    np.testing.assert_allclose(platt.apply(p), expected)
    assert platt.platt[0] > 0  # p**2 is monotone in p
    with pytest.raises(ValueError, match="platt"):
        Calibrator.fit("beta", p, y)


def test_ece_and_selective_accuracy_known_answers():
    # two of ten bins used: p=0.05 (4 questions, 1 correct) and p=0.95 (4 questions, 4 correct)
    p = np.array([0.05] * 4 + [0.95] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 1])
    assert expected_calibration_error(y, p, 10) == pytest.approx(
        0.5 * abs(0.25 - 0.05) + 0.5 * abs(1 - 0.95)
    )
    score = np.arange(10.0)
    correct = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    assert selective_accuracy(correct, score, 0.8) == 1.0
    assert selective_accuracy(correct, score, 0.9) == pytest.approx(8 / 9)
    assert selective_accuracy(correct, score, 1.0) == pytest.approx(0.8)


def test_image_bootstrap_resamples_whole_images():
    groups = np.repeat(np.arange(10), 3)
    seen = []

    def metric(index):
        seen.append(index)
        return {"mean": float(np.mean(index))}

    cis = image_bootstrap_metric_ci(groups, metric, n_boot=30, seed=0)
    assert cis["mean"][0] < cis["mean"][1]
    for index in seen:
        counts = np.bincount(index, minlength=30).reshape(10, 3)
        assert (counts == counts[:, :1]).all()  # an image's questions are drawn together
        assert counts.sum() == 30


def _scored(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(int)
    p = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, n), 0, 1)
    p[: n // 2] = np.round(p[: n // 2], 1)  # ties, within and across classes
    return y, p


COVERAGES = (0.8, 0.9, 0.95)


def _reference(y, p):
    """score_metrics with scikit-learn's AUROC / Brier / AUPRC (and the unweighted ECE, accuracy)."""
    out = score_metrics(y, p, 10, COVERAGES)
    out["auroc"] = roc_auc_score(y, p)
    out["brier"] = brier_score_loss(y, p)
    out["auprc"] = average_precision_score(y, p)
    return out


def test_weighted_metrics_with_unit_weights_are_the_unweighted_metrics():
    y, p = _scored()
    weighted = weighted_score_metrics(y, p, 10, COVERAGES)
    reference = _reference(y, p)
    assert set(weighted) == set(reference)
    for key, statistic in weighted.items():
        np.testing.assert_allclose(statistic(np.ones((1, len(y))))[0], reference[key], rtol=1e-12)


def test_weighted_metrics_with_integer_weights_are_the_metrics_of_repeated_rows():
    # the bootstrap's equivalence: weight k = the question repeated k times (0 = left out)
    y, p = _scored(seed=1)
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 4, size=(6, len(y)))
    counts[0, y == 0] = 0  # one class only: the rank metrics are undefined
    weighted = weighted_score_metrics(y, p, 10, COVERAGES)
    values = {key: statistic(counts.astype(np.float64)) for key, statistic in weighted.items()}
    for b, row in enumerate(counts):
        ry, rp = np.repeat(y, row), np.repeat(p, row)
        expected = score_metrics(ry, rp, 10, COVERAGES)  # its selective accuracy, ECE, NaNs
        if 0 < ry.sum() < len(ry):
            expected["auroc"] = roc_auc_score(ry, rp)
            expected["auprc"] = average_precision_score(ry, rp)
        expected["brier"] = brier_score_loss(ry, rp, labels=[0, 1])
        for key in weighted:
            np.testing.assert_allclose(values[key][b], expected[key], rtol=1e-12, err_msg=key)
        # ... and scikit-learn's own weighted forms agree
        if b:
            assert values["auprc"][b] == pytest.approx(
                average_precision_score(y, p, sample_weight=row), rel=1e-12
            )
    assert np.isnan(values["auroc"][0]) and np.isnan(values["auprc"][0])


def test_metrics_with_ci_keep_the_point_estimates_and_bracket_them():
    y, p = _scored(n=400, seed=3)
    groups = np.repeat(np.arange(100), 4)
    confidence = np.clip(p + np.random.default_rng(4).normal(0, 0.1, len(p)), 0, 1)
    rows = metrics_with_ci(y, {"monitor": p, "confidence": confidence}, groups, n_boot=200)
    for row, score in zip(rows, (p, confidence), strict=True):
        point = _reference(y, score)
        for key, value in point.items():
            assert row[key] == pytest.approx(value, rel=1e-12)
            assert row[f"{key}_lo"] <= value <= row[f"{key}_hi"], key
            assert row[f"{key}_lo"] < row[f"{key}_hi"], key
    # the unit of resampling matters: questions sharing an image give a wider image interval
    same = np.repeat(p[::4], 4), np.repeat(y[::4], 4)
    image = metrics_with_ci(same[1], {"m": same[0]}, groups, n_boot=300)[0]
    question = metrics_with_ci(same[1], {"m": same[0]}, groups, n_boot=300, unit="question")[0]
    assert image["brier_hi"] - image["brier_lo"] > 1.5 * (
        question["brier_hi"] - question["brier_lo"]
    )


# ---------------------------------------------------------------------------------------------
# a tiny model, its extraction and an exported monitor
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench_config():
    return SyntheticBenchmarkConfig(n_train_images=4, n_eval_images=8, seed=3)


@pytest.fixture(scope="module")
def questions(bench_config):
    table = generate_split(bench_config, "eval")
    return table[table["task"] != "caption"].reset_index(drop=True)


@pytest.fixture(scope="module")
def tokenizer(bench_config):
    return build_word_tokenizer(vocabulary(bench_config), template_words())


@pytest.fixture(scope="module")
def model_dir(tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "llava"
    get_adapter_class("llava").build_tiny(tokenizer, {"num_hidden_layers": 2}, seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def adapter(model_dir):
    return get_adapter_class("llava").load(model_dir)


@pytest.fixture(scope="module")
def extraction(adapter, questions, model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract")
    spec = {"family": "llava", "path": str(model_dir), "revision": None, "dtype": "float32"}
    manifest = extract(
        adapter,
        questions,
        out,
        spec,
        ExtractionSettings(batch_size=16, shard_size=32, per_head=False),
        progress=False,
    )
    samples = pd.read_parquet(out / "samples.parquet")
    hidden = np.asarray(load_array(out / "manifest.json", "hidden"))
    # planted signal: "correct" = the probed state's side of its median along its first principal
    # direction (the tiny model is untrained, so its own answers carry no signal to learn)
    states = hidden[:, LAYER + 1]
    direction = np.linalg.svd(states - states.mean(0), full_matrices=False)[2][0]
    projection = states @ direction
    samples["correct"] = projection > np.median(projection)
    samples = samples.merge(
        questions[["question_id", "question", "image"]], on="question_id", validate="one_to_one"
    )
    return {
        "samples": samples,
        "hidden": hidden,
        "manifest": manifest,
        "spec": spec,
        "direction": direction,
    }


SETTINGS = ProbeSettings(C=1.0, n_splits=3, seed=0)


@pytest.fixture(scope="module")
def bundle(extraction, adapter, tmp_path_factory):
    card, probe, calibrator, oof = build_monitor(
        extraction["samples"],
        extraction["hidden"],
        extraction["manifest"],
        LAYER,
        adapter,
        extraction["spec"],
        SETTINGS,
        MonitorSettings(calibration="platt", n_boot=10),
        {"dataset": {"name": "toy"}},
    )
    path = tmp_path_factory.mktemp("monitor") / "llava" / "toy"
    write_bundle(path, card, probe, calibrator, oof)
    return path


def test_round_trip_reproduces_the_probe_on_extraction_states(bundle, extraction, adapter):
    monitor = ReliabilityMonitor.load(bundle)
    samples = extraction["samples"]
    live = monitor.score(
        decode_images(samples["image"]), samples["question"], samples["task"], batch_size=12
    )
    offline = monitor.probe.probability(extraction["hidden"][:, LAYER + 1])
    np.testing.assert_allclose(live["probe_p"], offline, atol=1e-5)
    np.testing.assert_allclose(live["p_correct"], monitor.calibrator.apply(offline), atol=1e-5)
    assert (live["answer"].to_numpy() == samples["prediction"].to_numpy()).all()
    np.testing.assert_allclose(live["confidence"], samples["confidence"], atol=1e-5)
    card = read_bundle(bundle)[0]
    assert (
        card["export_check"]["answers_match"] and card["export_check"]["max_abs_probe_diff"] < 1e-4
    )
    assert card["model"]["family"] == "llava" and card["layer"] == LAYER


def test_exported_oof_scores_are_the_workflows_probe_scores(bundle, extraction):
    from vrp.analysis.probes import probe_folds

    samples = extraction["samples"]
    oof = pd.read_parquet(bundle / "oof_scores.parquet")
    folds = probe_folds(samples["correct"], samples["image_id"], SETTINGS)
    workflow = stats.grouped_cv_scores(
        extraction["hidden"][:, LAYER + 1],
        samples["correct"],
        samples["image_id"],
        SETTINGS.logistic(),
        folds=folds,
    )
    np.testing.assert_allclose(oof["probe_oof"], workflow, atol=1e-12)
    assert (oof["question_id"] == samples["question_id"]).all()


def test_planted_signal_separates_on_new_images(bundle, extraction):
    monitor = ReliabilityMonitor.load(bundle)
    fresh = generate_split(
        SyntheticBenchmarkConfig(n_train_images=4, n_eval_images=5, seed=11), "eval"
    )
    fresh = fresh[fresh["task"] != "caption"].reset_index(drop=True)
    with monitor_states(
        monitor
    ) as states:  # the planted label of each new question, read in the same forward
        scored = monitor.score(
            decode_images(fresh["image"]), fresh["question"], fresh["task"], batch_size=32
        )
    planted = np.concatenate(states) @ extraction["direction"]
    labels = planted > np.median(extraction["hidden"][:, LAYER + 1] @ extraction["direction"])
    assert 0 < labels.sum() < len(labels)
    assert roc_auc_score(labels, scored["p_correct"]) > 0.9


class monitor_states:
    """Collect the probed layer's last-token states of every forward (test helper)."""

    def __init__(self, monitor):
        self.layer = monitor.adapter.decoder_layers()[monitor.layer]
        self.states = []

    def __enter__(self):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            self.states.append(hidden[:, -1, :].detach().double().numpy())

        self.handle = self.layer.register_forward_hook(hook)
        return self.states

    def __exit__(self, *exc):
        self.handle.remove()


def test_wrong_model_is_a_clear_error(bundle, tokenizer):
    retrained = get_adapter_class("llava").build_tiny(tokenizer, {"num_hidden_layers": 2}, seed=1)
    with pytest.raises(MonitorModelMismatch, match="weights differ"):
        ReliabilityMonitor.from_directory(retrained, bundle)
    wider = get_adapter_class("llava").build_tiny(
        tokenizer, {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 64}, seed=0
    )
    with pytest.raises(MonitorModelMismatch, match="hidden_size is 64"):
        ReliabilityMonitor.from_directory(wider, bundle)
    other = get_adapter_class("qwen2vl").build_tiny(tokenizer, {"num_hidden_layers": 2}, seed=0)
    with pytest.raises(MonitorModelMismatch, match="family is 'qwen2vl'"):
        ReliabilityMonitor.from_directory(other, bundle)


def test_unknown_task_names_the_known_ones(bundle, extraction):
    monitor = ReliabilityMonitor.load(bundle)
    image = decode_images(extraction["samples"]["image"][:1])
    with pytest.raises(ValueError, match="unknown task"):
        monitor.score(image, ["Is there a apple in the image?"], ["colour"])
    free = monitor.score(
        image, ["Is there a apple in the image?"]
    )  # no task: every candidate competes
    assert free["task"].tolist() == ["any"]


def test_cli_scores_an_image_and_a_table(bundle, extraction, tmp_path, capsys):
    samples = extraction["samples"]
    image_path = tmp_path / "image.png"
    Image.open(io.BytesIO(samples["image"].iloc[0])).save(image_path)
    assert (
        main(
            [
                str(bundle),
                "--image",
                str(image_path),
                "--question",
                samples["question"].iloc[0],
                "--task",
                samples["task"].iloc[0],
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "p_correct" in out and "confidence" in out and samples["prediction"].iloc[0] in out

    table = (
        samples[["question_id", "question", "task", "answer"]]
        .iloc[:5]
        .assign(image_path="image.png")
    )
    table.to_csv(tmp_path / "questions.csv", index=False)
    assert (
        main(
            [
                str(bundle),
                "--table",
                str(tmp_path / "questions.csv"),
                "--output",
                str(tmp_path / "scored.parquet"),
            ]
        )
        == 0
    )
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert scored["question_id"].tolist() == table["question_id"].tolist()
    assert scored["p_correct"].between(0, 1).all() and scored["confidence"].between(0, 1).all()
    assert scored["expected"].tolist() == table["answer"].tolist()
    with pytest.raises(SystemExit):
        main([str(bundle), "--question", "Is there a apple?"])


def test_shift_rows_cover_every_source_and_target(extraction):
    samples = extraction["samples"]
    table = shift_evaluation(
        extraction["hidden"][:, LAYER + 1], samples, SETTINGS, "isotonic", n_boot=5
    )
    tasks = sorted(samples["task"].unique())
    task_rows = table[table["axis"] == "task"]
    assert set(task_rows["source"]) == set(tasks) and set(task_rows["target"]) == set(tasks)
    scored = table[table["note"] == ""]
    assert set(scored["method"]) == {"monitor", "confidence"}
    assert scored["ece"].between(0, 1).all() and scored["brier"].between(0, 1).all()
    assert (
        scored["kind"] == np.where(scored["source"] == scored["target"], "in_distribution", "shift")
    ).all()
