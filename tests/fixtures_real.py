"""Tiny on-disk copies of the real data formats, for offline tests of the POPE and COCO loaders.

* :func:`write_pope_repo` -- a folder laid out like the ``lmms-lab/POPE`` dataset repo: a dataset card
  whose YAML header lists the configs, ``data/test-*.parquet`` (config ``default``, all settings) and
  ``Full/{setting}-*.parquet`` (config ``Full``), with the Hub columns and ``image`` as a struct
  ``{bytes, path}`` holding embedded JPEG / PNG bytes.
* :func:`write_coco_fixture` -- an ``instances_val2014.json`` with known boxes on four images plus the
  JPEG files, and :data:`COCO_EXPECTED`, every question the default rules allow on it (worked out by
  hand in the comments of :data:`COCO_ANNOTATIONS`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

# the dataset card and column types of the lmms-lab/POPE repo layout, the ones the paper-shapes
# fixture writes
from vrp.benchmark.paper_fixtures import POPE_CARD, POPE_SCHEMA

# --------------------------------------------------------------------------------------------
# images


def encode_image(
    size: tuple[int, int], colour: tuple[int, int, int], fmt: str = "JPEG", boxes=()
) -> bytes:
    """A small solid image, with outlined ``[x, y, w, h]`` boxes, encoded as ``fmt``."""
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    for x, y, w, h in boxes:
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# POPE


# The "no" object of question 2 differs by setting, as POPE's negatives do.
POPE_NEGATIVE = {"random": "apple", "popular": "chair", "adversarial": "fork"}
POPE_IMAGES = {"42": ("JPEG", (40, 30), (200, 30, 30)), "73": ("PNG", (30, 40), (30, 30, 200))}


def pope_rows(setting: str) -> list[dict]:
    """The fixture rows of one setting, in a scrambled file order (10 sorts after 3 as a number)."""
    rows = [
        ("10", "Is there a cat in the image?", "no", "73"),
        ("1", "Is there a dining table in the image?", "Yes", "42"),
        ("3", "Is there a  dog in the image?", "yes", "73"),
        ("2", f"Is there an {POPE_NEGATIVE[setting]} in the image?", "no", "42"),
    ]
    out = []
    for question_id, question, answer, source in rows:
        fmt, size, colour = POPE_IMAGES[source]
        out.append(
            {
                "id": f"{setting}-{question_id}",
                "question_id": question_id,
                "question": question,
                "answer": answer,
                "image_source": source,
                "image": {
                    "bytes": encode_image(size, colour, fmt),
                    "path": f"{source}.{fmt.lower()}",
                },
                "category": setting,
            }
        )
    return out


def write_pope_parquet(rows: list[dict], path: Path, drop_columns: tuple[str, ...] = ()) -> Path:
    """Write rows with the Hub's column types (image as struct {bytes, path}); optionally drop columns."""
    table = pa.Table.from_pylist(rows, schema=POPE_SCHEMA)
    if drop_columns:
        table = table.drop_columns(list(drop_columns))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_pope_repo(root: Path) -> Path:
    """Write the fake ``lmms-lab/POPE`` repo under ``root``: card, ``default`` shard, ``Full`` shards."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(POPE_CARD)
    settings = ("adversarial", "popular", "random")
    write_pope_parquet(
        [r for s in settings for r in pope_rows(s)], root / "data" / "test-00000-of-00001.parquet"
    )
    for setting in settings:
        write_pope_parquet(pope_rows(setting), root / "Full" / f"{setting}-00000-of-00001.parquet")
    return root


# --------------------------------------------------------------------------------------------
# COCO

COCO_CATEGORIES = {
    1: "person",
    3: "car",
    15: "bench",
    16: "bird",
    17: "cat",
    18: "dog",
    28: "umbrella",
    38: "kite",
    67: "dining table",
    74: "mouse",
    88: "teddy bear",
}
COCO_SIZES = {101: (100, 80), 102: (100, 80), 103: (100, 80), 104: (120, 90)}

# (image_id, category_id, bbox, iscrowd). Min area = 1 % of the image: 80 px (100x80), 108 px (120x90).
# Quadrants of a 100x80 image split at cx = 50, cy = 40 (cx < 50 is left, cy < 40 is top).
COCO_ANNOTATIONS = [
    # 101: cat centre (15, 50) bottom left, dog (80, 50) bottom right, people (45, 10) top left and
    # (45, 65) bottom left. counting: person 2, cat 1, dog 1. spatial: cat left of dog.
    # object_id: top left = person, bottom right = dog (bottom left has two).
    (101, 17, [5, 40, 20, 20], 0),
    (101, 18, [70, 40, 20, 20], 0),
    (101, 1, [40, 5, 10, 10], 0),
    (101, 1, [40, 60, 10, 10], 0),
    # 102: person has a crowd region, bird has a tiny instance, 7 cars > max_count 6: no counting;
    # no category occurs once: no spatial. object_id: top left holds only the big crowd (skipped),
    # top right = person (65, 10), bottom left = the big bird (20, 60), bottom right 7 cars.
    (102, 1, [0, 0, 50, 40], 1),
    (102, 1, [60, 5, 10, 10], 0),
    (102, 16, [80, 60, 5, 4], 0),
    (102, 16, [10, 50, 20, 20], 0),
    *[(102, 3, [52 + 6 * i, 42, 9, 9], 0) for i in range(7)],
    # 103: bench centre (50, 20) top right, umbrella (45, 55) bottom left, kite (75, 55) bottom right.
    # spatial: bench/umbrella centres 5 px apart (< 10); bench/kite overlap 10 px = the kite's whole
    # width (> 20 %); umbrella/kite qualify: umbrella left of kite.
    (103, 15, [10, 10, 80, 20], 0),
    (103, 38, [70, 50, 10, 10], 0),
    (103, 28, [40, 50, 10, 10], 0),
    # 104 (120x90, min area 108): the mouse (area 100) is tiny, so it is never asked about.
    # teddy bear (80, 20) top right, dining table (25, 65) bottom left; table left of bear.
    (104, 88, [70, 10, 20, 20], 0),
    (104, 67, [10, 50, 30, 30], 0),
    (104, 74, [5, 5, 10, 10], 0),
]

# Every question the default rules allow: (task, image_id, k) -> (question, answer, object).
# Spatial questions are listed in the "yes" order; the builder asks every other one swapped.
COCO_EXPECTED = {
    ("counting", 101, 1): ("How many people are there?", "2", "person"),
    ("counting", 101, 17): ("How many cats are there?", "1", "cat"),
    ("counting", 101, 18): ("How many dogs are there?", "1", "dog"),
    ("counting", 103, 15): ("How many benches are there?", "1", "bench"),
    ("counting", 103, 28): ("How many umbrellas are there?", "1", "umbrella"),
    ("counting", 103, 38): ("How many kites are there?", "1", "kite"),
    ("counting", 104, 67): ("How many dining tables are there?", "1", "dining table"),
    ("counting", 104, 88): ("How many teddy bears are there?", "1", "teddy bear"),
    ("spatial", 101, 0): ("Is the cat to the left of the dog?", "yes", "cat"),
    ("spatial", 103, 0): ("Is the umbrella to the left of the kite?", "yes", "umbrella"),
    ("spatial", 104, 0): (
        "Is the dining table to the left of the teddy bear?",
        "yes",
        "dining table",
    ),
    ("object_id", 101, 0): ("What is the object in the top left?", "person", "person"),
    ("object_id", 101, 3): ("What is the object in the bottom right?", "dog", "dog"),
    ("object_id", 102, 1): ("What is the object in the top right?", "person", "person"),
    ("object_id", 102, 2): ("What is the object in the bottom left?", "bird", "bird"),
    ("object_id", 103, 1): ("What is the object in the top right?", "bench", "bench"),
    ("object_id", 103, 2): ("What is the object in the bottom left?", "umbrella", "umbrella"),
    ("object_id", 103, 3): ("What is the object in the bottom right?", "kite", "kite"),
    ("object_id", 104, 1): ("What is the object in the top right?", "teddy bear", "teddy bear"),
    ("object_id", 104, 2): (
        "What is the object in the bottom left?",
        "dining table",
        "dining table",
    ),
}


def coco_instances() -> dict:
    """The fixture's instances JSON content (COCO ``instances_val2014.json`` layout)."""
    images = [
        {"id": image_id, "file_name": f"COCO_val2014_{image_id:012d}.jpg", "width": w, "height": h}
        for image_id, (w, h) in COCO_SIZES.items()
    ]
    annotations = [
        {
            "id": index + 1,
            "image_id": image_id,
            "category_id": category_id,
            "bbox": bbox,
            "area": bbox[2] * bbox[3],
            "iscrowd": iscrowd,
            "segmentation": [],
        }
        for index, (image_id, category_id, bbox, iscrowd) in enumerate(COCO_ANNOTATIONS)
    ]
    categories = [
        {"id": cid, "name": name, "supercategory": "thing"} for cid, name in COCO_CATEGORIES.items()
    ]
    return {
        "info": {},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def write_coco_fixture(root: Path) -> dict[str, Path]:
    """Write ``annotations/instances_val2014.json`` and ``val2014/*.jpg``; return their paths."""
    annotations_path = root / "annotations" / "instances_val2014.json"
    image_dir = root / "val2014"
    annotations_path.parent.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    annotations_path.write_text(json.dumps(coco_instances()))
    for image_id, size in COCO_SIZES.items():
        boxes = [bbox for img, _, bbox, _ in COCO_ANNOTATIONS if img == image_id]
        colour = (image_id % 7 * 30, 120, 90)
        (image_dir / f"COCO_val2014_{image_id:012d}.jpg").write_bytes(
            encode_image(size, colour, "JPEG", boxes)
        )
    return {"annotations": annotations_path, "image_dir": image_dir}
