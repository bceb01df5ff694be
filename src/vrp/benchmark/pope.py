"""POPE (``lmms-lab/POPE`` on the HuggingFace Hub): download, find local copies, convert to the schema.

On-disk format of the Hub dataset (the same schema is mirrored at ``giobin/POPE``)
---------------------------------------------------------------------------------
Parquet shards with the columns

``id``            row number
``question_id``   question number within its setting
``question``      "Is there a/an {object} in the image?"
``answer``        "yes" / "no"
``image_source``  the COCO val2014 image id (digits, or a ``COCO_val2014_000000xxxxxx`` stem)
``image``         struct ``{bytes: binary, path: string}`` holding the embedded JPEG
``category``      the POPE setting: "adversarial" / "popular" / "random"

Configs: ``default`` (split ``test``: 9,000 rows = 3 settings x 3,000, 500 COCO images reused
across settings) and ``Full`` (splits ``adversarial``, ``popular``, ``random``). Which files belong
to which config is read from the YAML header of the dataset card (``README.md``), so the download
fetches one config only (the two configs hold the same rows).

Conversion rules (:func:`load_pope`)
------------------------------------
* ``question_id`` = ``pope-{category}-{question_id}``; ``image_id`` = ``coco-{image id as int}``, the
  same key the COCO task builder uses, so image-grouped splits see one image across benchmarks.
* ``answer`` is lower-cased and must be "yes" or "no"; ``task`` = "presence";
  ``pope_setting`` = ``category``; ``object`` is parsed from the question text.
* Rows are ordered by setting (random, popular, adversarial) then by numeric ``question_id``; with
  ``limit_per_setting`` the first N rows of each setting are kept. POPE lists its questions image by
  image (3 "yes" then 3 "no" per image), so a prefix keeps whole images and a yes/no balance.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from vrp.benchmark.schema import POPE_SETTINGS, validate_questions
from vrp.hub import HUB_PROBE_TIMEOUT_S, network_errors

POPE_REPO_ID = "lmms-lab/POPE"
POPE_COLUMNS: tuple[str, ...] = (
    "question_id",
    "question",
    "answer",
    "image_source",
    "image",
    "category",
)
LOCAL_DIR_KEY = "datasets.<name>.pope.local_dir"

# "Is there a dining table in the image?" -> "dining table"
_QUESTION_RE = re.compile(
    r"^\s*is\s+there\s+an?\s+(?P<object>.+?)\s+in\s+the\s+image\s*\?\s*$", re.IGNORECASE
)
_COCO_STEM_RE = re.compile(r"^(?:COCO_val2014_)?0*(?P<id>\d+)(?:\.jpe?g)?$", re.IGNORECASE)
_TRUE_ENV = {"1", "true", "yes", "on"}


class DataUnavailableError(RuntimeError):
    """A dataset cannot be obtained (no network, Hub refused, files absent); the message says what to do."""


# --------------------------------------------------------------------------------------------
# helpers shared with the COCO builder


def coco_image_id(image_source: object) -> int:
    """The integer COCO image id from ``42``, ``"42"``, ``"COCO_val2014_000000000042"`` or ``"...42.jpg"``."""
    if isinstance(image_source, (int, np.integer)) and not isinstance(image_source, bool):
        return int(image_source)
    match = _COCO_STEM_RE.match(str(image_source).strip())
    if match is None:
        raise ValueError(
            f"cannot read a COCO image id from image_source {image_source!r}; expected digits or a "
            "'COCO_val2014_000000xxxxxx' file stem"
        )
    return int(match.group("id"))


def coco_image_key(image_id: int) -> str:
    """The project-wide ``image_id`` string of a COCO image."""
    return f"coco-{int(image_id)}"


def parse_presence_object(question: str) -> str:
    """The object of a POPE question "Is there a/an {object} in the image?" (``ValueError`` if not that form)."""
    match = _QUESTION_RE.match(question) if isinstance(question, str) else None
    if match is None:
        raise ValueError(
            f"question {question!r} is not of the form 'Is there a/an {{object}} in the image?'"
        )
    return " ".join(match.group("object").lower().split())


def _check_settings(settings: Iterable[str]) -> tuple[str, ...]:
    settings = tuple(settings)
    unknown = sorted(set(settings) - set(POPE_SETTINGS))
    if unknown or not settings:
        raise ValueError(
            f"POPE settings must be a non-empty subset of {list(POPE_SETTINGS)}, got {list(settings)}"
        )
    return settings


# --------------------------------------------------------------------------------------------
# download


def hub_offline_requested() -> bool:
    """True when ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` is set now or was set when huggingface_hub loaded.

    huggingface_hub reads the variable once at import; reading it again here makes a later
    ``HF_HUB_OFFLINE=1`` (a test's monkeypatch, a workflow rule's env) take effect too.
    """
    from huggingface_hub import constants

    env = (
        os.environ.get(name, "").strip().lower()
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return any(value in _TRUE_ENV for value in env) or bool(constants.HF_HUB_OFFLINE)


def pope_parquet_patterns(
    card_text: str, config: str = "default", settings: Sequence[str] = POPE_SETTINGS
) -> list[str]:
    """File patterns of one config, read from a dataset card's YAML header (``configs: [...data_files]``).

    Splits named after POPE settings (config ``Full``) are kept only when in ``settings``; other
    split names (``test`` of ``default``) are always kept. A card without a ``configs`` list gives
    ``["*.parquet"]`` (every shard; :func:`load_pope` drops the duplicate rows).
    """
    settings = _check_settings(settings)
    header = re.match(r"^---\s*\n(.*?)\n---\s*(?:\n|$)", card_text, re.DOTALL)
    meta = yaml.safe_load(header.group(1)) if header else None
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not configs:
        return ["*.parquet"]
    by_name = {entry.get("config_name", "default"): entry for entry in configs}
    if config not in by_name:
        raise ValueError(
            f"POPE dataset card has no config {config!r}; available configs: {sorted(by_name)}"
        )
    data_files = by_name[config].get("data_files")
    if isinstance(data_files, (str, dict)):
        data_files = [data_files]
    patterns: list[str] = []
    for entry in data_files or []:
        if isinstance(entry, str):
            patterns.append(entry)
            continue
        split = entry.get("split", "")
        if split in POPE_SETTINGS and split not in settings:
            continue
        path = entry.get("path", [])
        patterns.extend([path] if isinstance(path, str) else list(path))
    if not patterns:
        raise ValueError(
            f"POPE dataset card config {config!r} lists no data files for settings {list(settings)}"
        )
    return patterns


def _unavailable_message(repo_id: str, reason: str, dataset: str | None = None) -> str:
    key = LOCAL_DIR_KEY.replace("<name>", dataset) if dataset else LOCAL_DIR_KEY
    return (
        f"Cannot download the POPE dataset {repo_id!r}: the network / HuggingFace Hub is unreachable ({reason}). "
        "Either run this step on a machine with Hub access (it downloads the dataset's parquet "
        "files, three test shards of ~85 MB, images embedded, from "
        f"https://huggingface.co/datasets/{repo_id}), or set the config "
        f"key `{key}` to a folder holding the POPE parquet files (e.g. from `hf download {repo_id} "
        "--repo-type dataset --local-dir <folder>` on a machine that has Hub access)."
    )


