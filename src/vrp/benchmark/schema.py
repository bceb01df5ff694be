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

import hashlib
import io

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


# The answers each task's scoring can read (object_id answers are object names: any non-empty word).
YES_NO = ("yes", "no")
TASK_ANSWERS = {"presence": "yes/no", "spatial": "yes/no", "counting": "a count in digits (0-99)"}


def _rows(df: pd.DataFrame, mask) -> str:
    """The first few question_ids (or row numbers) where ``mask`` holds, for an error message."""
    mask = pd.Series(mask, index=df.index).fillna(True).astype(bool)
    ids = df.loc[mask, "question_id"] if "question_id" in df.columns else pd.Series(df.index[mask])
    shown = ", ".join(repr(str(v)) for v in ids.iloc[:5])
    return f"{int(mask.sum())} row(s), question_id {shown}{' ...' if mask.sum() > 5 else ''}"


def _answer_ok(task: str, answer) -> bool:
    if not isinstance(answer, str) or not answer.strip():
        return False
    if task in ("presence", "spatial"):
        return answer in YES_NO
    if task == "counting":
        return answer.isascii() and answer.isdigit() and len(answer) <= 2
    return True


def _decodes(data) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(bytes(data))) as image:
            image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False
    return True


FIX = (
    "Rebuild the table from its source (snakemake -R data_synthetic / data_pope / "
    "data_coco_tasks) or fix the rows"
)


def validate_questions(
    df: pd.DataFrame, source: str = "question table", check_images: bool = True
) -> pd.DataFrame:
    """Check columns, types and value sets; return the frame with columns in canonical order.

    Checked: every column of :data:`COLUMNS`; unique non-empty question_id; known tasks; POPE
    settings; non-empty question text; each task's answer set (presence and spatial yes/no,
    counting digits, the rest non-empty); non-empty image bytes that decode (once per distinct
    image). Every message names the column, the offending rows' question_ids and the fix.
    """
    if not isinstance(df, pd.DataFrame):
        raise BenchmarkSchemaError(
            f"{source}: expected a table (DataFrame), got {type(df).__name__}"
        )
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise BenchmarkSchemaError(
            f"{source}: missing column(s) {missing}; expected columns {list(COLUMNS)}. {FIX}"
        )
    if df.empty:
        raise BenchmarkSchemaError(f"{source}: the table has no rows. {FIX}")
    for col in ("question_id", "image_id", "question", "answer", "task", "pope_setting", "object"):
        bad = ~df[col].map(lambda v: isinstance(v, str))
        if bad.any():
            raise BenchmarkSchemaError(
                f"{source}: column {col!r} must hold strings; {_rows(df, bad)}. {FIX}"
            )

    def refuse(bad: pd.Series, message) -> None:
        """Raise naming the table, ``message(bad)`` and the fix when any row is ``bad``."""
        if bad.any():
            raise BenchmarkSchemaError(f"{source}: {message(bad)}. {FIX}")

    refuse(
        df["question_id"].str.strip() == "",
        lambda bad: f"column 'question_id' is empty in {int(bad.sum())} row(s)",
    )
    duplicated = df["question_id"].duplicated(keep=False)
    if duplicated.any():
        dups = sorted(df.loc[duplicated, "question_id"].unique())
        raise BenchmarkSchemaError(
            f"{source}: column 'question_id' must be unique; {dups[:5]}{' ...' if len(dups) > 5 else ''} "
            f"occur more than once ({int(duplicated.sum())} rows). {FIX}"
        )
    bad_task = sorted(set(df["task"]) - set(TASKS))
    if bad_task:
        raise BenchmarkSchemaError(
            f"{source}: column 'task' holds unknown task(s) {bad_task} in "
            f"{_rows(df, ~df['task'].isin(TASKS))}; allowed {list(TASKS)}. {FIX}"
        )
    presence = df["task"] == "presence"
    refuse(
        presence & ~df["pope_setting"].isin(POPE_SETTINGS),
        lambda bad: (
            f"column 'pope_setting' of presence rows must be one of {list(POPE_SETTINGS)}, "
            f"found {sorted(set(df.loc[bad, 'pope_setting']))} in {_rows(df, bad)}"
        ),
    )
    refuse(
        ~presence & (df["pope_setting"] != ""),
        lambda bad: f"column 'pope_setting' must be '' for non-presence rows; {_rows(df, bad)}",
    )
    refuse(
        df["question"].str.strip() == "",
        lambda bad: f"column 'question' is empty in {_rows(df, bad)}",
    )
    for task, expected in TASK_ANSWERS.items():
        bad = (df["task"] == task) & ~df["answer"].map(lambda a, t=task: _answer_ok(t, a))
        if bad.any():
            found = sorted(set(df.loc[bad, "answer"]))[:5]
            raise BenchmarkSchemaError(
                f"{source}: column 'answer' of {task} rows must be {expected}; found {found} in "
                f"{_rows(df, bad)}. {FIX}"
            )
    empty_answer = df["answer"].str.strip() == ""
    if empty_answer.any():
        raise BenchmarkSchemaError(
            f"{source}: column 'answer' is empty in {_rows(df, empty_answer)}. {FIX}"
        )
    not_bytes = ~df["image"].map(lambda b: isinstance(b, (bytes, bytearray)) and len(b) > 0)
    if not_bytes.any():
        raise BenchmarkSchemaError(
            f"{source}: column 'image' must hold non-empty encoded image bytes; {_rows(df, not_bytes)}. {FIX}"
        )
    if check_images:
        digests = df["image"].map(lambda b: hashlib.sha256(b).digest())
        first = ~digests.duplicated()
        broken = {
            d for d, data in zip(digests[first], df.loc[first, "image"]) if not _decodes(data)
        }
        if broken:
            raise BenchmarkSchemaError(
                f"{source}: column 'image' holds bytes that do not decode as an image in "
                f"{_rows(df, digests.isin(broken))}. {FIX}"
            )
    return df.loc[:, list(COLUMNS)].reset_index(drop=True)


def read_questions(path, source: str | None = None) -> pd.DataFrame:
    """Read a question table (Parquet) and validate it: the way every job takes one in."""
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise BenchmarkSchemaError(
            f"{path}: not a readable Parquet question table ({err}). {FIX}"
        ) from err
    return validate_questions(df, source=source or str(path))
