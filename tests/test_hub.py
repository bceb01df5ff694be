"""Offline mode, pins (the lock file), model location and job memory; never the real network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import SCHEMA_PATH, load_config, validate_config
from vrp import pins
from vrp.hub import (
    ModelUnavailableError,
    apply_offline_env,
    locate_checkpoint,
    looks_like_local_path,
)
from vrp.resources import JOB_OVERHEAD_MB, TINY_MODEL_MB, local_checkpoint_params, model_mem_mb

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper.yaml"
FAKE_COMMITS = {
    "llava-hf/llava-1.5-7b-hf": "1" * 40,
    "google/paligemma-3b-mix-224": "2" * 40,
    "Qwen/Qwen2-VL-7B-Instruct": "3" * 40,
    "lmms-lab/POPE": "4" * 40,
}
# the extra families' blocks: switched off in the paper face (not planned), pinned all the same
EXTRA_COMMITS = {"Qwen/Qwen2.5-VL-7B-Instruct": "5" * 40, "google/gemma-3-4b-it": "6" * 40}
# A hang guard for subprocesses that must fail fast; far above what they take (seconds).
FAIL_FAST_TIMEOUT_S = 60


def fake_resolver(artefact: pins.HubArtefact) -> str:
    return {**FAKE_COMMITS, **EXTRA_COMMITS}[artefact.repo_id]


def network_off(folder: Path) -> dict[str, str]:
    """Environment whose Python processes cannot open a socket (a sitecustomize refuses it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        textwrap.dedent("""
            import socket

            def _refuse(*args, **kwargs):
                raise OSError(101, "Network is unreachable (switched off by the test)")

            socket.socket.connect = _refuse
            socket.create_connection = _refuse
            socket.getaddrinfo = _refuse
            """)
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["HF_HOME"] = str(folder / "hf_home")  # an empty cache: nothing is "already downloaded"
    return env


# --------------------------------------------------------------------------------------------
# offline mode


def test_offline_env_set_before_import_reaches_huggingface_hub(tmp_path):
    """The parse-time call puts HF_HUB_OFFLINE in the environment before any Hub library loads."""
    code = textwrap.dedent("""
        import sys
        from vrp.hub import apply_offline_env
        assert "huggingface_hub" not in sys.modules
        apply_offline_env(True)
        import transformers  # noqa: F401  (imports huggingface_hub, which reads the variable)
        from huggingface_hub import constants
        print(constants.HF_HUB_OFFLINE, constants.is_offline_mode())
        """)
    env = network_off(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_offline_env_applied_late_sets_the_constant_and_never_unsets(monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    apply_offline_env(False)
    assert "HF_HUB_OFFLINE" not in os.environ and constants.HF_HUB_OFFLINE is False
    apply_offline_env(True)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE is True
    environ = {"HF_HUB_OFFLINE": "1"}
    apply_offline_env(False, environ)
    assert environ == {"HF_HUB_OFFLINE": "1"}


# --------------------------------------------------------------------------------------------
# where a model comes from


@pytest.mark.parametrize(
    ("path", "local"),
    [
        ("/data/models/llava", True),
        ("./ckpt", True),
        ("~/ckpt", True),
        ("results/zoo/llava/checkpoint", True),
        ("llava-hf/llava-1.5-7b-hf", False),
        ("gpt2", False),
        ("not a/hub id", True),
    ],
)
def test_local_paths_are_told_from_hub_ids(path, local):
    assert looks_like_local_path(path) is local


def test_locate_checkpoint_local_folder_and_file(tmp_path):
    assert locate_checkpoint(str(tmp_path), None, "models.m.path") == str(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelUnavailableError, match=r"`models\.m\.path` = .* is a file"):
        locate_checkpoint(str(tmp_path / "weights.bin"), None, "models.m.path")


SPEC = {
    "name": "llava",
    "family": "llava",
    "revision": None,
    "dtype": "float32",
    "device": "cpu",
    "prompt_template": None,
}
LOAD_CASES = {
    # a local folder that is not there
    "missing_folder": {
        **SPEC,
        "path": "/nonexistent/vrp-test/llava-checkpoint",
        "hf_offline": True,
    },
    # runtime.hf_offline: true and nothing cached
    "offline_hub_id": {**SPEC, "path": "nobody-vrp/no-such-model", "hf_offline": True},
    # online mode but no network (pinned revision)
    "unreachable_hub_id": {
        **SPEC,
        "path": "nobody-vrp/no-such-model",
        "hf_offline": False,
        "revision": "5" * 40,
    },
}


@pytest.fixture(scope="module")
def load_failures(tmp_path_factory) -> dict[str, str]:
    """{case: message} from load_model_from_spec in ONE fresh interpreter, network switched off.

    The online case runs first: the late apply_offline_env of an offline spec switches the whole
    process offline, as it does in a job.
    """
    code = textwrap.dedent(f"""
        import json
        from vrp.models import load_model_from_spec
        cases, out = json.loads({json.dumps(json.dumps(LOAD_CASES))}), {{}}
        for name in ("unreachable_hub_id", "missing_folder", "offline_hub_id"):
            try:
                load_model_from_spec(cases[name])
                out[name] = "loaded"
            except Exception as err:
                out[name] = type(err).__name__ + ": " + str(err)
        print(json.dumps(out))
        """)
    env = network_off(tmp_path_factory.mktemp("load"))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=FAIL_FAST_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Retrying" not in done.stderr  # no from_pretrained retry loop was entered
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_missing_local_folder_names_the_config_key(load_failures):
    message = load_failures["missing_folder"]
    assert message.startswith("ModelUnavailableError")
    assert "`models.llava.path`" in message and "no such local model folder" in message
    assert "repo id" not in message.lower()


def test_hub_id_offline_without_a_copy_fails_fast_with_the_fix(load_failures):
    """Refused before from_pretrained, naming the key, the download command and the local option."""
    message = load_failures["offline_hub_id"]
    for needle in (
        "ModelUnavailableError",
        "`models.llava.path`",
        "'nobody-vrp/no-such-model'",
        "offline",
        "hf download nobody-vrp/no-such-model",
        "local folder",
    ):
        assert needle in message, message


def test_hub_id_without_network_fails_fast_with_the_fix(load_failures):
    """Online mode but no network: one probe without retries, not from_pretrained's retry loop."""
    message = load_failures["unreachable_hub_id"]
    for needle in (
        "ModelUnavailableError",
        "`models.llava.path`",
        "unreachable",
        f"--revision {'5' * 40}",
        "local folder",
    ):
        assert needle in message, message


def test_gated_and_unknown_repositories_name_the_fix(monkeypatch):
    import httpx2
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    response = httpx2.Response(
        403, request=httpx2.Request("GET", "https://huggingface.co/api/models/g/p")
    )

    class FakeApi:
        error: Exception

        def repo_info(self, *args, **kwargs):
            raise self.error

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    FakeApi.error = hub_errors.GatedRepoError("403", response=response)
    with pytest.raises(
        ModelUnavailableError,
        match=r"gated.*huggingface\.co/google/paligemma-3b-mix-224.*hf auth login",
    ):
        locate_checkpoint("google/paligemma-3b-mix-224", None, "models.paligemma.path")
    FakeApi.error = hub_errors.RepositoryNotFoundError("404", response=response)
    with pytest.raises(
        ModelUnavailableError, match=r"`models\.paligemma\.path` = 'g/typo' is neither"
    ):
        locate_checkpoint("g/typo", None, "models.paligemma.path")


# --------------------------------------------------------------------------------------------
# pins


def test_resolve_pins_writes_a_lock_that_runs_read(tmp_path):
    config = load_config(PAPER)
    lock_path = tmp_path / "paper.lock.yaml"
    pinned, missing = pins.pins_for(config, lock_path)
    assert pinned == {} and {a.repo_id for a in missing} == set(FAKE_COMMITS)
    message = pins.unpinned_message(missing, lock_path, "config/paper.yaml")
    for needle in (
        "`models.paligemma.path`",
        "`datasets.pope.pope.repo_id`",
        "python -m vrp.pins config/paper.yaml",
    ):
        assert needle in message

    pins.resolve_pins(config, lock_path, resolver=fake_resolver)
    pinned, missing = pins.pins_for(config, lock_path)
    assert missing == []
    assert pinned == {
        "models.llava.path": "1" * 40,
        "models.paligemma.path": "2" * 40,
        "models.qwen2vl.path": "3" * 40,
        "datasets.pope.pope.repo_id": "4" * 40,
    }
    first = lock_path.read_bytes()
    calls = []
    pins.resolve_pins(config, lock_path, resolver=lambda a: calls.append(a) or "9" * 40)
    assert calls == [] and lock_path.read_bytes() == first  # pinned ones are not re-resolved
    pins.resolve_pins(config, lock_path, resolver=lambda a: "9" * 40, update=True)
    assert set(pins.pins_for(config, lock_path)[0].values()) == {"9" * 40}


def test_the_committed_paper_lock_lists_every_artefact_unresolved():
    lock = pins.read_lock(REPO / "config" / "paper.lock.yaml")
    config = load_config(PAPER)
    assert config["lock_file"] == "config/paper.lock.yaml"
    for artefact in pins.hub_artefacts(config):
        assert any(artefact.matches(entry) for entry in lock["hub"]), artefact


def test_commit_revisions_local_folders_and_changed_requests(tmp_path):
    config = load_config(PAPER)
    config["models"]["llava"]["revision"] = "a" * 40  # already a commit: needs no lock entry
    config["models"]["qwen2vl"]["path"] = str(tmp_path)  # a local folder: not a Hub artefact
    config["datasets"]["pope"]["pope"]["local_dir"] = str(tmp_path)
    lock_path = tmp_path / "lock.yaml"
    pins.resolve_pins(config, lock_path, resolver=fake_resolver)
    pinned, missing = pins.pins_for(config, lock_path)
    assert missing == [] and pinned == {
        "models.llava.path": "a" * 40,
        "models.paligemma.path": "2" * 40,
    }
    config["models"]["paligemma"]["revision"] = "v2"  # a different request is not the pinned one
    assert [a.key for a in pins.pins_for(config, lock_path)[1]] == ["models.paligemma.path"]


def test_file_checksums_are_recorded_and_read_back(tmp_path):
    lock_path = tmp_path / "lock.yaml"
    assert pins.recorded_file(lock_path, "http://x/a.zip") is None
    pins.record_file(lock_path, "http://x/a.zip", 12, "ab" * 32)
    assert pins.recorded_file(lock_path, "http://x/a.zip") == {"size": 12, "sha256": "ab" * 32}
    assert yaml.safe_load(lock_path.read_text())["hub"] == []


def test_the_pinned_commit_reaches_the_model_spec_and_pope_params(tmp_path):
    """rules/common.smk passes the lock's commit to every model rule (manifest + fingerprint)."""
    from types import SimpleNamespace

    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    lock_path = tmp_path / "paper.lock.yaml"
    pins.resolve_pins(load_config(PAPER), lock_path, resolver=fake_resolver)
    config_path = tmp_path / "paper.yaml"
    raw = yaml.safe_load(PAPER.read_text())
    raw["lock_file"] = str(lock_path)
    config_path.write_text(yaml.safe_dump(raw))
    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(
                    configfiles=[config_path], replace_workflow_config=True
                ),
                snakefile=REPO / "Snakefile",
                workdir=tmp_path,
            )
            names = workflow._workflow.globals
            spec = names["model_spec"](SimpleNamespace(model="qwen2vl"))
            pope = names["pope_section"](SimpleNamespace(dataset="pope"))
            mem = names["model_mem_mb"](SimpleNamespace(model="qwen2vl"), 1)
    finally:
        os.chdir(cwd)
    assert spec["revision"] == "3" * 40 and spec["name"] == "qwen2vl"
    assert pope["revision"] == "4" * 40
    assert mem == model_mem_mb(load_config(PAPER)["models"]["qwen2vl"], "cuda")


# --------------------------------------------------------------------------------------------
# memory of the jobs that load a model


def test_mem_mb_from_parameter_count_and_dtype():
    model = {
        "source": "hub",
        "path": "Qwen/Qwen2-VL-7B-Instruct",
        "n_params": 8_291_375_616,
        "dtype": "bfloat16",
    }
    weights = 16_583  # MB: 8.29e9 params x 2 bytes, rounded up
    assert model_mem_mb(model, "cpu") == JOB_OVERHEAD_MB + weights
    assert model_mem_mb(model, "cuda") == JOB_OVERHEAD_MB + -(-weights // 4)  # straight to the GPU
    assert model_mem_mb(model, "cuda", attempt=2) == 2 * model_mem_mb(model, "cuda")
    assert model_mem_mb({**model, "dtype": "float32"}, "cpu") == JOB_OVERHEAD_MB + 33_166
    assert model_mem_mb({"source": "tiny", "dtype": "float32"}, "cpu") == TINY_MODEL_MB
    with pytest.raises(ValueError, match="models.<name>.n_params"):
        model_mem_mb({**model, "n_params": None}, "cuda")


def test_mem_mb_of_a_local_folder_reads_its_safetensors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 4_000_000_000}})
    )
    assert local_checkpoint_params(tmp_path) == 2_000_000_000
    model = {"source": "hub", "path": str(tmp_path), "n_params": None, "dtype": "float32"}
    assert model_mem_mb(model, "cpu") == JOB_OVERHEAD_MB + 8_000
    single = tmp_path / "single"
    single.mkdir()
    (single / "model.safetensors").write_bytes(b"\0" * 4_000)  # float32 by default: 1,000 params
    assert local_checkpoint_params(single) == 1_000