_network_errors = network_errors


def download_pope(
    dest_dir: str | os.PathLike,
    repo_id: str = POPE_REPO_ID,
    revision: str | None = None,
    settings: Sequence[str] = POPE_SETTINGS,
    config: str = "default",
    dataset: str | None = None,
) -> list[Path]:
    """Fetch the parquet shards of one POPE config into ``dest_dir``; return their paths, sorted.

    Uses ``huggingface_hub.snapshot_download(repo_type="dataset", allow_patterns=...)`` with the
    patterns from the dataset card. With ``HF_HUB_OFFLINE=1`` only files already in the local cache
    or ``dest_dir`` are used. Any network / Hub / offline failure becomes :class:`DataUnavailableError`.
    """
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub import errors as hub_errors

    settings = _check_settings(settings)
    dest_dir = Path(dest_dir)
    offline = hub_offline_requested()
    common = dict(
        repo_id=repo_id,
        repo_type="dataset",
        revision=revision,
        local_dir=dest_dir,
        local_files_only=offline,
    )
    try:
        if not offline:
            # one metadata request with a timeout and no retries: an unreachable Hub fails in
            # seconds here instead of in hf_hub_download's retry loop (~30 s)
            HfApi().repo_info(
                repo_id, repo_type="dataset", revision=revision, timeout=HUB_PROBE_TIMEOUT_S
            )
        card_path = hf_hub_download(filename="README.md", **common)
        patterns = pope_parquet_patterns(
            Path(card_path).read_text(encoding="utf-8"), config, settings
        )
        snapshot_download(allow_patterns=patterns, **common)
    except (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError) as err:
        # The Hub answered: a wrong id / revision, or a gated dataset without a token.
        raise DataUnavailableError(
            f"The HuggingFace Hub refused the POPE dataset {repo_id!r} (revision {revision!r}): "
            f"{type(err).__name__}. Check `datasets.<name>.pope.repo_id` / `datasets.<name>.pope.revision` (log in with "
            f"`hf auth login` if it is gated), or set `{LOCAL_DIR_KEY}` to a folder holding the parquet files."
        ) from err
    except _network_errors() as err:
        reason = (
            "HF_HUB_OFFLINE is set and no local copy exists"
            if offline
            else f"{type(err).__name__}: {err}"
        )
        raise DataUnavailableError(_unavailable_message(repo_id, reason, dataset)) from err

    found = sorted(
        path
        for path in dest_dir.rglob("*.parquet")
        if any(
            fnmatch.fnmatch(path.relative_to(dest_dir).as_posix(), pattern) for pattern in patterns
        )
    )
    if not found:
        reason = (
            "HF_HUB_OFFLINE is set and no local copy exists"
            if offline
            else f"no parquet file matched {patterns}"
        )
        raise DataUnavailableError(_unavailable_message(repo_id, reason, dataset))
    return found


