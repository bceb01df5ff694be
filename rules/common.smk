# Helpers shared by every stage: config validation, names, and input functions.
import os

from vrp.config import ConfigError, validate_config

try:
    config.update(validate_config(config))
except ConfigError as err:
    raise WorkflowError(f"invalid workflow config:\n{err}") from None

MODELS = sorted(config["models"])
DATASETS = sorted(config["datasets"])
TINY_MODELS = [m for m in MODELS if config["models"][m]["source"] == "tiny"]


def datasets_with_source(source):
    return [d for d in DATASETS if config["datasets"][d]["source"] == source]


def alternatives(names):
    # a regex that matches exactly these names (a never-matching one when empty)
    return "|".join(names) if names else "(?!x)x"


wildcard_constraints:
    model=alternatives(MODELS),
    dataset=alternatives(DATASETS),


def dataset_section(section):
    """Input function: one section of a dataset's config (empty when absent)."""

    def section_of(wildcards):
        return config["datasets"][wildcards.dataset].get(section, {})

    return section_of


def model_section(section):
    """Input function: one section of a model's config."""

    def section_of(wildcards):
        return config["models"][wildcards.model].get(section, {})

    return section_of


def model_checkpoint(wildcards):
    """Input files of a model: the trained tiny checkpoint, or nothing for a Hub model."""
    if config["models"][wildcards.model]["source"] == "tiny":
        return f"results/zoo/{wildcards.model}/checkpoint"
    return []


def model_spec(wildcards):
    """Everything a rule needs to load a model, passed through params so a change reruns it."""
    model = config["models"][wildcards.model]
    tiny = model["source"] == "tiny"
    return {
        "family": model["family"],
        "path": f"results/zoo/{wildcards.model}/checkpoint" if tiny else model["path"],
        "revision": None if tiny else model["revision"],
        "dtype": model["dtype"],
        "prompt_template": model["prompt_template"],
        "device": config["runtime"]["device"],
        "hf_offline": config["runtime"]["hf_offline"],
    }


def model_gpus(wildcards):
    return 0 if config["models"][wildcards.model]["source"] == "tiny" else 1


# Every stage file appends its final targets (tables, figures, sweeps) here; rule all builds them.
TARGETS = ["results/accuracy.csv"]


def all_targets():
    return list(TARGETS)
