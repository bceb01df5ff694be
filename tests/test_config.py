"""The config schema: defaults filled, bad configs refused with a message naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from conftest import load_config, validate_config
from vrp.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


REPO_CONFIGS = [
    "config/config.yaml",
    "config/paper.yaml",
    "tests/config/ci.yaml",
    "tests/config/paper_shapes.yaml",
]


@pytest.fixture
def demo():
    with open("config/config.yaml") as fh:
        return yaml.safe_load(fh)


PAPER_THREE = {"llava", "paligemma", "qwen2vl"}
ALL_FIVE = PAPER_THREE | {"qwen25vl", "gemma3"}
# the models each shipped config plans: the demo and the paper face the paper's three (the two
# newer families' blocks are there, switched off), the toy CI run all five
PLANNED = {
    "config/config.yaml": PAPER_THREE,
    "config/paper.yaml": PAPER_THREE,
    "tests/config/ci.yaml": ALL_FIVE,
    "tests/config/paper_shapes.yaml": PAPER_THREE,
}


@pytest.mark.parametrize("path", REPO_CONFIGS)
def test_shipped_configs_validate(path):
    config = load_config(path)
    assert config["runtime"]["device"] in {"cpu", "cuda"}
    assert set(config["models"]) == PLANNED[path]
    assert {m["family"] for m in config["models"].values()} == PLANNED[path]


@pytest.mark.parametrize("path", ["config/config.yaml", "config/paper.yaml"])
def test_the_extra_families_switch(path):
    with open(path) as fh:
        raw = yaml.safe_load(fh)
    assert raw["extra_families"] is False
    assert {name for name, m in raw["models"].items() if m.get("extra")} == ALL_FIVE - PAPER_THREE
    switched_on = validate_config({**raw, "extra_families": True})
    assert set(switched_on["models"]) == ALL_FIVE
    assert switched_on["models"]["gemma3"]["extra"] is True
    # the pins (python -m vrp.pins) see every block, with the switch off too
    from conftest import SCHEMA_PATH
    from vrp import config as vrp_config

    assert set(vrp_config.load_config(path, SCHEMA_PATH, all_models=True)["models"]) == ALL_FIVE
    # a config whose every model is extra would plan nothing: refused, naming the switch
    only_extra = {**raw, "models": {k: v for k, v in raw["models"].items() if v.get("extra")}}
    with pytest.raises(ConfigError, match="every model is marked extra.*extra_families: true"):
        validate_config(only_extra)


def test_the_paper_blocks_of_the_newer_families():
    config = validate_config({**yaml.safe_load(open("config/paper.yaml")), "extra_families": True})
    qwen, gemma = config["models"]["qwen25vl"], config["models"]["gemma3"]
    assert (qwen["path"], qwen["dtype"], qwen["n_params"]) == (
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "bfloat16",
        8292166656,
    )
    assert (gemma["path"], gemma["dtype"], gemma["n_params"]) == (
        "google/gemma-3-4b-it",
        "bfloat16",
        4300079472,
    )
    assert qwen["post_prompt"] is None and gemma["post_prompt"] is None  # the datasets' (lmms-eval)


def test_families_are_the_adapter_modules():
    from vrp.adapters import FAMILIES
    from vrp.config import adapter_families

    assert adapter_families() == frozenset(FAMILIES)


def test_defaults_are_filled(demo):
    config = validate_config(demo)
    assert config["models"]["llava"]["train"]["lr"] == 0.002
    assert config["models"]["llava"]["path"] is None
    assert demo["models"]["llava"].get("path", "absent") == "absent"  # input left untouched


@pytest.mark.parametrize(
    "edit, key, phrase",
    [
        (lambda c: c.__setitem__("seed", "zero"), "seed", "not of type 'integer'"),
        (
            lambda c: c["models"]["llava"].__setitem__("family", "lava"),
            "models.llava.family",
            "is not one of",
        ),
        (
            lambda c: c["models"]["llava"].pop("family"),
            "models.llava",
            "'family' is a required property",
        ),
        (
            lambda c: c["models"]["llava"]["train"].__setitem__("stpes", 3),
            "models.llava.train",
            "unknown key",
        ),
        (
            lambda c: c["models"]["llava"]["train"].__setitem__("lr", "fast"),
            "models.llava.train.lr",
            "not of type",
        ),
        (lambda c: c.pop("models"), "<top level>", "'models' is a required property"),
        (
            lambda c: c["datasets"]["synthetic"].__setitem__("source", "web"),
            "datasets.synthetic.source",
            "is not one of",
        ),
    ],
)
def test_bad_config_names_the_key(demo, edit, key, phrase):
    bad = copy.deepcopy(demo)
    edit(bad)
    with pytest.raises(ConfigError) as info:
        validate_config(bad)
    assert f"config error at {key}:" in str(info.value)
    assert phrase in str(info.value)


def test_cross_key_checks(demo):
    bad = copy.deepcopy(demo)
    bad["train_dataset"] = "pope"
    with pytest.raises(ConfigError, match="train_dataset: 'pope' is not a key of datasets"):
        validate_config(bad)
    bad = copy.deepcopy(demo)
    bad["models"]["llava"]["source"] = "hub"
    with pytest.raises(ConfigError, match=r"models.llava.path: source 'hub' needs"):
        validate_config(bad)
    bad = copy.deepcopy(demo)
    bad["models"]["llava"]["source"] = "random"
    with pytest.raises(
        ConfigError, match=r"models.llava.tokenizer: source 'random' needs the folder"
    ):
        validate_config(bad)
    bad = copy.deepcopy(demo)
    bad["models"]["llava"]["prompt_template"] = "USER: <image> ASSISTANT:"
    with pytest.raises(ConfigError, match=r"must contain '\{question\}'"):
        validate_config(bad)


def test_key_order_does_not_change_the_validated_config(demo):
    # Snakemake compares params by their text: reordered keys must not look like a change
    def reversed_keys(value):
        if isinstance(value, dict):
            return {k: reversed_keys(value[k]) for k in reversed(list(value))}
        return value

    shuffled = reversed_keys(copy.deepcopy(demo))
    assert list(shuffled["datasets"]["synthetic"]["synthetic"]) != list(
        demo["datasets"]["synthetic"]["synthetic"]
    )
    a, b = validate_config(demo), validate_config(shuffled)
    assert repr(a["datasets"]) == repr(b["datasets"])
    assert repr(a["models"]) == repr(b["models"]) and repr(a["attention"]) == repr(b["attention"])
    assert list(a["datasets"]["synthetic"]["synthetic"]) == sorted(
        a["datasets"]["synthetic"]["synthetic"]
    )


def test_known_fields_keeps_only_the_settings_fields():
    from vrp.analysis.probes import ProbeSettings
    from vrp.config import known_fields

    assert known_fields(ProbeSettings, {"C": 0.5, "top_channels": 5, "n_boot": 10}) == {
        "C": 0.5,
        "n_boot": 10,
    }
    assert ProbeSettings.from_params({"C": 0.5, "top_channels": 5}) == ProbeSettings(C=0.5)


def test_post_prompt_defaults_and_the_tiny_training_check(demo):
    from vrp.config import post_prompt

    paper = load_config("config/paper.yaml")
    lmms_eval = "\nAnswer the question using a single word or phrase."
    assert post_prompt(paper, "llava", "pope") == lmms_eval  # the schema default
    paper["models"]["llava"]["post_prompt"] = "\nAnswer with a single word or phrase."  # paper dev
    paper_prompt = "\nAnswer with a single word or phrase."
    assert post_prompt(validate_config(paper), "llava", "pope") == paper_prompt
    assert post_prompt(validate_config(demo), "llava", "synthetic") == ""  # bare questions
    # a tiny model must be asked with the post-prompt it was trained with
    two = copy.deepcopy(demo)
    other = {**copy.deepcopy(demo["datasets"]["synthetic"]), "post_prompt": "\nAnswer ."}
    two["datasets"]["other"] = other
    with pytest.raises(ConfigError, match=r"datasets\.other\.post_prompt: tiny model 'llava' is"):
        validate_config(two)