# --------------------------------------------------------------------------------------------
# local files


def find_pope_parquets(local_dir: str | os.PathLike) -> list[Path]:
    """All ``*.parquet`` files under ``local_dir`` (recursively), sorted; clear errors if there are none."""
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise FileNotFoundError(
            f"POPE folder {str(local_dir)!r} does not exist; set the config key `{LOCAL_DIR_KEY}` "
            "to a folder holding the POPE parquet files"
        )
    found = sorted(local_dir.rglob("*.parquet"))
    if not found:
        raise FileNotFoundError(
            f"no *.parquet files under {str(local_dir)!r}; `{LOCAL_DIR_KEY}` must point to the folder "
            f"holding the POPE parquet shards (columns {list(POPE_COLUMNS)})"
        )
    return found


def _read_shard(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(
            f"POPE parquet file {str(path)!r} does not exist (check `{LOCAL_DIR_KEY}`)"
        )
    present = set(pq.read_schema(path).names)
    missing = [column for column in POPE_COLUMNS if column not in present]
    if missing:
        raise ValueError(
            f"POPE parquet file {str(path)!r} lacks column(s) {missing}; expected the lmms-lab/POPE "
            f"columns {list(POPE_COLUMNS)}"
        )
    frame = pq.read_table(path, columns=list(POPE_COLUMNS)).to_pandas()
    frame["source_file"] = str(path)
    return frame


def _image_bytes(value: object, where: str) -> bytes:
    # The Hub stores images as struct {bytes, path}; accept a plain binary column too.
    data = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(data, (bytes, bytearray)) or len(data) == 0:
        raise ValueError(
            f"{where}: column 'image' holds no embedded image bytes (got {type(data).__name__})"
        )
    return bytes(data)


def _question_number(value: str) -> tuple[int, int, str]:
    # Numeric ids sort as numbers ("2" before "10"); any other id sorts after them, as text.
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def load_pope(
    parquet_paths: Iterable[str | os.PathLike],
    settings: Sequence[str] = POPE_SETTINGS,
    limit_per_setting: int | None = None,
) -> pd.DataFrame:
    """Read POPE parquet shards and return the project question table (see the module docstring)."""
    settings = _check_settings(settings)
    if limit_per_setting is not None and int(limit_per_setting) < 1:
        raise ValueError(f"limit_per_setting must be >= 1 or None, got {limit_per_setting!r}")
    paths = [Path(p) for p in parquet_paths]
    if not paths:
        raise ValueError(
            f"no POPE parquet files given; set `{LOCAL_DIR_KEY}` or download them first"
        )
    raw = pd.concat([_read_shard(path) for path in sorted(set(paths))], ignore_index=True)

    raw["category"] = raw["category"].astype(str).str.strip().str.lower()
    unknown = sorted(set(raw["category"]) - set(POPE_SETTINGS))
    if unknown:
        raise ValueError(
            f"POPE files hold unknown category value(s) {unknown}; expected {list(POPE_SETTINGS)}"
        )
    raw = raw.loc[raw["category"].isin(settings)].copy()
    raw["question_id"] = raw["question_id"].astype(str).str.strip()
    # The default and Full configs hold the same rows; reading both must not double them.
    raw = raw.drop_duplicates(
        subset=["category", "question_id", "question", "answer"], keep="first"
    )

    raw["setting_rank"] = raw["category"].map({s: i for i, s in enumerate(POPE_SETTINGS)})
    raw["number"] = raw["question_id"].map(_question_number)
    raw = raw.sort_values(["setting_rank", "number"], kind="stable")
    if limit_per_setting is not None:
        raw = raw.groupby("category", sort=False).head(int(limit_per_setting))

    records = []
    for row in raw.itertuples(index=False):
        where = f"POPE row question_id={row.question_id!r} (category {row.category!r}, file {row.source_file!r})"
        try:
            obj = parse_presence_object(row.question)
            image_id = coco_image_key(coco_image_id(row.image_source))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        answer = str(row.answer).strip().lower()
        if answer not in ("yes", "no"):
            raise ValueError(f"{where}: answer {row.answer!r} is not 'yes' or 'no'")
        records.append(
            {
                "question_id": f"pope-{row.category}-{row.question_id}",
                "image_id": image_id,
                "image": _image_bytes(row.image, where),
                "question": " ".join(str(row.question).split()),
                "answer": answer,
                "task": "presence",
                "pope_setting": row.category,
                "object": obj,
            }
        )
    if not records:
        raise ValueError(
            f"POPE files {[str(p) for p in paths]} hold no rows for settings {list(settings)}"
        )
    return validate_questions(pd.DataFrame.from_records(records), source="POPE question table")
