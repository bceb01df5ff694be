"""Small POPE and COCO copies in the real on-disk formats, for the paper-shapes integration run.

``python -m vrp.benchmark.paper_fixtures DIR`` writes

* ``DIR/pope/`` -- laid out like the ``lmms-lab/POPE`` dataset repo: a dataset card whose YAML
  header lists the configs ``default`` (``data/test-*.parquet``) and ``Full``
  (``Full/{setting}-*.parquet``), the Hub's columns, ``image`` a struct ``{bytes, path}`` of JPEG
  bytes; :data:`POPE_IMAGES` images x 3 settings x 6 questions (3 "yes", 3 "no", as POPE asks).
* ``DIR/coco/annotations/instances_val2014.json`` and ``DIR/coco/val2014/COCO_val2014_*.jpg`` --
  640x480 images whose annotations make the rules of :mod:`vrp.benchmark.coco` (with
  ``max_count`` = 10 and ``max_per_image`` = 4) allow exactly :func:`expected_coco_answers`:

  - object_id: every one of the 80 COCO categories once. Quadrant image ``q`` holds categories
    ``4q .. 4q+3`` (in COCO order), one sizeable box centred in each quadrant.
  - spatial: 4 pairs on each of the first :data:`CLEAN_IMAGES` quadrant images (the two boxes of
    one column are never a pair: their centres coincide horizontally). In the other quadrant
    images every object has a tiny twin (below 1 % of the image), which rules out counting and
    spatial questions there but not the object_id one.
  - counting: answer "1" for the 4 objects of each clean image, and the answers 1 .. 10 on the
    count images: ``c`` sizeable boxes of one category in the top-left quadrant under a crowd
    region of people (which rules out an object_id question there and a person count). A count
    of 0 is never asked: the rules only count categories that are present.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from vrp.io import atomic_path

WIDTH, HEIGHT = 640, 480  # a typical COCO val2014 image
# The 80 COCO 2014 detection categories with their (gappy) ids, in COCO order.
# fmt: off
COCO_CATEGORIES: dict[int, str] = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep",
    21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe", 27: "backpack",
    28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee", 35: "skis",
    36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat", 40: "baseball glove",
    41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
    54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza",
    60: "donut", 61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed",
    67: "dining table", 70: "toilet", 72: "tv", 73: "laptop", 74: "mouse", 75: "remote",
    76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster", 81: "sink",
    82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}
# fmt: on
CATEGORY_IDS = list(COCO_CATEGORIES)
QUADRANT_CENTRES = ((160, 120), (480, 120), (160, 360), (480, 360))  # QUADRANTS order
QUADRANT_IMAGES = len(CATEGORY_IDS) // 4  # 20
CLEAN_IMAGES = 4
MAX_COUNT = 10
# the counted category of count image c (never "person", whose crowd covers the boxes)
COUNTED = [CATEGORY_IDS[1 + 7 * c % (len(CATEGORY_IDS) - 1)] for c in range(1, MAX_COUNT + 1)]
FIRST_IMAGE_ID = 500001
POPE_IMAGES = 4
POPE_SETTINGS = ("adversarial", "popular", "random")

Box = tuple[int, int, int, int]  # COCO [x, y, w, h]


def quadrant_image_id(q: int) -> int:
    return FIRST_IMAGE_ID + q


def count_image_id(c: int) -> int:
    return FIRST_IMAGE_ID + QUADRANT_IMAGES + c - 1


def coco_annotations() -> list[tuple[int, int, Box, int]]:
    """(image_id, category_id, bbox, iscrowd) for every instance (see the module docstring)."""
    rows = []
    for q in range(QUADRANT_IMAGES):
        for k, (cx, cy) in enumerate(QUADRANT_CENTRES):
            category = CATEGORY_IDS[4 * q + k]
            rows.append((quadrant_image_id(q), category, (cx - 60, cy - 50, 120, 100), 0))
            if q >= CLEAN_IMAGES:  # a 20x20 twin (400 px < 1 % of 640x480) in the same quadrant
                rows.append((quadrant_image_id(q), category, (cx + 70, cy + 60, 20, 20), 0))
    for c in range(1, MAX_COUNT + 1):
        image_id = count_image_id(c)
        rows.append((image_id, 1, (0, 0, 320, 240), 1))  # people crowd over the top-left quadrant
        for i in range(c):  # 60x60 boxes (3600 px >= 1 %), centres inside the top-left quadrant
            rows.append(
                (image_id, COUNTED[c - 1], (2 + 62 * (i % 5), 10 + 100 * (i // 5), 60, 60), 0)
            )
    return rows


def expected_coco_answers() -> dict[str, list[str]]:
    """Per task, the sorted answers of every question the rules allow on this fixture."""
    clean = [COCO_CATEGORIES[CATEGORY_IDS[i]] for i in range(4 * CLEAN_IMAGES)]
    return {
        "object_id": sorted(COCO_CATEGORIES.values()),
        "counting": sorted(["1"] * len(clean) + [str(c) for c in range(1, MAX_COUNT + 1)]),
        "spatial": sorted(["no", "yes"] * (2 * CLEAN_IMAGES)),
    }


def coco_instances() -> dict:
    """The ``instances_val2014.json`` content (COCO's layout: images, annotations, categories)."""
    image_ids = [quadrant_image_id(q) for q in range(QUADRANT_IMAGES)]
    image_ids += [count_image_id(c) for c in range(1, MAX_COUNT + 1)]
    images = [
        {
            "id": i,
            "file_name": coco_file_name(i),
            "width": WIDTH,
            "height": HEIGHT,
            "license": 1,
            "coco_url": f"http://images.cocodataset.org/val2014/{coco_file_name(i)}",
        }
        for i in image_ids
    ]
    annotations = [
        {
            "id": n + 1,
            "image_id": image_id,
            "category_id": category,
            "bbox": list(bbox),
            "area": float(bbox[2] * bbox[3]),
            "iscrowd": crowd,
            "segmentation": [],
        }
        for n, (image_id, category, bbox, crowd) in enumerate(coco_annotations())
    ]
    categories = [
        {"id": i, "name": name, "supercategory": "object"} for i, name in COCO_CATEGORIES.items()
    ]
    return {
        "info": {"description": "vrp paper-shapes fixture"},
        "licenses": [{"id": 1, "name": "test"}],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def coco_file_name(image_id: int) -> str:
    return f"COCO_val2014_{image_id:012d}.jpg"


def draw_image(image_id: int, boxes: list[Box]) -> bytes:
    """A 640x480 JPEG: a plain background with each box filled in its own colour."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (image_id * 37 % 200, 110, 90))
    draw = ImageDraw.Draw(image)
    for n, (x, y, w, h) in enumerate(boxes):
        draw.rectangle(
            [x, y, x + w - 1, y + h - 1], fill=((n * 67) % 256, (image_id * 13) % 256, 200)
        )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def image_boxes() -> dict[int, list[Box]]:
    boxes: dict[int, list[Box]] = {}
    for image_id, _, bbox, _ in coco_annotations():
        boxes.setdefault(image_id, []).append(bbox)
    return boxes


def write_coco(root: Path) -> dict[str, Path]:
    """Write ``root/annotations/instances_val2014.json`` and ``root/val2014/*.jpg``."""
    annotations = root / "annotations" / "instances_val2014.json"
    image_dir = root / "val2014"
    annotations.parent.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    for image_id, boxes in image_boxes().items():
        (image_dir / coco_file_name(image_id)).write_bytes(draw_image(image_id, boxes))
    with atomic_path(annotations, ".json") as tmp:
        tmp.write_text(json.dumps(coco_instances()))
    return {"annotations": annotations, "image_dir": image_dir}


# --------------------------------------------------------------------------------------------
# POPE

POPE_CARD = """---
dataset_info:
  features:
  - name: id
    dtype: string
  - name: question_id
    dtype: string
  - name: question
    dtype: string
  - name: answer
    dtype: string
  - name: image_source
    dtype: string
  - name: image
    dtype: image
  - name: category
    dtype: string
configs:
- config_name: default
  data_files:
  - split: test
    path: data/test-*
- config_name: Full
  data_files:
  - split: adversarial
    path: Full/adversarial-*
  - split: popular
    path: Full/popular-*
  - split: random
    path: Full/random-*
---
# POPE (vrp paper-shapes fixture)
"""
POPE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("question_id", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("image_source", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("category", pa.string()),
    ]
)


def pope_rows() -> list[dict]:
    """POPE's rows on the first quadrant images: per image and setting 3 present objects ("yes")
    and 3 absent ones ("no"); the absent ones differ by setting, as POPE's negatives do."""
    boxes = image_boxes()
    rows, number = [], 0
    for s, setting in enumerate(POPE_SETTINGS):
        for q in range(POPE_IMAGES):
            image_id = quadrant_image_id(q)
            present = [COCO_CATEGORIES[CATEGORY_IDS[4 * q + k]] for k in range(3)]
            absent = [
                COCO_CATEGORIES[CATEGORY_IDS[(4 * q + 20 + 6 * s + k) % 80]] for k in range(3)
            ]
            jpeg = draw_image(image_id, boxes[image_id])
            for obj, answer in [*((o, "yes") for o in present), *((o, "no") for o in absent)]:
                number += 1
                article = "an" if obj[0] in "aeiou" else "a"
                rows.append(
                    {
                        "id": str(number - 1),
                        "question_id": str(number),
                        "question": f"Is there {article} {obj} in the image?",
                        "answer": answer,
                        "image_source": f"COCO_val2014_{image_id:012d}",
                        "image": {"bytes": jpeg, "path": None},
                        "category": setting,
                    }
                )
    return rows


def write_pope(root: Path) -> Path:
    """Write the ``lmms-lab/POPE``-shaped folder: card, ``default`` shard and ``Full`` shards."""
    rows = pope_rows()
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "Full").mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(POPE_CARD)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=POPE_SCHEMA),
        root / "data" / "test-00000-of-00001.parquet",
    )
    for setting in POPE_SETTINGS:
        part = [r for r in rows if r["category"] == setting]
        path = root / "Full" / f"{setting}-00000-of-00001.parquet"
        pq.write_table(pa.Table.from_pylist(part, schema=POPE_SCHEMA), path)
    return root


def write_fixtures(root: str | Path) -> dict[str, Path]:
    """Write ``root/pope`` and ``root/coco``; return the paths a config points at."""
    root = Path(root)
    coco = write_coco(root / "coco")
    return {"pope": write_pope(root / "pope"), **coco}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder to write pope/ and coco/ into")
    for key, path in write_fixtures(parser.parse_args(argv).root).items():
        print(f"{key}: {path}")


if __name__ == "__main__":
    main()
