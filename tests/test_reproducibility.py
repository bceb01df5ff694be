"""Reproducibility guarantees of the workflow, each checked for real.

* Two toy demo runs with the same seed give byte-identical tables (every CSV under results/).
* Changing one figure's parameter reruns only that figure's jobs (through ``snakemake.api``,
  counting the jobs and the files they rewrite).
* A config that fails the schema is refused before any job runs, with a message naming the key.
* ``envs/vrp.yaml`` and the pip pins name the same versions: tests/test_envs.py.
"""

from __future__ import annotations

import copy
import filecmp
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, planned_jobs, run_snakemake

CI_CONFIG = REPO / "tests" / "config" / "ci.yaml"


def _ci_config() -> dict:
    with open(CI_CONFIG) as fh:
        return yaml.safe_load(fh)


def _workdir_with(folder: Path, config: dict) -> Path:
    (folder / "config").mkdir(parents=True)
    with open(folder / "config" / "config.yaml", "w") as fh:
        yaml.safe_dump(config, fh)
    return folder


def _tables(workdir: Path) -> list[Path]:
    results = workdir / "results"
    return sorted(p.relative_to(results) for p in results.rglob("*.csv"))


# --- a config that fails the schema ---------------------------------------------------------


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["models"]["llava"]["train"].__setitem__("stpes", 3),
            "config error at models.llava.train: Additional properties are not allowed ('stpes' was unexpected)",
        ),
        (
            lambda c: c.__setitem__("seed", "zero"),
            "config error at seed: 'zero' is not of type 'integer'",
        ),
        (
            lambda c: c["extraction"].__setitem__("batch_size", 0),
            "config error at extraction.batch_size: 0 is less than the minimum of 1",
        ),
    ],
    ids=["unknown-key", "wrong-type", "out-of-range"],
)
def test_bad_config_is_refused_before_any_job(tmp_path, edit, message):
    config = copy.deepcopy(_ci_config())
    edit(config)
    workdir = _workdir_with(tmp_path, config)
    result = run_snakemake(workdir, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output, output[-3000:]
    # refused while parsing the workflow: no job was planned, none ran, nothing was written
    assert "Job stats" not in output
    assert not (workdir / "results").exists()
    assert not (workdir / "logs").exists()


# --- one figure's parameter -----------------------------------------------------------------

# (config path, new value, the rules whose jobs must rerun, outputs they rewrite): one entry per
# figure parameter; each figure's owner keeps its row true. Only rows whose rules exist are run.
FIGURE_PARAMETERS = [
    (
        ("attention", "case_study", "entropy_quantile"),
        0.25,
        {"attention_figure5": 1},
        {"results/figures/fig5.pdf", "results/figures/fig5.png", "results/figures/fig5_case.json"},
    ),
]


def _set(config: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        config = config.setdefault(key, {})
    config[path[-1]] = value


def _run_through_api(workdir: Path, targets=("all",)) -> tuple[dict[str, int], list[str]]:
    """Run ``targets`` in ``workdir`` through snakemake.api; return ({rule: jobs run}, updated files)."""
    import os

    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )

    updated: list[str] = []
    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(cores=2),
                config_settings=ConfigSettings(configfiles=[workdir / "config" / "config.yaml"]),
                snakefile=REPO / "Snakefile",
                workdir=workdir,
            )
            dag = workflow.dag(DAGSettings(targets=set(targets)))
            dag.execute_workflow(executor="local", updated_files=updated)
            jobs: dict[str, int] = {}
            for job in workflow._workflow.dag.jobs:  # the jobs this execution ran
                if job.rule.name != "all" and set(map(str, job.output)) & set(updated):
                    jobs[job.rule.name] = jobs.get(job.rule.name, 0) + 1
    finally:
        os.chdir(cwd)
    return jobs, sorted(updated)


@pytest.mark.slow
@pytest.mark.parametrize(
    "path, value, rules, outputs",
    FIGURE_PARAMETERS,
    ids=[".".join(p[0]) for p in FIGURE_PARAMETERS],
)
def test_changing_one_figure_parameter_reruns_only_that_figure(
    demo_workdir, tmp_path, path, value, rules, outputs
):
    workdir = tmp_path / "demo"
    # a copy (mtimes and .snakemake metadata kept) so the shared demo run stays untouched
    shutil.copytree(
        demo_workdir, workdir, symlinks=True, ignore=shutil.ignore_patterns("locks", "incomplete")
    )
    assert planned_jobs(workdir) == {}, (
        "the demo run is not up to date before the change (code edited since?)"
    )
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    _set(config, path, value)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    jobs, updated = _run_through_api(workdir)
    assert jobs == rules
    assert set(updated) == outputs

    # and the run left the workflow complete: a second pass has nothing to do
    jobs, updated = _run_through_api(workdir)
    assert jobs == {} and updated == []


# --- two runs, same seed --------------------------------------------------------------------


@pytest.mark.slow
def test_two_runs_with_the_same_seed_give_byte_identical_tables(demo_workdir, tmp_path):
    second = _workdir_with(tmp_path / "second", _ci_config())
    result = run_snakemake(second)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    tables = _tables(demo_workdir)
    assert "accuracy.csv" in {str(t) for t in tables}
    assert _tables(second) == tables
    different = [
        str(t)
        for t in tables
        if not filecmp.cmp(demo_workdir / "results" / t, second / "results" / t, shallow=False)
    ]
    assert different == [], f"tables that differ between two runs with seed 0: {different}"
