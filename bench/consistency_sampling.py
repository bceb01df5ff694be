"""Benchmark: self-consistency sampling before and after one prefill per question.

Before (the pattern vrp used up to this change, kept here as the baseline): for each batch of
``--batch-size`` questions, ``k_max`` separate ``model.generate(do_sample=True)`` calls, each with
its own prefill of the whole batch, seeded per (batch, sample). After
(:func:`vrp.interventions.sampling.sample_answers`): one prompt pass per question (one shared
prefix per image), and all k_max samples of its questions decoded together from that state,
seeded per (question, sample).

Same questions, same K, same sampling settings. Reported: CPU seconds and samples/s of each (the
process's CPU time: a fair clock on a shared machine; one thread). The two use different random
streams, so their samples differ draw by draw. The distribution check compares them
statistically. For each question it takes the total-variation distance between the two
empirical answer distributions, and compares that with the same distance between two seeds of
the *before* pattern (the sampling noise). A chi-square test of homogeneity per task on the
pooled answer counts gives a p-value. Finally the *after* samples of the first questions are
checked draw by draw against the plain reference, one seeded ``generate`` per question and
sample.

    .venv/bin/python bench/consistency_sampling.py --family llava --n 170 --k 15
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd


def before(adapter, questions: pd.DataFrame, settings, seed: int) -> pd.DataFrame:
    """The previous implementation: k_max generate calls per batch, each its own prefill."""
    import torch

    from vrp import stats
    from vrp.benchmark.images import decode_images
    from vrp.interventions.sampling import generate_kwargs

    tokenizer = adapter.tokenizer
    parts = []
    for batch_index, start in enumerate(range(0, len(questions), settings.batch_size)):
        batch = questions.iloc[start : start + settings.batch_size]
        inputs = adapter.encode(decode_images(batch["image"]), batch["question"].tolist())
        length = inputs["input_ids"].shape[1]
        for sample in range(settings.k_max):
            torch.manual_seed(
                int(np.random.SeedSequence([seed, batch_index, sample]).generate_state(1)[0])
            )
            with torch.no_grad():
                output = adapter.model.generate(
                    **inputs, **generate_kwargs(settings, tokenizer.pad_token_id)
                )
            texts = tokenizer.batch_decode(output[:, length:], skip_special_tokens=True)
            parts.append(
                pd.DataFrame(
                    {
                        "question_id": batch["question_id"].to_numpy(),
                        "sample": sample,
                        "normalized": [stats.normalize_answer(t.strip()) for t in texts],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def distributions(samples: pd.DataFrame) -> pd.DataFrame:
    """Per question, the share of each normalised answer."""
    counts = samples.groupby(["question_id", "normalized"]).size().unstack(fill_value=0)
    return counts.div(counts.sum(axis=1), axis=0)


def mean_tv(a: pd.DataFrame, b: pd.DataFrame) -> float:
    a, b = a.align(b, join="outer", fill_value=0.0)
    return float(0.5 * (a - b).abs().sum(axis=1).mean())


def homogeneity(a: pd.DataFrame, b: pd.DataFrame, tasks: pd.Series) -> dict[str, float]:
    """Chi-square p-value per task: pooled answer counts of the two runs come from one distribution."""
    from scipy.stats import chi2_contingency

    out = {}
    for task in sorted(tasks.unique()):
        ids = set(tasks.index[tasks == task])
        table = pd.concat(
            [
                s[s["question_id"].isin(ids)]["normalized"].value_counts().rename(name)
                for name, s in (("a", a), ("b", b))
            ],
            axis=1,
        ).fillna(0)
        table = table[table.sum(axis=1) >= 5]  # the test's expected counts need a few per cell
        out[task] = (
            float(chi2_contingency(table.to_numpy().T)[1]) if len(table) > 1 else float("nan")
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="llava")
    parser.add_argument("--n", type=int, default=170, help="questions (whole images, ~17 each)")
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reference-questions", type=int, default=8)
    args = parser.parse_args()

    import torch

    from vrp.adapters import get_adapter_class
    from vrp.benchmark.synthetic import SyntheticBenchmarkConfig, generate_split
    from vrp.interventions.sampling import (
        ConsistencySettings,
        sample_answers,
        sample_answers_reference,
    )
    from vrp.zoo.tokenizer import questions_tokenizer

    torch.set_num_threads(1)
    table = generate_split(
        SyntheticBenchmarkConfig(n_train_images=1, n_eval_images=args.n // 17 + 2), "eval"
    )
    table = table[table["task"] != "caption"]
    keep = table["image_id"].drop_duplicates().head(max(1, args.n // 17))
    questions = table[table["image_id"].isin(keep)].reset_index(drop=True)
    # a random-init zoo-geometry model with a sharpened output layer, so the answers are a
    # distribution over a few words rather than uniform over the vocabulary
    adapter = get_adapter_class(args.family).build_tiny(
        questions_tokenizer(questions), {"num_hidden_layers": 4}, seed=0
    )
    with torch.no_grad():
        adapter.lm_head().weight.mul_(4.0)
    settings = ConsistencySettings(
        k_max=args.k,
        temperature=0.7,
        top_p=0.9,
        top_k=0,
        max_new_tokens=3,
        batch_size=args.batch_size,
        decode_rows=256,
        seed=0,
    )
    n_samples = len(questions) * args.k

    old, old_wall, old_cpu = timed(lambda: before(adapter, questions, settings, seed=0))
    old_again, _, _ = timed(lambda: before(adapter, questions, settings, seed=1))
    new, new_wall, new_cpu = timed(
        lambda: sample_answers(adapter, questions, settings, progress=False)
    )
    head = questions.head(args.reference_questions)
    reference = sample_answers_reference(adapter, head, settings)
    same = new[new["question_id"].isin(set(head["question_id"]))].reset_index(drop=True)

    tasks = questions.set_index("question_id")["task"]
    report = {
        "family": args.family,
        "questions": len(questions),
        "k": args.k,
        "before": {
            "wall_s": round(old_wall, 2),
            "cpu_s": round(old_cpu, 2),
            "samples_per_cpu_s": round(n_samples / old_cpu, 1),
        },
        "after": {
            "wall_s": round(new_wall, 2),
            "cpu_s": round(new_cpu, 2),
            "samples_per_cpu_s": round(n_samples / new_cpu, 1),
        },
        "speed_up_cpu": round(old_cpu / new_cpu, 1),
        "mean_tv_after_vs_before": round(mean_tv(distributions(new), distributions(old)), 4),
        "mean_tv_before_seed0_vs_seed1": round(
            mean_tv(distributions(old_again), distributions(old)), 4
        ),
        "chi2_p_after_vs_before": {k: round(v, 3) for k, v in homogeneity(new, old, tasks).items()},
        "chi2_p_before_seed0_vs_seed1": {
            k: round(v, 3) for k, v in homogeneity(old_again, old, tasks).items()
        },
        "after_equals_reference_draw_by_draw": bool(same["text"].equals(reference["text"])),
        "reference_questions": len(head),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
