"""The one question table every benchmark writes (synthetic and real), one row per question.

Columns
-------
question_id   str    unique within the table
image_id      str    images shared by several questions share this id (splits are by image)
image         bytes  the encoded image (PNG for the synthetic set, the original JPEG for COCO)
question      str    the question text, without any model-specific template
answer        str    ground-truth answer, lower-case, one word ("yes", "no", "2", "apple", ...)
task          str    one of TASKS
pope_setting  str    "random" | "popular" | "adversarial" for presence questions, "" otherwise
object        str    the object the question is about ("" where none)
"""

from __future__ import annotations

import pandas as pd

COLUMNS: tuple[str, ...] = (
    "question_id",
    "image_id",
    "image",
    "question",
    "answer",
    "task",
    "pope_setting",
    "object",
)
TASKS: tuple[str, ...] = ("presence", "counting", "spatial", "object_id", "caption")
# "caption" exists only in training splits (an auxiliary task that speeds up learning).
POPE_SETTINGS: tuple[str, ...] = ("random", "popular", "adversarial")


class BenchmarkSchemaError(ValueError):
    """A question table does not follow :data:`COLUMNS`; the message names the problem."""


def validate_questions(df: pd.DataFrame, source: str = "question table") -> pd.DataFrame:
    """Check columns, types and value sets; return the frame with columns in canonical order."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise BenchmarkSchemaError(
            f"{source}: missing column(s) {missing}; expected columns {list(COLUMNS)}"
        )
    if df["question_id"].duplicated().any():
        dup = df.loc[df["question_id"].duplicated(), "question_id"].iloc[0]
        raise BenchmarkSchemaError(f"{source}: question_id {dup!r} occurs more than once")
    bad_task = sorted(set(df["task"]) - set(TASKS))
    if bad_task:
        raise BenchmarkSchemaError(f"{source}: unknown task(s) {bad_task}; allowed {list(TASKS)}")
    presence = df["task"] == "presence"
    bad_setting = sorted(set(df.loc[presence, "pope_setting"]) - set(POPE_SETTINGS))
    if bad_setting:
        raise BenchmarkSchemaError(
            f"{source}: presence rows need pope_setting in {list(POPE_SETTINGS)}, found {bad_setting}"
        )
    if (df.loc[~presence, "pope_setting"] != "").any():
        raise BenchmarkSchemaError(f"{source}: pope_setting must be '' for non-presence rows")
    if not df["image"].map(lambda b: isinstance(b, (bytes, bytearray)) and len(b) > 0).all():
        raise BenchmarkSchemaError(f"{source}: column 'image' must hold non-empty encoded image bytes")
    for col in ("question_id", "image_id", "question", "answer", "task", "pope_setting", "object"):
        if not df[col].map(lambda v: isinstance(v, str)).all():
            raise BenchmarkSchemaError(f"{source}: column {col!r} must hold strings")
    return df.loc[:, list(COLUMNS)].reset_index(drop=True)