def test_paper_models_declare_their_size():
    config = load_config(PAPER)
    sizes = {
        name: model_mem_mb(model, config["runtime"]["device"])
        for name, model in config["models"].items()
    }
    assert all(JOB_OVERHEAD_MB < mb < 16_000 for mb in sizes.values()), sizes
    assert (
        validate_config({**yaml.safe_load(PAPER.read_text())})["models"]["llava"]["n_params"]
        == 7_063_427_072
    )


# --------------------------------------------------------------------------------------------
# the paper face's data rules, planned and run without network


def _paper_workdir(tmp_path: Path, **runtime) -> tuple[Path, Path]:
    """A workdir with config/paper.yaml whose lock (fake commits) lives in the workdir."""
    workdir = tmp_path / "work"
    (workdir / "config").mkdir(parents=True)
    raw = yaml.safe_load(PAPER.read_text())
    raw["runtime"].update(runtime)
    config_path = workdir / "config" / "paper.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    pins.resolve_pins(load_config(config_path), workdir / raw["lock_file"], resolver=fake_resolver)
    return workdir, config_path


def _assert_log_says(log: Path, *needles: str) -> None:
    """Every one of ``needles`` stands in the job log ``log``."""
    text = log.read_text()
    missing = [needle for needle in needles if needle not in text]
    assert not missing, f"{log.name} lacks {missing}:\n{text[-3000:]}"


