"""The cluster profile (profiles/slurm) against a real one-node SLURM started on loopback.

The fast tests check the profile's shape against the workflow's rules. The slow test starts SLURM
with scripts/slurm/local-slurm.sh (Debian's munge, slurmctld, slurmd, slurm-client and a fake GPU),
submits a slice of the demo DAG through `--workflow-profile` with the placeholders filled in, checks
that every job went through sbatch and ran to COMPLETED (the training job on the fake GPU), and
that the outputs equal a local run's. It needs root; under CI it must run, elsewhere it skips.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake_command

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
LOCAL_SLURM = REPO / "scripts" / "slurm" / "local-slurm.sh"
PLACEHOLDERS = {"<account>", "<cpu-partition>", "<gpu-partition>"}
# the demo slice: benchmark, tokenizer, one tiny model trained for 2 steps (3 jobs)
SLICE_TARGET = "results/zoo/llava/training.json"
SLICE_RULES = {"data_synthetic", "zoo_vocabulary", "zoo_train"}
# training.json records wall time; everything else in the slice must be byte-identical
TIMING_KEYS = {"train_seconds", "seconds_per_step"}


def load_profile() -> dict:
    with open(PROFILE) as fh:
        return yaml.safe_load(fh)


def workflow_rule_resources() -> dict[str, dict]:
    """{rule: {resource: Resource}} as the rules declare them (no profile applied)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(),
                snakefile=REPO / "Snakefile",
                workdir=REPO,
            )
            return {rule.name: dict(rule.resources) for rule in workflow._workflow.rules}
    finally:
        os.chdir(cwd)


def eval_attempt(expression, attempt: int) -> int:
    """Value of a profile resource (an int or an `attempt` expression) on a given attempt."""
    return expression if isinstance(expression, int) else eval(expression, {"attempt": attempt})


def test_profile_is_slurm_with_documented_placeholders_only():
    profile = load_profile()
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1
    entries = [profile["default-resources"], *profile["set-resources"].values()]
    assert not any("slurm_extra" in entry for entry in entries)  # plugin >= 1.9 rejects GPUs there
    text = PROFILE.read_text()
    found = {word for word in PLACEHOLDERS if f'"{word}"' in text}
    assert found == PLACEHOLDERS
    readme = (REPO / "README.md").read_text()
    for placeholder in PLACEHOLDERS:
        assert placeholder in readme, f"README must explain the profile placeholder {placeholder}"


def test_memory_scales_with_attempt():
    profile = load_profile()
    entries = [profile["default-resources"], *profile["set-resources"].values()]
    scaled = [e["mem_mb"] for e in entries if "mem_mb" in e]
    assert scaled, "the profile sets no memory"
    for expression in scaled:
        assert eval_attempt(expression, 2) == 2 * eval_attempt(expression, 1), expression


def test_profile_covers_every_rule_that_needs_it():
    """Every heavy or GPU rule has an entry; every entry names a rule that exists."""
    profile = load_profile()
    overrides = profile["set-resources"]
    default_mem = eval_attempt(profile["default-resources"]["mem_mb"], 1)
    rules = workflow_rule_resources()
    assert set(overrides) <= set(rules), set(overrides) - set(rules)
    for name, resources in rules.items():
        if "gpu" in resources:
            entry = overrides.get(name, {})
            assert entry.get("slurm_partition") == "<gpu-partition>", (
                f"GPU rule {name} needs a GPU partition"
            )
        mem = resources.get("mem_mb")
        if mem is not None and not mem.is_evaluable() and mem.value > default_mem:
            assert name in overrides and "mem_mb" in overrides[name], (
                f"{name} declares {mem.value} MB"
            )
            assert eval_attempt(overrides[name]["mem_mb"], 1) >= mem.value, name


# --- a real SLURM ---------------------------------------------------------------------------


