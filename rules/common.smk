# Helpers shared by every stage: config validation, names, and input functions.
import os
from pathlib import Path

from vrp.config import (
    ConfigError,
    check_not_merged,
    load_schema,
    post_prompt,
    validate_config,
)
from vrp.resources import model_mem_mb as resources_for_model

CONFIG_SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"

try:
    check_not_merged(
        config,
        workflow.config_settings.overwrite_config,
        workflow.config_settings.configfiles,
        workflow.config_settings.replace_workflow_config,
    )
    config.update(validate_config(config, load_schema(CONFIG_SCHEMA)))
except ConfigError as err:
    raise WorkflowError(f"invalid workflow config:\n{err}") from None

# runtime.hf_offline: into the environment now, while the workflow is parsed, so every job's
# interpreter starts with it, before transformers / huggingface_hub read it at import (vrp.hub).
from vrp.hub import apply_offline_env

apply_offline_env(config["runtime"]["hf_offline"])

# Pins: each Hub artefact's commit from the lock file (vrp.pins); the commit reaches the rules'
# params, so manifests and shard fingerprints carry it. An unpinned artefact is warned about here
# (a dry run still shows the plan) and refused by the first job that needs it, naming the fix.
from snakemake.logging import logger

from vrp.pins import pins_for, unpinned_message

PINS, _unpinned = pins_for(config, config["lock_file"])
_config_paths = [os.path.relpath(p) for p in workflow.overwrite_configfiles or []]
UNPINNED = {
    a.key: unpinned_message(
        [a], config["lock_file"], _config_paths[-1] if _config_paths else None
    )
    for a in _unpinned
    if config["lock_file"]
}
if _unpinned:
    logger.warning(
        unpinned_message(
            _unpinned, config["lock_file"], _config_paths[-1] if _config_paths else None
        )
    )


def pinned(key, revision):
    """(revision, refusal): the lock's commit of a Hub artefact, or the configured revision and,
    when the config names a lock file, the message the job fails with."""
    return PINS.get(key, revision), UNPINNED.get(key)


MODELS = sorted(config["models"])
DATASETS = sorted(config["datasets"])
TINY_MODELS = [m for m in MODELS if config["models"][m]["source"] == "tiny"]
RANDOM_MODELS = [m for m in MODELS if config["models"][m]["source"] == "random"]


def built_by_workflow(model):
    """True for models whose checkpoint the zoo rules write (tiny: trained; random: untrained)."""
    return config["models"][model]["source"] in ("tiny", "random")


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


def training_priority(wildcards):
    """Scheduling priority of a tiny model's training job: its step budget (schema-defaulted)."""
    return config["models"][wildcards.model]["train"]["steps"]


def model_checkpoint(wildcards):
    """Input files of a model: the trained tiny checkpoint, or nothing for a Hub model."""
    if built_by_workflow(wildcards.model):
        return f"results/zoo/{wildcards.model}/checkpoint"
    return []


def model_spec(wildcards):
    """Everything a rule needs to load a model, passed through params so a change reruns it.

    ``revision`` is the pinned commit of a Hub id (the lock file's), else the configured one.
    """
    name = wildcards.model
    model = config["models"][name]
    built = built_by_workflow(name)
    revision, refusal = pinned(f"models.{name}.path", model["revision"])
    spec = {
        "name": name,
        "family": model["family"],
        "path": f"results/zoo/{name}/checkpoint" if built else model["path"],
        "revision": None if built else revision,
        "dtype": model["dtype"],
        "prompt_template": model["prompt_template"],
        # the text after each question; a job without a dataset (the case study) asks none
        "post_prompt": (
            post_prompt(config, wildcards.model, wildcards.dataset)
            if hasattr(wildcards, "dataset")
            else None
        ),
        "device": config["runtime"]["device"],
        "hf_offline": config["runtime"]["hf_offline"],
    }
    if refusal and not built:
        spec["unpinned"] = refusal  # vrp.models refuses to load it
    return spec


