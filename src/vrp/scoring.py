"""Answer scoring, used everywhere after the benchmark is built; the one definition of every
readout.

Candidates and surface forms
----------------------------
The candidates of a task are the distinct ground-truth answers of that task in the question table
(presence/spatial: yes, no; counting: the digits; object_id: the category names). Each candidate
is a set of *surface forms* (:func:`surface_forms`): the answer as written, lower-case,
capitalised and upper-case ("yes", "Yes", "YES"); a count also as its number word and back
("3", "three", "Three", "THREE"), for 0..10. Each form is tokenised as it would continue the
prompt, once with the family's separator (LLaVA's " " after "ASSISTANT:", nothing after the
newline of PaliGemma and Qwen2-VL) and once with the other of "" / " "
(:meth:`vrp.adapters.base.FamilyAdapter.answer_spacings`). Token sequences that cannot follow the
prompt's own tokens, or hold the unknown token (a word-level vocabulary lacking "Yes"), are
dropped; equal sequences are kept once. A candidate with no form left, or one sequence claimed by
two candidates, is an error.

Scoring (teacher forcing)
-------------------------
A form's score is its sequence log-probability after the prompt,
``log p(t1 | prompt) + log p(t2 | prompt, t1) + ...``; a candidate's mass is the log-sum-exp over
its forms, ``log P(answer)``; the **prediction** is the candidate with the largest mass. A form
that is the start of a longer form (Llama's " 1" = "▁", "1" begins " 10" = "▁", "1", "0") is read
as a whole answer: its score also carries ``log(1 - p(next token continues it into a longer
form))``, so " 1" does not collect the mass of " 10" and the forms' events stay disjoint. The
prompt's forward gives every first token; only forms of two or more tokens need more: their
proper prefixes are run as one right-padded batch over the prompt's KV cache (copied to one row
per prefix, in chunks of ``max_continuation_rows``), so forms that share a first token (Llama's
bare "▁" before a digit, "baseball bat" / "baseball glove") are told apart by their later tokens.
With a one-token-per-word vocabulary (the demo) every form is one token and no continuation runs.

Readouts per question (columns of ``samples.parquet``)
------------------------------------------------------
``prediction``            the candidate with the largest mass; ``correct`` = prediction == answer
``confidence``            P(prediction) = sum of its forms' sequence probabilities (full vocabulary)
``p_answer``              P(ground-truth answer), the same sum for the answer's forms
``candidate_confidence``  P(prediction) renormalised over the task's candidates
``p_yes`` / ``p_no``      P("yes") / P("no") where those are candidates, else NaN
``entropy``               entropy (nats) of the next-token distribution at the last prompt token
``margin_top2``           top-1 minus top-2 next-token logit at the last prompt token
``prediction_form``       the best-scoring form of the prediction (spacing included), e.g. " Yes"
``answer_form``           the best-scoring form of the ground-truth answer
``prediction_token_id``   the first token of ``prediction_form``
``answer_token_id``       the first token of ``answer_form``

For yes/no questions every form of "yes"/"no" in the three real vocabularies is a single token
except upper-case spellings some tokenizers split, so confidence, p_answer, p_yes and p_no are the
paper's first-token probabilities, summed over the case/spacing forms. ``entropy`` and
``margin_top2`` are first-token quantities for every task, as in the paper. The logit-lens margins
(``lens_margin``, ``lens_margin_blank``: ``answer_token_id``; ``lens_margin_pred``:
``prediction_token_id``) and the direct logit contributions (``embed_logit``, ``attn_logit``,
``mlp_logit``, ``head_logit``: ``answer_token_id``) of :mod:`vrp.extract` read the first token of
the best-scoring form, at the last prompt position. For a multi-token answer that token can be
shared with other candidates (LLaVA's "▁" before every digit), so there the lens margin measures
the step into the answer, not the choice between candidates; the sequence scores above make that
choice. ``blank_prediction`` is the prediction on the grey image, scored the same way.

Greedy-generation cross-check
-----------------------------
A seeded share of the questions (:func:`generation_selected`) is also answered by greedy
decoding, ``max_new_tokens`` tokens; the decoded text is ``generated_text`` and its parse
(:func:`parse_generation`, lmms-eval's POPE rule for yes/no: lower-case, strip, the first whole
word "yes" or "no", else the text itself) is ``generated_answer``; ``generation_checked`` marks
those rows. The agreement rate of ``generated_answer`` with ``prediction`` goes into the manifest
and ``results/accuracy.csv``.

Sampled generations (self-consistency) are compared as normalised free text
(:func:`vrp.stats.consistency.normalize_answer`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from vrp.adapters.base import FamilyAdapter
from vrp.prompt_pass import (
    PromptPass,
    PromptState,
    cache_rows,
    generate,
    image_key,
    prompt_passes,
    uses_shared_prefix,
)

SCORED_TASKS_EXCLUDED = ("caption",)
YES_NO_TASKS = ("presence", "spatial")
NUMBER_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
)
DEFAULT_MAX_CONTINUATION_ROWS = 16


def candidate_sets(questions: pd.DataFrame) -> dict[str, list[str]]:
    """Distinct ground-truth answers per task (sorted), the answer candidates of that task."""
    scored = questions[~questions["task"].isin(SCORED_TASKS_EXCLUDED)]
    return {task: sorted(group["answer"].unique()) for task, group in scored.groupby("task")}


def surface_forms(answer: str) -> list[str]:
    """The spellings that count as one answer: case variants, number word <-> digit (0..10)."""
    spellings = [answer]
    key = answer.strip().lower()
    if key.isdigit() and int(key) < len(NUMBER_WORDS):
        spellings.append(NUMBER_WORDS[int(key)])
    elif key in NUMBER_WORDS:
        spellings.append(str(NUMBER_WORDS.index(key)))
    forms: list[str] = []
    for text in spellings:
        for variant in (text, text.lower(), text[:1].upper() + text[1:].lower(), text.upper()):
            if variant not in forms:
                forms.append(variant)
    return forms


@dataclass(frozen=True)
class Form:
    """One surface form of a candidate: ``text`` (spacing included), its ids after the prompt."""

    answer: int  # index into the task's candidate list
    text: str
    ids: tuple[int, ...]


class CandidateIndex:
    """Each task's candidates as surface forms tokenised by one adapter (module docstring)."""

    def __init__(self, adapter: FamilyAdapter, candidates: dict[str, list[str]]):
        self.candidates = {task: list(answers) for task, answers in candidates.items()}
        self.forms = {
            task: _task_forms(adapter, task, answers) for task, answers in self.candidates.items()
        }
        self.needs_continuation = any(
            len(f.ids) > 1 for forms in self.forms.values() for f in forms
        )
        # per form, the tokens that would continue it into a longer form of the task (" 1" -> "0"
        # of " 10"): reading the form as a whole answer excludes them
        self.extensions = {
            task: [_extensions(form, forms) for form in forms] for task, forms in self.forms.items()
        }
        self.first_ids = {
            task: torch.tensor([f.ids[0] for f in forms]) for task, forms in self.forms.items()
        }
        self.slots = {
            task: _slots(forms, len(self.candidates[task])) for task, forms in self.forms.items()
        }
        self.requests = {
            task: _Requests(forms, self.extensions[task]) for task, forms in self.forms.items()
        }