def test_paper_dry_run_lists_the_coco_fetch_rule(tmp_path):
    from conftest import planned_jobs

    workdir = tmp_path / "plain"
    (workdir / "config").mkdir(parents=True)
    jobs = planned_jobs(workdir, "--configfile", str(PAPER), "--replace-workflow-config")
    assert (
        jobs["data_coco_val2014"] == 1 and jobs["data_pope"] == 1 and jobs["data_coco_tasks"] == 1
    )


def test_paper_data_rules_fail_fast_offline_naming_key_file_and_source(tmp_path):
    """No network, no local copies: both data rules fail in seconds (hang guard: the timeout).

    runtime.hf_offline: true here, and the test itself never sets HF_HUB_OFFLINE: the POPE job's
    message saying it is set shows the parse-time environment reached the job.
    """
    from conftest import run_snakemake

    workdir, config_path = _paper_workdir(tmp_path, hf_offline=True)
    env_backup, env = dict(os.environ), network_off(tmp_path / "net")
    os.environ.clear()
    os.environ.update(env)
    try:
        done = run_snakemake(
            workdir,
            "--configfile",
            str(config_path),
            "--replace-workflow-config",
            "--keep-going",
            "results/data/coco_tasks/eval.parquet",
            "results/data/pope/eval.parquet",
            timeout=4 * FAIL_FAST_TIMEOUT_S,
        )
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    assert done.returncode != 0
    assert (workdir / "logs" / "data" / "fetch_coco_val2014.log").is_file(), done.stderr[-5000:]
    _assert_log_says(
        workdir / "logs" / "data" / "fetch_coco_val2014.log",
        "DataUnavailableError",
        "`datasets.coco_tasks.coco.annotations`",
        "`datasets.coco_tasks.coco.image_dir`",
        "http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
        "http://images.cocodataset.org/zips/val2014.zip",
        "unreachable",
    )
    _assert_log_says(
        workdir / "logs" / "data" / "pope.log",
        "DataUnavailableError",
        "'lmms-lab/POPE'",
        "HF_HUB_OFFLINE is set",
        "`datasets.pope.pope.local_dir`",
        "https://huggingface.co/datasets/lmms-lab/POPE",
    )
    assert not (workdir / "results" / "data").exists() or not list(
        (workdir / "results" / "data").rglob("*.parquet")
    )
    assert not (workdir / "resources" / "coco" / "val2014").exists()


