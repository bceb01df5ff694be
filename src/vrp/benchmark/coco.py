"""Counting, spatial and object-ID questions built from COCO val2014 instance annotations.

The paper's own counting / spatial sets are unreleased (built from ``instances_val2014.json`` with
``random.seed(42)``), so the rules are ours, stated here, and every threshold is a parameter
(:class:`CocoTaskRules`).

Inputs: ``instances_val2014.json`` (``images`` with id / file_name / width / height;
``annotations`` with image_id / category_id / bbox ``[x, y, w, h]`` / area / iscrowd; ``categories``
with id / name) and the folder of images named like ``COCO_val2014_000000xxxxxx.jpg``.

Definitions (W x H is the image size)
-------------------------------------
* An instance is *sizeable* when it is not a crowd region and its ``area`` (the segmentation area)
  is at least ``min_area_frac * W * H`` (default 1 %).
* **counting** -- "How many {plural} are there?", answer the digit count. Asked for a category in an
  image when *every* annotation of it is sizeable and there are 1..``max_count`` (default 6) of
  them. A crowd region or a tiny instance makes the true count unclear, so either one skips the
  category in that image. Plurals are English ("people", "mice", "buses"), not a bare "+s".
* **spatial** -- "Is the {a} to the left of the {b}?" (left as seen in the image), answer yes/no.
  Asked for two categories that each have exactly one annotation in the image, which is sizeable,
  whose bbox centres are at least ``margin_frac * W`` apart horizontally (default 0.1), and whose
  boxes overlap horizontally by at most ``max_x_overlap`` of the narrower box's width (default 0.2).
  The selected pairs alternate between the true order (answer "yes") and the swapped order
  ("no"), so the answers are balanced exactly and any prefix of the table is balanced to within one.
  ``object`` is the first-named category.
* **object_id** -- "What is the object in the {region}?" with region one of :data:`QUADRANTS`
  (the wording of the synthetic benchmark), answer the full category name (e.g. "dining table";
  scoring compares the first token). A bbox centre lies left when ``cx < W/2`` and top when
  ``cy < H/2``. Asked when exactly one sizeable instance has its centre in the quadrant and no crowd
  region of sizeable area does.

Selection: per task, the candidates are shuffled by ``random.Random(f"{seed}:{task}")`` (so tasks
do not disturb each other) and taken in that order, at most ``max_per_image`` per image (default
1, for image variety), until ``n_per_task`` are chosen; fewer candidates give a warning and all of
them. Rows keep that selection order. ``question_id`` = ``coco-{task}-{image_id}-{k}``, where ``k`` is
the category id (counting), the index of the pair among the image's qualifying pairs (spatial) or
the quadrant's index in :data:`QUADRANTS` (object_id). ``image_id`` = ``coco-{id}``, the same key POPE
rows get. ``image`` holds the original JPEG bytes; ``pope_setting`` is "".
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import shutil
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vrp.benchmark.pope import DataUnavailableError, coco_image_key
from vrp.benchmark.schema import validate_questions
from vrp.io import atomic_path

COCO_TASKS: tuple[str, ...] = ("counting", "spatial", "object_id")
QUADRANTS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right")
COUNTING_TEMPLATE = "How many {plural} are there?"
SPATIAL_TEMPLATE = "Is the {subject} to the left of the {reference}?"
OBJECT_ID_TEMPLATE = "What is the object in the {region}?"
ANNOTATIONS_KEY = "datasets.<name>.coco.annotations"
IMAGE_DIR_KEY = "datasets.<name>.coco.image_dir"
COCO_BASE_URL = "http://images.cocodataset.org"
# The 80 category names of instances_val2014.json, in category-id order (the object_id answers).
COCO_CATEGORY_NAMES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

_IRREGULAR_PLURALS = {
    "person": "people",
    "mouse": "mice",
    "knife": "knives",
    "sheep": "sheep",
    "skis": "skis",
    "scissors": "scissors",
    "broccoli": "broccoli",
}


@dataclass(frozen=True)
class CocoTaskRules:
    """The thresholds of the question rules (see the module docstring)."""

    max_count: int = 6  # counting: at most this many instances of the category
    min_area_frac: float = 0.01  # a sizeable instance covers at least this share of the image
    margin_frac: float = 0.1  # spatial: bbox centres at least this share of W apart
    max_x_overlap: float = 0.2  # spatial: horizontal overlap at most this share of the narrower box
    max_per_image: int = 1  # questions of one task per image

    def __post_init__(self) -> None:
        if self.max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {self.max_count}")
        for name in ("min_area_frac", "margin_frac", "max_x_overlap"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.max_per_image < 1:
            raise ValueError(f"max_per_image must be >= 1, got {self.max_per_image}")


def plural(name: str) -> str:
    """English plural of a COCO category name ("person" -> "people", "bus" -> "buses", "hot dog" -> "hot dogs")."""
    head, _, last = name.rpartition(" ")
    if last in _IRREGULAR_PLURALS:
        last = _IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "sh", "ch", "x", "z")):
        last = last + "es"
    else:
        last = last + "s"
    return f"{head} {last}" if head else last


# --------------------------------------------------------------------------------------------
# annotations


def load_coco_instances(
    annotations_path: str | os.PathLike | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read an instances JSON; return (images, objects).

    ``images``: image_id, file_name, width, height. ``objects``: one row per annotation with
    image_id, category_id, category, iscrowd, area, x, y, w, h, cx, cy, width, height, sorted by
    image, category and annotation id.
    """
    if annotations_path is None:
        raise FileNotFoundError(
            f"the config key `{ANNOTATIONS_KEY}` is not set; point it to instances_val2014.json"
        )
    path = Path(annotations_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"COCO annotation file {str(path)!r} does not exist; set the config key `{ANNOTATIONS_KEY}` "
            "to the path of instances_val2014.json"
        )
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(
                f"COCO annotation file {str(path)!r} has no {key!r} list; is it an instances_*.json file?"
            )

    images = _frame(data["images"], ("id", "width", "height"), path, "images")
    if "file_name" not in images:
        images["file_name"] = None
    missing_name = images["file_name"].isna()
    images.loc[missing_name, "file_name"] = images.loc[missing_name, "id"].map(
        lambda i: f"COCO_val2014_{int(i):012d}.jpg"
    )
    images = images.rename(columns={"id": "image_id"})[["image_id", "file_name", "width", "height"]]

    categories = _frame(data["categories"], ("id", "name"), path, "categories")
    names = dict(
        zip(categories["id"].astype(int), categories["name"].astype(str).str.strip().str.lower())
    )

    columns = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")
    objects = _frame(data["annotations"], columns, path, "annotations")[list(columns)]
    unknown = sorted(set(objects["category_id"].astype(int)) - set(names))
    if unknown:
        raise ValueError(
            f"COCO annotation file {str(path)!r}: annotations use category id(s) {unknown[:5]} not in 'categories'"
        )
    boxes = np.asarray(objects["bbox"].tolist(), dtype=float).reshape(len(objects), -1)
    if boxes.shape[1] != 4:
        raise ValueError(f"COCO annotation file {str(path)!r}: every bbox must be [x, y, w, h]")
    objects[["x", "y", "w", "h"]] = boxes
    objects["cx"] = objects["x"] + objects["w"] / 2
    objects["cy"] = objects["y"] + objects["h"] / 2
    objects["category"] = objects["category_id"].astype(int).map(names)
    objects["iscrowd"] = objects["iscrowd"].astype(int)
    objects = objects.drop(columns="bbox").merge(
        images[["image_id", "width", "height"]], on="image_id", how="inner"
    )
    objects = objects.sort_values(["image_id", "category_id", "id"], kind="stable").reset_index(
        drop=True
    )
    return images.sort_values("image_id").reset_index(drop=True), objects