def tiny_post_prompts():
    """Every post-prompt a tiny model is trained or asked with (their words join the vocabulary)."""
    return sorted({post_prompt(config, m, d) for m in TINY_MODELS for d in DATASETS})


def training_post_prompt(wildcards):
    """The post-prompt a tiny model trains with: its own, else the train dataset's."""
    return post_prompt(config, wildcards.model, config["train_dataset"])


def model_gpus(wildcards):
    return 0 if built_by_workflow(wildcards.model) else 1


def model_mem_mb(wildcards, attempt):
    """Host memory of a job loading this model: from its size and dtype (vrp.resources)."""
    model = config["models"][wildcards.model]
    return resources_for_model(
        model, config["runtime"]["device"], attempt, name=wildcards.model
    )


def all_models_cpu_mem_mb(wildcards, attempt):
    """Host memory to load the largest configured model on the CPU."""
    return max(
        resources_for_model(config["models"][m], "cpu", attempt, name=m) for m in MODELS
    )


def pope_section(wildcards):
    """The dataset's pope section with its revision pinned to the lock file's commit."""
    section = dict(config["datasets"][wildcards.dataset]["pope"])
    key = f"datasets.{wildcards.dataset}.pope.repo_id"
    section["revision"], refusal = pinned(key, section["revision"])
    if refusal:
        section["unpinned"] = refusal  # data_pope refuses to download it
    return section


# COCO val2014 as the fetch rule (rules/data.smk) lays it out; a coco section pointing here is
# built from the fetched archives, one pointing elsewhere reads the user's own copy.
COCO_FETCHED = {
    "annotations": "resources/coco/annotations/instances_val2014.json",
    "image_dir": "resources/coco/val2014",
}


def coco_inputs(wildcards):
    """The configured COCO files when they exist or the fetch rule makes them.

    A path that is neither is left out, so the job runs and names the config key to fix.
    """
    coco = config["datasets"][wildcards.dataset].get("coco", {})
    return {
        kind: coco[kind]
        for kind in ("annotations", "image_dir")
        if coco.get(kind)
        and (
            os.path.normpath(coco[kind]) == COCO_FETCHED[kind]
            or os.path.exists(coco[kind])
        )
    }


def coco_fetch_datasets():
    """The coco_tasks datasets whose files the fetch rule provides (named in its messages)."""
    return [
        d
        for d in datasets_with_source("coco_tasks")
        if any(
            os.path.normpath(config["datasets"][d].get("coco", {}).get(k) or "") == v
            for k, v in COCO_FETCHED.items()
        )
    ]


# Every stage file appends its final targets (tables, figures, sweeps) here; rule all builds them.
TARGETS = ["results/accuracy.csv"]


def all_targets():
    return list(TARGETS)


# ---------------------------------------------------------------------------------------------
# attention stage (rules/attention.smk): Tables 1, 2, 4 and Figures 2a, 3, 4, 5
# ---------------------------------------------------------------------------------------------
from types import SimpleNamespace

_unknown_span_models = sorted(
    (
        set(config["attention"]["layer_range"])
        | set(config["attention"]["answer_layers"])
    )
    - set(MODELS)
)
if _unknown_span_models:
    raise WorkflowError(
        f"config attention.layer_range / attention.answer_layers name model(s) "
        f"{_unknown_span_models} that are not keys of models ({MODELS}); fix the spelling or remove them"
    )


def attention_layer_span(wildcards):
    """Configured [first, last] decoder layers of this model's attention map (None = all layers)."""
    return config["attention"]["layer_range"].get(wildcards.model)


def answer_layer_spans():
    """Per model, the configured answer-forming layers of the MLP share (None = last ceil(L/4))."""
    return {m: config["attention"]["answer_layers"].get(m) for m in MODELS}


