"""The offline synthetic benchmark (demo face): a POPE-style VQA set that tiny VLMs can learn on CPU.

Scenes
------
Each image is an RGB square of ``image_size`` px (default 64, i.e. an 8x8 grid of 8-px cells for the
zoo's models). It has a noisy grey background with a gentle gradient, a few low-saturation clutter
specks and lines, and ``min_objects``..``max_objects`` objects drawn on top (later objects may
partly occlude earlier ones; two objects of the same kind never touch, so they stay countable).
Shapes are rendered at twice the size and box-downsampled (anti-aliasing), then optionally blurred
(``blur_prob``), then Gaussian pixel noise (``noise_sigma``) is added.

There are ten object kinds in five colour-confusable pairs; each kind is a fixed colour (+-
``colour_jitter`` per channel) plus a shape, so telling the members of a pair apart needs shape:

======  =================  =================
colour  object (shape)     object (shape)
======  =================  =================
red     apple (circle)     brick (square)
yellow  banana (bar)       star (star)
blue    ball (circle)      window (frame)
green   leaf (triangle)    cactus (cross)
purple  grape (hexagon)    kite (diamond)
======  =================  =================

Every image draws one of four *themes* (:data:`THEMES`); each object is drawn from the theme's
favoured kinds with probability ``theme_strength`` and uniformly from all ten otherwise. Themes
create the co-occurrence structure and the uneven global frequencies that make POPE's "popular" and
"adversarial" negatives harder than "random" ones. Kinds may repeat in an image (at most
``max_count`` times), which the counting questions need.

Questions (columns of :mod:`vrp.benchmark.schema`)
--------------------------------------------------
* ``presence``: "Is there a {object} in the image?" -> "yes"/"no". Per image, up to
  ``pope_questions_per_image`` distinct present kinds are drawn at random as positives and the same
  number of absent kinds as negatives, so each image is exactly half "yes". The negatives follow
  the three POPE sampling settings (Li et al. 2023, "Evaluating Object Hallucination in Large
  Vision-Language Models"), computed from the split's own ground truth:

  - random: absent kinds drawn uniformly without replacement;
  - popular: the absent kinds with the highest global frequency (number of images of the split
    that contain the kind), taken in that order;
  - adversarial: the absent kinds with the highest co-occurrence score, the sum over the image's
    present kinds p of the number of split images that contain both p and the absent kind, taken
    in that order.

  Ties in either ranking are broken by the canonical order of :data:`OBJECTS`. The positives are the
  same in all three settings of one image. The eval split asks every image in all three settings;
  the train split asks ``train_presence_per_image`` positives with random negatives only.
* ``counting``: "How many {plural} are there?" -> "1".."max_count", about present kinds, each
  picked with probability proportional to its number of instances.
* ``spatial``: "Is the {a} to the left of the {b}?" -> "yes"/"no" (a fair coin per question picks
  which), only for two kinds that each occur once and whose centres differ horizontally by at
  least ``spatial_margin`` px. ``object`` is {a}.
* ``object_id``: "What is the object in the {region}?" -> the object's name, with region one of
  :data:`REGIONS` (image quadrants), only where exactly one object's centre lies in that quadrant.
* ``caption`` (train only, the auxiliary task that makes tiny models learn): "List the objects ."
  -> the distinct present kinds in :data:`OBJECTS` order, space-separated.

Determinism
-----------
All randomness comes from ``numpy.random.SeedSequence(seed, spawn_key=(split, image, stream))``:
each image has its own layout, appearance and question streams, so the train split does not change
when ``n_eval_images`` does, and scene ground truth (:func:`make_scene`) is available without
rendering. PNGs are written with fixed options, so the bytes are identical across runs.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from vrp.benchmark.schema import COLUMNS, POPE_SETTINGS, validate_questions

OBJECTS: tuple[str, ...] = (
    "apple",
    "brick",
    "banana",
    "star",
    "ball",
    "window",
    "leaf",
    "cactus",
    "grape",
    "kite",
)
OBJECT_SHAPES: dict[str, str] = {
    "apple": "circle",
    "brick": "square",
    "banana": "bar",
    "star": "star",
    "ball": "circle",
    "window": "frame",
    "leaf": "triangle",
    "cactus": "cross",
    "grape": "hexagon",
    "kite": "diamond",
}
_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 45, 45),
    "yellow": (225, 200, 40),
    "blue": (45, 80, 215),
    "green": (50, 160, 60),
    "purple": (145, 55, 175),
}
OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {
    "apple": _COLOURS["red"],
    "brick": _COLOURS["red"],
    "banana": _COLOURS["yellow"],
    "star": _COLOURS["yellow"],
    "ball": _COLOURS["blue"],
    "window": _COLOURS["blue"],
    "leaf": _COLOURS["green"],
    "cactus": _COLOURS["green"],
    "grape": _COLOURS["purple"],
    "kite": _COLOURS["purple"],
}
# Plurals for the counting question (real English, so "leaves", not "leafs").
OBJECT_PLURALS: dict[str, str] = {
    "apple": "apples",
    "brick": "bricks",
    "banana": "bananas",
    "star": "stars",
    "ball": "balls",
    "window": "windows",
    "leaf": "leaves",
    "cactus": "cacti",
    "grape": "grapes",
    "kite": "kites",
}
# Each theme favours four kinds, always both members of two colour pairs: the kinds that co-occur
# with an object are then also the ones that look like it, as in real hallucination (a fork where
# there is a knife), so POPE's "adversarial" negatives are the hardest. Six kinds belong to two
# themes and four to one, so global frequencies are uneven (POPE "popular").
THEMES: dict[str, tuple[str, ...]] = {
    "orchard": ("apple", "brick", "leaf", "cactus"),
    "street": ("ball", "window", "star", "banana"),
    "desert": ("grape", "kite", "star", "banana"),
    "park": ("apple", "brick", "ball", "window"),
}
REGIONS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right")
SPLITS: tuple[str, ...] = ("train", "eval")

PRESENCE_TEMPLATE = "Is there a {object} in the image?"
COUNTING_TEMPLATE = "How many {plural} are there?"
SPATIAL_TEMPLATE = "Is the {a} to the left of the {b}?"
OBJECT_ID_TEMPLATE = "What is the object in the {region}?"
CAPTION_QUESTION = "List the objects ."

_SUPERSAMPLE = 2  # shapes are drawn at 2x and box-downsampled, i.e. anti-aliased
_STREAM_LAYOUT, _STREAM_APPEARANCE, _STREAM_QUESTIONS = 0, 1, 2
_PNG_OPTIONS = {"format": "PNG", "compress_level": 6, "optimize": False}


@dataclass(frozen=True)
class SyntheticBenchmarkConfig:
    """Every knob of the generator; ``from_dict`` builds one from a (YAML) mapping.

    Sizes are in pixels of the final image. Per-image question counts are upper bounds: fewer are
    asked where an image has fewer eligible objects, pairs or quadrants.
    """

    seed: int = 0
    image_size: int = 64
    n_train_images: int = 4000
    n_eval_images: int = 300
    min_objects: int = 2
    max_objects: int = 6
    min_radius: float = 4.0
    max_radius: float = 9.0
    # Different kinds may overlap: their centres need only this fraction of the radii's sum apart.
    min_separation: float = 0.75
    colour_jitter: int = 25
    noise_sigma: float = 12.0
    blur_prob: float = 0.3
    min_clutter: int = 2
    max_clutter: int = 6
    theme_strength: float = 0.8
    pope_questions_per_image: int = 3
    train_presence_per_image: int = 1
    max_count: int = 4
    spatial_margin: float = 8.0
    counting_per_image: int = 1
    spatial_per_image: int = 1
    object_id_per_image: int = 1
    train_caption: bool = True

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("int", "bool"):
                expected = bool if field.type == "bool" else int
                if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                    raise ValueError(
                        f"synthetic benchmark config: {field.name} must be {field.type}, "
                        f"got {value!r}"
                    )
            elif field.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(
                        f"synthetic benchmark config: {field.name} must be a number, got {value!r}"
                    )
        checks = [
            (self.seed >= 0, "seed must be >= 0"),
            (self.image_size >= 16, "image_size must be >= 16"),
            (self.n_train_images >= 0 and self.n_eval_images >= 0, "image counts must be >= 0"),
            (1 <= self.min_objects <= self.max_objects, "need 1 <= min_objects <= max_objects"),
            (self.max_objects <= 12, "max_objects must be <= 12 (scenes get too crowded)"),
            (0 < self.min_radius <= self.max_radius, "need 0 < min_radius <= max_radius"),
            (self.max_radius <= self.image_size / 4, "max_radius must be <= image_size / 4"),
            (0 <= self.min_separation <= 2, "min_separation must be in [0, 2]"),
            (0 <= self.colour_jitter <= 60, "colour_jitter must be in [0, 60]"),
            (self.noise_sigma >= 0, "noise_sigma must be >= 0"),
            (0 <= self.blur_prob <= 1, "blur_prob must be in [0, 1]"),
            (0 <= self.min_clutter <= self.max_clutter, "need 0 <= min_clutter <= max_clutter"),
            (0 <= self.theme_strength <= 1, "theme_strength must be in [0, 1]"),
            (self.pope_questions_per_image >= 1, "pope_questions_per_image must be >= 1"),
            (self.train_presence_per_image >= 0, "train_presence_per_image must be >= 0"),
            (1 <= self.max_count <= 9, "max_count must be in 1..9 (answers are one digit)"),
            (
                self.max_count * len(OBJECTS) >= self.max_objects,
                "max_count * number of kinds must be >= max_objects",
            ),
            (self.spatial_margin >= 0, "spatial_margin must be >= 0"),
            (
                min(self.counting_per_image, self.spatial_per_image, self.object_id_per_image) >= 0,
                "per-image question counts must be >= 0",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"synthetic benchmark config: {message}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SyntheticBenchmarkConfig":
        """Build a config from a mapping; unknown keys raise (a typo must not pass silently)."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(
                f"synthetic benchmark config: unknown key(s) {unknown}; allowed keys are {allowed}"
            )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: kind, centre (x right, y down, px), bounding radius (px), rotation (deg)."""

    name: str
    x: float
    y: float
    radius: float
    angle: float


@dataclass(frozen=True)
class Scene:
    """The ground truth of one image; ``objects`` are in drawing order (later ones on top)."""

    image_id: str
    theme: str
    objects: tuple[SceneObject, ...]

    def counts(self) -> dict[str, int]:
        """Number of instances per present kind, in :data:`OBJECTS` order."""
        names = [o.name for o in self.objects]
        return {name: names.count(name) for name in OBJECTS if name in names}

    def present(self) -> list[str]:
        """The distinct present kinds in :data:`OBJECTS` order."""
        return list(self.counts())


def image_id(split: str, index: int) -> str:
    """The image id of image ``index`` of ``split``, e.g. ``syn-eval-000045``."""
    _check_split(split)
    return f"syn-{split}-{index:06d}"


def make_scene(config: SyntheticBenchmarkConfig, split: str, index: int) -> Scene:
    """Draw the layout (theme, kinds, positions, sizes) of one image; cheap, no rendering."""
    rng = _rng(config, split, index, _STREAM_LAYOUT)
    themes = list(THEMES)
    theme = themes[int(rng.integers(len(themes)))]
    favoured = THEMES[theme]
    n_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    placed: list[SceneObject] = []
    for _ in range(n_objects):
        name = _draw_kind(rng, favoured, placed, config)
        obj = _place(rng, name, placed, config)
        if obj is not None:
            placed.append(obj)
    # A crowded draw can fail to place every object; top up to min_objects with any kind that fits.
    attempts = 0
    while len(placed) < config.min_objects:
        attempts += 1
        if attempts > 100:
            raise RuntimeError(
                f"synthetic benchmark: cannot fit {config.min_objects} objects in image "
                f"{image_id(split, index)}; lower min_objects/max_radius or raise image_size"
            )
        name = _draw_kind(rng, favoured, placed, config)
        obj = _place(rng, name, placed, config)
        if obj is not None:
            placed.append(obj)
    return Scene(image_id=image_id(split, index), theme=theme, objects=tuple(placed))


def make_scenes(config: SyntheticBenchmarkConfig, split: str) -> list[Scene]:
    """The ground truth of every image of ``split``."""
    return [make_scene(config, split, i) for i in range(_n_images(config, split))]


def render_image(
    config: SyntheticBenchmarkConfig, split: str, index: int, scene: Scene | None = None
) -> Image.Image:
    """Render image ``index`` of ``split`` as an RGB PIL image of ``image_size`` px."""
    if scene is None:
        scene = make_scene(config, split, index)
    rng = _rng(config, split, index, _STREAM_APPEARANCE)
    size = config.image_size
    big = size * _SUPERSAMPLE

    # Grey background with a gentle linear gradient in a random direction.
    grey = rng.uniform(95, 165)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = np.linspace(-1.0, 1.0, big)
    gradient = (math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None]) * 15.0
    tint = rng.uniform(-6, 6, size=3)
    background = grey + gradient[:, :, None] + tint[None, None, :]
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(canvas)

    for _ in range(int(rng.integers(config.min_clutter, config.max_clutter + 1))):
        colour = _clutter_colour(rng)
        if rng.random() < 0.5:  # a speck
            cx, cy = rng.uniform(0, big, size=2)
            r = rng.uniform(1.0, 2.0) * _SUPERSAMPLE
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        else:  # a thin line
            x0, y0, x1, y1 = rng.uniform(0, big, size=4)
            draw.line((x0, y0, x1, y1), fill=colour, width=_SUPERSAMPLE)

    for obj in scene.objects:
        base = np.array(OBJECT_COLOURS[obj.name])
        jitter = rng.integers(-config.colour_jitter, config.colour_jitter + 1, size=3)
        colour = tuple(int(c) for c in np.clip(base + jitter, 0, 255))
        _draw_shape(draw, OBJECT_SHAPES[obj.name], obj, colour)

    image = canvas.resize((size, size), resample=Image.Resampling.BOX)
    blur_radius = rng.uniform(0.5, 1.0)
    if rng.random() < config.blur_prob:
        image = image.filter(ImageFilter.GaussianBlur(radius=blur_radius))
    pixels = np.asarray(image, dtype=np.float32)
    if config.noise_sigma > 0:
        pixels = pixels + rng.normal(0.0, config.noise_sigma, size=pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="RGB")


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes with fixed encoder options (identical bytes for identical pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, **_PNG_OPTIONS)
    return buffer.getvalue()


def object_frequency(scenes: Iterable[Scene]) -> pd.Series:
    """Number of scenes that contain each kind (index :data:`OBJECTS`): POPE's global frequency."""
    return _incidence(scenes).sum(axis=0)


