"""Hidden-state reliability probes and the single-pass reliability readouts (paper §3.8–3.9; Tables 3, 7, 8).

Everything predicts the greedy answer's correctness (``correct`` in the extraction's
samples.parquet) from what one forward pass exposes. Every learned readout is scored held-out:
out-of-fold probabilities from ONE image-grouped, stratified split
(:func:`vrp.stats.grouped_splits`, groups = ``image_id``) shared by all readouts of a
(model, dataset), so questions about one image never sit on both sides of a split. AUROCs come
with a bootstrap 95% CI (:func:`vrp.stats.auroc_with_ci`); the in-sample AUROC (fit and scored on
all samples) is reported beside the held-out one in ``auroc_in_sample``, for comparison with the
paper's in-sample figure only, never as the result.

Layer indexing (every output of this module)
--------------------------------------------
The extraction's ``hidden`` has L+1 entries per question: ``hidden[:, 0]`` is the embedding of the
last prompt token and ``hidden[:, l + 1]`` is the residual stream after decoder layer ``l``.
``layer`` always means the DECODER-LAYER index ``l`` in ``0 .. L-1``; the embeddings row is
``layer = -1``. A probe "at layer l" therefore reads ``hidden[:, l + 1]``, and ``mlp_out[:, l]``
is the MLP output of that same decoder layer (its contribution to ``hidden[:, l + 1]``).
``array_index`` gives the index into the array the features came from.

Readouts (score columns of :func:`reliability_scores`; higher = "more likely correct")
---------------------------------------------------------------------------------------
See :data:`READOUTS`. Fixed readouts are used as they are (with the sign that makes them a
reliability score: -entropy, -H_s, -C_k); learned ones are out-of-fold P(correct).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vrp import stats
from vrp.benchmark.schema import POPE_SETTINGS
from vrp.config import known_fields

# Score column -> (label as in the paper's tables, inference cost, what it is).
READOUTS: dict[str, tuple[str, str, str]] = {
    "random": ("Random", "1x", "seeded uniform noise (the chance line)"),
    "spatial_entropy": (
        "Spatial attention H_s",
        "1x",
        "-H_s of the attention stage (stats.parquet)",
    ),
    "cluster_count": (
        "Spatial attention C_k",
        "1x",
        "-C_k of the attention stage (attention.ck_method)",
    ),
    "logit_entropy": ("Logit entropy", "1x", "-next-token entropy at the last prompt position"),
    "output_confidence": (
        "Output confidence",
        "1x",
        "softmax probability of the predicted answer token",
    ),
    "margin_top2": ("Top-1 minus top-2 logit margin", "1x", "top-1 minus top-2 next-token logit"),
    "margin_only": (
        "Margin-only ΔM_l",
        "1x",
        "logistic probe on the logit-lens margin of every layer",
    ),
    "margin_only_pred": (
        "Margin-only ΔM_l (own answer)",
        "1x",
        "the same probe on the margin of the model's predicted token (no ground truth)",
    ),
    "probe_last_layer": (
        "Linear probe (h_last)",
        "1x",
        "logistic probe on the last layer's hidden state",
    ),
    "probe_peak": (
        "Hidden-state probe (best layer, nested)",
        "1x",
        "logistic probe on the hidden state of the layer chosen inside each training fold",
    ),
    "probe_peak_in_sample_layer": (
        "Hidden-state probe (best layer, chosen on all folds)",
        "1x",
        "logistic probe at the layer with the best AUROC over all folds: the "
        "layer is chosen on the questions it is scored on (the paper's selection)",
    ),
    "mlp_probe_peak": (
        "MLP probe (best layer, nested)",
        "1x",
        "one-hidden-layer MLP probe at the layer chosen inside each training fold",
    ),
    "l1_probe_peak": (
        "Sparse L1 neuron probe (best layer, nested)",
        "1x",
        "L1 logistic probe on the MLP output of the layer chosen inside each training fold",
    ),
    "probe_last_k": (
        "Combined (last k layers)",
        "1x",
        "logistic probe on the concatenated last k hidden states",
    ),
    "attention_ensemble": (
        "Ensemble attention probe",
        "1x",
        "MLP probe on the concatenated per-layer image attention",
    ),
}

# Readouts whose inputs include the ground-truth answer token (not available when deploying).
USES_ANSWER_TOKEN = ("margin_only",)


@dataclass(frozen=True)
class ProbeSettings:
    """Hyperparameters of the probes (config section ``probes``)."""

    C: float = 0.1  # inverse L2 strength of the logistic probes
    l1_C: float = 0.1  # inverse L1 strength of the sparse neuron probe
    mlp_hidden: int = 256  # hidden units of the MLP probe
    mlp_max_iter: int = 50  # training epochs of the MLP probe
    n_splits: int = 5  # image-grouped folds of the one shared split
    n_boot: int = 1000  # bootstrap resamples of every AUROC interval
    last_k_layers: int = 5  # hidden states concatenated by probe_last_k
    seed: int = 0
    interval_unit: str = "image"  # the headline interval's unit: image clusters or questions

    @classmethod
    def from_params(cls, params: dict) -> "ProbeSettings":
        """Build from a config dict, ignoring keys that are not probe hyperparameters."""
        return cls(**known_fields(cls, params))

    def logistic(self):
        return functools.partial(stats.logistic_probe, C=self.C)

    def mlp(self):
        return functools.partial(
            stats.mlp_probe, hidden=self.mlp_hidden, seed=self.seed, max_iter=self.mlp_max_iter
        )

    def l1(self):
        return functools.partial(stats.l1_probe, C=self.l1_C, seed=self.seed)


LAYER_COLUMNS = [
    "probe",
    "features",
    "layer",
    "array_index",
    "auroc",
    *stats.INTERVAL_COLUMNS,
    "auroc_in_sample",
    "n",
    "n_pos",
    "n_images",
]


def _labels(correct) -> np.ndarray:
    labels = stats.as_binary(np.asarray(correct), "correct")
    n_pos = int(labels.sum())
    if n_pos in (0, len(labels)):
        raise ValueError(
            f"all {len(labels)} answers are {'correct' if n_pos else 'incorrect'}; reliability probes need "
            "both correct and incorrect answers (train the model longer or use more questions)"
        )
    return labels


def _check_rows(name: str, array: np.ndarray, n: int) -> np.ndarray:
    if len(array) != n:
        raise ValueError(
            f"{name} has {len(array)} rows but samples.parquet has {n}; they must be aligned"
        )
    return array


def probe_folds(
    correct, image_ids, settings: ProbeSettings = ProbeSettings()
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The one split every learned readout of a (model, dataset) uses: image-grouped, stratified.

    :func:`vrp.stats.grouped_splits` (``StratifiedGroupKFold``, ``n_splits`` folds, shuffled with
    ``seed``) with the image id as the group: all questions about one image are in the same test
    fold, so no image is ever on both sides of a split.
    """
    return stats.grouped_splits(
        _labels(correct), np.asarray(image_ids), settings.n_splits, settings.seed
    )


