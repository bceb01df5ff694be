"""The fault matrix: what a new user can get wrong, and that each fails clearly or recomputes.

Every case asserts how it ends (an exception at the library level, the exit status for the few
real workflow runs), that the message names the thing and the fix, and that nothing is left
looking valid (no manifest, no shard under its final name, no temp folder). Most cases run in
process on one tiny model; the workflow-level ones reuse the session's toy run (``demo_workdir``).

Covered elsewhere: the plain SIGINT/KeyboardInterrupt resume is tests/test_extract.py
``test_killed_run_resumes_to_identical_files``; changed settings and a retrained checkpoint are
``test_changed_settings_do_not_reuse_stale_shards`` / ``test_retrained_checkpoint_does_not_reuse_shards``
there; offline Hub loading and a missing local model folder (issue item 5) are tested with the
model loader.
"""

import copy
import filecmp
import io
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO, run_snakemake, validate_config
from vrp.adapters import FAMILIES, get_adapter_class
from vrp.analysis.dynamics import NonFiniteError, dynamics_row, peak_margin
from vrp.benchmark.schema import BenchmarkSchemaError, read_questions, validate_questions
from vrp.benchmark.synthetic import SyntheticBenchmarkConfig, generate_split
from vrp.config import ConfigError, check_not_merged
from vrp.extract import (
    ExtractionSettings,
    Extractor,
    NonFiniteArrayError,
    check_finite,
    extract,
    fingerprint,
    shard_state,
)
from vrp.io import DiskFullError, write_json
from vrp.shards import ShardError, broken_shards, load_array, load_layer, open_array
from vrp.zoo.tokenizer import build_word_tokenizer

SETTINGS = ExtractionSettings(batch_size=4, shard_size=8, per_head=True)


@pytest.fixture(scope="module")
def questions() -> pd.DataFrame:
    config = SyntheticBenchmarkConfig.from_dict(
        {"seed": 5, "n_train_images": 1, "n_eval_images": 3}
    )
    table = generate_split(config, "eval")
    return table[table["task"] != "caption"].head(24).reset_index(drop=True)


@pytest.fixture(scope="module")
def adapter(questions):
    torch.set_num_threads(1)
    extra = [w for f in FAMILIES for w in get_adapter_class(f).template_words()]
    tokenizer = build_word_tokenizer(
        [*questions["question"], *questions["answer"]], extra_words=extra
    )
    return get_adapter_class("llava").build_tiny(tokenizer, {"num_hidden_layers": 2}, seed=1)


@pytest.fixture(scope="module")
def clean(adapter, questions, tmp_path_factory) -> Path:
    """One uninterrupted extraction (3 shards): the reference every repair is compared with."""
    out = tmp_path_factory.mktemp("clean")
    extract(adapter, questions, out, {"family": "llava", "path": "tiny"}, SETTINGS, progress=False)
    return out


SPEC = {"family": "llava", "path": "tiny"}


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def assert_identical(a: Path, b: Path) -> None:
    assert _files(a) == _files(b)
    for rel in _files(a):
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def assert_nothing_valid(out: Path) -> None:
    """No manifest or samples table, no temp folder: nothing that a consumer could mistake for a result."""
    assert not (out / "manifest.json").exists()
    assert not (out / "samples.parquet").exists()
    leftovers = [p for p in out.rglob(".*") if p.name.startswith(".")] if out.exists() else []
    assert not leftovers, leftovers


def counting_batches(monkeypatch):
    calls = {"n": 0}
    original = Extractor.run_batch

    def counting(self, batch):
        calls["n"] += 1
        return original(self, batch)

    monkeypatch.setattr(Extractor, "run_batch", counting)
    return calls


def _demo_config() -> dict:
    with open(REPO / "tests" / "config" / "ci.yaml") as fh:
        return yaml.safe_load(fh)