def cooccurrence(scenes: Iterable[Scene]) -> pd.DataFrame:
    """Kind x kind matrix of the number of scenes containing both (diagonal zero)."""
    incidence = _incidence(scenes).to_numpy()
    counts = incidence.T @ incidence
    np.fill_diagonal(counts, 0)
    return pd.DataFrame(counts, index=list(OBJECTS), columns=list(OBJECTS))


def pope_negatives(
    setting: str,
    present: Iterable[str],
    n: int,
    rng: np.random.Generator,
    frequency: pd.Series,
    cooccurrence_counts: pd.DataFrame,
) -> list[str]:
    """``n`` absent kinds for an image with kinds ``present`` under one POPE ``setting``.

    random draws uniformly without replacement from the absent kinds; popular takes the absent
    kinds in decreasing ``frequency``; adversarial takes them in decreasing summed co-occurrence
    with the present kinds. Ties keep :data:`OBJECTS` order (a stable sort).
    """
    present = list(present)
    absent = [name for name in OBJECTS if name not in present]
    if n > len(absent):
        raise ValueError(
            f"pope_negatives: asked for {n} negatives but only {len(absent)} kinds are absent"
        )
    if setting == "random":
        return [absent[i] for i in rng.choice(len(absent), size=n, replace=False)]
    if setting == "popular":
        score = frequency.loc[absent]
    elif setting == "adversarial":
        score = cooccurrence_counts.loc[present, absent].sum(axis=0)
    else:
        raise ValueError(
            f"pope_negatives: unknown setting {setting!r}; use one of {list(POPE_SETTINGS)}"
        )
    return list(score.sort_values(ascending=False, kind="stable").index[:n])