def model_dataset_labels():
    """[model, family, dataset] for every input pair, in the order of attention_inputs()."""
    return [[m, config["models"][m]["family"], d] for m in MODELS for d in DATASETS]


def attention_inputs(pattern):
    """``pattern`` expanded over every (model, dataset), model-major (matches model_dataset_labels)."""
    return [pattern.format(model=m, dataset=d) for m in MODELS for d in DATASETS]


def all_model_specs(wildcards):
    """Every model's load spec, keyed by model (the case study loads the chosen one)."""
    return {m: model_spec(SimpleNamespace(model=m)) for m in MODELS}


def all_model_checkpoints(wildcards):
    return [
        p for m in MODELS for p in [model_checkpoint(SimpleNamespace(model=m))] if p
    ]


# ---- probes and self-consistency (rules/probes.smk, rules/consistency.smk) ----

_too_large_k = sorted(
    {
        k
        for k in config["consistency"]["k_values"] + [config["consistency"]["table_k"]]
        if k > config["consistency"]["k_max"]
    }
)
if _too_large_k:
    raise WorkflowError(
        f"config consistency.k_values / table_k hold K={_too_large_k} above consistency.k_max="
        f"{config['consistency']['k_max']}; every K is read off the first K of k_max stored samples, "
        "so raise k_max or drop those K"
    )


def stage_settings(section, *keys):
    """The named keys of one stage's config section; a null seed falls back to the top-level seed."""
    values = {key: config[section][key] for key in keys}
    if "seed" in values and values["seed"] is None:
        values["seed"] = config["seed"]
    return values


def format_k(k):
    """The one spelling of a self-consistency K in file names (k~10)."""
    return f"{int(k):d}"


def per_model_dataset(pattern):
    """``pattern`` expanded over every (model, dataset), model-major (matches model_dataset_pairs())."""
    return [pattern.format(model=m, dataset=d) for m in MODELS for d in DATASETS]


def model_dataset_pairs():
    """[model, dataset] for every input pair, in the order of per_model_dataset()."""
    return [[m, d] for m in MODELS for d in DATASETS]


def model_families():
    return {m: config["models"][m]["family"] for m in MODELS}


def selfconsistency_tables():
    """The K sweep: one table per configured K."""
    return [
        f"results/selfconsistency/k~{format_k(k)}.csv"
        for k in config["consistency"]["k_values"]
    ]


def selfconsistency_table_for_tables(wildcards):
    """The K whose self-consistency rows Tables 7 and 8 report."""
    return f"results/selfconsistency/k~{format_k(config['consistency']['table_k'])}.csv"


# ---------------------------------------------------------------------------------------------
# causal stage (rules/causal.smk): masking sweep, ablation sweeps, Tables 5 and 6
# ---------------------------------------------------------------------------------------------
import json
import re


def sweep_value(value):
    """The one spelling of a swept number in file names (p~0.3, frac~0.25)."""
    return f"{value:g}"


def sweep_alternatives(values):
    """A regex that matches exactly the configured sweep values, as sweep_value spells them."""
    return "|".join(re.escape(sweep_value(v)) for v in values)


def causal_settings(section, *keys):
    """The named keys of one causal config section (a sweep job gets only what it uses)."""
    return {key: config[section][key] for key in keys}


def single_ranks():
    """Ranks of the single-neuron sweep: 1 .. the largest k of the k sweep."""
    return list(range(1, max(config["ablation"]["k_values"]) + 1))


def peak_fractions():
    """The channel fractions of the peak-layer sweep, as sweep_value spells them in file names."""
    return [sweep_value(f) for f in config["ablation"]["large_scale"]["fractions"]]