class _Requests:
    """What the continuation positions of one task's forms must deliver (the same for every row).

    ``steps``: prefix -> (form slots, their next tokens); ``stops``: a form's ids -> [(slot, tokens
    that would extend it)]; ``rows``: the prefixes no other extends, one continuation row each.
    """

    def __init__(self, forms: list[Form], extensions: list[tuple[int, ...]]):
        steps: dict[tuple[int, ...], tuple[list[int], list[int]]] = {}
        self.stops: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
        for k, form in enumerate(forms):
            for j in range(1, len(form.ids)):
                slots, tokens = steps.setdefault(form.ids[:j], ([], []))
                slots.append(k)
                tokens.append(form.ids[j])
            if extensions[k]:
                self.stops.setdefault(form.ids, []).append((k, torch.tensor(extensions[k])))
        self.steps = {p: (torch.tensor(a), torch.tensor(b)) for p, (a, b) in steps.items()}
        inner = {p[:i] for p in steps for i in range(1, len(p))}
        self.rows = sorted(p for p in steps if p not in inner)


def _slots(forms: list[Form], n_candidates: int) -> torch.Tensor:
    """(candidates, most forms) indices of each candidate's forms, padded with len(forms)."""
    mine = [[k for k, f in enumerate(forms) if f.answer == c] for c in range(n_candidates)]
    width = max(len(m) for m in mine)
    return torch.tensor([m + [len(forms)] * (width - len(m)) for m in mine], dtype=torch.long)


def _extensions(form: Form, forms: list[Form]) -> tuple[int, ...]:
    n = len(form.ids)
    return tuple(sorted({g.ids[n] for g in forms if len(g.ids) > n and g.ids[:n] == form.ids}))