def generate_split(config: SyntheticBenchmarkConfig, split: str) -> pd.DataFrame:
    """The question table of one split ("train" or "eval"), validated against the schema."""
    _check_split(split)
    scenes = make_scenes(config, split)
    frequency = object_frequency(scenes)
    cooccurrence_counts = cooccurrence(scenes)
    rows: list[dict[str, Any]] = []
    for index, scene in enumerate(scenes):
        png = encode_png(render_image(config, split, index, scene))
        rng = _rng(config, split, index, _STREAM_QUESTIONS)
        questions = _presence_questions(config, split, scene, rng, frequency, cooccurrence_counts)
        questions += _counting_questions(config, scene, rng)
        questions += _spatial_questions(config, scene, rng)
        questions += _object_id_questions(config, scene, rng)
        if split == "train" and config.train_caption:
            questions.append(
                {
                    "question_id": f"{scene.image_id}-caption-0",
                    "question": CAPTION_QUESTION,
                    "answer": " ".join(scene.present()),
                    "task": "caption",
                    "pope_setting": "",
                    "object": "",
                }
            )
        for question in questions:
            rows.append({"image_id": scene.image_id, "image": png, **question})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return validate_questions(frame, source=f"synthetic {split} split")


def generate_benchmark(config: SyntheticBenchmarkConfig) -> dict[str, pd.DataFrame]:
    """Both splits: ``{"train": ..., "eval": ...}``, with disjoint image ids."""
    return {split: generate_split(config, split) for split in SPLITS}


