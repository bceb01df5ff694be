"""Tests of the offline synthetic POPE-style benchmark (vrp.benchmark.synthetic)."""

from __future__ import annotations

import io
import itertools
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vrp.benchmark import synthetic as syn
from vrp.benchmark.schema import COLUMNS, POPE_SETTINGS, validate_questions
from vrp.io import write_parquet

SMALL = syn.SyntheticBenchmarkConfig(seed=7, n_train_images=40, n_eval_images=60)


@pytest.fixture(scope="module")
def bench() -> dict[str, pd.DataFrame]:
    return syn.generate_benchmark(SMALL)


@pytest.fixture(scope="module")
def scenes() -> dict[str, dict[str, syn.Scene]]:
    return {split: {s.image_id: s for s in syn.make_scenes(SMALL, split)} for split in syn.SPLITS}


def _presence(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["task"] == "presence"]


# --- determinism and splits ------------------------------------------------------------------


def test_same_seed_gives_identical_tables_and_parquet(bench, tmp_path):
    again = syn.generate_benchmark(SMALL)
    for split in syn.SPLITS:
        pd.testing.assert_frame_equal(bench[split], again[split])
        write_parquet(bench[split], tmp_path / f"a-{split}.parquet")
        write_parquet(again[split], tmp_path / f"b-{split}.parquet")
        assert (tmp_path / f"a-{split}.parquet").read_bytes() == (
            tmp_path / f"b-{split}.parquet"
        ).read_bytes()
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / f"a-{split}.parquet"), bench[split]
        )


def test_other_seed_gives_other_images_and_scenes(bench):
    other = syn.SyntheticBenchmarkConfig(seed=8, n_train_images=40, n_eval_images=60)
    eval_other = syn.generate_split(other, "eval")
    first = dict(zip(bench["eval"]["image_id"], bench["eval"]["image"]))
    second = dict(zip(eval_other["image_id"], eval_other["image"]))
    assert all(first[i] != second[i] for i in first)
    assert syn.make_scene(SMALL, "eval", 0) != syn.make_scene(other, "eval", 0)


def test_train_does_not_depend_on_eval_size(bench):
    bigger_eval = syn.SyntheticBenchmarkConfig(seed=7, n_train_images=40, n_eval_images=5)
    pd.testing.assert_frame_equal(syn.generate_split(bigger_eval, "train"), bench["train"])


def test_image_ids_are_disjoint_and_formatted(bench):
    train_ids = set(bench["train"]["image_id"])
    eval_ids = set(bench["eval"]["image_id"])
    assert train_ids.isdisjoint(eval_ids)
    assert train_ids == {f"syn-train-{i:06d}" for i in range(40)}
    assert eval_ids == {f"syn-eval-{i:06d}" for i in range(60)}
    assert syn.image_id("eval", 45) == "syn-eval-000045"


def test_schema_validates_and_images_decode_to_configured_size(bench):
    for split, frame in bench.items():
        assert list(frame.columns) == list(COLUMNS)
        validate_questions(frame, source=split)
        assert frame["question_id"].is_unique
        for png in frame.drop_duplicates("image_id")["image"].head(5):
            with Image.open(io.BytesIO(png)) as image:
                assert image.format == "PNG"
                assert image.mode == "RGB"
                assert image.size == (SMALL.image_size, SMALL.image_size)
    one = syn.generate_split(
        syn.SyntheticBenchmarkConfig(
            image_size=48, n_train_images=0, n_eval_images=2, max_radius=7.0
        ),
        "eval",
    )
    assert Image.open(io.BytesIO(one["image"].iloc[0])).size == (48, 48)


def test_each_image_asks_each_task(bench):
    assert set(bench["train"]["task"]) == {
        "presence",
        "counting",
        "spatial",
        "object_id",
        "caption",
    }
    assert set(bench["eval"]["task"]) == {"presence", "counting", "spatial", "object_id"}
    assert set(_presence(bench["eval"])["pope_setting"]) == set(POPE_SETTINGS)
    assert set(_presence(bench["train"])["pope_setting"]) == {"random"}


# --- POPE presence ---------------------------------------------------------------------------