def _frame(records: list, required: Sequence[str], path: Path, section: str) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records)
    missing = [key for key in required if key not in frame.columns]
    if missing and len(frame):
        raise ValueError(
            f"COCO annotation file {str(path)!r}: {section!r} entries lack key(s) {missing}"
        )
    for key in missing:
        frame[key] = pd.Series(dtype=object)
    return frame


def _with_size_flags(objects: pd.DataFrame, rules: CocoTaskRules) -> pd.DataFrame:
    objects = objects.copy()
    big = objects["area"] >= rules.min_area_frac * objects["width"] * objects["height"]
    objects["sizeable"] = big & (objects["iscrowd"] == 0)
    objects["big_crowd"] = big & (objects["iscrowd"] == 1)
    return objects


# --------------------------------------------------------------------------------------------
# candidates (every question the rules allow), one frame per task


def counting_candidates(
    objects: pd.DataFrame, rules: CocoTaskRules = CocoTaskRules()
) -> pd.DataFrame:
    """Columns image_id, k (= category id), category, count."""
    flagged = _with_size_flags(objects, rules)
    groups = flagged.groupby(["image_id", "category_id", "category"], sort=True).agg(
        count=("sizeable", "size"), n_sizeable=("sizeable", "sum")
    )
    groups = groups.reset_index()
    keep = (groups["count"] == groups["n_sizeable"]) & groups["count"].between(1, rules.max_count)
    found = groups.loc[keep, ["image_id", "category_id", "category", "count"]].rename(
        columns={"category_id": "k"}
    )
    return found.astype({"k": int, "count": int}).reset_index(drop=True)