def test_an_unpinned_model_is_refused_before_loading():
    from vrp.models import load_model_from_spec

    message = pins.unpinned_message(
        [pins.hub_artefacts(load_config(PAPER))[0]], "config/paper.lock.yaml"
    )
    with pytest.raises(pins.PinError, match=r"not pinned.*python -m vrp\.pins"):
        load_model_from_spec({**SPEC, "path": "llava-hf/llava-1.5-7b-hf", "unpinned": message})


# --------------------------------------------------------------------------------------------
# loading straight to the device


@pytest.mark.parametrize(("device", "device_map"), [("cpu", None), ("cuda:0", {"": "cuda:0"})])
def test_load_places_weights_with_device_map_off_the_cpu(tmp_path, monkeypatch, device, device_map):
    """Off the CPU the weights go straight to the device: device_map, and no model.to() after."""
    import torch

    from vrp.adapters import get_adapter_class
    from vrp.zoo.tokenizer import build_word_tokenizer

    adapter_class = get_adapter_class("llava")
    tokenizer = build_word_tokenizer(["is there a cat ?"], adapter_class.template_words())
    tiny = adapter_class.build_tiny(tokenizer, {}, seed=0)
    tiny.save(tmp_path)
    seen = {}
    real = adapter_class.model_class.from_pretrained.__func__

    def from_pretrained(cls, path, **kwargs):
        seen.update(kwargs)
        return real(cls, path, **{k: v for k, v in kwargs.items() if k != "device_map"})

    def no_move(self, *args, **kwargs):
        raise AssertionError("the loaded model was moved after loading")

    monkeypatch.setattr(adapter_class.model_class, "from_pretrained", classmethod(from_pretrained))
    monkeypatch.setattr(torch.nn.Module, "to", no_move)
    loaded = adapter_class.load(tmp_path, device=device)
    assert seen["device_map"] == device_map
    monkeypatch.undo()
    for (name, a), (_, b) in zip(
        tiny.model.state_dict().items(), loaded.model.state_dict().items()
    ):
        assert torch.equal(a, b), name  # the same weights as before