def _parallel(jobs, n_jobs: int) -> list:
    """Run an iterable of zero-argument callables, in worker processes when ``n_jobs > 1`` (results in order)."""
    if n_jobs <= 1:
        return [job() for job in jobs]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs)(delayed(job)() for job in jobs)


def layer_probes(
    hidden,
    mlp_out,
    correct,
    groups,
    settings: ProbeSettings = ProbeSettings(),
    n_jobs: int = 1,
    keep_scores: bool = False,
):
    """Held-out AUROC (+CIs, + in-sample AUROC) of three probes at every layer, on one shared split.

    * ``logistic`` on ``hidden`` (all L+1 entries: ``layer`` -1 = embeddings, then decoder layers),
    * ``mlp`` on ``hidden`` (the same entries),
    * ``l1`` on ``mlp_out`` (decoder layers 0..L-1; the paper's sparse "neuron" probe).

    Returns one row per (probe, layer) with columns :data:`LAYER_COLUMNS`; with ``keep_scores``
    also the out-of-fold P(correct) of the logistic probe at every decoder layer, as a DataFrame
    with one column ``logistic_L<l>`` per layer (the input of the nested layer choice,
    :func:`nested_layer_choice`).
    """
    labels = _labels(correct)
    hidden = _check_rows("hidden", hidden, len(labels))
    mlp_out = _check_rows("mlp_out", mlp_out, len(labels))
    if hidden.ndim != 3 or mlp_out.ndim != 3 or hidden.shape[1] != mlp_out.shape[1] + 1:
        raise ValueError(
            f"need hidden (n, L+1, d) and mlp_out (n, L, d); got {hidden.shape} and {mlp_out.shape}"
        )
    folds = probe_folds(labels, groups, settings)
    specs = []  # (probe, features, layer, array_index, make_model, array)
    for probe, make_model, features, array in (
        ("logistic", settings.logistic(), "hidden", hidden),
        ("mlp", settings.mlp(), "hidden", hidden),
        ("l1", settings.l1(), "mlp_out", mlp_out),
    ):
        offset = 1 if features == "hidden" else 0  # hidden[:, 0] is the embeddings (layer -1)
        specs += [
            (probe, features, index - offset, index, make_model, array)
            for index in range(array.shape[1])
        ]

    def jobs():  # lazily, so only the layers being fitted are copied out of the (memory-mapped) arrays
        for *_, index, make_model, array in specs:
            yield functools.partial(
                stats.probe_auroc,
                np.asarray(array[:, index, :]),
                labels,
                groups,
                make_model,
                seed=settings.seed,
                n_boot=settings.n_boot,
                folds=folds,
                unit=settings.interval_unit,
                return_scores=True,
            )

    results = _parallel(jobs(), n_jobs)
    rows = [
        {"probe": probe, "features": features, "layer": layer, "array_index": index, **result}
        for (probe, features, layer, index, _, _), result in zip(specs, results)
    ]
    table = pd.DataFrame(rows)
    if not keep_scores:
        return table[LAYER_COLUMNS]
    oof = pd.DataFrame(
        {
            f"logistic_L{row['layer']}": row["scores"]
            for row in rows
            if row["probe"] == "logistic" and row["layer"] >= 0
        }
    )
    return table[LAYER_COLUMNS], oof