# --------------------------------------------------------------------------------------------
# 1-4, 8-10: config errors, all at start-up (validate_config is what rules/common.smk runs)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit, phrases",
    [
        (
            lambda c: c.__setitem__("seed", "zero"),
            ["config error at seed", "not of type 'integer'"],
        ),
        (
            lambda c: c["extraction"].__setitem__("batch_size", 0),
            ["config error at extraction.batch_size", "less than the minimum of 1"],
        ),
        (
            lambda c: c["models"]["llava"].__setitem__("family", "lava"),
            ["config error at models.llava.family", "is not one of"],
        ),
        (
            lambda c: c["models"]["llava"]["train"].__setitem__("stpes", 3),
            ["config error at models.llava.train", "unknown key", "spelling"],
        ),
        (
            lambda c: c["extraction"].update(batch_size=16, shard_size=40),
            ["extraction.shard_size", "not a multiple of extraction.batch_size (16)", "e.g. 32"],
        ),
        (
            lambda c: c["datasets"]["synthetic"]["synthetic"].__setitem__("max_count", 12),
            ["config error at datasets.synthetic.synthetic", "max_count must be in 1..9"],
        ),
        (
            lambda c: c["datasets"]["synthetic"]["synthetic"].__setitem__("n_eval_image", 3),
            ["config error at datasets.synthetic.synthetic", "unknown key(s) ['n_eval_image']"],
        ),
        (
            lambda c: c["models"]["qwen2vl"]["tiny"].__setitem__("num_layers", 2),
            ["config error at models.qwen2vl.tiny", "unknown key(s) ['num_layers']", "known keys"],
        ),
        (
            lambda c: c["models"]["llava"]["tiny"].__setitem__("num_hidden_layers", 2.5),
            ["config error at models.llava.tiny.num_hidden_layers", "must be an int"],
        ),
    ],
    ids=[
        "type",
        "range",
        "unknown-family",
        "misspelled-key",
        "shard-vs-batch",
        "synthetic-range",
        "synthetic-key",
        "tiny-key",
        "tiny-type",
    ],
)
def test_config_errors_name_the_key_and_fix(edit, phrases):
    config = _demo_config()
    edit(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    for phrase in phrases:
        assert phrase in str(err.value)


def test_tiny_keys_read_without_import_match_the_adapters():
    from vrp.config import tiny_defaults

    for family in FAMILIES:
        assert tiny_defaults(family) == get_adapter_class(family).tiny_defaults


# --------------------------------------------------------------------------------------------
# 11-12: --configfile merged onto the demo config
# --------------------------------------------------------------------------------------------
def _merged(default: dict, passed: dict) -> dict:
    from snakemake.utils import update_config

    merged = copy.deepcopy(default)
    update_config(merged, passed)
    return merged


def test_an_emptied_models_section_is_refused():
    passed = {"models": {}}
    with pytest.raises(ConfigError) as err:
        check_not_merged(_merged(_demo_config(), passed), passed, ["toy.yaml"], replaced=False)
    message = str(err.value)
    kept = "['gemma3', 'llava', 'paligemma', 'qwen25vl', 'qwen2vl']"  # the demo's blocks, extra ones too
    assert f"models is empty in toy.yaml but the merge kept {kept}" in message
    assert "--replace-workflow-config" in message
    # the same file with --replace-workflow-config, or a top-level override, is fine
    check_not_merged(passed, passed, ["toy.yaml"], replaced=True)
    override = {"probes": {"n_boot": 10}}
    check_not_merged(_merged(_demo_config(), override), override, ["o.yaml"], replaced=False)


def test_a_model_entry_inheriting_demo_keys_is_refused():
    passed = {"models": {"llava": {"family": "llava", "source": "tiny"}}}
    with pytest.raises(ConfigError) as err:
        check_not_merged(_merged(_demo_config(), passed), passed, ["mine.yaml"], replaced=False)
    message = str(err.value)
    assert "models.paligemma" in message and "models.llava.tiny" in message
    assert "pass --replace-workflow-config to use mine.yaml alone" in message


def test_the_merge_is_refused_at_workflow_start_before_any_job(tmp_path):
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "tests" / "config" / "ci.yaml", tmp_path / "config" / "config.yaml")
    passed = tmp_path / "mine.yaml"
    passed.write_text(yaml.safe_dump({"models": {}}))
    result = run_snakemake(tmp_path, "-n", "--configfile", str(passed), timeout=300)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "models is empty in" in output and "--replace-workflow-config" in output
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------------------------
# 13-18: the question table, validated where it enters a job
# --------------------------------------------------------------------------------------------
def _drop_object(df):
    del df["object"]