def vocabulary(config: SyntheticBenchmarkConfig | None = None) -> list[str]:
    """Every word the question and answer texts can contain, split as the zoo's word-level
    tokenizer does (whitespace, punctuation isolated), sorted; for building that tokenizer."""
    config = config or SyntheticBenchmarkConfig()
    texts = [
        PRESENCE_TEMPLATE,
        COUNTING_TEMPLATE,
        SPATIAL_TEMPLATE,
        OBJECT_ID_TEMPLATE,
        CAPTION_QUESTION,
        "yes no",
        " ".join(REGIONS),
        " ".join(OBJECTS),
        " ".join(OBJECT_PLURALS.values()),
        " ".join(str(k) for k in range(1, config.max_count + 1)),
    ]
    words = {
        token
        for text in texts
        for token in text.replace("?", " ? ").replace(".", " . ").split()
        if not token.startswith("{")
    }  # drop the template placeholders
    return sorted(words)


# --- questions -------------------------------------------------------------------------------


def _presence_questions(config, split, scene, rng, frequency, cooccurrence_counts) -> list[dict]:
    present = scene.present()
    n_absent = len(OBJECTS) - len(present)
    wanted = config.pope_questions_per_image if split == "eval" else config.train_presence_per_image
    n_pairs = min(wanted, len(present), n_absent)
    if n_pairs == 0:
        return []
    positives = [present[i] for i in np.sort(rng.choice(len(present), size=n_pairs, replace=False))]
    settings = POPE_SETTINGS if split == "eval" else ("random",)
    questions = []
    for setting in settings:
        negatives = pope_negatives(setting, present, n_pairs, rng, frequency, cooccurrence_counts)
        # Alternate yes/no (positive k, then negative k) rather than listing all positives first.
        asked = [
            item
            for positive, negative in zip(positives, negatives)
            for item in ((positive, "yes"), (negative, "no"))
        ]
        for k, (name, answer) in enumerate(asked):
            questions.append(
                {
                    "question_id": f"{scene.image_id}-presence-{setting}-{k}",
                    "question": PRESENCE_TEMPLATE.format(object=name),
                    "answer": answer,
                    "task": "presence",
                    "pope_setting": setting,
                    "object": name,
                }
            )
    return questions