def spatial_candidates(
    objects: pd.DataFrame, rules: CocoTaskRules = CocoTaskRules()
) -> pd.DataFrame:
    """Columns image_id, k, left, right (the category seen further left, then the other)."""
    flagged = _with_size_flags(objects, rules)
    per_category = flagged.groupby(["image_id", "category_id"])["sizeable"].transform("size")
    singles = flagged.loc[
        (per_category == 1) & flagged["sizeable"],
        ["image_id", "category_id", "category", "x", "w", "cx", "width"],
    ]
    pairs = singles.merge(singles.drop(columns="width"), on="image_id", suffixes=("_a", "_b"))
    pairs = pairs.loc[pairs["category_id_a"] < pairs["category_id_b"]]
    apart = (pairs["cx_a"] - pairs["cx_b"]).abs() >= rules.margin_frac * pairs["width"]
    overlap = (
        np.minimum(pairs["x_a"] + pairs["w_a"], pairs["x_b"] + pairs["w_b"])
        - np.maximum(pairs["x_a"], pairs["x_b"])
    ).clip(lower=0.0)
    narrower = np.minimum(pairs["w_a"], pairs["w_b"])
    pairs = pairs.loc[apart & (narrower > 0) & (overlap <= rules.max_x_overlap * narrower)]
    pairs = pairs.sort_values(["image_id", "category_id_a", "category_id_b"], kind="stable")
    a_left = pairs["cx_a"] < pairs["cx_b"]
    return pd.DataFrame(
        {
            "image_id": pairs["image_id"].to_numpy(),
            "k": pairs.groupby("image_id").cumcount().to_numpy(),
            "left": np.where(a_left, pairs["category_a"], pairs["category_b"]),
            "right": np.where(a_left, pairs["category_b"], pairs["category_a"]),
        }
    )


def object_id_candidates(
    objects: pd.DataFrame, rules: CocoTaskRules = CocoTaskRules()
) -> pd.DataFrame:
    """Columns image_id, k (= quadrant index), region, category."""
    flagged = _with_size_flags(objects, rules)
    flagged = flagged.loc[flagged["sizeable"] | flagged["big_crowd"]].copy()
    top = flagged["cy"] < flagged["height"] / 2
    left = flagged["cx"] < flagged["width"] / 2
    flagged["k"] = np.where(top, 0, 2) + np.where(left, 0, 1)  # index into QUADRANTS
    groups = flagged.groupby(["image_id", "k"], sort=True).agg(
        n=("sizeable", "size"), n_sizeable=("sizeable", "sum"), category=("category", "first")
    )
    groups = groups.reset_index()
    found = groups.loc[(groups["n"] == 1) & (groups["n_sizeable"] == 1)].copy()
    found["k"] = found["k"].astype(int)
    found["region"] = found["k"].map(dict(enumerate(QUADRANTS)))
    return found[["image_id", "k", "region", "category"]].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# selection and the question table


