"""The config schema: defaults filled, bad configs refused with a message naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from conftest import load_config, validate_config
from vrp.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


REPO_CONFIGS = ["config/config.yaml", "config/paper.yaml", "tests/config/ci.yaml", "tests/config/paper_shapes.yaml"]


@pytest.fixture
def demo():
    with open("config/config.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize("path", REPO_CONFIGS)
def test_shipped_configs_validate(path):
    config = load_config(path)
    assert config["runtime"]["device"] in {"cpu", "cuda"}
    assert set(config["models"]) == {"llava", "paligemma", "qwen2vl"}
    assert {m["family"] for m in config["models"].values()} == {"llava", "paligemma", "qwen2vl"}


def test_defaults_are_filled(demo):
    config = validate_config(demo)
    assert config["models"]["llava"]["train"]["lr"] == 0.002
    assert config["models"]["llava"]["path"] is None
    assert demo["models"]["llava"].get("path", "absent") == "absent"  # input left untouched


@pytest.mark.parametrize(
    "edit, key, phrase",
    [
        (lambda c: c.__setitem__("seed", "zero"), "seed", "not of type 'integer'"),
        (lambda c: c["models"]["llava"].__setitem__("family", "lava"), "models.llava.family", "is not one of"),
        (lambda c: c["models"]["llava"].pop("family"), "models.llava", "'family' is a required property"),
        (lambda c: c["models"]["llava"]["train"].__setitem__("stpes", 3), "models.llava.train", "unknown key"),
        (lambda c: c["models"]["llava"]["train"].__setitem__("lr", "fast"), "models.llava.train.lr", "not of type"),
        (lambda c: c.pop("models"), "<top level>", "'models' is a required property"),
        (lambda c: c["datasets"]["synthetic"].__setitem__("source", "web"), "datasets.synthetic.source", "is not one of"),
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
    with pytest.raises(ConfigError, match=r"models.llava.tokenizer: source 'random' needs the folder"):
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
    assert list(shuffled["datasets"]["synthetic"]["synthetic"]) != list(demo["datasets"]["synthetic"]["synthetic"])
    a, b = validate_config(demo), validate_config(shuffled)
    assert repr(a["datasets"]) == repr(b["datasets"])
    assert repr(a["models"]) == repr(b["models"]) and repr(a["attention"]) == repr(b["attention"])
    assert list(a["datasets"]["synthetic"]["synthetic"]) == sorted(a["datasets"]["synthetic"]["synthetic"])


def test_known_fields_keeps_only_the_settings_fields():
    from vrp.analysis.probes import ProbeSettings
    from vrp.config import known_fields

    assert known_fields(ProbeSettings, {"C": 0.5, "top_channels": 5, "n_boot": 10}) == {"C": 0.5, "n_boot": 10}
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