def _task_forms(adapter: FamilyAdapter, task: str, answers: list[str]) -> list[Form]:
    forms: list[Form] = []
    owner: dict[tuple[int, ...], int] = {}
    for index, answer in enumerate(answers):
        found = 0
        for spacing in adapter.answer_spacings():
            for text in surface_forms(answer):
                ids = adapter.form_token_ids(text, spacing)
                if ids is None:
                    continue
                ids = tuple(ids)
                if ids in owner:
                    if owner[ids] != index:
                        raise ValueError(
                            f"{adapter.family}, task {task!r}: candidates "
                            f"{answers[owner[ids]]!r} and "
                            f"{answer!r} have a surface form with the same tokens "
                            f"{adapter.tokenizer.convert_ids_to_tokens(list(ids))}; "
                            "they cannot be told apart"
                        )
                    continue
                owner[ids] = index
                forms.append(Form(index, spacing + text, ids))
                found += 1
        if not found:
            raise ValueError(
                f"candidate {answer!r} of task {task!r} is not in the {adapter.family} tokenizer's "
                "vocabulary (no surface form tokenises without the unknown token after the prompt)"
            )
    return forms


@dataclass
class AnswerScores:
    """Per row of a batch: each candidate's log-mass and best form (candidates in task order), and
    each form's sequence log-probability (in the order of ``CandidateIndex.forms[task]``)."""

    log_mass: list[torch.Tensor]
    best_form: list[list[Form]]
    form_log_probs: list[torch.Tensor]


@torch.no_grad()
def score_answers(
    adapter: FamilyAdapter,
    index: CandidateIndex,
    tasks: list[str],
    first_log_probs: torch.Tensor,
    state: PromptState | None = None,
    max_rows: int = DEFAULT_MAX_CONTINUATION_ROWS,
) -> AnswerScores:
    """Sequence log-probabilities of every form, log-sum-exp per candidate (module docstring).

    ``first_log_probs`` (B, V) are the log-softmaxed next-token logits at the last prompt token.
    ``state`` (the prompt pass's, with its KV cache) is needed when a task has multi-token forms.
    """
    first_log_probs = first_log_probs.float()
    row_forms = [index.forms[task] for task in tasks]
    scores = [
        first_log_probs[b, index.first_ids[task].to(first_log_probs.device)]
        for b, task in enumerate(tasks)
    ]
    prefixes = [(b, prefix) for b, task in enumerate(tasks) for prefix in index.requests[task].rows]
    if prefixes:
        if state is None or state.cache is None:
            raise ValueError("multi-token answer forms need the prompt pass's state and KV cache")
        for (b, prefix), log_probs in _continuation_log_probs(adapter, prefixes, state, max_rows):
            requests = index.requests[tasks[b]]
            if prefix in requests.steps:
                slots, tokens = requests.steps[prefix]
                values = log_probs[tokens.to(log_probs.device)].to(scores[b].dtype)
                scores[b] = scores[b].index_add(0, slots.to(scores[b].device), values)
            for k, extensions in requests.stops.get(prefix, ()):
                # log(1 - p(continuing into a longer form)), in float64 so p -> 1 stays finite
                going_on = torch.logsumexp(log_probs[extensions.to(log_probs.device)].double(), 0)
                stop = torch.log(-torch.expm1(going_on.clamp(max=-1e-300)))
                scores[b][k] += stop.to(scores[b].dtype)
    log_mass, best = [], []
    for b, (task, forms) in enumerate(zip(tasks, row_forms)):
        slots = index.slots[task].to(scores[b].device)  # (candidates, forms of the largest), padded
        padded = torch.cat([scores[b], scores[b].new_full((1,), float("-inf"))])[slots]
        log_mass.append(torch.logsumexp(padded, dim=1))
        chosen = slots.gather(1, padded.argmax(1, keepdim=True)).squeeze(1).tolist()
        best.append([forms[k] for k in chosen])
    return AnswerScores(log_mass, best, scores)


