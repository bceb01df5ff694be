"""Config validation: the JSON schema in workflow/schemas plus the cross-key checks a schema cannot say.

Used by the Snakefile at start-up (before any job runs) and by the tests. Errors name the key
path and the fix, e.g. ``config error at models.llava.family: 'lava' is not one of [...]``.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The workflow config is invalid; the message names the key and what to change."""


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _validator_filling_defaults(schema: dict) -> jsonschema.protocols.Validator:
    base = jsonschema.validators.validator_for(schema)

    def fill_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema_)

    extended = jsonschema.validators.extend(base, {"properties": fill_defaults})
    return extended(schema)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Return a validated copy of ``config`` with schema defaults filled in; raise ConfigError."""
    config = copy.deepcopy(dict(config))
    validator = _validator_filling_defaults(schema or load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            msg = err.message
            if err.validator == "additionalProperties":
                msg += " (unknown key: check its spelling against config/config.yaml)"
            lines.append(f"config error at {_key_path(err)}: {msg}")
        raise ConfigError("\n".join(lines))
    _check_cross_keys(config)
    return canonical_order(config)


def known_fields(settings_class, params) -> dict:
    """The entries of config mapping ``params`` that are fields of dataclass ``settings_class``.

    A stage's settings object reads its share of a config section and ignores the rest (e.g. the
    ``probes`` section also holds keys only the figure rules read).
    """
    names = {f.name for f in dataclasses.fields(settings_class)}
    return {key: value for key, value in dict(params).items() if key in names}


def canonical_order(value):
    """``value`` with every mapping's keys in sorted order (recursively).

    Snakemake compares a rule's params by their text, so a config whose keys were merely
    reordered (or a default filled in at another position) would otherwise rerun every job.
    """
    if isinstance(value, dict):
        return {key: canonical_order(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [canonical_order(item) for item in value]
    return value


def _check_cross_keys(config: dict) -> None:
    problems = []
    datasets = config["datasets"]
    tiny = [name for name, m in config["models"].items() if m["source"] == "tiny"]
    train = config.get("train_dataset")
    if tiny:
        if train is None:
            problems.append(
                f"config error at train_dataset: models {tiny} have source 'tiny' and need a "
                "train_dataset naming a synthetic dataset"
            )
        elif train not in datasets:
            problems.append(
                f"config error at train_dataset: {train!r} is not a key of datasets ({sorted(datasets)})"
            )
        elif datasets[train]["source"] != "synthetic":
            problems.append(
                f"config error at train_dataset: {train!r} has source {datasets[train]['source']!r}; "
                "tiny models train on a synthetic dataset"
            )
    for name, model in config["models"].items():
        if model["source"] == "random" and not model.get("tokenizer"):
            problems.append(
                f"config error at models.{name}.tokenizer: source 'random' needs the folder of a real "
                "tokenizer.json (the base language model's)"
            )
        if model["source"] == "hub" and not model.get("path"):
            problems.append(
                f"config error at models.{name}.path: source 'hub' needs a Hub id or local folder"
            )
        template = model.get("prompt_template")
        if template is not None and "{question}" not in template:
            problems.append(
                f"config error at models.{name}.prompt_template: must contain '{{question}}'"
            )
    if problems:
        raise ConfigError("\n".join(problems))


def load_config(path: str | Path) -> dict:
    """Read a YAML config and validate it."""
    with open(path) as fh:
        raw: Any = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return validate_config(raw)
