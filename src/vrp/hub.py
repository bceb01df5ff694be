"""The Hugging Face Hub as a job meets it: offline mode, and where a configured model comes from.

Offline mode
------------
huggingface_hub reads ``HF_HUB_OFFLINE`` once, when it is first imported (transformers imports it
with itself), so setting the variable inside a job after ``import transformers`` has no effect.
:func:`apply_offline_env` is therefore called by ``rules/common.smk`` while Snakemake parses the
workflow: every process that runs a job (the local scheduler, or the ``snakemake`` a cluster job
starts) parses the workflow before it starts the job's script, so the script's interpreter inherits
the variable before it imports anything. When huggingface_hub is already imported in the calling
process, its module constant is set too, so the call also works late (a notebook, a test).

Where a model comes from
------------------------
:func:`locate_checkpoint` decides, before any weights are read, whether ``models.<name>.path`` is
a local folder, a Hub id in the local cache, or a Hub id to download, and turns every way that can
fail (a missing folder, offline without a cached copy, no network, a gated or unknown repository)
into :class:`ModelUnavailableError` naming the config key and the fix. It asks the Hub at most one
metadata question, with a timeout and without retries, so an unreachable Hub costs seconds, not
the minutes of ``from_pretrained``'s retry loop.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
# owner/name as the Hub spells repository ids (a bare name is a legacy canonical id, e.g. "gpt2")
_HUB_ID_RE = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
HUB_PROBE_TIMEOUT_S = 10.0


class ModelUnavailableError(RuntimeError):
    """A configured model cannot be loaded (missing folder, no network, gated); says what to do."""


def apply_offline_env(offline: bool, environ: MutableMapping[str, str] | None = None) -> None:
    """Put ``HF_HUB_OFFLINE=1`` in the environment when ``offline`` (runtime.hf_offline).

    ``offline=False`` does not unset a variable the user exported: offline is never switched off.
    """
    if not offline:
        return
    environ = os.environ if environ is None else environ
    environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and environ is os.environ:
        constants.HF_HUB_OFFLINE = True


def offline_requested() -> bool:
    """True when ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` is set now or was at Hub import."""
    env = (
        os.environ.get(name, "").strip().lower()
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    if any(value in _TRUE for value in env):
        return True
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(constants is not None and constants.HF_HUB_OFFLINE)


def network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the Hub / the network could not be reached".

    OSError covers ConnectionError, socket errors, timeouts and every huggingface_hub HTTP / cache
    error; the raw transport errors of the HTTP client huggingface_hub uses are not OSErrors.
    """
    errors: list[type[BaseException]] = [OSError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        errors.append(module.HTTPError)
    return tuple(errors)


def looks_like_local_path(path: str) -> bool:
    """True for what can only be a file-system path (absolute, ./, ~, several folders)."""
    text = str(path)
    return (
        text.startswith(("/", "./", "../", "~"))
        or text.endswith(("/", os.sep))
        or text.count("/") > 1
        or (os.sep != "/" and os.sep in text)
        or not _HUB_ID_RE.match(text)
    )


def _download_hint(repo_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        f"on a machine with Hub access run `hf download {repo_id}{rev}` (fills the Hugging Face "
        "cache, "
        f"$HF_HOME; copy it over) or `hf download {repo_id}{rev} --local-dir <folder>`"
    )


def locate_checkpoint(path: str, revision: str | None, key: str, repo_type: str = "model") -> str:
    """What to pass to ``from_pretrained`` for config key ``key`` (= ``models.<name>.path``).

    A local folder is returned as is; a Hub id is returned once it is known to be loadable (in the
    local cache, or answered by the Hub). Everything else raises :class:`ModelUnavailableError`.
    """
    text = str(path)
    folder = Path(text).expanduser()
    if folder.is_dir():
        return str(folder)
    if folder.exists():
        raise ModelUnavailableError(
            f"`{key}` = {text!r} is a file, not a model folder; set `{key}` to the folder holding "
            "config.json and the weights (or to a Hub id)"
        )
    if looks_like_local_path(text):
        raise ModelUnavailableError(
            f"`{key}` = {text!r}: no such local model folder. Set `{key}` to an existing folder "
            f"holding the checkpoint (config.json, weights, processor files) or to a Hub id "
            f"such as '<organisation>/<model>'"
        )

    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub import errors as hub_errors

    cached = try_to_load_from_cache(text, "config.json", revision=revision, repo_type=repo_type)
    if isinstance(cached, str):
        return text
    where = f"{text!r}" + (f" at revision {revision}" if revision else "")
    local_fix = f"or set `{key}` to a local folder holding the checkpoint"
    if offline_requested():
        raise ModelUnavailableError(
            f"`{key}` = {where} is a Hub id with no copy in the local Hugging Face cache, and "
            "offline "
            f"mode is on (runtime.hf_offline / HF_HUB_OFFLINE), so nothing is downloaded. Fix: "
            f"{_download_hint(text, revision)}, {local_fix}; or set runtime.hf_offline: false on a "
            "machine with Hub access"
        )
    try:
        HfApi().repo_info(text, revision=revision, repo_type=repo_type, timeout=HUB_PROBE_TIMEOUT_S)
    except hub_errors.GatedRepoError as err:
        raise ModelUnavailableError(
            f"`{key}` = {where} is gated on the Hub: accept its licence at "
            f"https://huggingface.co/{text} with your account, then log in here with "
            "`hf auth login` "
            f"(or set HF_TOKEN); {local_fix}"
        ) from err
    except hub_errors.RepositoryNotFoundError as err:
        raise ModelUnavailableError(
            f"`{key}` = {text!r} is neither an existing local folder nor a Hub repository the Hub "
            f"knows (or it is private: `hf auth login`). Fix the spelling of `{key}`, {local_fix}"
        ) from err
    except hub_errors.RevisionNotFoundError as err:
        raise ModelUnavailableError(
            f"`{key}` = {text!r} has no revision {revision!r} on the Hub; fix the model's "
            "`revision` "
            "or re-resolve the pins (`python -m vrp.pins <config>`)"
        ) from err
    except network_errors() as err:
        raise ModelUnavailableError(
            f"`{key}` = {where} is not in the local Hugging Face cache and the Hub is unreachable "
            f"({type(err).__name__}: {err}). Fix: {_download_hint(text, revision)}, {local_fix}"
        ) from err
    return text
