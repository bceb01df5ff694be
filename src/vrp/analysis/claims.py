"""The claims check: each headline number of the paper against this run's result tables.

One row per quantitative claim (the abstract's and the tables' headline numbers in the method
notes, docs/method.md §3–§6) and dataset, computed from the result files the workflow wrote —
nothing is typed in except the paper's own numbers, which are the reference. Each row holds the
paper's value, this run's value with its 95% interval and n (and p where the claim is about
significance), the direction the claim needs, and a verdict:

* ``holds`` — this run's 95% interval lies entirely on the side the claim needs (inside the band
  for "near zero" claims; for the significance claims, the drop's interval lies above zero and
  p is below the paper's threshold);
* ``does not hold`` — the interval lies entirely on the other side (outside the band, or no drop);
* ``not measurable in this run`` — the result file is not built by this run's workflow, the row the
  claim reads is absent, the value is undefined (e.g. one class only), or the interval straddles
  the bound, so this run's n cannot decide it (the ``reason`` column says which).

Which interval: each row names the interval its verdict uses (``interval``: the result table's
headline, clustered by image by default, ``stats.interval_unit``) and carries the question-level
interval beside it (``ci_low_question``/``ci_high_question``, the paper's kind). When the verdict
on the question-level interval differs, ``verdict_question`` says what it would be and the reason
says so. A claim about a change in a subset where the unablated model is no better than always
giving the subset's most common answer (its majority-class accuracy) is not measurable: no
intervention can show a loss of skill the model does not have.

Deciding on the interval rather than the point estimate keeps a small run (the demo face) from
"confirming" or "refuting" a claim by noise. The two interpretive margins the paper does not give
as numbers — what "near zero" and "near chance" mean — come from the config section ``claims``.

Result tables read (keys of the ``tables`` mapping; a missing key makes its claims not measurable):

* ``table1`` — results/table1.csv: stress-test accuracy, top-K attention R² per model.
* ``table4`` — results/table4.csv: R_pb of C_k and H_s with correctness, per model and pooled.
* ``table7`` — results/table7.csv: AUROC of each reliability method (long format).
* ``selfconsistency`` — results/selfconsistency/k~10.csv: R_pb and SC=1 precision at K = 10.
* ``table_masking`` — results/table_masking.csv: paired contrasts of patch masking per p.
* ``table5`` — results/table5.csv: channel ablation sweeps (top-k probe channels per layer).
* ``table6`` — results/table6.csv: large-scale ablation (random channel fractions, peak layer).
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

import pandas as pd

from vrp.stats import fisher_z_interval, wilson_interval

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
NOT_MEASURABLE = "not measurable in this run"
VERDICTS = (HOLDS, DOES_NOT_HOLD, NOT_MEASURABLE)

COLUMNS = [
    "claim_id",
    "claim",
    "scope",
    "dataset",
    "paper_value",
    "paper_source",
    "needs",
    "value",
    "ci_low",
    "ci_high",
    "interval",
    "n",
    "p_value",
    "test",
    "verdict",
    "reason",
    "ci_low_question",
    "ci_high_question",
    "p_value_question",
    "verdict_question",
    "evidence",
]

# The paper's fixed settings the claims refer to.
MASK_SHARE = 0.3  # "masking the top-30% attended patches"
MASKING_ALPHA = 0.001  # "p < 0.001"
SC_K = 10  # "self-consistency R_pb = 0.43 at K = 10"
PROBE_AUROC_BAR = 0.95  # "probe AUROC > 0.95"
R2_BAR = 0.08  # "Structural R² < 0.08" (Figure 1; Table 1 max 0.080)
SC1_PRECISION_BAR = 0.90  # "perfect agreement yields precision above 90%"
SMALL_CHANGE_PP = 1.0  # "≤ 1 pp at ~50% destruction"
DESTRUCTION_SHARE = 0.5  # "~50% of neurons destroyed"
TOP_PROBE_CHANNELS = 5  # LLaVA "top-5 probe neurons"
OBJECT_ID_TASK = "object_id"


@dataclass(frozen=True)
class Margins:
    """Interpretive bounds the paper states only in words (config section ``claims``)."""

    near_zero_r: float = 0.1
    near_chance_margin: float = 0.1

    @classmethod
    def from_params(cls, params: Mapping) -> "Margins":
        known = [f.name for f in fields(cls)]
        unknown = set(params) - set(known)
        if unknown:
            raise ValueError(
                f"unknown claims setting(s) {sorted(unknown)}; known: {', '.join(known)}"
            )
        return cls(**dict(params))


@dataclass(frozen=True)
class Measurement:
    """This run's number for one claim: value with a 95% interval, n, and p when relevant.

    ``missing`` set means the claim cannot be measured; it says why.
    """

    value: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int | None = None
    p_value: float = math.nan
    evidence: str = ""
    missing: str = ""
    interval: str = ""
    test: str = ""
    ci_low_question: float = math.nan
    ci_high_question: float = math.nan
    p_value_question: float = math.nan

    @classmethod
    def absent(cls, why: str, evidence: str = "") -> "Measurement":
        return cls(missing=why, evidence=evidence)

    def question_level(self) -> "Measurement":
        """The same measurement judged on its question-level interval and p."""
        return Measurement(
            self.value,
            self.ci_low_question,
            self.ci_high_question,
            self.n,
            self.p_value_question,
            self.evidence,
            self.missing,
        )


@dataclass(frozen=True)
class Requirement:
    """What the claim needs: the value above ``low``, below ``high``, or inside [low, high].

    ``alpha`` (optional) additionally needs p < alpha for ``holds``.
    """

    low: float | None = None
    high: float | None = None
    alpha: float | None = None
    unit: str = ""

    def describe(self) -> str:
        u = self.unit
        if self.low is not None and self.high is not None:
            text = f"within [{self.low:g}{u}, {self.high:g}{u}]"
        elif self.low is not None:
            text = f"> {self.low:g}{u}"
        else:
            text = f"< {self.high:g}{u}"
        if self.alpha is not None:
            text += f" and p < {self.alpha:g}"
        return text

    def verdict(self, m: Measurement) -> tuple[str, str]:
        """(verdict, reason) for one measurement."""
        if m.missing:
            return NOT_MEASURABLE, m.missing
        if any(math.isnan(x) for x in (m.value, m.ci_low, m.ci_high)):
            return (
                NOT_MEASURABLE,
                "the value or its interval is undefined here (e.g. one class only)",
            )
        lo, hi = m.ci_low, m.ci_high
        inside_low = self.low is None or lo > self.low
        inside_high = self.high is None or hi < self.high
        outside = (self.low is not None and hi <= self.low) or (
            self.high is not None and lo >= self.high
        )
        if outside:
            return (
                DOES_NOT_HOLD,
                f"the 95% CI [{lo:.4g}, {hi:.4g}] lies outside what the claim needs",
            )
        if inside_low and inside_high:
            if self.alpha is not None:
                if math.isnan(m.p_value):
                    return NOT_MEASURABLE, "no p-value for this contrast"
                if m.p_value >= self.alpha:
                    return NOT_MEASURABLE, (
                        f"the effect has the claimed sign but p = {m.p_value:.3g} "
                        f"is not below {self.alpha:g} at n = {m.n}"
                    )
            return HOLDS, f"the 95% CI [{lo:.4g}, {hi:.4g}] lies where the claim needs it"
        return NOT_MEASURABLE, (
            f"the 95% CI [{lo:.4g}, {hi:.4g}] straddles the bound: this run "
            f"(n = {m.n}) cannot decide"
        )


@dataclass(frozen=True)
class Context:
    """What a measurement needs besides the tables: the dataset, model families, margins."""

    dataset: str
    families: Mapping[str, str]
    margins: Margins = field(default_factory=Margins)

    def models_of(self, family: str) -> list[str]:
        return sorted(m for m, f in self.families.items() if f == family)


@dataclass(frozen=True)
class Claim:
    claim_id: str
    claim: str
    scope: str
    paper_value: str
    paper_source: str
    table: str
    measure: Callable[[pd.DataFrame, Context], Measurement]
    test: Callable[[Margins], Requirement]


# ------------------------------------------------------------------------------------ helpers
def _rows(table: pd.DataFrame, name: str, **where) -> pd.DataFrame:
    """Rows of ``table`` matching every column == value in ``where`` (clear error on a missing column)."""
    missing = [c for c in where if c not in table.columns]
    if missing:
        raise ValueError(
            f"result table {name} lacks column(s) {missing}; it has {list(table.columns)}"
        )
    mask = pd.Series(True, index=table.index)
    for column, value in where.items():
        mask &= table[column].astype(str) == str(value)
    return table[mask]


def _correlation(row, value: str, p: str, evidence: str, **fields) -> "Measurement":
    """A correlation row as a measurement: its value, n and p (one p for either interval unit)."""
    p_value = _float(row[p])
    return Measurement(
        _float(row[value]),
        n=int(row["n"]),
        p_value=p_value,
        p_value_question=p_value,
        evidence=evidence,
        **fields,
    )


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _where(**where) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items())


def _pooled_or_single(
    table: pd.DataFrame, ctx: Context, name: str, **where
) -> tuple[pd.DataFrame, str]:
    """The pooled-over-models row(s), or the only model's row(s) when the run has one model."""
    rows = _rows(table, name, model="pooled", dataset=ctx.dataset, **where)
    if len(rows):
        return rows, "pooled"
    models = sorted(set(_rows(table, name, dataset=ctx.dataset, **where)["model"]))
    if len(models) == 1:
        return _rows(table, name, model=models[0], dataset=ctx.dataset, **where), models[0]
    return rows, "pooled"