def _broken_image(df):
    df.loc[2, "image"] = b"\x89PNG not really"


def _presence_two(df):
    df.loc[df.index[df["task"] == "presence"][0], "answer"] = "2"


def _empty_question(df):
    df.loc[3, "question"] = "  "


def _duplicate_id(df):
    df.loc[5, "question_id"] = df.loc[4, "question_id"]


def _counting_word(df):
    df.loc[df["task"] == "counting", "answer"] = "three"


@pytest.mark.parametrize(
    "edit, phrases",
    [
        (_drop_object, ["missing column(s) ['object']"]),
        (_presence_two, ["column 'answer' of presence rows must be yes/no", "found ['2']"]),
        (_empty_question, ["column 'question' is empty", "1 row(s), question_id"]),
        (_duplicate_id, ["column 'question_id' must be unique", "occur more than once (2 rows)"]),
        (_broken_image, ["column 'image' holds bytes that do not decode", "question_id"]),
        (
            _counting_word,
            ["column 'answer' of counting rows must be a count in digits", "found ['three']"],
        ),
    ],
    ids=[
        "dropped-column",
        "presence-answer-2",
        "empty-question",
        "duplicate-id",
        "corrupt-image",
        "counting-word",
    ],
)
def test_bad_question_tables_fail_before_any_shard(
    adapter, questions, tmp_path, edit, phrases, monkeypatch
):
    table = questions.copy()
    edit(table)
    calls = counting_batches(monkeypatch)
    with pytest.raises(BenchmarkSchemaError) as err:
        extract(adapter, table, tmp_path / "out", SPEC, SETTINGS, progress=False)
    message = str(err.value)
    for phrase in phrases:
        assert phrase in message
    assert "Rebuild the table from its source" in message  # the fix
    assert calls["n"] == 0
    assert not (tmp_path / "out").exists()
    # the same check guards every script that reads the table from disk
    path = tmp_path / "eval.parquet"
    table.to_parquet(path)
    with pytest.raises(BenchmarkSchemaError, match=re.escape(str(path))):
        read_questions(path)


def test_the_generators_tables_pass(questions):
    assert validate_questions(questions).equals(questions)


