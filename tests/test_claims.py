"""The claims check (vrp.analysis.claims) from small hand-made result tables, and end to end.

The unit tests write CSVs shaped like the workflow's tables, read them back as the rule's script
does, and check that each verdict follows from the numbers (editing a file flips it). The slow
tests check results/claims.csv and the HTML report of the toy demo run.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake
from vrp.analysis.claims import (
    CLAIMS,
    COLUMNS,
    DOES_NOT_HOLD,
    HOLDS,
    NOT_MEASURABLE,
    TABLES,
    Margins,
    Measurement,
    Requirement,
    check_claims,
    check_claims_from_files,
    claims_html,
)

FAMILIES = {"llava": "llava", "paligemma": "paligemma", "qwen2vl": "qwen2vl"}


def verdict_of(claims: pd.DataFrame, claim_id: str) -> str:
    rows = claims[claims["claim_id"] == claim_id]
    assert len(rows) == 1, claim_id
    return rows["verdict"].iloc[0]


def verdicts(claims: pd.DataFrame, claim_ids: str) -> dict[str, str]:
    """{claim id: verdict} of the space-separated ``claim_ids``."""
    return {claim_id: verdict_of(claims, claim_id) for claim_id in claim_ids.split()}


# --- the decision rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "test, value, lo, hi, p, expected",
    [
        (Requirement(low=-0.1, high=0.1), 0.001, -0.034, 0.036, math.nan, HOLDS),
        (Requirement(low=-0.1, high=0.1), 0.30, 0.25, 0.35, math.nan, DOES_NOT_HOLD),
        (
            Requirement(low=-0.1, high=0.1),
            0.05,
            -0.20,
            0.29,
            math.nan,
            NOT_MEASURABLE,
        ),  # too wide to decide
        (Requirement(low=0.95), 0.97, 0.96, 0.98, math.nan, HOLDS),
        (
            Requirement(low=0.95),
            0.90,
            0.85,
            0.95,
            math.nan,
            DOES_NOT_HOLD,
        ),  # hi == bound: never above it
        (Requirement(high=1.0), -0.5, -1.5, 0.4, math.nan, HOLDS),
        (Requirement(high=1.0), 3.0, 1.0, 5.0, math.nan, DOES_NOT_HOLD),
        (Requirement(low=0.0, alpha=0.001), 8.2, 5.1, 11.3, 1e-6, HOLDS),
        (
            Requirement(low=0.0, alpha=0.001),
            8.2,
            5.1,
            11.3,
            0.004,
            NOT_MEASURABLE,
        ),  # right sign, p too large
        (Requirement(low=0.0, alpha=0.001), -2.0, -4.0, -0.1, 0.01, DOES_NOT_HOLD),
        (Requirement(low=0.0), math.nan, math.nan, math.nan, math.nan, NOT_MEASURABLE),
    ],
)
def test_verdict_follows_the_interval(test, value, lo, hi, p, expected):
    verdict, reason = test.verdict(Measurement(value, lo, hi, 100, p))
    assert verdict == expected, reason


def test_description_names_bounds_and_alpha():
    assert Requirement(low=-0.1, high=0.1).describe().startswith("within [-0.1, 0.1]")
    assert (
        Requirement(low=0.0, alpha=0.001, unit=" pp").describe().startswith("> 0 pp and p < 0.001")
    )
    assert Requirement(high=0.6).describe().startswith("< 0.6")


def test_margins_refuse_unknown_keys():
    assert Margins.from_params({"near_zero_r": 0.05}) == Margins(
        near_zero_r=0.05, near_chance_margin=0.1
    )
    with pytest.raises(ValueError, match="unknown claims setting.*near_zero"):
        Margins.from_params({"near_zero": 0.05})


# --- hand-made result files -----------------------------------------------------------------


def table4_rows(r_ck=0.001, ck_ci=(-0.034, 0.036), r_hs=-0.012, hs_ci=(-0.047, 0.024), n=3090):
    rows = []
    for model, family in [*FAMILIES.items(), ("pooled", "pooled")]:
        for metric, r, (lo, hi) in (("C_k", r_ck, ck_ci), ("H_s", r_hs, hs_ci)):
            rows.append(
                {
                    "model": model,
                    "family": family,
                    "dataset": "synthetic",
                    "metric": metric,
                    "definition": metric,
                    "n": n if model == "pooled" else n // 3,
                    "n_correct": n // 2,
                    "r": r,
                    "fisher_lo": lo,
                    "fisher_hi": hi,
                    "boot_lo": lo,
                    "boot_hi": hi,
                    "p": 0.5,
                }
            )
    return pd.DataFrame(rows)


def table7_rows(probe=(0.956, 0.738, 0.971), width=0.004, confidence=(0.54, 0.55, 0.53)):
    rows = []
    for (model, _), auroc, conf in zip(FAMILIES.items(), probe, confidence):
        for method, value in (("probe_peak", auroc), ("output_confidence", conf)):
            rows.append(
                {
                    "model": model,
                    "dataset": "synthetic",
                    "task": "presence",
                    "pope_setting": "adversarial",
                    "method": method,
                    "label": method,
                    "auroc": value,
                    "lo": value - width,
                    "hi": value + width,
                    "n": 1000,
                    "n_pos": 600,
                    "cost": "1x",
                    "layer": 3,
                    "note": "",
                }
            )
    return pd.DataFrame(rows)


def per_model_rows(axis: str, values, **columns) -> pd.DataFrame:
    """One row per family and value of ``axis`` on the synthetic dataset, the other columns fixed."""
    rows = [{"model": m, "dataset": "synthetic", axis: v} for m in FAMILIES for v in values]
    return pd.DataFrame([{**row, **columns} for row in rows])


def masking_rows(drop=8.2, ci=(5.0, 11.4), p=1e-6):
    return per_model_rows(
        "contrast",
        ("full_vs_high", "full_vs_low"),
        p=0.3,
        subset="all",
        n=1000,
        drop_pp=drop,
        drop_lo=ci[0],
        drop_hi=ci[1],
        mcnemar_p=p,
    )[
        [
            "model",
            "dataset",
            "p",
            "contrast",
            "subset",
            "n",
            "drop_pp",
            "drop_lo",
            "drop_hi",
            "mcnemar_p",
        ]
    ]


def write(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


def test_every_claim_has_a_row_and_missing_tables_are_not_measurable():
    claims = check_claims({}, ["synthetic"], FAMILIES)
    assert list(claims.columns) == COLUMNS
    assert list(claims["claim_id"]) == [c.claim_id for c in CLAIMS]
    assert set(claims["verdict"]) == {NOT_MEASURABLE}
    assert claims["reason"].str.contains("does not build").all()
    assert {c.table for c in CLAIMS} == set(TABLES)


def test_verdicts_follow_the_result_files(tmp_path):
    paths = {
        "table4": write(tmp_path, "table4", table4_rows()),
        "table7": write(tmp_path, "table7", table7_rows()),
        "table_masking": write(tmp_path, "table_masking", masking_rows()),
    }
    claims = check_claims_from_files(paths, ["synthetic"], FAMILIES)
    holding = "rpb_ck_near_zero rpb_hs_near_zero probe_auroc_two_of_three probe_beats_confidence masking_drop_llava"
    assert verdicts(claims, holding) == dict.fromkeys(holding.split(), HOLDS)
    row = claims[claims["claim_id"] == "rpb_ck_near_zero"].iloc[0]
    assert (row["value"], row["ci_low"], row["ci_high"], row["n"]) == (0.001, -0.034, 0.036, 3090)
    two_of_three = claims[claims["claim_id"] == "probe_auroc_two_of_three"].iloc[0]
    assert (two_of_three["value"], two_of_three["ci_low"], two_of_three["ci_high"]) == (
        2.0,
        2.0,
        2.0,
    )
    assert verdict_of(claims, "stress_test_llava") == NOT_MEASURABLE  # no table1 given

    # edit the files: a strong C_k correlation, a weak probe, no significant masking drop
    write(tmp_path, "table4", table4_rows(r_ck=0.31, ck_ci=(0.27, 0.35)))
    write(tmp_path, "table7", table7_rows(probe=(0.956, 0.738, 0.90)))
    write(tmp_path, "table_masking", masking_rows(drop=-1.0, ci=(-2.5, -0.2), p=0.04))
    edited = check_claims_from_files(paths, ["synthetic"], FAMILIES)
    assert verdict_of(edited, "rpb_ck_near_zero") == DOES_NOT_HOLD
    assert verdict_of(edited, "rpb_hs_near_zero") == HOLDS  # untouched
    assert (
        verdict_of(edited, "probe_auroc_two_of_three") == DOES_NOT_HOLD
    )  # only LLaVA's CI clears 0.95
    assert verdict_of(edited, "masking_drop_llava") == DOES_NOT_HOLD

    # a wide interval cannot decide
    write(tmp_path, "table4", table4_rows(r_ck=0.05, ck_ci=(-0.2, 0.29), n=60))
    wide = check_claims_from_files(paths, ["synthetic"], FAMILIES)
    assert verdict_of(wide, "rpb_ck_near_zero") == NOT_MEASURABLE
    assert "cannot decide" in wide.loc[wide["claim_id"] == "rpb_ck_near_zero", "reason"].iloc[0]


def test_margins_change_near_zero_verdict(tmp_path):
    paths = {"table4": write(tmp_path, "table4", table4_rows(r_ck=0.06, ck_ci=(0.03, 0.09)))}
    assert (
        verdict_of(check_claims_from_files(paths, ["synthetic"], FAMILIES), "rpb_ck_near_zero")
        == HOLDS
    )
    strict = check_claims_from_files(paths, ["synthetic"], FAMILIES, Margins(near_zero_r=0.02))
    assert verdict_of(strict, "rpb_ck_near_zero") == DOES_NOT_HOLD


def test_family_claims_without_that_family_are_not_measurable(tmp_path):
    paths = {"table_masking": write(tmp_path, "table_masking", masking_rows())}
    claims = check_claims_from_files(paths, ["synthetic"], {"llava": "llava"})
    assert verdict_of(claims, "masking_drop_llava") == HOLDS
    row = claims[claims["claim_id"] == "masking_drop_paligemma"].iloc[0]
    assert row["verdict"] == NOT_MEASURABLE and "no paligemma model" in row["reason"]


def test_a_table_missing_a_column_is_a_clear_error(tmp_path):
    paths = {"table4": write(tmp_path, "table4", table4_rows().drop(columns=["metric"]))}
    with pytest.raises(ValueError, match=r"result table table4 lacks column\(s\) \['metric'\]"):
        check_claims_from_files(paths, ["synthetic"], FAMILIES)


def table1_rows(stress=(0.53, 0.55, 0.52), r2=(0.008, 0.080, 0.007), n=3000):
    return pd.DataFrame(
        [
            {
                "model": m,
                "family": f,
                "dataset": "synthetic",
                "n": n,
                "accuracy": 0.7,
                "topk_r2_max": r,
                "topk_best_k": 5,
                "stress_accuracy": s,
                "stress_auroc": 0.52,
                "stress_auroc_lo": 0.5,
                "stress_auroc_hi": 0.54,
                "stress_majority_accuracy": 0.6,
                "stress_status": "ok",
            }
            for (m, f), s, r in zip(FAMILIES.items(), stress, r2)
        ]
    )


def selfconsistency_rows(r_pb=0.43, r_ci=(0.40, 0.46), precision=0.908, p_ci=(0.884, 0.928)):
    frame = per_model_rows(
        "task",
        ("all", "presence"),
        k=10,
        pope_setting="",
        n=3090,
        n_pos=2000,
        r_pb=r_pb,
        r_pb_lo=r_ci[0],
        r_pb_hi=r_ci[1],
        r_pb_p=1e-9,
        auroc=0.78,
        lo=0.76,
        hi=0.80,
        precision_at_sc1=precision,
        n_sc1=660,
        n_sc1_correct=600,
        precision_lo=p_ci[0],
        precision_hi=p_ci[1],
    )
    first = ["model", "dataset", "k", "task"]
    return frame[first + [c for c in frame.columns if c not in first]]


def table5_rows(drop_last=(8.3, -5.0, 25.0), drop_other=(-50.0, -60.0, -40.0)):
    rows = []
    for layer, (drop, lo, hi) in ((29, drop_other), (31, drop_last)):
        for subset in ("all", "object_id"):
            rows.append(
                {
                    "model": "llava",
                    "family": "llava",
                    "dataset": "synthetic",
                    "layer": layer,
                    "condition": "top_k",
                    "k": 5,
                    "rank": -1,
                    "seed": -1,
                    "fraction": float("nan"),
                    "subset": subset,
                    "n": 12 if subset == "object_id" else 200,
                    "drop_pp": drop,
                    "drop_lo": lo,
                    "drop_hi": hi,
                    "mcnemar_p": 1.0,
                }
            )
    return pd.DataFrame(rows)


def table6_rows(draws=((1.0, -0.5, 2.5), (0.2, -0.8, 0.9))):
    rows = []
    for model in ("paligemma", "qwen2vl"):
        for fraction, drops in ((0.25, ((9.0, 8.0, 10.0),)), (0.49, draws)):
            for seed, (drop, lo, hi) in enumerate(drops):
                rows.append(
                    {
                        "model": model,
                        "family": model,
                        "dataset": "synthetic",
                        "layer": 10,
                        "condition": "random_fraction",
                        "k": 1000,
                        "seed": seed,
                        "fraction": fraction,
                        "subset": "all",
                        "n": 300,
                        "drop_pp": drop,
                        "drop_lo": lo,
                        "drop_hi": hi,
                        "mcnemar_p": 0.5,
                    }
                )
    return pd.DataFrame(rows)


def test_table1_selfconsistency_and_ablation_claims(tmp_path):
    paths = {
        "table1": write(tmp_path, "table1", table1_rows()),
        "selfconsistency": write(tmp_path, "sc", selfconsistency_rows()),
        "table5": write(tmp_path, "table5", table5_rows()),
        "table6": write(tmp_path, "table6", table6_rows()),
    }
    claims = check_claims_from_files(paths, ["synthetic"], FAMILIES)
    assert (
        verdict_of(claims, "stress_test_llava") == HOLDS
    )  # 53% vs a 60% majority rate: below chance
    assert verdict_of(claims, "topk_r2_llava") == HOLDS
    assert (
        verdict_of(claims, "topk_r2_paligemma") == NOT_MEASURABLE
    )  # the paper's 0.080 sits on the bar
    assert verdict_of(claims, "sc_rpb_qwen2vl") == HOLDS
    # the paper's own SC=1 precision CI [88.4, 92.8] straddles 90%: not decidable at its n
    assert verdict_of(claims, "sc1_precision_llava") == NOT_MEASURABLE
    row = claims[claims["claim_id"] == "ablation_top5_object_id_llava"].iloc[0]
    assert (
        row["verdict"] == NOT_MEASURABLE and row["value"] == 8.3 and row["n"] == 12
    )  # layer 31, not 29
    assert "layer=31" in row["evidence"]
    half = claims[claims["claim_id"] == "ablation_half_destroyed_paligemma"].iloc[0]
    assert (
        half["verdict"] == NOT_MEASURABLE and half["value"] == 1.0
    )  # the worse of two draws at 49%

    write(tmp_path, "table1", table1_rows(stress=(0.75, 0.55, 0.52)))
    write(tmp_path, "sc", selfconsistency_rows(r_pb=0.02, r_ci=(-0.01, 0.05), p_ci=(0.905, 0.93)))
    write(tmp_path, "table5", table5_rows(drop_last=(30.0, 10.0, 50.0)))
    write(tmp_path, "table6", table6_rows(draws=((0.1, -0.6, 0.8), (0.0, -0.5, 0.5))))
    edited = check_claims_from_files(paths, ["synthetic"], FAMILIES)
    assert verdicts(edited, "stress_test_llava sc_rpb_qwen2vl") == dict.fromkeys(
        ["stress_test_llava", "sc_rpb_qwen2vl"], DOES_NOT_HOLD
    )
    holding = "stress_test_paligemma sc1_precision_llava ablation_top5_object_id_llava ablation_half_destroyed_qwen2vl"
    assert verdicts(edited, holding) == dict.fromkeys(holding.split(), HOLDS)


def test_a_verdict_that_changes_with_the_question_level_interval_says_so(tmp_path):
    table4 = table4_rows()
    # image-clustered interval wider than the question-level (Fisher-z) one: the C_k verdict moves
    table4["lo"], table4["hi"] = table4["fisher_lo"], table4["fisher_hi"]
    table4["ci_method"] = "cluster bootstrap by image (percentile, 2000 resamples)"
    table4["lo_question"], table4["hi_question"] = table4["fisher_lo"], table4["fisher_hi"]
    ck = table4["metric"] == "C_k"
    table4.loc[ck, ["lo", "hi"]] = [-0.05, 0.12]  # straddles +0.1
    claims = check_claims_from_files(
        {"table4": write(tmp_path, "table4", table4)}, ["synthetic"], FAMILIES
    )
    row = claims[claims["claim_id"] == "rpb_ck_near_zero"].iloc[0]
    assert row["verdict"] == NOT_MEASURABLE and row["verdict_question"] == HOLDS
    assert (
        "changes with the question-level interval" in row["reason"]
        and "would give 'holds'" in row["reason"]
    )
    assert (
        row["interval"].startswith("cluster bootstrap by image")
        and "cluster bootstrap" in row["reason"]
    )
    same = claims[claims["claim_id"] == "rpb_hs_near_zero"].iloc[0]
    assert same["verdict"] == same["verdict_question"] == HOLDS and "changes" not in same["reason"]


def test_a_subset_without_skill_is_not_measurable(tmp_path):
    table5 = table5_rows(drop_last=(30.0, 10.0, 50.0))
    table5["baseline_accuracy"] = 60.0
    table5["majority_accuracy"] = np.where(
        table5["subset"] == "object_id", 60.0, 50.0
    )  # constant answer
    claims = check_claims_from_files(
        {"table5": write(tmp_path, "table5", table5)}, ["synthetic"], FAMILIES
    )
    row = claims[claims["claim_id"] == "ablation_top5_object_id_llava"].iloc[0]
    assert (
        row["verdict"] == NOT_MEASURABLE
        and "no better than its majority-class answer" in row["reason"]
    )
    table5["majority_accuracy"] = 40.0
    claims = check_claims_from_files(
        {"table5": write(tmp_path, "table5", table5)}, ["synthetic"], FAMILIES
    )
    assert verdict_of(claims, "ablation_top5_object_id_llava") == HOLDS


def test_claims_html_colours_each_verdict(tmp_path):
    paths = {"table4": write(tmp_path, "table4", table4_rows(r_ck=0.31, ck_ci=(0.27, 0.35)))}
    claims = check_claims_from_files(paths, ["synthetic"], FAMILIES)
    page = claims_html(claims)
    assert page.count("<tr style=") == len(claims) == len(CLAIMS)
    assert page.count("#f8d7da") == 1 and page.count("#d4edda") == 1  # C_k fails, H_s holds
    assert (
        f"{len(CLAIMS)} claims: 1 holds, 1 does not hold, {len(CLAIMS) - 2} not measurable in this run"
        in page
    )
    assert page == claims_html(claims)  # same bytes for the same table


# --- end to end on the toy demo run -------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--virtual-time-budget=8000",
]


@pytest.mark.slow
def test_demo_claims_table_has_every_claim(demo_workdir):
    claims = pd.read_csv(demo_workdir / "results" / "claims.csv", keep_default_na=False)
    assert list(claims.columns) == COLUMNS
    assert list(claims["claim_id"]) == [c.claim_id for c in CLAIMS]  # one dataset: one row each
    assert set(claims["verdict"]) <= {HOLDS, DOES_NOT_HOLD, NOT_MEASURABLE}
    # the tables the toy run builds are read (n filled in), not reported missing
    read = claims[~claims["reason"].str.contains("does not build")]
    assert {
        "rpb_ck_near_zero",
        "rpb_hs_near_zero",
        "probe_auroc_two_of_three",
        "masking_drop_llava",
    } <= set(read["claim_id"])
    table4 = pd.read_csv(demo_workdir / "results" / "table4.csv")
    pooled = table4[(table4["model"] == "pooled") & (table4["metric"] == "C_k")].iloc[0]
    row = claims[claims["claim_id"] == "rpb_ck_near_zero"].iloc[0]
    assert int(row["n"]) == int(pooled["n"]) and float(row["value"]) == pytest.approx(
        float(pooled["r"]), abs=1e-6
    )


@pytest.mark.slow
def test_editing_a_result_file_flips_the_verdict(demo_workdir, tmp_path):
    workdir = tmp_path / "demo"
    shutil.copytree(
        demo_workdir, workdir, symlinks=True, ignore=shutil.ignore_patterns("locks", "incomplete")
    )
    table4_path = workdir / "results" / "table4.csv"
    table4 = pd.read_csv(table4_path, keep_default_na=False)
    pooled_ck = (table4["model"] == "pooled") & (table4["metric"] == "C_k")
    n = int(table4.loc[pooled_ck, "n"].iloc[0])
    edited = ["r", "lo", "hi", "lo_question", "hi_question"]
    table4.loc[pooled_ck, edited] = [0.9, 0.85, 0.95, 0.85, 0.95]  # a strong correlation
    table4.to_csv(table4_path, index=False)

    result = run_snakemake(workdir, "results/claims.csv", timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "rule report_claims" in result.stdout + result.stderr
    claims = pd.read_csv(workdir / "results" / "claims.csv", keep_default_na=False)
    row = claims[claims["claim_id"] == "rpb_ck_near_zero"].iloc[0]
    assert (row["verdict"], float(row["value"]), int(row["n"])) == (DOES_NOT_HOLD, 0.9, n)

    table4.loc[pooled_ck, edited] = [0.0, -0.01, 0.01, -0.01, 0.01]  # clearly near zero
    table4.to_csv(table4_path, index=False)
    assert run_snakemake(workdir, "results/claims.csv", timeout=600).returncode == 0
    claims = pd.read_csv(workdir / "results" / "claims.csv", keep_default_na=False)
    assert claims.loc[claims["claim_id"] == "rpb_ck_near_zero", "verdict"].iloc[0] == HOLDS


def _report_categories(html: str) -> dict:
    match = re.search(r"var categories = (\{.*?\});\n", html)
    assert match, "the report holds no categories block"
    return json.loads(match.group(1))


@pytest.mark.slow
def test_html_report_has_every_table_figure_and_the_config(demo_workdir, tmp_path):
    report = tmp_path / "report.html"
    result = run_snakemake(demo_workdir, "--report", str(report), timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    html = report.read_text()

    categories = _report_categories(html)
    reported = {path for sub in categories.values() for paths in sub.values() for path in paths}
    results = demo_workdir / "results"
    expected = {f"results/{p.name}" for p in results.glob("*.csv")}
    expected |= {f"results/figures/{p.name}" for p in (results / "figures").glob("*.png")}
    expected.add("results/claims.html")
    assert "results/claims.csv" in expected and "results/accuracy.csv" in expected
    assert expected <= reported, (
        f"tables/figures missing from the report: {sorted(expected - reported)}"
    )
    assert "Claims" in categories
    # the front page renders the config used; captions are rendered with it too
    assert "near_zero_r" in html and "Configuration used" in html
    assert "Claims check" in html

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    # what the page shows after its scripts ran: the front page and every result category
    assert "Where Reliability Lives" in dom.stdout
    for category in categories:
        assert category in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    with Image.open(shot) as image:
        extrema = image.convert("L").getextrema()
    assert extrema[1] - extrema[0] > 100, "the screenshot of the report is blank"