def _interval(row, prefix: str = "", headline: tuple[str, str] | None = None) -> dict:
    """Measurement fields of a row's interval columns (``{prefix}lo``/... of unit_intervals)."""
    lo, hi = headline or (f"{prefix}lo", f"{prefix}hi")
    return {
        "ci_low": _float(row.get(lo)),
        "ci_high": _float(row.get(hi)),
        "interval": str(row.get(f"{prefix}ci_method", "") or ""),
        "ci_low_question": _float(row.get(f"{prefix}lo_question")),
        "ci_high_question": _float(row.get(f"{prefix}hi_question")),
    }


def _paired(row) -> dict:
    """Measurement fields of a paired-comparison row: drop interval, headline and question p."""
    if "paired_p" in row:
        p, test = _float(row.get("paired_p")), str(row.get("paired_test", ""))
    else:  # a table written before the clustered test: the exact McNemar p
        p, test = _float(row.get("mcnemar_p")), "exact McNemar (questions independent)"
    return {
        **_interval(row, "drop_"),
        "p_value": p,
        "test": test,
        "p_value_question": _float(row.get("mcnemar_p")),
    }


def _no_skill(row, subset: str) -> str:
    """Why a change in ``subset`` cannot be measured (the unablated model has no skill), else ""."""
    base, floor = _float(row.get("baseline_accuracy")), _float(row.get("majority_accuracy"))
    if math.isnan(base) or math.isnan(floor) or base > floor:
        return ""
    return (
        f"the unablated model is no better than its majority-class answer on {subset} "
        f"({base:.1f}% vs {floor:.1f}% by always giving the most common answer): "
        "there is no skill to lose"
    )


