"""Config validation: the JSON schema in workflow/schemas plus the cross-key checks a schema cannot say.

Used by the Snakefile at start-up (before any job runs) and by the tests. The workflow hands the
schema over (rules/common.smk reads workflow/schemas/config.schema.yaml next to the Snakefile), so
the package does not guess where a checkout lies and works from a non-editable install. Errors
name the key path and the fix, e.g. ``config error at models.llava.family: 'lava' is not one of [...]``.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# read off the adapter modules' source (importing them would import torch)
from vrp.adapters.catalog import adapter_families, tiny_defaults

# Sections whose entries a config passed with --configfile must define whole (see check_not_merged).
WHOLE_SECTIONS = ("models", "datasets")


class ConfigError(ValueError):
    """The workflow config is invalid; the message names the key and what to change."""


def load_schema(path: str | Path) -> dict:
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


def validate_config(config: dict, schema: dict, all_models: bool = False) -> dict:
    """A validated copy of ``config`` with ``schema``'s defaults filled in; raises ConfigError.

    Every model block is checked; those marked ``extra`` are then dropped from ``models`` unless
    ``extra_families`` is true (or ``all_models``, which keeps every block: the pins cover them).
    """
    config = copy.deepcopy(dict(config))
    validator = _validator_filling_defaults(schema)
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
    if not (config["extra_families"] or all_models):
        config["models"] = {name: m for name, m in config["models"].items() if not m["extra"]}
        if not config["models"]:
            raise ConfigError(
                "config error at models: every model is marked extra and extra_families is false, "
                "so none would run; set extra_families: true (or extra: false on a model)"
            )
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
    if tiny and train in datasets:
        for name in tiny:
            for dataset in datasets:
                if post_prompt(config, name, dataset) != post_prompt(config, name, train):
                    problems.append(
                        f"config error at datasets.{dataset}.post_prompt: tiny model {name!r} "
                        f"is trained with the post-prompt of train_dataset {train!r} "
                        f"({post_prompt(config, name, train)!r}) and would be asked "
                        f"{post_prompt(config, name, dataset)!r}; give both the same post_prompt "
                        "(or set models.<name>.post_prompt)"
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
    extraction = config["extraction"]
    if extraction["shard_size"] % extraction["batch_size"]:
        problems.append(
            f"config error at extraction.shard_size: {extraction['shard_size']} is not a multiple of "
            f"extraction.batch_size ({extraction['batch_size']}); set shard_size to a multiple, e.g. "
            f"{extraction['batch_size'] * max(1, extraction['shard_size'] // extraction['batch_size'])}"
        )
    for name, dataset in datasets.items():
        if dataset["source"] == "synthetic":
            problems += _synthetic_problems(name, dataset.get("synthetic", {}), config["seed"])
    families = adapter_families()
    for name, model in config["models"].items():
        if model["family"] not in families:
            problems.append(
                f"config error at models.{name}.family: {model['family']!r} is not one of the "
                f"families {sorted(families)} (the adapter modules of src/vrp/adapters/)"
            )
        elif model["source"] == "tiny":
            problems += _tiny_problems(name, model["family"], model.get("tiny", {}))
    if problems:
        raise ConfigError("\n".join(problems))


def _synthetic_problems(name: str, section: dict, seed: int) -> list[str]:
    """The synthetic generator's own checks (unknown keys, types, ranges), run at start-up."""
    from vrp.benchmark.synthetic import SyntheticBenchmarkConfig

    try:
        SyntheticBenchmarkConfig.from_dict({**section, "seed": seed})
    except (TypeError, ValueError) as err:
        return [f"config error at datasets.{name}.synthetic: {err}"]
    return []


def _tiny_problems(name: str, family: str, section: dict) -> list[str]:
    """The checks FamilyAdapter.build_tiny makes (known keys, int-valued keys), at start-up."""
    defaults = tiny_defaults(family)
    unknown = sorted(set(section) - set(defaults))
    if unknown:
        return [
            f"config error at models.{name}.tiny: unknown key(s) {unknown} for family {family!r}; "
            f"known keys: {sorted(defaults)}"
        ]
    return [
        f"config error at models.{name}.tiny.{key}: must be an int, got {value!r}"
        for key, value in section.items()
        if value is not None and type(defaults[key]) is int and type(value) is not int
    ]


def _inherited(merged, passed, path: str) -> list[str]:
    """Key paths present in ``merged`` but not in ``passed`` (what the merge took from elsewhere)."""
    if not isinstance(merged, dict) or not isinstance(passed, dict):
        return []
    found = []
    for key, value in merged.items():
        if key not in passed:
            found.append(f"{path}.{key}")
        else:
            found += _inherited(value, passed[key], f"{path}.{key}")
    return found


def check_not_merged(config: dict, passed: dict, configfiles, replaced: bool) -> None:
    """Refuse a ``--configfile`` silently merged onto the Snakefile's config/config.yaml.

    Snakemake merges configs given with ``--configfile`` onto the workflow's own config file
    unless ``--replace-workflow-config`` is given. Overriding a few top-level settings that way is
    fine; but a passed config that defines ``models`` or ``datasets`` means its own entries, so
    an emptied section (``models: {}``) or an entry, or a key inside one, that comes from the demo
    config is an error naming the keys and the fix. ``passed`` is what the command line gave
    (the files merged, plus ``--config``).
    """
    if replaced or not configfiles:
        return
    files = ", ".join(str(f) for f in configfiles)
    fix = f"pass --replace-workflow-config to use {files} alone, or define these entries there in full"
    problems = []
    for section in WHOLE_SECTIONS:
        if section not in passed:
            continue
        given, merged = passed[section] or {}, config.get(section) or {}
        if not given and merged:
            problems.append(
                f"{section} is empty in {files} but the merge kept {sorted(merged)} from the "
                "workflow's config/config.yaml"
            )
            continue
        inherited = _inherited(merged, given, section)
        if inherited:
            shown = ", ".join(inherited[:8]) + (" ..." if len(inherited) > 8 else "")
            problems.append(
                f"{section} in {files} was merged onto config/config.yaml, which added {shown}"
            )
    if problems:
        raise ConfigError(
            "config error: --configfile was merged onto the workflow's default config:\n  "
            + "\n  ".join(problems)
            + f"\n{fix}"
        )


def post_prompt(config: dict, model: str, dataset: str) -> str:
    """The text appended to the questions of ``dataset`` for ``model`` (the model's override, else
    the dataset's; a validated config has both keys)."""
    override = config["models"][model].get("post_prompt")
    return override if override is not None else config["datasets"][dataset]["post_prompt"]


def load_config(path: str | Path, schema_path: str | Path, all_models: bool = False) -> dict:
    """Read a YAML config and validate it against the schema at ``schema_path`` (``all_models``:
    see :func:`validate_config`)."""
    with open(path) as fh:
        raw: Any = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return validate_config(raw, load_schema(schema_path), all_models=all_models)