def _select(
    candidates: pd.DataFrame, n: int, rng: random.Random, max_per_image: int
) -> pd.DataFrame:
    order = list(range(len(candidates)))
    rng.shuffle(order)
    chosen, per_image = [], {}
    image_ids = candidates["image_id"].to_numpy()
    for position in order:
        image_id = image_ids[position]
        if per_image.get(image_id, 0) >= max_per_image:
            continue
        per_image[image_id] = per_image.get(image_id, 0) + 1
        chosen.append(position)
        if len(chosen) == n:
            break
    return candidates.iloc[chosen].reset_index(drop=True)


def _questions(task: str, chosen: pd.DataFrame) -> list[dict]:
    rows = []
    for i, c in enumerate(chosen.itertuples(index=False)):
        if task == "counting":
            question = COUNTING_TEMPLATE.format(plural=plural(c.category))
            answer, obj = str(c.count), c.category
        elif task == "spatial":
            # Alternate the order asked so that yes and no are balanced.
            subject, reference, answer = (
                (c.left, c.right, "yes") if i % 2 == 0 else (c.right, c.left, "no")
            )
            question = SPATIAL_TEMPLATE.format(subject=subject, reference=reference)
            obj = subject
        else:
            question = OBJECT_ID_TEMPLATE.format(region=c.region)
            answer, obj = c.category, c.category
        rows.append(
            {
                "question_id": f"coco-{task}-{int(c.image_id)}-{int(c.k)}",
                "coco_id": int(c.image_id),
                "question": question,
                "answer": answer,
                "task": task,
                "object": obj,
            }
        )
    return rows


def _read_image(image_dir: Path, file_name: str) -> bytes:
    path = image_dir / file_name
    if not path.is_file():
        raise FileNotFoundError(
            f"COCO image {str(path)!r} does not exist; the config key `{IMAGE_DIR_KEY}` must point to the "
            "folder of COCO val2014 images (COCO_val2014_000000xxxxxx.jpg)"
        )
    return path.read_bytes()


def build_coco_tasks(
    annotations_path: str | os.PathLike | None,
    image_dir: str | os.PathLike | None,
    n_per_task: int | Mapping[str, int],
    seed: int,
    tasks: Sequence[str] = COCO_TASKS,
    rules: CocoTaskRules | None = None,
    **rule_overrides: float,
) -> pd.DataFrame:
    """Build the counting / spatial / object-ID question table (schema of :mod:`vrp.benchmark.schema`).

    ``n_per_task`` is one number for every task or a mapping task -> number. Thresholds come from
    ``rules`` or keyword overrides (``max_count=4``, ``min_area_frac=0.02``, ...).
    """
    unknown = sorted(set(tasks) - set(COCO_TASKS))
    if unknown or not tasks:
        raise ValueError(
            f"COCO tasks must be a non-empty subset of {list(COCO_TASKS)}, got {list(tasks)}"
        )
    if rules is None:
        rules = CocoTaskRules(**rule_overrides)
    elif rule_overrides:
        raise ValueError("give either rules= or keyword thresholds, not both")
    counts = (
        dict(n_per_task)
        if isinstance(n_per_task, Mapping)
        else {task: n_per_task for task in tasks}
    )
    for task in tasks:
        if int(counts.get(task, 0)) < 1:
            raise ValueError(f"n_per_task for {task!r} must be >= 1, got {counts.get(task)!r}")
    if image_dir is None or not Path(image_dir).is_dir():
        raise FileNotFoundError(
            f"COCO image folder {None if image_dir is None else str(image_dir)!r} does not exist; set the config "
            f"key `{IMAGE_DIR_KEY}` to the folder of COCO val2014 images"
        )
    image_dir = Path(image_dir)

    images, objects = load_coco_instances(annotations_path)
    builders: dict[str, Callable[[pd.DataFrame, CocoTaskRules], pd.DataFrame]] = {
        "counting": counting_candidates,
        "spatial": spatial_candidates,
        "object_id": object_id_candidates,
    }
    rows: list[dict] = []
    for task in tasks:
        candidates = builders[task](objects, rules)
        wanted = int(counts[task])
        chosen = _select(candidates, wanted, random.Random(f"{seed}:{task}"), rules.max_per_image)
        if len(chosen) < wanted:
            warnings.warn(
                f"COCO {task}: only {len(chosen)} questions satisfy the rules (asked for {wanted}); using all of them",
                stacklevel=2,
            )
        rows.extend(_questions(task, chosen))
    if not rows:
        raise ValueError(
            f"no COCO question satisfies the rules {rules} in {str(annotations_path)!r}"
        )

    table = pd.DataFrame.from_records(rows)
    file_names = dict(zip(images["image_id"], images["file_name"]))
    image_bytes = {
        coco_id: _read_image(image_dir, file_names[coco_id])
        for coco_id in table["coco_id"].unique()
    }
    table["image"] = table["coco_id"].map(image_bytes)
    table["image_id"] = table["coco_id"].map(coco_image_key)
    table["pope_setting"] = ""
    return validate_questions(table, source="COCO task table")