# ------------------------------------------------------------------------------------ measurements
def rpb_near_zero(metric: str) -> Callable[[pd.DataFrame, Context], Measurement]:
    """Table 4: R_pb(metric, correct) pooled over models (the within-model row), headline interval.

    The question-level interval beside it is the Fisher-z one.
    """

    def measure(table: pd.DataFrame, ctx: Context) -> Measurement:
        rows, scope = _pooled_or_single(table, ctx, "table4", metric=metric)
        evidence = f"table4.csv: {_where(model=scope, dataset=ctx.dataset, metric=metric)}"
        if len(rows) != 1:
            return Measurement.absent(
                f"table4 has {len(rows)} rows for {metric} on {ctx.dataset}", evidence
            )
        row = rows.iloc[0]
        if "pooling" in row and scope == "pooled":
            evidence += f" ({row['pooling']})"
        if "lo" in row:
            fields = _interval(row)
        else:  # a table written before the clustered intervals: Fisher-z only
            fields = {
                "ci_low": _float(row["fisher_lo"]),
                "ci_high": _float(row["fisher_hi"]),
                "interval": "Fisher-z (questions independent)",
                "ci_low_question": _float(row["fisher_lo"]),
                "ci_high_question": _float(row["fisher_hi"]),
            }
        return _correlation(row, "r", "p", evidence, **fields)

    return measure


def _family_rows(
    table: pd.DataFrame, ctx: Context, family: str, name: str, **where
) -> tuple[pd.DataFrame, str]:
    models = ctx.models_of(family)
    if not models:
        return table.iloc[0:0], ""
    # the first configured model of the family (sorted by name) speaks for it
    return _rows(table, name, model=models[0], dataset=ctx.dataset, **where), models[0]


FamilyMeasure = Callable[[str, pd.DataFrame, Context], Measurement]


def _per_family(
    measure_of: FamilyMeasure,
) -> Callable[[str], Callable[[pd.DataFrame, Context], Measurement]]:
    """A claim measured per family: ``measure_of(family, table, ctx)`` becomes ``factory(family)``.

    The measure a factory returns is absent when the run has no model of that family, so
    ``measure_of`` only runs for families the run has.
    """

    @functools.wraps(measure_of)
    def factory(family: str) -> Callable[[pd.DataFrame, Context], Measurement]:
        def measure(table: pd.DataFrame, ctx: Context) -> Measurement:
            if not ctx.models_of(family):
                return Measurement.absent(f"no {family} model in this run")
            return measure_of(family, table, ctx)

        return measure

    return factory


@_per_family
def masking_drop(family: str, table: pd.DataFrame, ctx: Context) -> Measurement:
    """Masking: full vs top-30% most-attended patches greyed, all questions; drop in pp, McNemar p."""
    rows, model = _family_rows(
        table, ctx, family, "table_masking", contrast="full_vs_high", subset="all"
    )
    rows = rows[(rows["p"].astype(float) - MASK_SHARE).abs() < 1e-9]
    evidence = f"table_masking.csv: {_where(model=model, dataset=ctx.dataset, p=MASK_SHARE, contrast='full_vs_high', subset='all')}"
    if len(rows) != 1:
        return Measurement.absent(f"no masking row at p = {MASK_SHARE} for {model}", evidence)
    row = rows.iloc[0]
    return Measurement(_float(row["drop_pp"]), n=int(row["n"]), evidence=evidence, **_paired(row))