# --------------------------------------------------------------------------------------------
# 19-21: stale shards (silent wrong results before): the content decides, the log says why
# --------------------------------------------------------------------------------------------
def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_changed_image_redoes_its_shard_and_says_why(
    adapter, questions, clean, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    changed = questions.copy()
    changed.loc[9, "image"] = _png((200, 10, 10))  # row 9 is in shard 1
    calls = counting_batches(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="vrp.extract"):
        manifest = extract(adapter, changed, out, SPEC, SETTINGS, progress=False)
    assert calls["n"] == 2  # shard 1's two batches only
    assert "shard shards/00001 is redone: fingerprint differs: question rows changed" in caplog.text
    assert changed.loc[9, "question_id"] in caplog.text
    fresh = tmp_path / "fresh"
    monkeypatch.undo()
    assert (
        extract(adapter, changed, fresh, SPEC, SETTINGS, progress=False)["fingerprint"]
        == manifest["fingerprint"]
    )
    assert fingerprint(SPEC, SETTINGS, changed) == manifest["fingerprint"]
    assert_identical(out, fresh)
    assert manifest["fingerprint"] != load_manifest(clean)["fingerprint"]


def load_manifest(out: Path) -> dict:
    import json

    return json.loads((out / "manifest.json").read_text())


def test_a_new_column_value_or_code_version_redoes_every_shard(
    adapter, questions, clean, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    changed = questions.assign(object=questions["object"].where(questions.index != 0, "zzz"))
    calls = counting_batches(monkeypatch)
    extract(adapter, changed, out, SPEC, SETTINGS, progress=False)
    assert calls["n"] == 2  # a change in any column of a row counts, not just question/answer
    import vrp.extract as extract_module

    monkeypatch.setattr(extract_module, "EXTRACTION_VERSION", extract_module.EXTRACTION_VERSION + 1)
    calls["n"] = 0
    with caplog.at_level(logging.WARNING, logger="vrp.extract"):
        extract(adapter, changed, out, SPEC, SETTINGS, progress=False)
    assert calls["n"] == 6  # every shard
    assert caplog.text.count("fingerprint differs: code changed") == 3


def test_a_touched_checkpoint_keeps_shards_new_weights_do_not(
    adapter, questions, tmp_path, monkeypatch
):
    subset = questions.head(8)
    checkpoint = tmp_path / "checkpoint"
    adapter.save(checkpoint)
    spec = {"family": "llava", "path": str(checkpoint)}
    settings = ExtractionSettings(batch_size=8, shard_size=8, per_head=False)
    first = extract(adapter, subset, tmp_path / "out", spec, settings, progress=False)
    for f in checkpoint.rglob("*"):
        os.utime(f, ns=(1, 1))  # same content, other mtime: nothing to redo
    calls = counting_batches(monkeypatch)
    assert (
        extract(adapter, subset, tmp_path / "out", spec, settings, progress=False)["fingerprint"]
        == first["fingerprint"]
    )
    assert calls["n"] == 0


# --------------------------------------------------------------------------------------------
# 22-25: finite or refuse
# --------------------------------------------------------------------------------------------
def test_nan_at_write_time_fails_naming_array_shard_and_questions(
    adapter, questions, tmp_path, monkeypatch
):
    original = Extractor.run_batch

    def poisoned(self, batch):
        samples, arrays = original(self, batch)
        if batch.index[0] == 8:  # first batch of shard 1
            arrays["lens_margin"][1, 1] = np.nan
        return samples, arrays

    monkeypatch.setattr(Extractor, "run_batch", poisoned)
    out = tmp_path / "out"
    with pytest.raises(NonFiniteArrayError) as err:
        extract(adapter, questions, out, SPEC, SETTINGS, progress=False)
    message = str(err.value)
    assert "shard shards/00001: array 'lens_margin' holds NaN/inf for 1 question(s)" in message
    assert questions.loc[9, "question_id"] in message and "models.<name>.dtype" in message
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["00000"]  # shard 1 not written
    assert_nothing_valid(out)


def test_attention_nan_is_allowed_only_in_the_grid_padding():
    samples = pd.DataFrame({"question_id": ["a", "b"], "grid_rows": [2, 1], "grid_cols": [2, 2]})
    attention = np.full((2, 3, 4), 0.25, dtype=np.float32)
    attention[1, :, 2:] = np.nan  # b's grid has 2 tokens: columns 2-3 are padding
    check_finite(
        {"image_attention": attention, "head_attention": attention[:, :, None, :]}, samples, "s"
    )
    attention[1, 0, 1] = np.nan  # inside b's real grid
    with pytest.raises(
        NonFiniteArrayError,
        match=r"array 'image_attention' holds NaN/inf for 1 question\(s\) \(b\)",
    ):
        check_finite({"image_attention": attention}, samples, "shards/00003")
    with pytest.raises(NonFiniteArrayError, match="'hidden'.*a"):
        check_finite({"hidden": np.array([[np.inf, 0.0], [0.0, 0.0]])}, samples, "s")


def test_nan_margin_is_refused_not_reported_as_layer_0():
    margin = np.tile(np.array([0.0, 1.0, 5.0, 2.0]), (6, 1))
    assert peak_margin(margin) == (1, 5.0)
    margin[2, 3] = np.nan
    with pytest.raises(
        NonFiniteError, match=r"lens_margin holds 1 NaN/inf value\(s\) in sample row\(s\) \[2\]"
    ):
        peak_margin(margin)
    arrays = {
        "lens_margin": margin,
        "lens_margin_blank": np.zeros_like(margin),
        "mlp_logit": np.ones((6, 3)),
        "attn_logit": np.ones((6, 3)),
    }
    with pytest.raises(NonFiniteError, match="rerun it"):
        dynamics_row(arrays, (1, 2))


def test_head_attention_is_float32_and_averages_to_the_image_attention(adapter, questions, clean):
    """float32, not float16: a trained head that looks away from the image puts under 3e-8 on
    each image token (float16 rounds below 3e-8 to 0), an all-zero map that no head mix can normalise."""
    manifest = load_manifest(clean)
    assert manifest["arrays"]["head_attention"]["dtype"] == "float32"
    assert manifest["arrays"]["hidden"]["dtype"] == "float32"
    heads = np.asarray(load_array(clean / "manifest.json", "head_attention"))
    mean = np.asarray(load_array(clean / "manifest.json", "image_attention"))
    np.testing.assert_allclose(heads.mean(axis=2), mean, rtol=1e-5, atol=1e-9)
    assert np.float16(2e-8) == 0 and np.float32(2e-8) > 0  # the failure float16 had


# --------------------------------------------------------------------------------------------
# 26-31: shards Snakemake can see and repair
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shard", ["00000", "00001"])
def test_a_deleted_shard_file_is_redone_to_identical_files(
    adapter, questions, clean, tmp_path, monkeypatch, shard
):
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    (out / "shards" / shard / "hidden.npy").unlink()
    with pytest.raises(
        ShardError, match=f"shards/{shard}/hidden.npy of .* is missing: rerun the workflow"
    ):
        load_array(out / "manifest.json", "hidden")
    assert shard_state(out / "shards" / shard, load_manifest(clean)["fingerprint"]) is not None
    assert broken_shards(out / "manifest.json") == [f"shards/{shard}/hidden.npy is missing"]
    calls = counting_batches(monkeypatch)
    manifest = extract(adapter, questions, out, SPEC, SETTINGS, progress=False)
    assert calls["n"] == 2
    assert "hidden" in manifest["arrays"]  # shard 0 no longer decides the array list
    assert_identical(out, clean)


def test_a_truncated_shard_file_is_redone(adapter, questions, clean, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    path = out / "shards" / "00002" / "mlp_out.npy"
    path.write_bytes(path.read_bytes()[:-100])
    assert broken_shards(out / "manifest.json") == [
        f"shards/00002/mlp_out.npy has {path.stat().st_size} bytes, {path.stat().st_size + 100} were written"
    ]
    calls = counting_batches(monkeypatch)
    extract(adapter, questions, out, SPEC, SETTINGS, progress=False)
    assert calls["n"] == 2
    assert broken_shards(out / "manifest.json") == []
    assert_identical(out, clean)


def test_the_manifest_refuses_a_shard_lacking_an_array(adapter, questions, clean, tmp_path):
    import json

    out = tmp_path / "out"
    shutil.copytree(clean, out)
    (out / "manifest.json").unlink()
    meta_path = out / "shards" / "00000" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["files"]["head_logit.npy"]  # a shard that never had the array, by its own record
    meta_path.write_text(json.dumps(meta, sort_keys=True))
    (out / "shards" / "00000" / "head_logit.npy").unlink()
    with pytest.raises(
        ShardError,
        match=r"lacks array\(s\) \['head_logit'\] that other shards .* hold; no "
        r"manifest was written",
    ):
        extract(adapter, questions, out, SPEC, SETTINGS, progress=False)
    assert_nothing_valid(out)


def test_layer_reads_equal_whole_array_reads(clean):
    manifest = clean / "manifest.json"
    whole = np.asarray(load_array(manifest, "hidden"))
    view = open_array(manifest, "hidden")
    assert view.shape == whole.shape and len(view) == len(whole)
    for layer in range(whole.shape[1]):
        np.testing.assert_array_equal(load_layer(manifest, "hidden", layer), whole[:, layer])
    np.testing.assert_array_equal(view[:, 1:, :], whole[:, 1:, :])
    rows = np.array([20, 3, 9, 3])
    np.testing.assert_array_equal(view[rows, 0], whole[rows, 0])
    np.testing.assert_array_equal(view[5], whole[5])
    np.testing.assert_array_equal(np.asarray(view), whole)


# --------------------------------------------------------------------------------------------
# 32-34: kill -9 and a full disk
# --------------------------------------------------------------------------------------------
KILLER = """
import os, signal, sys
import pandas as pd, torch
sys.path.insert(0, {tests!r})
import test_faults as T
from vrp.extract import Extractor, extract
from vrp.adapters import FAMILIES, get_adapter_class
from vrp.zoo.tokenizer import build_word_tokenizer
torch.set_num_threads(1)
questions = pd.read_parquet({table!r})
extra = [w for f in FAMILIES for w in get_adapter_class(f).template_words()]
tok = build_word_tokenizer([*questions["question"], *questions["answer"]], extra_words=extra)
adapter = get_adapter_class("llava").build_tiny(tok, {{"num_hidden_layers": 2}}, seed=1)
original, calls = Extractor.run_batch, [0]
def dying(self, batch):
    calls[0] += 1
    if calls[0] == 4:  # inside the second shard: one shard complete, one half done
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, batch)
Extractor.run_batch = dying
extract(adapter, questions, {out!r}, T.SPEC, T.SETTINGS, progress=False)
"""


def test_kill_9_mid_extraction_resumes_to_identical_files(
    adapter, questions, clean, tmp_path, monkeypatch
):
    table = tmp_path / "eval.parquet"
    questions.to_parquet(table)
    out = tmp_path / "out"
    script = KILLER.format(tests=str(REPO / "tests"), table=str(table), out=str(out))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert sorted(p.name for p in (out / "shards").iterdir() if not p.name.startswith(".")) == [
        "00000"
    ]
    assert not (out / "manifest.json").exists() and not (out / "samples.parquet").exists()
    calls = counting_batches(monkeypatch)
    extract(adapter, questions, out, SPEC, SETTINGS, progress=False)
    assert calls["n"] == 4  # shards 1 and 2
    assert_identical(out, clean)  # the killed job's temp folder was removed too


def test_a_full_disk_says_so_and_leaves_nothing(adapter, questions, tmp_path, monkeypatch):
    real_save = np.save

    def short_write(file, array, **kwargs):
        if str(file).endswith("mlp_out.npy"):
            raise OSError("16384 requested and 4064 written")  # what numpy says on a full disk
        return real_save(file, array, **kwargs)

    monkeypatch.setattr(np, "save", short_write)
    out = tmp_path / "out"
    with pytest.raises(DiskFullError) as err:
        extract(adapter, questions.head(8), out, SPEC, SETTINGS, progress=False)
    message = str(err.value)
    assert "disk full while writing" in message and "MB free" in message and "Free space" in message
    assert not (out / "shards").exists() or not any((out / "shards").iterdir())
    assert_nothing_valid(out)


def test_a_full_disk_in_the_atomic_writer(tmp_path, monkeypatch):
    import errno

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", no_space)
    with pytest.raises(DiskFullError, match=r"disk full while writing .*out\.json"):
        write_json({"a": 1}, tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 35: the workflow repairs a deleted shard file on a plain rerun (the shared toy run)
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_workflow_repairs_deleted_shard_files_to_identical_results(demo_workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(
        demo_workdir, work, symlinks=True, ignore=shutil.ignore_patterns("locks", "incomplete")
    )
    extraction = work / "results" / "extract" / "llava" / "synthetic"
    targets = [
        "results/accuracy.csv",
        "results/probes/llava/synthetic/layers.csv",
        "results/probes/llava/synthetic/peak.json",
    ]
    before = {t: (work / t).read_bytes() for t in targets}
    shards_before = {
        p: (extraction / "shards" / p).read_bytes() for p in _files(extraction / "shards")
    }
    for shard in ("00000", "00001"):
        (extraction / "shards" / shard / "hidden.npy").unlink()
    dry = run_snakemake(work, "-n", *targets, timeout=600)
    assert dry.returncode == 0, dry.stderr[-3000:]
    log = dry.stdout + dry.stderr
    assert "shards/00000/hidden.npy is missing" in log and "extract_activations" in log
    assert "shards.check" in log  # the updated marker input is the reason
    result = run_snakemake(work, *targets, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (
        "shard shards/00001 is redone: hidden.npy is missing"
        in (work / "logs" / "extract" / "llava" / "synthetic.log").read_text()
    )
    for t in targets:
        assert (work / t).read_bytes() == before[t], t
    assert {
        p: (extraction / "shards" / p).read_bytes() for p in _files(extraction / "shards")
    } == shards_before
    again = run_snakemake(work, "-n", *targets, timeout=600)
    assert "Nothing to be done" in again.stdout + again.stderr