def test_presence_positives_present_negatives_absent_half_yes(bench, scenes):
    for split, frame in bench.items():
        for (image, _setting), group in _presence(frame).groupby(["image_id", "pope_setting"]):
            present = set(scenes[split][image].present())
            yes = group[group["answer"] == "yes"]["object"]
            no = group[group["answer"] == "no"]["object"]
            assert set(yes) <= present and not set(no) & present
            assert len(yes) == len(no) == len(set(yes)) == len(set(no))
            per_image = (
                SMALL.pope_questions_per_image
                if split == "eval"
                else SMALL.train_presence_per_image
            )
            assert len(yes) == min(per_image, len(present))
            assert set(group["question"]) == {
                f"Is there a {o} in the image?" for o in group["object"]
            }


def test_positives_identical_across_settings(bench):
    yes = _presence(bench["eval"]).query("answer == 'yes'")
    by_setting = yes.groupby(["image_id", "pope_setting"])["object"].apply(frozenset).unstack()
    assert (by_setting["random"] == by_setting["popular"]).all()
    assert (by_setting["random"] == by_setting["adversarial"]).all()


def test_popular_and_adversarial_negatives_are_top_ranked_absent(bench, scenes):
    # Recompute POPE's statistics from the ground truth: frequency = images containing the kind,
    # co-occurrence = images containing both kinds.
    present_sets = {image: set(scene.present()) for image, scene in scenes["eval"].items()}
    frequency = Counter(name for present in present_sets.values() for name in present)
    pair_counts = Counter(
        pair
        for present in present_sets.values()
        for pair in itertools.permutations(sorted(present), 2)
    )
    order = {name: k for k, name in enumerate(syn.OBJECTS)}
    no = _presence(bench["eval"]).query("answer == 'no'")
    n_checked = 0
    for (image, setting), group in no.groupby(["image_id", "pope_setting"]):
        present = present_sets[image]
        absent = [name for name in syn.OBJECTS if name not in present]
        if setting == "popular":
            ranked = sorted(absent, key=lambda name: (-frequency[name], order[name]))
        elif setting == "adversarial":
            ranked = sorted(
                absent,
                key=lambda name: (-sum(pair_counts[(p, name)] for p in present), order[name]),
            )
        else:
            continue
        assert list(group["object"]) == ranked[: len(group)], (image, setting)
        n_checked += 1
    assert n_checked == 2 * len(present_sets)


def test_settings_pick_different_negatives(bench):
    no = _presence(bench["eval"]).query("answer == 'no'")
    sets = no.groupby(["image_id", "pope_setting"])["object"].apply(frozenset).unstack()
    # Random negatives vary over the absent kinds; popular and adversarial ones follow the ranks.
    assert (sets["random"] != sets["popular"]).mean() > 0.5
    assert (sets["adversarial"] != sets["popular"]).mean() > 0.3
    assert no.query("pope_setting == 'random'")["object"].nunique() == len(syn.OBJECTS)


def test_pope_negatives_known_values():
    frequency = pd.Series([5, 9, 9, 1, 0, 0, 0, 0, 0, 7], index=list(syn.OBJECTS))
    counts = pd.DataFrame(0, index=list(syn.OBJECTS), columns=list(syn.OBJECTS))
    counts.loc["apple", "grape"] = counts.loc["grape", "apple"] = 4
    counts.loc["ball", "grape"] = counts.loc["grape", "ball"] = 1
    counts.loc["ball", "leaf"] = counts.loc["leaf", "ball"] = 5
    rng = np.random.default_rng(0)
    present = ["apple", "ball"]
    # brick and banana tie on frequency 9; brick comes first in OBJECTS.
    assert syn.pope_negatives("popular", ["leaf"], 4, rng, frequency, counts) == [
        "brick",
        "banana",
        "kite",
        "apple",
    ]
    assert syn.pope_negatives("popular", ["banana"], 3, rng, frequency, counts) == [
        "brick",
        "kite",
        "apple",
    ]
    # grape scores 4 + 1 = 5 and ties with leaf (0 + 5); leaf comes first in OBJECTS.
    assert syn.pope_negatives("adversarial", present, 3, rng, frequency, counts) == [
        "leaf",
        "grape",
        "brick",
    ]
    assert syn.pope_negatives("adversarial", ["kite"], 1, rng, frequency, counts) == ["apple"]
    random_pick = syn.pope_negatives("random", present, 3, rng, frequency, counts)
    assert len(set(random_pick)) == 3 and not set(random_pick) & set(present)
    with pytest.raises(ValueError, match="unknown setting"):
        syn.pope_negatives("hard", present, 1, rng, frequency, counts)
    with pytest.raises(ValueError, match="only 8 kinds are absent"):
        syn.pope_negatives("random", present, 9, rng, frequency, counts)