def _probe_rows(table: pd.DataFrame, ctx: Context, method: str) -> tuple[pd.DataFrame, str]:
    """Table 7 rows of one method on POPE adversarial presence questions, else on all questions."""
    for task, setting in (("presence", "adversarial"), ("all", "")):
        rows = _rows(table, "table7", dataset=ctx.dataset, method=method, task=task)
        rows = rows[rows["pope_setting"].fillna("").astype(str) == setting]
        if len(rows):
            return rows, f"task={task}" + (f", pope_setting={setting}" if setting else "")
    return table.iloc[0:0], "no subset"


def probe_auroc_families(table: pd.DataFrame, ctx: Context) -> Measurement:
    """Number of families whose held-out probe AUROC exceeds 0.95; interval from the AUROC CIs."""
    rows, subset = _probe_rows(table, ctx, "probe_peak")
    evidence = f"table7.csv: method=probe_peak, {subset}, dataset={ctx.dataset}"
    per_family = {}
    for _, row in rows.iterrows():
        family = ctx.families.get(row["model"])
        if family is not None and family not in per_family:
            per_family[family] = row
    if not per_family:
        return Measurement.absent("no probe AUROC rows", evidence)
    aurocs = [(_float(r["auroc"]), _float(r["lo"]), _float(r["hi"])) for r in per_family.values()]
    if any(math.isnan(x) for a in aurocs for x in a):
        return Measurement.absent("a family's probe AUROC is undefined (one class only)", evidence)
    question = [
        (_float(r.get("lo_question")), _float(r.get("hi_question"))) for r in per_family.values()
    ]
    return Measurement(
        value=float(sum(a > PROBE_AUROC_BAR for a, _, _ in aurocs)),
        ci_low=float(sum(lo > PROBE_AUROC_BAR for _, lo, _ in aurocs)),
        ci_high=float(sum(hi > PROBE_AUROC_BAR for _, _, hi in aurocs)),
        n=int(sum(int(r["n"]) for r in per_family.values())),
        evidence=evidence + f"; families {sorted(per_family)}",
        interval="families whose AUROC interval clears the bar: " + _method(per_family.values()),
        ci_low_question=float(sum(lo > PROBE_AUROC_BAR for lo, _ in question)),
        ci_high_question=float(sum(hi > PROBE_AUROC_BAR for _, hi in question)),
    )


def probe_beats_confidence(table: pd.DataFrame, ctx: Context) -> Measurement:
    """Number of families whose probe AUROC exceeds their output-confidence AUROC (CI-disjoint for the bounds)."""
    probe, subset = _probe_rows(table, ctx, "probe_peak")
    confidence, _ = _probe_rows(table, ctx, "output_confidence")
    evidence = (
        f"table7.csv: methods probe_peak vs output_confidence, {subset}, dataset={ctx.dataset}"
    )
    pairs = []
    for _, row in probe.iterrows():
        other = confidence[confidence["model"] == row["model"]]
        if len(other):
            pairs.append((row, other.iloc[0]))
    if not pairs:
        return Measurement.absent("no probe / output-confidence AUROC pairs", evidence)
    values = [
        (
            _float(p["auroc"]),
            _float(p["lo"]),
            _float(p["hi"]),
            _float(c["auroc"]),
            _float(c["lo"]),
            _float(c["hi"]),
        )
        for p, c in pairs
    ]
    if any(math.isnan(x) for v in values for x in v):
        return Measurement.absent("an AUROC is undefined (one class only)", evidence)
    question = [
        (
            _float(p.get("lo_question")),
            _float(p.get("hi_question")),
            _float(c.get("lo_question")),
            _float(c.get("hi_question")),
        )
        for p, c in pairs
    ]
    return Measurement(
        value=float(sum(pa > ca for pa, _, _, ca, _, _ in values)),
        ci_low=float(sum(plo > chi for _, plo, _, _, _, chi in values)),
        ci_high=float(sum(phi > clo for _, _, phi, _, clo, _ in values)),
        n=len(values),
        evidence=evidence,
        interval="families with disjoint AUROC intervals: " + _method([p for p, _ in pairs]),
        ci_low_question=float(sum(plo > chi for plo, _, _, chi in question)),
        ci_high_question=float(sum(phi > clo for _, phi, clo, _ in question)),
    )


def _method(rows) -> str:
    methods = sorted({str(r.get("ci_method", "") or "") for r in rows} - {""})
    return "; ".join(methods) if methods else "unnamed interval"


def _selfconsistency_all(
    table: pd.DataFrame, ctx: Context, family: str
) -> tuple[pd.Series | None, str]:
    rows, model = _family_rows(table, ctx, family, "selfconsistency", task="all")
    rows = rows[rows["k"].astype(int) == SC_K] if len(rows) else rows
    evidence = (
        f"selfconsistency/k~{SC_K}.csv: {_where(model=model, dataset=ctx.dataset, task='all')}"
    )
    return (rows.iloc[0] if len(rows) == 1 else None), evidence