def test_pins_command_writes_the_lock_and_reports_an_unreachable_hub(tmp_path, monkeypatch, capsys):
    lock_path = tmp_path / "lock.yaml"
    monkeypatch.setattr(pins, "hub_resolver", lambda timeout=30.0: fake_resolver)
    assert pins.main([str(PAPER), "--lock", str(lock_path), "--schema", str(SCHEMA_PATH)]) == 0
    assert pins.pins_for(load_config(PAPER), lock_path)[1] == []
    out = capsys.readouterr().out
    assert "lmms-lab/POPE @ default -> " + "4" * 40 in out
    # the switched-off extra families are pinned too: switching them on needs no new pins
    assert "google/gemma-3-4b-it @ default -> " + "6" * 40 in out
    switched_on = validate_config({**yaml.safe_load(PAPER.read_text()), "extra_families": True})
    assert len(switched_on["models"]) == 5 and pins.pins_for(switched_on, lock_path)[1] == []

    def unreachable(artefact):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(pins, "hub_resolver", lambda timeout=30.0: unreachable)
    assert (
        pins.main(
            [
                str(PAPER),
                "--lock",
                str(tmp_path / "other.yaml"),
                "--update",
                "--schema",
                str(SCHEMA_PATH),
            ]
        )
        == 1
    )
    assert "run this on a machine with Hub access" in capsys.readouterr().err