def test_statistics_helpers_match_hand_counts():
    scenes = [
        syn.Scene(
            "a",
            "park",
            (
                syn.SceneObject("apple", 5, 5, 4, 0),
                syn.SceneObject("apple", 20, 5, 4, 0),
                syn.SceneObject("ball", 40, 40, 4, 0),
            ),
        ),
        syn.Scene(
            "b",
            "park",
            (syn.SceneObject("ball", 5, 5, 4, 0), syn.SceneObject("kite", 40, 40, 4, 0)),
        ),
    ]
    frequency = syn.object_frequency(scenes)
    assert (
        frequency["apple"] == 1
        and frequency["ball"] == 2
        and frequency["kite"] == 1
        and frequency["leaf"] == 0
    )
    counts = syn.cooccurrence(scenes)
    assert counts.loc["apple", "ball"] == 1 and counts.loc["ball", "kite"] == 1
    assert counts.loc["apple", "kite"] == 0 and counts.loc["ball", "ball"] == 0
    assert (counts.to_numpy() == counts.to_numpy().T).all()


# --- other tasks -----------------------------------------------------------------------------


def test_counting_answers_are_true_counts(bench, scenes):
    for split, frame in bench.items():
        counting = frame[frame["task"] == "counting"]
        assert len(counting) == len(scenes[split])  # one per image by default
        for row in counting.itertuples():
            assert row.answer == str(scenes[split][row.image_id].counts()[row.object])
            assert row.question == f"How many {syn.OBJECT_PLURALS[row.object]} are there?"
    answers = set(pd.concat(bench.values()).query("task == 'counting'")["answer"])
    assert {"1", "2"} <= answers <= {"1", "2", "3", "4"}


def test_spatial_answers_match_centres(bench, scenes):
    n_yes = 0
    spatial = pd.concat([bench["train"], bench["eval"]]).query("task == 'spatial'")
    assert len(spatial) >= 30
    for row in spatial.itertuples():
        split = "train" if "train" in row.image_id else "eval"
        scene = scenes[split][row.image_id]
        a, b = row.question.removeprefix("Is the ").removesuffix("?").split(" to the left of the ")
        assert row.object == a
        counts = scene.counts()
        assert counts[a] == counts[b] == 1
        xa = next(o.x for o in scene.objects if o.name == a)
        xb = next(o.x for o in scene.objects if o.name == b)
        assert abs(xa - xb) >= SMALL.spatial_margin
        assert row.answer == ("yes" if xa < xb else "no")
        n_yes += row.answer == "yes"
    assert 0.3 < n_yes / len(spatial) < 0.7


def test_object_id_answers_the_single_object_in_the_quadrant(bench, scenes):
    half = SMALL.image_size / 2
    for split, frame in bench.items():
        for row in frame[frame["task"] == "object_id"].itertuples():
            region = row.question.removeprefix("What is the object in the ").removesuffix("?")
            assert region in syn.REGIONS
            want_top, want_left = region.startswith("top"), region.endswith("left")
            inside = [
                o
                for o in scenes[split][row.image_id].objects
                if (o.y < half) == want_top and (o.x < half) == want_left
            ]
            assert len(inside) == 1
            assert row.answer == row.object == inside[0].name


def test_quadrant_known_values():
    assert syn.quadrant(10, 50, 64) == "bottom left"
    assert syn.quadrant(40, 3, 64) == "top right"
    assert syn.quadrant(32, 32, 64) == "bottom right"  # the midline belongs to right / bottom