# --------------------------------------------------------------------------------------------
# download


COCO_ARCHIVES = {
    "annotations": "annotations/annotations_trainval2014.zip",
    "images": "zips/val2014.zip",
}


def coco_urls(base_url: str = COCO_BASE_URL) -> dict[str, str]:
    """The two archives of the paper face: {"annotations": url, "images": url}."""
    return {kind: f"{base_url}/{path}" for kind, path in COCO_ARCHIVES.items()}


def _config_key(key: str, dataset: str | None) -> str:
    return key.replace("<name>", dataset) if dataset else key


def _unavailable(url: str, err: BaseException, dataset: str | None = None) -> DataUnavailableError:
    return DataUnavailableError(
        f"Cannot download COCO val2014 from {url}: the network is unreachable ({type(err).__name__}: {err}). "
        "Either run this step on a machine with internet access (it fetches "
        f"{COCO_BASE_URL}/annotations/annotations_trainval2014.zip, ~241 MB, and "
        f"{COCO_BASE_URL}/zips/val2014.zip, ~6.2 GB), or download them elsewhere, unzip, and set "
        "the config "
        f"keys `{_config_key(ANNOTATIONS_KEY, dataset)}` (path of instances_val2014.json) and "
        f"`{_config_key(IMAGE_DIR_KEY, dataset)}` (folder of COCO_val2014_*.jpg images) to local "
        "copies."
    )


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked(path: Path, url: str, expected: Mapping | None) -> dict:
    info = {"url": url, "size": path.stat().st_size, "sha256": sha256_file(path)}
    recorded = (expected.get("size"), expected.get("sha256")) if expected else None
    if recorded and (info["size"], info["sha256"]) != recorded:
        bad = path.with_name(path.name.removesuffix(".part") + ".corrupt")
        os.replace(path, bad)
        raise DataUnavailableError(
            f"{url} downloaded as {info['size']} bytes with sha256 {info['sha256']}, but the lock "
            f"file records {recorded[0]} bytes, sha256 {recorded[1]}: a corrupt or changed "
            f"download (moved to {str(bad)!r}). Delete that file and rerun to download it again; "
            "if the "
            "source really changed, remove its entry under `files:` in the lock file"
        )
    return info


