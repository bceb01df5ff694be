"""End-to-end: the paper-shaped run (tests/config/paper_shapes.yaml) builds every target.

Untrained random-init models of the three released classes on the real tokenizers and the
release's processor geometry, on POPE / COCO copies in the real file formats
(:mod:`vrp.benchmark.paper_fixtures`). One workflow run (the ``paper_shapes_workdir`` fixture)
serves every test here.
"""

import json
import re

import pandas as pd
import pytest

from conftest import planned_jobs, run_snakemake
from vrp.adapters import load_adapter
from vrp.analysis.claims import CLAIMS
from vrp.benchmark.paper_fixtures import COCO_CATEGORIES, expected_coco_answers
from vrp.io import read_json

pytestmark = pytest.mark.slow

MODELS = ("llava", "paligemma", "qwen2vl")
# image tokens per 640x480 image: 24x24 (336-px crop), 16x16 (224 px), 17x23 (smart_resize 476x644)
IMAGE_TOKENS = {"llava": 576, "paligemma": 256, "qwen2vl": 391}
N_QUESTIONS = {"pope": 72, "coco_tasks": 80 + 26 + 16}
# the Gemma-3 tokenizer.json (262,144 pieces + <image_soft_token>) plus PaliGemma's additions
GEMMA_SIZE = 262145


def test_every_target_is_built_and_a_second_run_does_nothing(paper_shapes_workdir):
    results = paper_shapes_workdir / "results"
    for name in (
        "accuracy",
        "table1",
        "table2",
        "table3",
        "table4",
        "table5",
        "table6",
        "table7",
        "table8",
        "table_masking",
        "claims",
    ):
        assert (results / f"{name}.csv").stat().st_size > 0, name
    assert (results / "claims.html").stat().st_size > 0
    assert len(list((results / "figures").glob("*.png"))) >= 8
    assert planned_jobs(paper_shapes_workdir) == {}


def test_random_models_carry_the_release_vocabularies(paper_shapes_workdir):
    zoo = paper_shapes_workdir / "results" / "zoo"
    adapters = {m: load_adapter(m, zoo / m / "checkpoint") for m in MODELS}

    llava = adapters["llava"].tokenizer
    assert (len(llava), adapters["llava"].image_token_id) == (32002, 32000)
    assert (llava.pad_token, llava.pad_token_id, llava.bos_token_id, llava.eos_token_id) == (
        "<pad>",
        32001,
        1,
        2,
    )

    gemma = adapters["paligemma"].tokenizer
    ids = gemma.convert_tokens_to_ids(["<loc0000>", "<loc1023>", "<seg000>", "<seg127>", "<image>"])
    assert ids == [
        GEMMA_SIZE,
        GEMMA_SIZE + 1023,
        GEMMA_SIZE + 1024,
        GEMMA_SIZE + 1151,
        GEMMA_SIZE + 1152,
    ]
    assert adapters["paligemma"].image_token_id == GEMMA_SIZE + 1152
    assert (gemma.bos_token, gemma.eos_token, gemma.pad_token) == ("<bos>", "<eos>", "<pad>")

    qwen = adapters["qwen2vl"].tokenizer
    assert qwen.convert_tokens_to_ids(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]) == [
        151652,
        151653,
        151655,
    ]
    assert adapters["qwen2vl"].image_token_id == 151655
    assert (qwen.eos_token_id, qwen.pad_token_id, qwen.bos_token) == (151645, 151643, None)

    for model, adapter in adapters.items():
        # the model's embedding table covers the whole release vocabulary
        assert adapter.input_embeddings().num_embeddings == len(adapter.tokenizer), model
        report = read_json(zoo / model / "build.json")
        assert report["vocabulary"] == len(adapter.tokenizer)


def test_question_tables_cover_the_categories_and_counts(paper_shapes_workdir):
    data = paper_shapes_workdir / "results" / "data"
    coco = pd.read_parquet(data / "coco_tasks" / "eval.parquet", columns=["task", "answer"])
    answers = {task: sorted(group["answer"]) for task, group in coco.groupby("task")}
    assert answers == expected_coco_answers()
    assert set(answers["object_id"]) == set(COCO_CATEGORIES.values()) and len(COCO_CATEGORIES) == 80
    assert {int(a) for a in answers["counting"]} == set(range(1, 11))

    pope = pd.read_parquet(data / "pope" / "eval.parquet", columns=["pope_setting", "answer"])
    assert pope.groupby("pope_setting").size().to_dict() == {
        "adversarial": 24,
        "popular": 24,
        "random": 24,
    }
    assert (pope["answer"] == "yes").sum() == 36


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", sorted(N_QUESTIONS))
def test_extraction_has_the_release_geometry(paper_shapes_workdir, model, dataset):
    manifest = read_json(
        paper_shapes_workdir / "results" / "extract" / model / dataset / "manifest.json"
    )
    n, layers = manifest["n_samples"], manifest["num_layers"]
    assert (n, layers, manifest["hidden_size"]) == (N_QUESTIONS[dataset], 2, 32)
    assert manifest["arrays"]["image_attention"]["shape"] == [n, layers, IMAGE_TOKENS[model]]
    assert manifest["arrays"]["head_attention"]["shape"] == [n, layers, 2, IMAGE_TOKENS[model]]


def test_accuracy_and_claims_cover_every_model_and_task(paper_shapes_workdir):
    results = paper_shapes_workdir / "results"
    accuracy = pd.read_csv(results / "accuracy.csv", keep_default_na=False)
    assert set(accuracy["model"]) == set(MODELS)
    assert set(accuracy["task"]) == {"presence", "counting", "spatial", "object_id"}
    assert (accuracy["n"] > 0).all()
    claims = pd.read_csv(results / "claims.csv", keep_default_na=False)
    assert set(claims["claim_id"]) == {c.claim_id for c in CLAIMS}


def test_html_report_holds_every_table_and_figure(paper_shapes_workdir, tmp_path):
    report = tmp_path / "report.html"
    result = run_snakemake(paper_shapes_workdir, "--report", str(report), timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    html = report.read_text()
    match = re.search(r"var categories = (\{.*?\});\n", html)
    assert match, "the report holds no categories block"
    reported = {
        path
        for sub in json.loads(match.group(1)).values()
        for paths in sub.values()
        for path in paths
    }
    results = paper_shapes_workdir / "results"
    expected = {f"results/{p.name}" for p in results.glob("*.csv")}
    expected |= {f"results/figures/{p.name}" for p in (results / "figures").glob("*.png")}
    expected.add("results/claims.html")
    assert expected <= reported, (
        f"tables/figures missing from the report: {sorted(expected - reported)}"
    )