@_per_family
def sc_rpb(family: str, table: pd.DataFrame, ctx: Context) -> Measurement:
    """Self-consistency: R_pb(S_SC, greedy correctness) at K = 10 on all questions, Fisher-z CI."""
    row, evidence = _selfconsistency_all(table, ctx, family)
    if row is None:
        return Measurement.absent(f"no K = {SC_K} row", evidence)
    return _correlation(row, "r_pb", "r_pb_p", evidence, **_interval(row, "r_pb_"))


@_per_family
def sc_precision(family: str, table: pd.DataFrame, ctx: Context) -> Measurement:
    """Self-consistency: precision of the greedy answer where all K = 10 samples agree.

    Headline interval of the table; the Wilson interval beside it.
    """
    row, evidence = _selfconsistency_all(table, ctx, family)
    if row is None:
        return Measurement.absent(f"no K = {SC_K} row", evidence)
    if int(row["n_sc1"]) == 0:
        return Measurement.absent("no question had all samples agree (S_SC = 1)", evidence)
    return Measurement(
        _float(row["precision_at_sc1"]),
        n=int(row["n_sc1"]),
        evidence=evidence,
        **_interval(row, "precision_"),
    )


def _table1_row(table: pd.DataFrame, ctx: Context, family: str, column: str):
    """The one table1 row of ``family`` with its evidence string, or an 'absent' Measurement."""
    rows, model = _family_rows(table, ctx, family, "table1")
    evidence = f"table1.csv: {_where(model=model, dataset=ctx.dataset)}, column {column}"
    if len(rows) != 1:
        return Measurement.absent(f"table1 has {len(rows)} rows for {model}", evidence)
    return rows.iloc[0], evidence


@_per_family
def stress_accuracy(family: str, table: pd.DataFrame, ctx: Context) -> Measurement:
    """Table 1: stress-test accuracy above chance (the majority-class rate), headline interval.

    Chance is the accuracy of always answering the majority label: the paper's 52-55% sit near
    50% on balanced labels, while a model that is right 70% of the time makes 70% the floor.
    """
    found = _table1_row(table, ctx, family, "stress_accuracy")
    if isinstance(found, Measurement):
        return found
    row, evidence = found
    accuracy, n = _float(row["stress_accuracy"]), int(row["n"])
    chance = _float(row["stress_majority_accuracy"])
    if math.isnan(accuracy) or math.isnan(chance) or n == 0:
        return Measurement.absent(
            f"stress test not run ({row.get('stress_status', 'no status')})", evidence
        )
    evidence += f" minus stress_majority_accuracy ({chance:.4g})"
    if "stress_accuracy_lo" in row:
        f = _interval(row, "stress_accuracy_")
    else:  # a table written before the clustered intervals
        lo, hi = wilson_interval(round(accuracy * n), n)
        f = {
            "ci_low": lo,
            "ci_high": hi,
            "interval": "Wilson (questions independent)",
            "ci_low_question": lo,
            "ci_high_question": hi,
        }
    return Measurement(
        accuracy - chance,
        f["ci_low"] - chance,
        f["ci_high"] - chance,
        n,
        evidence=evidence,
        interval=f["interval"],
        ci_low_question=f["ci_low_question"] - chance,
        ci_high_question=f["ci_high_question"] - chance,
    )


@_per_family
def topk_r2(family: str, table: pd.DataFrame, ctx: Context) -> Measurement:
    """Table 1: max over K of the nested top-K-heads attention R², with its headline interval.

    The question-level interval beside it is the Fisher-z interval of r, squared.
    """
    found = _table1_row(table, ctx, family, "topk_r2_max")
    if isinstance(found, Measurement):
        return found
    row, evidence = found
    r2, n = _float(row["topk_r2_max"]), int(row["n"])
    if math.isnan(r2) or n < 4:
        return Measurement.absent("top-K attention R² undefined", evidence)
    lo, hi = fisher_z_interval(math.sqrt(r2), n)
    fisher = (0.0 if lo <= 0 else lo * lo, max(lo * lo, hi * hi))
    if "topk_r2_lo" in row and not math.isnan(_float(row["topk_r2_lo"])):
        return Measurement(
            r2,
            _float(row["topk_r2_lo"]),
            _float(row["topk_r2_hi"]),
            n,
            evidence=evidence,
            interval=str(row.get("topk_r2_ci_method", "")),
            ci_low_question=fisher[0],
            ci_high_question=fisher[1],
        )
    return Measurement(
        r2,
        fisher[0],
        fisher[1],
        n,
        evidence=evidence,
        interval="Fisher-z of r, squared",
        ci_low_question=fisher[0],
        ci_high_question=fisher[1],
    )