def _fetch(
    url: str,
    dest: Path,
    opener: Callable,
    timeout: float,
    expected: Mapping | None = None,
    dataset: str | None = None,
) -> dict:
    """Download ``url`` to ``dest`` (resuming ``dest.part``); verify ``expected`` {size, sha256}.

    Returns {"url", "size", "sha256"}. A present ``dest`` is kept (and verified when ``expected``).
    An interrupted download leaves only ``dest.part``, which the next call continues with an HTTP
    ``Range`` request (a server that ignores it sends the whole file, which restarts the part).
    """
    if dest.is_file():
        return _checked(dest, url, expected)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"}) if offset else url
    try:
        with opener(request, timeout=timeout) as response:
            resumed = offset > 0 and getattr(response, "status", None) == 206
            headers = getattr(response, "headers", None)
            length = headers.get("Content-Length") if headers is not None else None
            total = (int(length) + (offset if resumed else 0)) if length else None
            with (
                open(part, "ab" if resumed else "wb") as fh,
                tqdm(
                    total=total,
                    initial=offset if resumed else 0,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    mininterval=5,
                    disable=total is None or total < (64 << 20),
                ) as bar,
            ):
                for block in iter(lambda: response.read(1 << 20), b""):
                    fh.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as err:
        if not (err.code == 416 and offset):  # 416: the part already holds the whole file
            raise _unavailable(url, err, dataset) from err
    except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, resets are OSErrors
        raise _unavailable(url, err, dataset) from err
    info = _checked(part, url, expected)
    os.replace(part, dest)
    return info


def download_coco_val2014(
    dest_dir: str | os.PathLike,
    image_ids: Sequence[int] | None = None,
    annotations: bool = True,
    opener: Callable | None = None,
    timeout: float = 30.0,
    base_url: str = COCO_BASE_URL,
    expected: Mapping[str, Mapping] | None = None,
    keep_archives: bool = False,
    dataset: str | None = None,
) -> dict:
    """Fetch COCO val2014 from images.cocodataset.org into ``dest_dir``; return the two paths to configure.

    ``annotations`` fetches ``annotations_trainval2014.zip`` (~241 MB) and extracts
    ``instances_val2014.json``. ``image_ids`` fetches just those images one by one (e.g. the 500
    POPE images); ``None`` fetches the whole ``val2014.zip`` (~6.2 GB, 40,504 images) and extracts
    it. Archives download resumably into ``dest_dir/downloads`` and are deleted once extracted
    (``keep_archives`` keeps them). COCO publishes no checksums: ``expected`` maps a URL to the
    ``{size, sha256}`` recorded at its first download (the lock file), and a mismatch raises.
    Files already present are kept. ``opener`` replaces ``urllib.request.urlopen`` (tests pass
    fakes); ``timeout`` bounds each socket operation, so an unreachable server fails in seconds with
    :class:`DataUnavailableError`, whose message names the config keys of ``dataset``. Returns
    ``{"annotations": ..., "image_dir": ..., "files": [{url, size, sha256}, ...]}`` (the archives
    downloaded or verified in this call).
    """
    opener = opener or urllib.request.urlopen
    expected = expected or {}
    dest_dir = Path(dest_dir)
    downloads = dest_dir / "downloads"
    image_dir = dest_dir / "val2014"
    annotations_path = dest_dir / "annotations" / "instances_val2014.json"
    urls = coco_urls(base_url)
    files = []
    if annotations and not annotations_path.is_file():
        archive = downloads / "annotations_trainval2014.zip"
        url = urls["annotations"]
        files.append(_fetch(url, archive, opener, timeout, expected.get(url), dataset))
        with zipfile.ZipFile(archive) as zf, atomic_path(annotations_path, ".json") as tmp:
            with zf.open("annotations/instances_val2014.json") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
        if not keep_archives:
            archive.unlink()
    if image_ids is None:
        if not image_dir.is_dir():
            archive = downloads / "val2014.zip"
            url = urls["images"]
            files.append(_fetch(url, archive, opener, timeout, expected.get(url), dataset))
            # Extract beside the target, then rename: a killed extraction leaves no half-filled val2014/.
            partial = dest_dir / ".val2014.partial"
            shutil.rmtree(partial, ignore_errors=True)
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(partial)
            os.replace(partial / "val2014", image_dir)
            shutil.rmtree(partial, ignore_errors=True)
            if not keep_archives:
                archive.unlink()
    else:
        for image_id in image_ids:
            name = f"COCO_val2014_{int(image_id):012d}.jpg"
            _fetch(f"{base_url}/val2014/{name}", image_dir / name, opener, timeout, dataset=dataset)
    return {"annotations": annotations_path, "image_dir": image_dir, "files": files}