def nested_layer_choice(layer_scores: pd.DataFrame, correct, folds) -> list[int]:
    """Per outer fold, the decoder layer whose logistic probe has the best AUROC WITHOUT that fold.

    ``layer_scores`` holds the out-of-fold P(correct) of every decoder layer (columns
    ``logistic_L<l>``, from :func:`layer_probes` with ``keep_scores``, computed on the same
    ``folds``). For outer fold f the layer is chosen on the training folds' own out-of-fold scores
    (the questions outside f) and the held-out fold f never takes part in the choice; earliest
    layer on ties. This reuses the per-layer fits (no inner CV): the models that scored the
    training folds were fitted on data that include fold f, a second-order leak that an inner
    CV would remove at (folds - 1) x the cost.
    """
    from sklearn.metrics import roc_auc_score

    labels = _labels(correct)
    columns = [c for c in layer_scores.columns if c.startswith("logistic_L")]
    if not columns:
        raise ValueError("layer_scores has no logistic_L<l> columns; rerun probe_layers")
    layers = [int(c[len("logistic_L") :]) for c in columns]
    chosen = []
    for _, test in folds:
        outside = np.ones(len(labels), dtype=bool)
        outside[test] = False
        aurocs = [
            roc_auc_score(labels[outside], layer_scores[c].to_numpy()[outside]) for c in columns
        ]
        chosen.append(layers[int(np.argmax(aurocs))])
    return chosen