def ablation_top5_object_id(table: pd.DataFrame, ctx: Context) -> Measurement:
    """Table 5, LLaVA: zeroing the top-5 probe channels of the last swept layer; object-ID drop in pp."""
    if not ctx.models_of("llava"):
        return Measurement.absent("no llava model in this run")
    rows, model = _family_rows(
        table, ctx, "llava", "table5", condition="top_k", subset=OBJECT_ID_TASK
    )
    rows = rows[rows["k"].astype(int) == TOP_PROBE_CHANNELS] if len(rows) else rows
    where = _where(
        model=model,
        dataset=ctx.dataset,
        condition="top_k",
        k=TOP_PROBE_CHANNELS,
        subset=OBJECT_ID_TASK,
    )
    evidence = f"table5.csv: {where}"
    if not len(rows):
        return Measurement.absent(
            f"no top-{TOP_PROBE_CHANNELS} ablation on object-ID questions "
            "(ablation.k_values / the tasks)",
            evidence,
        )
    # the paper's Table 5 ablates the last layer (L31): the deepest swept layer speaks
    row = rows.loc[rows["layer"].astype(int).idxmax()]
    evidence += f", layer={int(row['layer'])}"
    no_skill = _no_skill(row, f"{OBJECT_ID_TASK} questions")
    if no_skill:
        return Measurement.absent(no_skill, evidence)
    return Measurement(_float(row["drop_pp"]), n=int(row["n"]), evidence=evidence, **_paired(row))


@_per_family
def ablation_half_destroyed(family: str, table: pd.DataFrame, ctx: Context) -> Measurement:
    """Table 6: random channels zeroed at the share closest to 50%; accuracy loss in pp, all questions."""
    rows, model = _family_rows(
        table, ctx, family, "table6", condition="random_fraction", subset="all"
    )
    evidence = f"table6.csv: {_where(model=model, dataset=ctx.dataset, condition='random_fraction', subset='all')}"
    if not len(rows):
        return Measurement.absent("no random-fraction ablation rows", evidence)
    distance = (rows["fraction"].astype(float) - DESTRUCTION_SHARE).abs()
    rows = rows[distance == distance.min()]
    # several random draws at that share: the one that loses most speaks (the claim is for any draw)
    row = rows.loc[rows["drop_pp"].astype(float).idxmax()]
    evidence += f", fraction={float(row['fraction']):g}, seed={int(row['seed'])}"
    no_skill = _no_skill(row, "all questions")
    if no_skill:
        return Measurement.absent(no_skill, evidence)
    return Measurement(_float(row["drop_pp"]), n=int(row["n"]), evidence=evidence, **_paired(row))