def _counting_questions(config, scene, rng) -> list[dict]:
    counts = scene.counts()
    names = list(counts)
    n = min(config.counting_per_image, len(names))
    # Pick kinds in proportion to their instance count ("a random object's kind"), which moves the
    # answers away from the otherwise dominant "1".
    weights = np.array([counts[name] for name in names], dtype=float)
    picked = rng.choice(len(names), size=n, replace=False, p=weights / weights.sum()) if n else []
    chosen = [names[i] for i in np.sort(picked)]
    return [
        {
            "question_id": f"{scene.image_id}-counting-{k}",
            "question": COUNTING_TEMPLATE.format(plural=OBJECT_PLURALS[name]),
            "answer": str(counts[name]),
            "task": "counting",
            "pope_setting": "",
            "object": name,
        }
        for k, name in enumerate(chosen)
    ]


def _spatial_questions(config, scene, rng) -> list[dict]:
    counts = scene.counts()
    singles = [o for o in scene.objects if counts[o.name] == 1]
    singles.sort(key=lambda o: OBJECTS.index(o.name))
    pairs = [
        (a, b)
        for i, a in enumerate(singles)
        for b in singles[i + 1 :]
        if abs(a.x - b.x) >= config.spatial_margin
    ]
    n = min(config.spatial_per_image, len(pairs))
    chosen = [pairs[i] for i in np.sort(rng.choice(len(pairs), size=n, replace=False))] if n else []
    questions = []
    for k, (first, second) in enumerate(chosen):
        left, right = (first, second) if first.x < second.x else (second, first)
        answer = "yes" if rng.random() < 0.5 else "no"
        a, b = (left, right) if answer == "yes" else (right, left)
        questions.append(
            {
                "question_id": f"{scene.image_id}-spatial-{k}",
                "question": SPATIAL_TEMPLATE.format(a=a.name, b=b.name),
                "answer": answer,
                "task": "spatial",
                "pope_setting": "",
                "object": a.name,
            }
        )
    return questions