def peak_summary(layers: pd.DataFrame, probe: str = "logistic") -> dict:
    """The decoder layer where ``probe`` has its highest held-out AUROC (embeddings excluded).

    Returns dict(peak_layer, hidden_index, auroc, lo, hi, auroc_in_sample, probe, features,
    num_layers, indexing). ``peak_layer`` is the decoder-layer index ``l`` (0..L-1) whose output is
    ``hidden[:, l + 1]``; earliest layer on ties.
    """
    table = layers[(layers["probe"] == probe) & (layers["layer"] >= 0)]
    if table.empty:
        raise ValueError(f"no decoder-layer rows for probe {probe!r} in the layer table")
    peak = stats.peak_layer(table, "auroc")
    row = table[table["layer"] == peak].iloc[0]
    return {
        "peak_layer": int(peak),
        "hidden_index": int(peak) + 1,
        "auroc": float(row["auroc"]),
        "lo": float(row["lo"]),
        "hi": float(row["hi"]),
        "auroc_in_sample": float(row["auroc_in_sample"]),
        "probe": probe,
        "features": str(row["features"]),
        "num_layers": int(table["layer"].max()) + 1,
        "indexing": "peak_layer is the decoder-layer index l in 0..L-1; its output is hidden[:, l+1] "
        "(hidden[:, 0] = embeddings) and its MLP output is mlp_out[:, l]",
    }


def delta_activation(features, correct) -> np.ndarray:
    """Δact per channel: mean over correct answers minus mean over incorrect ones (raw units)."""
    labels = _labels(correct)
    x = np.asarray(features, dtype=np.float64)
    return x[labels == 1].mean(axis=0) - x[labels == 0].mean(axis=0)