# ------------------------------------------------------------------------------------ the claims
def _near_zero(m: Margins) -> Requirement:
    return Requirement(low=-m.near_zero_r, high=m.near_zero_r)


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "rpb_ck_near_zero",
        "Attention cluster count C_k does not predict correctness: R_pb(C_k, y) near zero",
        "pooled",
        "0.001 [-0.034, 0.036], n = 3,090",
        "abstract; Table 4",
        "table4",
        rpb_near_zero("C_k"),
        _near_zero,
    ),
    Claim(
        "rpb_hs_near_zero",
        "Attention spatial entropy H_s does not predict correctness: R_pb(H_s, y) near zero",
        "pooled",
        "-0.012 [-0.047, 0.024], n = 3,090",
        "abstract; Table 4",
        "table4",
        rpb_near_zero("H_s"),
        _near_zero,
    ),
    Claim(
        "topk_r2_llava",
        "Top-K attention heads explain little: max R² small",
        "llava",
        "0.008",
        "Table 1; Figure 1 ('Structural R² < 0.08')",
        "table1",
        topk_r2("llava"),
        lambda m: Requirement(high=R2_BAR),
    ),
    Claim(
        "topk_r2_paligemma",
        "Top-K attention heads explain little: max R² small",
        "paligemma",
        "0.080",
        "Table 1; Figure 1 ('Structural R² < 0.08')",
        "table1",
        topk_r2("paligemma"),
        lambda m: Requirement(high=R2_BAR),
    ),
    Claim(
        "topk_r2_qwen2vl",
        "Top-K attention heads explain little: max R² small",
        "qwen2vl",
        "0.007",
        "Table 1; Figure 1 ('Structural R² < 0.08')",
        "table1",
        topk_r2("qwen2vl"),
        lambda m: Requirement(high=R2_BAR),
    ),
    Claim(
        "stress_test_llava",
        "A supervised classifier on attention features stays near chance",
        "llava",
        "53.0% (chance-level labels: ~50%)",
        "abstract; Table 1 (52-55%)",
        "table1",
        stress_accuracy("llava"),
        lambda m: Requirement(high=m.near_chance_margin),
    ),
    Claim(
        "stress_test_paligemma",
        "A supervised classifier on attention features stays near chance",
        "paligemma",
        "55.0% (chance-level labels: ~50%)",
        "abstract; Table 1 (52-55%)",
        "table1",
        stress_accuracy("paligemma"),
        lambda m: Requirement(high=m.near_chance_margin),
    ),
    Claim(
        "stress_test_qwen2vl",
        "A supervised classifier on attention features stays near chance",
        "qwen2vl",
        "52.0% (chance-level labels: ~50%)",
        "abstract; Table 1 (52-55%)",
        "table1",
        stress_accuracy("qwen2vl"),
        lambda m: Requirement(high=m.near_chance_margin),
    ),
    Claim(
        "masking_drop_llava",
        "Masking the top-30% attended patches lowers accuracy, p < 0.001",
        "llava",
        "-8.2 pp, p < 0.001",
        "abstract; §3.11",
        "table_masking",
        masking_drop("llava"),
        lambda m: Requirement(low=0.0, alpha=MASKING_ALPHA, unit=" pp"),
    ),
    Claim(
        "masking_drop_paligemma",
        "Masking the top-30% attended patches lowers accuracy, p < 0.001",
        "paligemma",
        "-11.3 pp, p < 0.001",
        "abstract; §3.11",
        "table_masking",
        masking_drop("paligemma"),
        lambda m: Requirement(low=0.0, alpha=MASKING_ALPHA, unit=" pp"),
    ),
    Claim(
        "probe_auroc_two_of_three",
        "A hidden-state probe reaches AUROC > 0.95 for two of three families",
        "families",
        "2 of 3 (LLaVA 0.956, PaliGemma 0.738, Qwen2-VL 0.971)",
        "abstract; Tables 3 and 7",
        "table7",
        probe_auroc_families,
        lambda m: Requirement(low=1.5, unit=" families"),
    ),
    Claim(
        "probe_beats_confidence",
        "The hidden-state probe beats output confidence for every family",
        "families",
        "3 of 3 (0.956/0.738/0.971 vs 0.54/0.55/0.53)",
        "Table 7",
        "table7",
        probe_beats_confidence,
        lambda m: Requirement(low=2.5, unit=" families"),
    ),
    Claim(
        "sc_rpb_llava",
        "Self-consistency (K = 10) correlates with correctness",
        "llava",
        "R_pb = 0.43 (0.429)",
        "abstract; §3.10",
        "selfconsistency",
        sc_rpb("llava"),
        lambda m: Requirement(low=m.near_zero_r),
    ),
    Claim(
        "sc_rpb_paligemma",
        "Self-consistency (K = 10) correlates with correctness",
        "paligemma",
        "R_pb = 0.43 (0.429)",
        "abstract; §3.10",
        "selfconsistency",
        sc_rpb("paligemma"),
        lambda m: Requirement(low=m.near_zero_r),
    ),
    Claim(
        "sc_rpb_qwen2vl",
        "Self-consistency (K = 10) correlates with correctness",
        "qwen2vl",
        "R_pb = 0.43 (0.429)",
        "abstract; §3.10",
        "selfconsistency",
        sc_rpb("qwen2vl"),
        lambda m: Requirement(low=m.near_zero_r),
    ),
    Claim(
        "sc1_precision_llava",
        "When all K = 10 samples agree, the answer is right > 90% of the time",
        "llava",
        "90.8% [88.4, 92.8]",
        "§3.10; Table 4",
        "selfconsistency",
        sc_precision("llava"),
        lambda m: Requirement(low=SC1_PRECISION_BAR),
    ),
    Claim(
        "sc1_precision_paligemma",
        "When all K = 10 samples agree, the answer is right > 90% of the time",
        "paligemma",
        "90.8% [88.4, 92.8]",
        "§3.10; Table 4",
        "selfconsistency",
        sc_precision("paligemma"),
        lambda m: Requirement(low=SC1_PRECISION_BAR),
    ),
    Claim(
        "sc1_precision_qwen2vl",
        "When all K = 10 samples agree, the answer is right > 90% of the time",
        "qwen2vl",
        "90.8% [88.4, 92.8]",
        "§3.10; Table 4",
        "selfconsistency",
        sc_precision("qwen2vl"),
        lambda m: Requirement(low=SC1_PRECISION_BAR),
    ),
    Claim(
        "ablation_top5_object_id_llava",
        "Zeroing LLaVA's top-5 probe channels (last layer) hurts object-ID",
        "llava",
        "-8.3 pp object-ID (-2.0 pp overall), n = 200",
        "abstract; Table 5",
        "table5",
        ablation_top5_object_id,
        lambda m: Requirement(low=0.0, unit=" pp"),
    ),
    Claim(
        "ablation_half_destroyed_paligemma",
        "Destroying ~50% of channels costs at most 1 pp (early fusion)",
        "paligemma",
        "-1.0 pp at 49% (1,000 random)",
        "abstract; Table 6",
        "table6",
        ablation_half_destroyed("paligemma"),
        lambda m: Requirement(high=SMALL_CHANGE_PP, unit=" pp"),
    ),
    Claim(
        "ablation_half_destroyed_qwen2vl",
        "Destroying ~50% of channels costs at most 1 pp (early fusion)",
        "qwen2vl",
        "+2.0 pp at 56% (2,000 random)",
        "abstract; Table 6",
        "table6",
        ablation_half_destroyed("qwen2vl"),
        lambda m: Requirement(high=SMALL_CHANGE_PP, unit=" pp"),
    ),
)

TABLES = ("table1", "table4", "table7", "selfconsistency", "table_masking", "table5", "table6")


