"""Self-consistency (paper §3.10): K sampled answers per question, majority answer and its share.

S_SC = count(majority answer among the first k samples) / k, in [1/k, 1]. Answers are compared
after :func:`normalize_answer`.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from vrp.stats.correlation import as_binary
from vrp.stats.paired import wilson_interval

__all__ = ["normalize_answer", "self_consistency", "precision_at_full_agreement"]

_APOSTROPHES = re.compile(r"['\u2019]")
_NON_WORD = re.compile(r"[\W_]+")


def normalize_answer(text) -> str:
    """Canonical short answer: lower-case, punctuation removed, first word only.

    Apostrophes are deleted ("don't" -> "dont"); every other run of non-alphanumeric characters
    (punctuation, underscores, whitespace) becomes one space; the result is stripped and its
    first word returned. So "Yes." -> "yes", " Two apples" -> "two", "left-of" -> "left".
    None and NaN give "" (an empty answer).
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    cleaned = _NON_WORD.sub(" ", _APOSTROPHES.sub("", str(text).lower())).strip()
    return cleaned.split(" ", 1)[0] if cleaned else ""


def self_consistency(samples, k: int, normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Majority answer and S_SC from the first ``k`` sampled answers of each question.

    ``samples`` is 2-D (n_questions, K_max) of answer strings (list of lists or array). Answers
    are passed through :func:`normalize_answer` unless ``normalize=False``. Ties are broken by
    first occurrence among the first k samples (:meth:`collections.Counter.most_common` keeps
    insertion order for equal counts). Returns (majority answers as an object array of str,
    S_SC as float64 = count(majority)/k).
    """
    rows = [list(row) for row in samples]
    if not rows:
        return np.array([], dtype=object), np.array([], dtype=np.float64)
    k_max = min(len(row) for row in rows)
    if k < 1 or k > k_max:
        raise ValueError(
            f"k must lie in [1, {k_max}] (the fewest samples any question has), got {k}"
        )
    majority = np.empty(len(rows), dtype=object)
    share = np.empty(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        answers = [normalize_answer(a) if normalize else a for a in row[:k]]
        answer, count = Counter(answers).most_common(1)[0]
        majority[i] = answer
        share[i] = count / k
    return majority, share


def precision_at_full_agreement(s_sc, correct, alpha: float = 0.05) -> dict:
    """Accuracy among questions with S_SC = 1 (all samples agree), with a Wilson CI.

    Returns dict(precision, n, n_correct, lo, hi) as proportions in [0, 1]; NaN when no
    question has full agreement.
    """
    share = np.asarray(s_sc, dtype=np.float64)
    y = as_binary(correct)
    if share.shape != y.shape:
        raise ValueError(
            f"s_sc has shape {share.shape} but correct has {y.shape}; pass one value per question"
        )
    full = np.isclose(share, 1.0)
    n = int(full.sum())
    n_correct = int(y[full].sum())
    lo, hi = wilson_interval(n_correct, n, alpha)
    return {
        "precision": n_correct / n if n else math.nan,
        "n": n,
        "n_correct": n_correct,
        "lo": lo,
        "hi": hi,
    }