def _continuation_log_probs(adapter, prefixes, state: PromptState, max_rows):
    """Yield ((row, prefix), next-token log-probs (V,)) for every prefix of every continuation row,
    each once; chunk by chunk, so only one chunk's logits are alive at a time."""
    pad = adapter.tokenizer.pad_token_id
    pad = pad if pad is not None else 0
    device = state.key_mask.device
    seen = set()
    for start in range(0, len(prefixes), max_rows):
        chunk = prefixes[start : start + max_rows]
        length = max(len(p) for _, p in chunk)
        suffix = torch.full((len(chunk), length), pad, dtype=torch.long, device=device)
        mask = torch.zeros((len(chunk), length), dtype=state.key_mask.dtype, device=device)
        for r, (_, prefix) in enumerate(chunk):
            suffix[r, : len(prefix)] = torch.tensor(prefix, dtype=suffix.dtype)
            mask[r, : len(prefix)] = 1
        rows = torch.tensor([b for b, _ in chunk], device=device)
        kwargs = adapter.continuation_inputs(state, rows, suffix, mask)
        logits = adapter.forward(
            **kwargs, cache=cache_rows(state.cache, rows), use_cache=True
        ).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        for r, (b, prefix) in enumerate(chunk):
            for j in range(len(prefix)):
                key = (b, prefix[: j + 1])
                if key not in seen:
                    seen.add(key)
                    yield key, log_probs[r, j]
        del logits, log_probs