def check_claims(
    tables: Mapping[str, pd.DataFrame | None],
    datasets,
    families: Mapping[str, str],
    margins: Margins = Margins(),
    claims: tuple[Claim, ...] = CLAIMS,
) -> pd.DataFrame:
    """One row per claim and dataset (columns :data:`COLUMNS`).

    ``tables`` maps a key of :data:`TABLES` to its result table, or None / no key when this run's
    workflow does not build it. ``families`` maps model name -> family.
    """
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown result table key(s) {sorted(unknown)}; known: {list(TABLES)}")
    rows = []
    for dataset in datasets:
        ctx = Context(dataset=str(dataset), families=dict(families), margins=margins)
        for claim in claims:
            table = tables.get(claim.table)
            test = claim.test(margins)
            if table is None:
                m = Measurement.absent(
                    f"this run's workflow does not build the {claim.table} result table"
                )
            else:
                m = claim.measure(table, ctx)
            verdict, reason = test.verdict(m)
            verdict_q = ""
            if not m.missing and not math.isnan(m.ci_low_question):
                verdict_q, reason_q = test.verdict(m.question_level())
                if verdict_q != verdict:
                    reason += (
                        f"; the verdict changes with the question-level interval "
                        f"[{m.ci_low_question:.4g}, {m.ci_high_question:.4g}]"
                        + (
                            f" (p = {m.p_value_question:.3g})"
                            if not math.isnan(m.p_value_question)
                            else ""
                        )
                        + f", which would give '{verdict_q}'"
                    )
            if m.interval and not m.missing:
                reason += (
                    f" [interval: {m.interval}" + (f"; test: {m.test}" if m.test else "") + "]"
                )
            rows.append(
                {
                    "claim_id": claim.claim_id,
                    "claim": claim.claim,
                    "scope": claim.scope,
                    "dataset": dataset,
                    "paper_value": claim.paper_value,
                    "paper_source": claim.paper_source,
                    "needs": test.describe(),
                    "value": m.value,
                    "ci_low": m.ci_low,
                    "ci_high": m.ci_high,
                    "interval": m.interval,
                    "n": pd.NA if m.n is None else int(m.n),
                    "p_value": m.p_value,
                    "test": m.test,
                    "verdict": verdict,
                    "reason": reason,
                    "ci_low_question": m.ci_low_question,
                    "ci_high_question": m.ci_high_question,
                    "p_value_question": m.p_value_question,
                    "verdict_question": verdict_q,
                    "evidence": m.evidence,
                }
            )
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["n"] = out["n"].astype("Int64")
    return out


def read_result_table(path) -> pd.DataFrame:
    """A result CSV as the workflow wrote it (empty strings stay empty strings, e.g. pope_setting)."""
    return pd.read_csv(path, keep_default_na=False, na_values=["nan", "NaN"])


def check_claims_from_files(
    paths: Mapping[str, object], datasets, families: Mapping[str, str], margins: Margins = Margins()
) -> pd.DataFrame:
    """:func:`check_claims` on result CSVs: ``paths`` maps a key of :data:`TABLES` to a file (or a
    list of files, concatenated — e.g. one per model)."""
    tables = {}
    for key, value in paths.items():
        files = (
            [value]
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__")
            else list(value)
        )
        tables[key] = (
            pd.concat([read_result_table(f) for f in files], ignore_index=True) if files else None
        )
    return check_claims(tables, datasets, families, margins)


_VERDICT_STYLE = {HOLDS: "#d4edda", DOES_NOT_HOLD: "#f8d7da", NOT_MEASURABLE: "#eeeeee"}


def _cell(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


# columns of results/claims.csv the HTML page leaves out (the evidence is each row's hover text)
_HTML_HIDDEN = {"claim_id", "paper_source", "test", "p_value_question", "evidence"}


def claims_html(claims: pd.DataFrame, title: str = "Claims check") -> str:
    """A self-contained HTML page of the claims table, one colour per verdict, for the report.

    The same rows as results/claims.csv; the verdict counts head the page. Deterministic bytes
    for identical input.
    """
    counts = claims["verdict"].value_counts()
    summary = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS)
    shown = [c for c in COLUMNS if c not in _HTML_HIDDEN]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown)
    rows = []
    for record in claims.to_dict("records"):
        colour = _VERDICT_STYLE.get(record["verdict"], "#ffffff")
        cells = "".join(f"<td>{_cell(record[c])}</td>" for c in shown)
        rows.append(
            f'<tr style="background:{colour}" title="{html.escape(str(record["evidence"]))}">{cells}</tr>'
        )
    body = "\n".join(rows)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; font-size: 13px; margin: 1em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }}
th {{ background: #333; color: #fff; position: sticky; top: 0; }}
</style></head>
<body>
<h2>{html.escape(title)}</h2>
<p>{len(claims)} claims: {html.escape(summary)}. <i>holds</i> / <i>does not hold</i>: the whole 95% interval lies
on the side in <i>needs</i> / on the other side; otherwise <i>not measurable in this run</i>. Hover a row for
the result file and row it was read from.</p>
<table>
<tr>{head}</tr>
{body}
</table>
</body></html>
"""