def quadrant(x: float, y: float, image_size: int) -> str:
    """The region name (one of :data:`REGIONS`) of the quadrant that contains point (x, y)."""
    half = image_size / 2
    return f"{'top' if y < half else 'bottom'} {'left' if x < half else 'right'}"


def _object_id_questions(config, scene, rng) -> list[dict]:
    by_region: dict[str, list[SceneObject]] = {region: [] for region in REGIONS}
    for obj in scene.objects:
        by_region[quadrant(obj.x, obj.y, config.image_size)].append(obj)
    eligible = [region for region in REGIONS if len(by_region[region]) == 1]
    n = min(config.object_id_per_image, len(eligible))
    chosen = (
        [eligible[i] for i in np.sort(rng.choice(len(eligible), size=n, replace=False))]
        if n
        else []
    )
    return [
        {
            "question_id": f"{scene.image_id}-object_id-{k}",
            "question": OBJECT_ID_TEMPLATE.format(region=region),
            "answer": by_region[region][0].name,
            "task": "object_id",
            "pope_setting": "",
            "object": by_region[region][0].name,
        }
        for k, region in enumerate(chosen)
    ]


# --- layout and drawing ----------------------------------------------------------------------


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"synthetic benchmark: unknown split {split!r}; use one of {list(SPLITS)}")


def _n_images(config: SyntheticBenchmarkConfig, split: str) -> int:
    _check_split(split)
    return config.n_train_images if split == "train" else config.n_eval_images


def _rng(
    config: SyntheticBenchmarkConfig, split: str, index: int, stream: int
) -> np.random.Generator:
    """An independent stream per (split, image, purpose), all derived from the one seed."""
    _check_split(split)
    sequence = np.random.SeedSequence(config.seed, spawn_key=(SPLITS.index(split), index, stream))
    return np.random.default_rng(sequence)


def _draw_kind(
    rng: np.random.Generator,
    favoured: tuple[str, ...],
    placed: list[SceneObject],
    config: SyntheticBenchmarkConfig,
) -> str:
    """A kind from the theme (probability theme_strength) or from all kinds, among kinds that
    have fewer than max_count instances so far."""
    names = [o.name for o in placed]
    pool = favoured if rng.random() < config.theme_strength else OBJECTS
    available = [name for name in pool if names.count(name) < config.max_count]
    if not available:  # every favoured kind is full; the config check guarantees some kind is not
        available = [name for name in OBJECTS if names.count(name) < config.max_count]
    return available[int(rng.integers(len(available)))]


