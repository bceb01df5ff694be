"""The paper-shapes fixtures: real file formats; the COCO rules ask exactly what they promise."""

import warnings

import pandas as pd

from vrp.benchmark.coco import build_coco_tasks, load_coco_instances
from vrp.benchmark.paper_fixtures import COCO_CATEGORIES, expected_coco_answers, write_fixtures
from vrp.benchmark.pope import find_pope_parquets, load_pope


def test_coco_fixture_asks_every_category_and_counts_one_to_ten(tmp_path):
    paths = write_fixtures(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer counting / spatial candidates than n_per_task
        table = build_coco_tasks(
            paths["annotations"],
            paths["image_dir"],
            n_per_task=80,
            seed=0,
            max_count=10,
            max_per_image=4,
        )
    answers = {task: sorted(group["answer"]) for task, group in table.groupby("task")}
    assert answers == expected_coco_answers()
    assert set(answers["object_id"]) == set(COCO_CATEGORIES.values())
    assert sorted({int(a) for a in answers["counting"]}) == list(range(1, 11))
    images, objects = load_coco_instances(paths["annotations"])
    assert len(images) == 30 and set(images[["width", "height"]].itertuples(index=False)) == {
        (640, 480)
    }
    assert objects["category"].nunique() == 80
    # the paper's default rules (max_count 6, one question per image) ask fewer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = build_coco_tasks(paths["annotations"], paths["image_dir"], n_per_task=80, seed=0)
    counts = default.loc[default["task"] == "counting", "answer"].astype(int)
    assert counts.max() <= 6 and (default.groupby(["task", "image_id"]).size() == 1).all()


def test_pope_fixture_reads_like_the_hub_repo(tmp_path):
    root = write_fixtures(tmp_path)["pope"]
    assert (root / "README.md").read_text().startswith("---\ndataset_info:")
    parquets = find_pope_parquets(root)
    assert [p.relative_to(root).as_posix() for p in parquets] == [
        "Full/adversarial-00000-of-00001.parquet",
        "Full/popular-00000-of-00001.parquet",
        "Full/random-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
    ]
    questions = load_pope(parquets, settings=("random", "popular", "adversarial"))
    assert len(questions) == 72  # the default and Full configs hold the same rows, read once
    assert questions.groupby(["pope_setting", "answer"]).size().eq(12).all()
    assert questions["image_id"].str.fullmatch(r"coco-50000[1-4]").all()
    first = questions.iloc[0]
    assert isinstance(first["image"], bytes) and first["image"][:2] == b"\xff\xd8"  # JPEG
    assert pd.api.types.is_string_dtype(questions["object"])