def neuron_ranking(mlp_out, correct, l1_C: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """The L1 neuron probe at every decoder layer: channels ranked by |weight|, with Δact.

    For each layer l the L1 probe (:func:`vrp.stats.l1_channel_ranking`: standardised
    ``mlp_out[:, l, :]``, fit on all samples) gives each channel a weight in standardised units.
    Columns: layer, channel, weight, abs_weight, rank (0 = largest |weight| within the layer; ties
    by channel index, zero weights last), delta_act (mean(correct) - mean(incorrect) of the raw
    channel). Sorted by layer, then rank.
    """
    labels = _labels(correct)
    mlp_out = _check_rows(
        "mlp_out", mlp_out, len(labels)
    )  # a lazy shard view stays lazy: one layer read at a time
    if mlp_out.ndim != 3:
        raise ValueError(f"mlp_out must have shape (n, L, d); got {mlp_out.shape}")
    frames = []
    for layer in range(mlp_out.shape[1]):
        x = np.asarray(mlp_out[:, layer, :], dtype=np.float64)
        ranking = stats.l1_channel_ranking(x, labels, C=l1_C, seed=seed)
        ranking["rank"] = ranking["rank"] - 1  # stats ranks from 1; rank 0 = the top channel here
        ranking["delta_act"] = delta_activation(x, labels)[ranking["channel"].to_numpy()]
        ranking.insert(0, "layer", layer)
        frames.append(ranking)
    out = pd.concat(frames, ignore_index=True)
    out["layer"] = out["layer"].astype(np.int64)
    out["channel"] = out["channel"].astype(np.int64)
    out["rank"] = out["rank"].astype(np.int64)
    return out[["layer", "channel", "weight", "abs_weight", "rank", "delta_act"]]


def _aligned_attention_stats(samples: pd.DataFrame, attention_stats: pd.DataFrame) -> pd.DataFrame:
    """The attention stage's ``hs`` / ``ck`` rows, checked to be the samples' questions in order."""
    missing = {"question_id", "hs", "ck"} - set(attention_stats.columns)
    if missing:
        raise ValueError(
            f"attention statistics lack column(s) {sorted(missing)}; rerun attention_stats"
        )
    if attention_stats["question_id"].tolist() != samples["question_id"].tolist():
        raise ValueError(
            "attention statistics and samples.parquet list different questions (or in another "
            "order); both must come from the same extraction: rerun attention_stats"
        )
    return attention_stats[["hs", "ck"]].reset_index(drop=True)


def reliability_scores(
    samples: pd.DataFrame,
    arrays: dict,
    peak_layer: int,
    settings: ProbeSettings = ProbeSettings(),
    *,
    attention_stats: pd.DataFrame,
    layer_scores: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every single-pass readout of :data:`READOUTS` for every question, learned ones out-of-fold.

    ``samples`` is the extraction's samples.parquet; ``arrays`` holds its ``hidden``, ``mlp_out``,
    ``image_attention``, ``lens_margin`` and ``lens_margin_pred`` (rows aligned with ``samples``). All learned readouts
    share one grouped split. ``attention_stats`` is the attention stage's per-question table
    (``results/attention/{model}/{dataset}/stats.parquet``, :func:`vrp.analysis.attention_tables.
    attention_statistics`): H_s and C_k are read from its ``hs`` / ``ck`` columns, computed once
    there with the configured definitions, never recomputed here. Returns the samples' question_id,
    image_id, task, pope_setting, answer, correct, ``fold`` (the question's test fold),
    ``nested_layer`` (the layer chosen for that fold), the raw ``hs`` / ``ck``, and one score
    column per readout (higher = more likely correct).

    Best-layer readouts are NESTED: for each fold the layer is chosen without that fold
    (:func:`nested_layer_choice` on ``layer_scores``, the per-layer out-of-fold logistic scores of
    :func:`layer_probes`, recomputed here when None) and the probe trained on the other folds at
    that layer scores the fold. ``probe_peak_in_sample_layer`` is the logistic probe at
    ``peak_layer`` (chosen on all folds), kept for comparison.
    """
    labels = _labels(samples["correct"].to_numpy())
    groups = samples["image_id"].to_numpy()
    n = len(labels)
    # hidden / mlp_out may be lazy shard views (vrp.shards.open_array): only the layers used are read
    hidden = _check_rows("hidden", arrays["hidden"], n)
    mlp_out = _check_rows("mlp_out", arrays["mlp_out"], n)
    lens = _check_rows("lens_margin", np.asarray(arrays["lens_margin"], dtype=np.float64), n)
    lens_pred = _check_rows(
        "lens_margin_pred", np.asarray(arrays["lens_margin_pred"], dtype=np.float64), n
    )
    attention = _check_rows(
        "image_attention", np.asarray(arrays["image_attention"], dtype=np.float64), n
    )
    num_layers = hidden.shape[1] - 1
    if not 0 <= peak_layer < num_layers:
        raise ValueError(f"peak_layer {peak_layer} is not a decoder layer (0..{num_layers - 1})")
    k = min(settings.last_k_layers, num_layers)
    folds = probe_folds(labels, groups, settings)

    def held_out(x, make_model):
        return stats.grouped_cv_scores(
            np.asarray(x, dtype=np.float64), labels, groups, make_model, folds=folds
        )

    if layer_scores is None:
        layer_scores = pd.DataFrame(
            {
                f"logistic_L{layer}": held_out(hidden[:, layer + 1, :], settings.logistic())
                for layer in range(num_layers)
            }
        )
    elif len(layer_scores) != n:
        raise ValueError(
            f"layer_scores has {len(layer_scores)} rows but samples.parquet has {n}; "
            "rerun probe_layers"
        )
    chosen = nested_layer_choice(layer_scores, labels, folds)
    fold_of = np.empty(n, dtype=np.int64)
    for f, (_, test) in enumerate(folds):
        fold_of[test] = f

    def nested(array, offset, make_model):
        """Out-of-fold scores, fold f's model trained at its own chosen layer."""
        return stats.per_fold_feature_scores(
            lambda f: np.asarray(array[:, chosen[f] + offset, :]), labels, make_model, folds
        )

    nested_logistic = np.empty(n)
    for (_, test), layer in zip(folds, chosen):
        nested_logistic[test] = layer_scores[f"logistic_L{layer}"].to_numpy()[test]

    structure = _aligned_attention_stats(samples, attention_stats)
    out = samples[["question_id", "image_id", "task", "pope_setting", "answer"]].reset_index(
        drop=True
    )
    out["correct"] = labels.astype(bool)
    out["fold"] = fold_of
    out["nested_layer"] = np.asarray(chosen, dtype=np.int64)[fold_of]
    out["hs"] = structure["hs"]
    out["ck"] = structure["ck"]
    scores = {
        "random": np.random.default_rng([settings.seed, 1]).random(
            n
        ),  # its own stream, not the split's
        "spatial_entropy": -structure["hs"].to_numpy(dtype=np.float64),
        "cluster_count": -structure["ck"].to_numpy(dtype=np.float64),
        "logit_entropy": -samples["entropy"].to_numpy(dtype=np.float64),
        "output_confidence": samples["confidence"].to_numpy(dtype=np.float64),
        "margin_top2": samples["margin_top2"].to_numpy(dtype=np.float64),
        "margin_only": held_out(lens, settings.logistic()),
        "margin_only_pred": held_out(lens_pred, settings.logistic()),
        "probe_last_layer": layer_scores[f"logistic_L{num_layers - 1}"].to_numpy(),
        "probe_peak": nested_logistic,
        "probe_peak_in_sample_layer": layer_scores[f"logistic_L{peak_layer}"].to_numpy(),
        "mlp_probe_peak": nested(hidden, 1, settings.mlp()),
        "l1_probe_peak": nested(mlp_out, 0, settings.l1()),
        "probe_last_k": held_out(
            hidden[:, num_layers + 1 - k :, :].reshape(n, -1), settings.logistic()
        ),
        # padding (no patch) carries no attention
        "attention_ensemble": held_out(
            np.nan_to_num(attention, nan=0.0).reshape(n, -1), settings.mlp()
        ),
    }
    for name in READOUTS:
        out[name] = scores[name]
    return out


def nested_layers_label(frame: pd.DataFrame) -> str:
    """The layers the nested choice took, one per fold in fold order ("3;3;4")."""
    if "fold" not in frame or "nested_layer" not in frame:
        return ""
    per_fold = frame.groupby("fold")["nested_layer"].first().sort_index()
    return ";".join(str(int(v)) for v in per_fold)


def evaluation_subsets(frame: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(task, pope_setting, mask) of every reported subset: all, each task, presence per setting.

    ``task`` "all" pools everything; presence gets one subset per POPE setting and one pooled
    ("all" setting). Only subsets present in ``frame`` are returned.
    """
    tasks = frame["task"].to_numpy()
    settings = frame["pope_setting"].fillna("").to_numpy()
    subsets = [("all", "", np.ones(len(frame), dtype=bool))]
    for task in sorted(set(tasks)):
        mask = tasks == task
        if task == "presence":
            for setting in POPE_SETTINGS:
                if np.any(mask & (settings == setting)):
                    subsets.append((task, setting, mask & (settings == setting)))
            subsets.append((task, "all", mask))
        else:
            subsets.append((task, "", mask))
    return subsets


def auroc_or_nan(
    correct, score, groups, n_boot: int = 1000, seed: int = 0, unit: str = "image"
) -> dict:
    """AUROC with image-clustered and question-level intervals (:func:`vrp.stats.auroc_intervals`).

    ``groups`` are the questions' image ids (the clusters). A subset with one class only gets NaN
    (with n, n_pos). Columns: auroc, n, n_pos, n_images, lo, hi, ci_method, lo_image, hi_image,
    lo_question, hi_question.
    """
    labels = stats.as_binary(np.asarray(correct).astype(bool), "correct")
    return stats.auroc_intervals(
        labels,
        np.asarray(score, dtype=np.float64),
        np.asarray(groups),
        n_boot=n_boot,
        seed=seed,
        unit=unit,
    )


def _column_auroc(part: pd.DataFrame, column: str, n_boot: int, seed: int, unit: str) -> dict:
    """:func:`auroc_or_nan` of score column ``column`` of a scores table against its ``correct``."""
    return auroc_or_nan(
        part["correct"],
        part[column].to_numpy(),
        part["image_id"].to_numpy(),
        n_boot=n_boot,
        seed=seed,
        unit=unit,
    )


INTERVAL_COLUMNS = stats.INTERVAL_COLUMNS


def readout_aurocs(
    scores: pd.DataFrame,
    readouts=None,
    n_boot: int = 1000,
    seed: int = 0,
    subsets=None,
    unit: str = "image",
) -> pd.DataFrame:
    """AUROC with CIs of each readout column on each subset (:func:`evaluation_subsets`).

    Returns long rows: task, pope_setting, method, auroc, the :data:`INTERVAL_COLUMNS`, n, n_pos,
    n_images, accuracy. ``subsets`` restricts to (task, pope_setting) pairs.
    """
    readouts = list(READOUTS) if readouts is None else list(readouts)
    rows = []
    for task, setting, mask in evaluation_subsets(scores):
        if subsets is not None and (task, setting) not in subsets:
            continue
        part = scores[mask]
        for method in readouts:
            result = _column_auroc(part, method, n_boot, seed, unit)
            rows.append(
                {
                    "task": task,
                    "pope_setting": setting,
                    "method": method,
                    "auroc": result["auroc"],
                    **{c: result[c] for c in INTERVAL_COLUMNS},
                    "n": result["n"],
                    "n_pos": result["n_pos"],
                    "n_images": result["n_images"],
                    "accuracy": float(part["correct"].mean()),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------
def table3(
    scores: dict[tuple[str, str], pd.DataFrame],
    peaks: dict[tuple[str, str], dict],
    n_boot: int = 1000,
    seed: int = 0,
    unit: str = "image",
) -> pd.DataFrame:
    """Table 3: held-out probe AUROC per family and task beside output-confidence AUROC.

    ``scores`` / ``peaks`` are keyed by (model, dataset). The probe is the logistic probe at the
    best layer chosen INSIDE each training fold (``probe_*``; ``probe_layers_nested`` lists the
    layer of each fold), trained on all tasks pooled; its out-of-fold scores are evaluated per
    subset. ``probe_in_sample_layer_*`` is the same probe at the layer chosen on all folds
    (``probe_layer_in_sample``, the paper's selection), for comparison. Every AUROC has
    ``*_lo``/``*_hi`` (the configured ``unit``), ``*_ci_method``, ``*_lo_image``/``*_hi_image``
    and ``*_lo_question``/``*_hi_question``.
    """
    rows = []
    for (model, dataset), frame in scores.items():
        for task, setting, mask in evaluation_subsets(frame):
            part = frame[mask]
            row = {
                "model": model,
                "dataset": dataset,
                "task": task,
                "pope_setting": setting,
                "n": int(mask.sum()),
                "n_images": int(part["image_id"].nunique()),
                "n_pos": int(part["correct"].sum()),
                "accuracy": float(part["correct"].mean()),
                "probe_layers_nested": nested_layers_label(frame),
                "probe_layer_in_sample": peaks[(model, dataset)]["peak_layer"],
            }
            for prefix, method in (
                ("probe", "probe_peak"),
                ("probe_in_sample_layer", "probe_peak_in_sample_layer"),
                ("confidence", "output_confidence"),
            ):
                result = _column_auroc(part, method, n_boot, seed, unit)
                row[f"{prefix}_auroc"] = result["auroc"]
                row.update({f"{prefix}_{c}": result[c] for c in INTERVAL_COLUMNS})
            rows.append(row)
    return pd.DataFrame(rows)


# The method rows of Tables 7 and 8, in order (rules/probes.smk passes the same lists as params).
TABLE7_METHODS = (
    "spatial_entropy",
    "cluster_count",
    "logit_entropy",
    "output_confidence",
    "margin_top2",
    "margin_only",
    "margin_only_pred",
    "probe_peak",
    "probe_peak_in_sample_layer",
    "probe_last_k",
    "self_consistency",
)
TABLE8_METHODS = (
    "random",
    "spatial_entropy",
    "cluster_count",
    "probe_last_layer",
    "probe_peak",
    "probe_peak_in_sample_layer",
    "mlp_probe_peak",
    "l1_probe_peak",
    "probe_last_k",
    "attention_ensemble",
    "self_consistency",
)


def method_table(
    scores: dict[tuple[str, str], pd.DataFrame],
    peaks: dict[tuple[str, str], dict],
    consistency: pd.DataFrame,
    methods,
    subsets,
    n_boot: int = 1000,
    seed: int = 0,
    last_k_layers: int = 5,
    unit: str = "image",
) -> pd.DataFrame:
    """Tables 7 and 8: AUROC with CIs of each method per (model, dataset, subset), long format.

    ``consistency`` is a ``results/selfconsistency/k~{K}.csv`` table (rows per model, dataset,
    task, pope_setting) and supplies the "self_consistency" rows. ``subsets`` lists the
    (task, pope_setting) pairs to report. Columns: model, dataset, task, pope_setting, method,
    label, auroc, the :data:`INTERVAL_COLUMNS` (``lo``/``hi`` the configured ``unit``, named in
    ``ci_method``), n, n_pos, n_images, cost, layer, note. Nested best-layer rows have no single
    layer (NaN); their note lists the layer chosen for each fold.
    """
    rows = []
    single_pass = [m for m in methods if m != "self_consistency"]
    for (model, dataset), frame in scores.items():
        peak = peaks[(model, dataset)]["peak_layer"]
        num_layers = peaks[(model, dataset)]["num_layers"]
        nested_layers = nested_layers_label(frame)
        table = readout_aurocs(
            frame, single_pass, n_boot=n_boot, seed=seed, subsets=subsets, unit=unit
        )
        for record in table.to_dict("records"):
            method = record["method"]
            label, cost, _ = READOUTS[method]
            layer = {"probe_peak_in_sample_layer": peak, "probe_last_layer": num_layers - 1}.get(
                method, np.nan
            )
            note = ""
            if method in ("probe_peak", "mlp_probe_peak", "l1_probe_peak"):
                note = f"layer chosen inside each training fold: {nested_layers} (fold order)"
            if method == "probe_peak_in_sample_layer":
                note = (
                    "layer chosen on all folds (in-sample selection, the paper's); for comparison"
                )
            if method == "probe_last_k":
                k = min(last_k_layers, num_layers)
                label = f"Combined (last {k} layers)"
                note = f"decoder layers {num_layers - k}..{num_layers - 1}"
            if method in USES_ANSWER_TOKEN:
                note = "reads the ground-truth answer token's logit: a reference, not a deployable monitor"
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "task": record["task"],
                    "pope_setting": record["pope_setting"],
                    "method": method,
                    "label": label,
                    "auroc": record["auroc"],
                    **{c: record[c] for c in INTERVAL_COLUMNS},
                    "n": record["n"],
                    "n_pos": record["n_pos"],
                    "n_images": record["n_images"],
                    "cost": cost,
                    "layer": layer,
                    "note": note,
                }
            )
        if "self_consistency" in methods:
            sc = consistency[(consistency["model"] == model) & (consistency["dataset"] == dataset)]
            for record in sc.to_dict("records"):
                key = (
                    record["task"],
                    "" if pd.isna(record["pope_setting"]) else record["pope_setting"],
                )
                if key not in subsets:
                    continue
                k = int(record["k"])
                rows.append(
                    {
                        "model": model,
                        "dataset": dataset,
                        "task": key[0],
                        "pope_setting": key[1],
                        "method": "self_consistency",
                        "label": f"Self-consistency K={k}",
                        "auroc": record["auroc"],
                        **{c: record.get(c, np.nan) for c in INTERVAL_COLUMNS},
                        "n": record["n"],
                        "n_pos": record["n_pos"],
                        "n_images": record.get("n_images", np.nan),
                        "cost": f"{k}x",
                        "layer": np.nan,
                        "note": "S_SC against the greedy answer's correctness",
                    }
                )
    table = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(methods)}
    subset_order = {s: i for i, s in enumerate(subsets)}
    table["_m"] = table["method"].map(order)
    table["_s"] = [subset_order[(t, s)] for t, s in zip(table["task"], table["pope_setting"])]
    table = table.sort_values(["dataset", "_s", "_m", "model"], kind="stable").drop(
        columns=["_m", "_s"]
    )
    return table.reset_index(drop=True)