def _place(
    rng: np.random.Generator,
    name: str,
    placed: list[SceneObject],
    config: SyntheticBenchmarkConfig,
    tries: int = 60,
) -> SceneObject | None:
    """Position a new object fully inside the image; None if no free spot is found."""
    size = config.image_size
    for _ in range(tries):
        radius = float(rng.uniform(config.min_radius, config.max_radius))
        x, y = (float(v) for v in rng.uniform(radius + 1, size - radius - 1, size=2))
        angle = float(rng.uniform(0.0, 360.0))
        fits = True
        for other in placed:
            distance = math.hypot(x - other.x, y - other.y)
            # Same kinds must not touch (countable); different kinds may partly occlude.
            needed = (
                radius + other.radius + 1.0
                if other.name == name
                else config.min_separation * (radius + other.radius)
            )
            if distance < needed:
                fits = False
                break
        if fits:
            return SceneObject(
                name=name,
                x=round(x, 3),
                y=round(y, 3),
                radius=round(radius, 3),
                angle=round(angle, 3),
            )
    return None


def _clutter_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A low-saturation colour, so clutter never looks like an object's colour."""
    level = rng.uniform(40, 220)
    return tuple(int(c) for c in np.clip(level + rng.uniform(-18, 18, size=3), 0, 255))


def _rotated(
    points: list[tuple[float, float]], cx: float, cy: float, degrees: float
) -> list[tuple[float, float]]:
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    return [(cx + px * cos - py * sin, cy + px * sin + py * cos) for px, py in points]


def _star_points(outer: float, inner: float) -> list[tuple[float, float]]:
    return [
        (
            (outer if k % 2 == 0 else inner) * math.sin(math.pi * k / 5),
            -(outer if k % 2 == 0 else inner) * math.cos(math.pi * k / 5),
        )
        for k in range(10)
    ]


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, obj: SceneObject, colour: tuple[int, int, int]
) -> None:
    """Draw one shape inside the circle of ``obj.radius`` (on the supersampled canvas)."""
    s = _SUPERSAMPLE
    cx, cy, r = obj.x * s, obj.y * s, obj.radius * s
    # Shapes with a natural "up" (window, cactus, kite) only tilt a little.
    tilt = (obj.angle / 360.0 - 0.5) * 40.0
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        draw.regular_polygon((cx, cy, r), 4, rotation=obj.angle % 90, fill=colour)
    elif shape == "bar":
        half_len, half_thick = r, 0.38 * r
        corners = [
            (-half_len, -half_thick),
            (half_len, -half_thick),
            (half_len, half_thick),
            (-half_len, half_thick),
        ]
        draw.polygon(_rotated(corners, cx, cy, obj.angle), fill=colour)
    elif shape == "star":
        draw.polygon(_rotated(_star_points(r, 0.45 * r), cx, cy, obj.angle), fill=colour)
    elif shape == "frame":
        half = r / math.sqrt(2)
        corners = [(-half, -half), (half, -half), (half, half), (-half, half)]
        draw.polygon(
            _rotated(corners, cx, cy, tilt), outline=colour, width=max(2 * s, round(0.32 * r))
        )
    elif shape == "triangle":
        draw.regular_polygon((cx, cy, r), 3, rotation=obj.angle, fill=colour)
    elif shape == "cross":
        arm, half = r, 0.32 * r
        plus = [
            (-half, -arm),
            (half, -arm),
            (half, -half),
            (arm, -half),
            (arm, half),
            (half, half),
            (half, arm),
            (-half, arm),
            (-half, half),
            (-arm, half),
            (-arm, -half),
            (-half, -half),
        ]
        draw.polygon(_rotated(plus, cx, cy, tilt), fill=colour)
    elif shape == "hexagon":
        draw.regular_polygon((cx, cy, r), 6, rotation=obj.angle % 60, fill=colour)
    elif shape == "diamond":
        rhombus = [(0.0, -r), (0.62 * r, 0.0), (0.0, r), (-0.62 * r, 0.0)]
        draw.polygon(_rotated(rhombus, cx, cy, tilt), fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _incidence(scenes: Iterable[Scene]) -> pd.DataFrame:
    """Scene x kind 0/1 matrix (columns in :data:`OBJECTS` order)."""
    rows = [[int(name in scene.present()) for name in OBJECTS] for scene in scenes]
    return pd.DataFrame(
        np.array(rows, dtype=np.int64).reshape(-1, len(OBJECTS)), columns=list(OBJECTS)
    )