def test_caption_only_in_train_and_lists_present_kinds(bench, scenes):
    assert (bench["eval"]["task"] != "caption").all()
    captions = bench["train"].query("task == 'caption'")
    assert len(captions) == SMALL.n_train_images
    for row in captions.itertuples():
        assert row.question == "List the objects ."
        assert row.object == "" and row.pope_setting == ""
        names = row.answer.split(" ")
        assert names == [n for n in syn.OBJECTS if n in names]  # canonical order
        assert set(names) == set(scenes["train"][row.image_id].present())
    no_caption = syn.SyntheticBenchmarkConfig(
        n_train_images=3, n_eval_images=0, train_caption=False
    )
    assert "caption" not in set(syn.generate_split(no_caption, "train")["task"])


def test_vocabulary_covers_every_generated_word(bench):
    words = set(syn.vocabulary())
    for frame in bench.values():
        for text in pd.concat([frame["question"], frame["answer"]]):
            assert set(text.replace("?", " ? ").replace(".", " . ").split()) <= words, text
    assert {"yes", "no", "leaves", "cacti", "?", "."} <= words


# --- scenes and rendering --------------------------------------------------------------------


def test_scene_invariants(scenes):
    for scene in itertools.chain(scenes["train"].values(), scenes["eval"].values()):
        assert SMALL.min_objects <= len(scene.objects) <= SMALL.max_objects
        assert max(scene.counts().values()) <= SMALL.max_count
        for obj in scene.objects:
            assert SMALL.min_radius <= obj.radius <= SMALL.max_radius
            assert obj.radius <= obj.x <= SMALL.image_size - obj.radius
            assert obj.radius <= obj.y <= SMALL.image_size - obj.radius
        for first, second in itertools.combinations(scene.objects, 2):
            if first.name == second.name:  # same kinds never touch, so they can be counted
                assert (
                    np.hypot(first.x - second.x, first.y - second.y) > first.radius + second.radius
                )


def test_theme_strength_one_draws_only_favoured_kinds():
    config = syn.SyntheticBenchmarkConfig(theme_strength=1.0, n_train_images=30, n_eval_images=0)
    for scene in syn.make_scenes(config, "train"):
        assert set(scene.present()) <= set(syn.THEMES[scene.theme])


def test_rendered_colour_at_object_centre():
    # Without noise or blur, the centre pixel of the topmost object has its kind's colour (+- jitter).
    config = syn.SyntheticBenchmarkConfig(
        n_train_images=0, n_eval_images=20, noise_sigma=0.0, blur_prob=0.0
    )
    checked = 0
    for index in range(config.n_eval_images):
        scene = syn.make_scene(config, "eval", index)
        top = scene.objects[-1]
        if syn.OBJECT_SHAPES[top.name] == "frame":  # hollow in the middle
            continue
        pixels = np.asarray(syn.render_image(config, "eval", index, scene), dtype=int)
        centre = pixels[int(top.y), int(top.x)]
        assert (
            np.abs(centre - np.array(syn.OBJECT_COLOURS[top.name])).max()
            <= config.colour_jitter + 1
        )
        checked += 1
    assert checked >= 10


# --- configuration ---------------------------------------------------------------------------


def test_config_from_dict_and_errors():
    config = syn.SyntheticBenchmarkConfig.from_dict(
        {"seed": 3, "n_eval_images": 10, "noise_sigma": 8}
    )
    assert (config.seed, config.n_eval_images, config.noise_sigma, config.image_size) == (
        3,
        10,
        8,
        64,
    )
    assert syn.SyntheticBenchmarkConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['n_images'\]"):
        syn.SyntheticBenchmarkConfig.from_dict({"n_images": 10})
    with pytest.raises(ValueError, match="min_objects <= max_objects"):
        syn.SyntheticBenchmarkConfig(min_objects=5, max_objects=3)
    with pytest.raises(ValueError, match="max_count must be in 1..9"):
        syn.SyntheticBenchmarkConfig(max_count=10)
    with pytest.raises(ValueError, match="n_train_images must be int"):
        syn.SyntheticBenchmarkConfig(n_train_images=1.5)
    with pytest.raises(ValueError, match="theme_strength must be a number"):
        syn.SyntheticBenchmarkConfig(theme_strength="high")
    with pytest.raises(ValueError, match="unknown split"):
        syn.generate_split(SMALL, "test")