def ablation_plans(kind):
    """Params function: the plans of one ablation job, one per output file in output order.

    A top-k point, the bypass and the peak top-k are one plan each; the single-neuron sweep of a
    layer (every rank) and the peak fractions (every fraction) are one job each, one model load.
    """

    def plans(wildcards):
        settings = config["ablation"]
        if kind == "top_k":
            return [
                {
                    "kind": kind,
                    "layer": int(wildcards.layer),
                    "k": int(wildcards.k),
                    "random_seeds": settings["random_seeds"],
                }
            ]
        if kind == "single":
            return [
                {"kind": kind, "layer": int(wildcards.layer), "rank": rank}
                for rank in single_ranks()
            ]
        if kind == "peak_top_k":
            return [
                {
                    "kind": "top_k",
                    "layer": "peak",
                    "k": int(wildcards.k),
                    "random_seeds": [],
                }
            ]
        if kind == "random_fraction":
            # the fraction as its file name spells it (the value each job has always read)
            return [
                {
                    "kind": kind,
                    "layer": "peak",
                    "fraction": float(frac),
                    "random_seeds": settings["random_seeds"],
                }
                for frac in peak_fractions()
            ]
        return [{"kind": kind, "layer": "peak"}]

    return plans


def ablation_sweep_runs(wildcards):
    """Every k-sweep, layer-sweep and single-neuron file, at each model's own layers (checkpoint)."""
    settings = config["ablation"]
    files = []
    for m in MODELS:
        for d in DATASETS:
            layers_file = checkpoints.causal_ablation_layers.get(
                model=m, dataset=d
            ).output[0]
            with open(layers_file) as fh:
                plan = json.load(fh)
            points = [(plan["k_sweep_layer"], k) for k in settings["k_values"]]
            points += [
                (layer, settings["layer_sweep_k"]) for layer in plan["sweep_layers"]
            ]
            for layer, k in dict.fromkeys(points):
                files.append(f"results/ablation/layer~{layer}/k~{k}/{m}/{d}.parquet")
            for rank in single_ranks():
                files.append(
                    f"results/ablation/layer~{plan['k_sweep_layer']}/rank~{rank}/{m}/{d}.parquet"
                )
    return files


def ablation_peak_runs(wildcards):
    """Every large-scale ablation file at each model's peak layer: fractions, bypass, top-k."""
    large = config["ablation"]["large_scale"]
    patterns = [
        f"results/ablation/peak/frac~{frac}/{{model}}/{{dataset}}.parquet"
        for frac in peak_fractions()
    ]
    if large["bypass"]:
        patterns.append("results/ablation/peak/bypass/{model}/{dataset}.parquet")
    if large["top_k"]:
        patterns.append(
            f"results/ablation/peak/top~{large['top_k']}/{{model}}/{{dataset}}.parquet"
        )
    return [
        p.format(model=m, dataset=d) for p in patterns for m in MODELS for d in DATASETS
    ]


# ---- report stage (rules/report.smk): the claims check ----
from vrp.analysis.claims import SC_K

# key of vrp.analysis.claims.TABLES -> the result file that holds it
CLAIM_TABLES = {
    "table1": "results/table1.csv",
    "table4": "results/table4.csv",
    "table7": "results/table7.csv",
    "selfconsistency": f"results/selfconsistency/k~{format_k(SC_K)}.csv",
    "table_masking": "results/table_masking.csv",
    "table5": "results/table5.csv",
    "table6": "results/table6.csv",
}


def claims_inputs(wildcards):
    """The result tables the claims check reads, limited to those this run's workflow builds."""
    built = set(TARGETS)
    return {key: path for key, path in CLAIM_TABLES.items() if path in built}


# ---- reliability monitor (rules/monitor.smk) ----
def monitor_hashed_config(wildcards):
    """The config sections a monitor bundle depends on; the card stores their hash."""
    return {
        "model": config["models"][wildcards.model],
        "dataset": config["datasets"][wildcards.dataset],
        "extraction": config["extraction"],
        "probes": config["probes"],
        "monitor": config["monitor"],
        "seed": config["seed"],
    }