def _local_slurm(action: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(LOCAL_SLURM), action], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def local_slurm():
    """A running one-node SLURM; stopped afterwards (only the daemons the script started)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the SLURM test needs root in CI")
        pytest.skip("starting SLURM daemons needs root")
    started = _local_slurm("start")
    assert started.returncode == 0, started.stdout + started.stderr
    yield
    stopped = _local_slurm("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def _slice_config(workdir: Path) -> None:
    with open(REPO / "tests" / "config" / "ci.yaml") as fh:
        config = yaml.safe_load(fh)
    config["models"]["llava"]["train"]["steps"] = 2  # the slice trains only this one
    (workdir / "config").mkdir(parents=True)
    with open(workdir / "config" / "config.yaml", "w") as fh:
        yaml.safe_dump(config, fh)


def _site_profile(folder: Path) -> Path:
    """profiles/slurm with the placeholders filled in for the loopback cluster (as a user does)."""
    profile = load_profile()
    text = yaml.safe_dump(profile)
    text = text.replace("<cpu-partition>", "debug").replace("<gpu-partition>", "debug")
    profile = yaml.safe_load(text)
    # no accounting daemon: no account to charge, and job state comes from squeue, not sacct
    del profile["default-resources"]["slurm_account"]
    profile["slurm-status-command"] = "squeue"
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["slurm-keep-successful-logs"] = True
    profile["latency-wait"] = 5
    profile["retries"] = 0
    # the tiny model needs no GPU; ask for one anyway so the GPU path (--gpus, gres) is exercised
    overrides = profile["set-resources"]
    overrides["zoo_train"] = {
        **overrides.get("zoo_train", {}),
        "gpu": 1,
    }  # a copy: YAML anchors share
    assert not PLACEHOLDERS & set(yaml.safe_dump(profile).split())
    folder.mkdir(parents=True)
    with open(folder / "config.yaml", "w") as fh:
        yaml.safe_dump(profile, fh)
    return folder


def _finished_jobs() -> dict[str, dict]:
    """{comment: job} for every job squeue still knows (MinJobAge keeps finished ones)."""
    out = subprocess.run(
        [
            "squeue",
            "--states=all",
            "--noheader",
            "-O",
            "JobID:|,Comment:|,State:|,tres-per-job:|,Name:",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    jobs = {}
    for line in out.splitlines():
        job_id, comment, state, tres, name = (field.strip() for field in line.split("|"))
        jobs[comment] = {"id": int(job_id), "state": state, "tres": tres, "name": name}
    return jobs


def _snakemake(workdir: Path, *args: str, limit: int) -> subprocess.CompletedProcess:
    # The SLURM executor ignores SIGTERM while it polls: bound it with SIGINT (it then scancels its
    # jobs), and SIGKILL 30 s later.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    command = ["timeout", "-s", "INT", "-k", "30", str(limit), *snakemake_command(workdir, *args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=limit + 60)


def _outputs(workdir: Path) -> list[Path]:
    results = workdir / "results"
    return sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file())


@pytest.mark.slow
def test_demo_slice_through_slurm_equals_local_run(tmp_path, local_slurm):
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    _slice_config(local)
    _slice_config(cluster)
    profile = _site_profile(tmp_path / "profile")
    before = {job["id"] for job in _finished_jobs().values()}

    ran = _snakemake(cluster, "--workflow-profile", str(profile), SLICE_TARGET, limit=420)
    log = ran.stdout + ran.stderr
    assert ran.returncode == 0, log[-6000:]
    local_run = _snakemake(local, "--cores", "2", SLICE_TARGET, limit=420)
    assert local_run.returncode == 0, (local_run.stdout + local_run.stderr)[-6000:]

    # every job went through sbatch and ran to completion under SLURM
    jobs = {c: j for c, j in _finished_jobs().items() if j["id"] not in before}
    by_rule = {c.removeprefix("rule_").split("_wildcards_")[0]: j for c, j in jobs.items()}
    assert set(by_rule) == SLICE_RULES, jobs
    assert {j["state"] for j in jobs.values()} == {"COMPLETED"}, jobs
    assert len({j["name"] for j in jobs.values()}) == 1  # one Snakemake run (its run uuid)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert sorted(map(int, submitted)) == sorted(j["id"] for j in jobs.values())
    assert by_rule["zoo_train"]["tres"] == "gres:gpu:1"  # scheduled on the fake GPU
    assert by_rule["zoo_vocabulary"]["tres"] in {"", "N/A", "(null)"}
    for rule in SLICE_RULES:
        logs = list((cluster / ".snakemake" / "slurm_logs").glob(f"rule_{rule}/**/*.log"))
        assert len(logs) == 1, (rule, logs)
        job_id = by_rule[rule]["id"]
        assert logs[0].name == f"{job_id}.log"

    # the same files, with the same bytes, as the local run
    assert _outputs(cluster) == _outputs(local)
    for relative in _outputs(local):
        a, b = local / "results" / relative, cluster / "results" / relative
        if relative.name == "training.json":
            ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
            for key in TIMING_KEYS:
                ja.pop(key), jb.pop(key)
            assert ja == jb
        elif relative.name != ".snakemake_timestamp":
            assert filecmp.cmp(a, b, shallow=False), (
                f"{relative} differs between SLURM and local runs"
            )

    # a second submission finds nothing to do
    again = _snakemake(cluster, "--workflow-profile", str(profile), "-n", SLICE_TARGET, limit=120)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    shutil.rmtree(cluster / ".snakemake" / "slurm_logs", ignore_errors=True)