def readouts(
    logits: torch.Tensor,
    scores: AnswerScores,
    tasks: list[str],
    answers: list[str],
    index: CandidateIndex,
) -> pd.DataFrame:
    """The per-question readout columns (module docstring) from last-position logits ``(B, V)``."""
    logits = logits.float()
    log_probs = torch.log_softmax(logits, dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    top2 = logits.topk(2, dim=-1).values
    rows = []
    for b, (task, answer) in enumerate(zip(tasks, answers)):
        names = index.candidates[task]
        mass = scores.log_mass[b]
        best = int(mass.argmax())
        truth = names.index(answer)
        row = {
            "prediction": names[best],
            "correct": names[best] == answer,
            "confidence": float(mass[best].exp()),
            "p_answer": float(mass[truth].exp()),
            "candidate_confidence": float(torch.softmax(mass, -1)[best]),
            "entropy": float(entropy[b]),
            "margin_top2": float(top2[b, 0] - top2[b, 1]),
        }
        for word in ("yes", "no"):
            row[f"p_{word}"] = float(mass[names.index(word)].exp()) if word in names else np.nan
        row["prediction_form"] = scores.best_form[b][best].text
        row["answer_form"] = scores.best_form[b][truth].text
        row["prediction_token_id"] = scores.best_form[b][best].ids[0]
        row["answer_token_id"] = scores.best_form[b][truth].ids[0]
        rows.append(row)
    return pd.DataFrame(rows)


def score_pass(
    adapter: FamilyAdapter,
    index: CandidateIndex,
    prompt: PromptPass,
    tasks: list[str],
    answers: list[str],
    max_rows: int = DEFAULT_MAX_CONTINUATION_ROWS,
) -> pd.DataFrame:
    """Continuation scoring + readouts of one prompt pass (rows in the pass's order)."""
    scores = score_answers(
        adapter, index, tasks, torch.log_softmax(prompt.logits.float(), -1), prompt.state, max_rows
    )
    return readouts(prompt.logits, scores, tasks, answers, index)


def in_batch_order(parts: list[tuple[list[int], pd.DataFrame]]) -> pd.DataFrame:
    """Per-group frames (rows, frame) put back into the batch's row order."""
    rows = [r for group, _ in parts for r in group]
    frame = pd.concat([f for _, f in parts], ignore_index=True)
    order = sorted(range(len(rows)), key=rows.__getitem__)
    return frame.iloc[order].reset_index(drop=True)


@torch.no_grad()
def score_batch(
    adapter: FamilyAdapter,
    index: CandidateIndex,
    images: Sequence,
    questions: Sequence[str],
    tasks: list[str],
    answers: list[str],
    share_prefix: bool = True,
    max_rows: int = DEFAULT_MAX_CONTINUATION_ROWS,
) -> pd.DataFrame:
    """Prompt passes (:mod:`vrp.prompt_pass`) + continuation scoring + readouts for one batch."""
    parts = []
    for rows, prompt in prompt_passes(
        adapter, images, questions, index.needs_continuation, share_prefix
    ):
        frame = score_pass(
            adapter, index, prompt, [tasks[r] for r in rows], [answers[r] for r in rows], max_rows
        )
        parts.append((rows, frame))
    return in_batch_order(parts)


def image_batches(image_ids: Sequence, batch_size: int) -> list[list[int]]:
    """Row indices in batches of about ``batch_size`` that keep each image's rows together.

    Rows are grouped by ``image_ids`` (first appearance order); an image's rows stay in one
    batch unless they alone exceed ``batch_size``. Whole images go into a batch until the next
    would overflow it, so every image's prefix is computed once per batch that holds it.
    """
    groups: dict = {}
    for row, key in enumerate(image_ids):
        groups.setdefault(key, []).append(row)
    batches: list[list[int]] = []
    current: list[int] = []
    for rows in groups.values():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            if current and len(current) + len(chunk) > batch_size:
                batches.append(current)
                current = []
            current = current + chunk
    if current:
        batches.append(current)
    return batches


def question_batches(questions: pd.DataFrame, batch_size: int, by_image: bool) -> list[list[int]]:
    """Row indices of ``questions`` in batches: whole images together (:func:`image_batches`)
    when prefixes are shared, else consecutive rows."""
    if by_image:
        return image_batches(questions["image_id"].tolist(), batch_size)
    return consecutive_batches(len(questions), batch_size)


def consecutive_batches(n: int, batch_size: int) -> list[list[int]]:
    """``range(n)`` in batches of ``batch_size``."""
    return [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]


# An image's prefix pass and its suffix pass are two forwards of their own, so sharing pays only
# where enough questions see the same pixels (on the demo's zoo, groups of two or three, e.g.
# HIGH masks that rank the same patches first, ran slower shared than in batched full passes).
MIN_SHARED_ROWS = 4


def content_batches(
    images: Sequence, batch_size: int, min_shared: int = MIN_SHARED_ROWS
) -> list[tuple[list[int], bool]]:
    """Batches ``(rows, share)`` of given images (e.g. patch-masked copies), by pixel content.

    Rows whose pixels at least ``min_shared`` rows have (an image's RANDOM mask, the same for each
    of its questions) are batched image by image and share one prefix (``share`` True); the other
    rows run together as batched full passes (``share`` False).
    """
    keys = [image_key(image) for image in images]
    counts = pd.Series(keys).value_counts()
    repeated = [row for row, key in enumerate(keys) if counts[key] >= min_shared]
    single = [row for row, key in enumerate(keys) if counts[key] < min_shared]
    shared = [
        ([repeated[i] for i in rows], True)
        for rows in image_batches([keys[r] for r in repeated], batch_size)
    ]
    alone = [
        ([single[i] for i in rows], False) for rows in consecutive_batches(len(single), batch_size)
    ]
    return shared + alone


@torch.no_grad()
def predict(
    adapter: FamilyAdapter,
    questions: pd.DataFrame,
    candidates: dict[str, list[str]],
    batch_size: int = 32,
    images: list | None = None,
    progress: bool = False,
    max_continuation_rows: int = DEFAULT_MAX_CONTINUATION_ROWS,
    share_prefix: bool = True,
) -> pd.DataFrame:
    """Scored answers and readouts for ``questions``, rows in the table's order.

    ``images`` (PIL, one per row) replaces the table's own images, e.g. patch-masked copies;
    interventions on the model (ablation hooks) are registered by the caller around this call and
    act on every pass, the shared prefixes included. With ``share_prefix`` the rows of one image
    are batched together and share one prefix pass (:mod:`vrp.prompt_pass`); given images share
    where their pixels are equal (:func:`content_batches`).
    """
    from tqdm.auto import tqdm

    questions = questions.reset_index(drop=True)
    index = CandidateIndex(adapter, candidates)
    parts = []
    for rows, share in tqdm(
        prediction_batches(adapter, questions, batch_size, images, share_prefix),
        desc=f"predict {adapter.family}",
        mininterval=5,
        disable=not progress,
    ):
        frame = predict_batch(adapter, index, questions, rows, share, images, max_continuation_rows)
        parts.append((rows, frame))
    return in_batch_order(parts)


def prediction_batches(
    adapter: FamilyAdapter,
    questions: pd.DataFrame,
    batch_size: int,
    images: list | None = None,
    share_prefix: bool = True,
) -> list[tuple[list[int], bool]]:
    """The batches ``(rows, share)`` :func:`predict` scores ``questions`` (index 0..n-1) in."""
    if images is not None and len(images) != len(questions):
        raise ValueError(f"got {len(images)} images for {len(questions)} questions")
    sharing = uses_shared_prefix(adapter, share_prefix)
    if images is None:
        return [(rows, sharing) for rows in question_batches(questions, batch_size, sharing)]
    if sharing:  # given images: rows share a prefix where their pixels are equal
        return content_batches(images, batch_size)
    return [(rows, False) for rows in consecutive_batches(len(questions), batch_size)]


@torch.no_grad()
def predict_batch(
    adapter: FamilyAdapter,
    index: CandidateIndex,
    questions: pd.DataFrame,
    rows: list[int],
    share: bool,
    images: list | None = None,
    max_continuation_rows: int = DEFAULT_MAX_CONTINUATION_ROWS,
) -> pd.DataFrame:
    """:func:`predict`'s frame of one batch (``rows`` of ``questions``, in that order)."""
    from vrp.benchmark.images import decode_images

    batch = questions.iloc[rows]
    batch_images = (
        [images[r] for r in rows] if images is not None else decode_images(batch["image"])
    )
    out = score_batch(
        adapter,
        index,
        batch_images,
        batch["question"].tolist(),
        batch["task"].tolist(),
        batch["answer"].tolist(),
        share,
        max_continuation_rows,
    )
    meta = batch[["question_id", "image_id", "task", "pope_setting", "answer"]].reset_index(
        drop=True
    )
    return pd.concat([meta, out], axis=1)


# ---------------------------------------------------------------------------------------------
# greedy-generation cross-check
# ---------------------------------------------------------------------------------------------
_YES_NO = re.compile(r"\b(yes|no)\b")
_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")


def generation_selected(question_ids, fraction: float, seed: int) -> np.ndarray:
    """Bool per question: is it in the seeded generation sample? (hash of seed and id < fraction,
    so the choice of a question does not depend on batching, sharding or the other questions)."""
    if fraction >= 1:
        return np.ones(len(question_ids), dtype=bool)
    draws = [
        int.from_bytes(hashlib.sha256(f"{seed}:{qid}".encode()).digest()[:8], "big") / 2**64
        for qid in question_ids
    ]
    return np.asarray(draws, dtype=np.float64) < fraction


def parse_generation(text: str, task: str, candidates: list[str]) -> str:
    """A generated answer mapped to a candidate the lmms-eval way.

    Yes/no tasks: lower-case and strip, then the first whole word "yes" or "no" (lmms-eval's POPE
    parse), else the stripped text. Other tasks: lower-case, strip, edge punctuation removed; a
    number word 0..10 becomes its digit; the longest candidate the text starts with (as whole
    words) wins, else the cleaned text (which then matches no candidate).
    """
    cleaned = str(text).lower().strip()
    if task in YES_NO_TASKS:
        found = _YES_NO.search(cleaned)
        return found.group(1) if found else cleaned
    cleaned = _EDGE_PUNCTUATION.sub("", cleaned)
    words = cleaned.split()
    if words and _EDGE_PUNCTUATION.sub("", words[0]) in NUMBER_WORDS:
        words[0] = str(NUMBER_WORDS.index(_EDGE_PUNCTUATION.sub("", words[0])))
        cleaned = " ".join(words)
    for candidate in sorted(candidates, key=len, reverse=True):
        name = candidate.lower()
        if cleaned == name or re.match(rf"{re.escape(name)}\b", cleaned):
            return candidate
    return cleaned


@torch.no_grad()
def greedy_generations(
    adapter: FamilyAdapter,
    images: list,
    questions: list[str],
    max_new_tokens: int,
    share_prefix: bool = True,
) -> list[str]:
    """Greedy decoding of ``max_new_tokens`` tokens per prompt: new text, special tokens skipped.

    Decoded from the prompt passes' states (:func:`vrp.prompt_pass.generate`), so a shared prefix
    serves generation as it serves scoring.
    """
    texts = [""] * len(questions)
    for rows, prompt in prompt_passes(adapter, images, questions, True, share_prefix):
        ids = generate(
            adapter,
            prompt.logits,
            prompt.state,
            max_new_tokens,
            lambda logits, _: logits.argmax(-1),
        )
        decoded = adapter.tokenizer.batch_decode(ids, skip_special_tokens=True)
        for r, text in zip(rows, decoded):
            texts[r] = text.strip()
    return texts


def generation_summary(samples: pd.DataFrame) -> dict:
    """Agreement of the parsed greedy generations with the scored predictions (checked rows)."""
    if "generation_checked" not in samples:
        return {"n_checked": 0, "agreement": None}
    checked = samples[samples["generation_checked"].astype(bool)]
    if checked.empty:
        return {"n_checked": 0, "agreement": None}
    agree = checked["generated_answer"] == checked["prediction"]
    by_task = {task: float(group.mean()) for task, group in agree.groupby(checked["task"])}
    return {
        "n_checked": int(len(checked)),
        "agreement": float(agree.mean()),
        "agreement_by_task": by_task,
    }
