"""Benchmark: vrp's one-pass extraction against the naive peer pattern, on one tiny zoo model.

The naive pattern (what peers do): one ``generate(..., output_attentions=True,
output_hidden_states=True, return_dict_in_generate=True)`` call per question, keeping every
returned tensor for later analysis. vrp, two prompt passes (``vrp.prompt_pass``): ``full``, batched
teacher-forced forwards of whole prompts whose hooks keep only the last-token / image-span
reductions; ``shared``, the same reductions from one forward per image prefix whose KV cache every
question about that image continues (questions batched by image). All patterns also run the grey
blank image (the visual-attribution margin needs it), so they deliver the same analyses.

Without ``--checkpoint`` a random-init model of the zoo's geometry is built from the demo's
synthetic questions (``--geometry zoo``: 64 px; ``paper``: a LLaVA with LLaVA-1.5's 336 px and
14-px patches, 576 image tokens per question).

``--geometry paper`` swaps the trained zoo model for a random-init tiny LLaVA with the real
LLaVA-1.5 image geometry (336 px, 14-px patches: 576 image tokens per question), where the naive
pattern's full attention tensors (layers x heads x T x T per question) are what peers run into.

Each pattern runs in its own subprocess so peak resident memory (ru_maxrss) is measured cleanly;
"retained" is the bytes of tensors each pattern holds for the analyses after the run.

    .venv/bin/python bench/extraction_vs_naive.py --checkpoint results/zoo/llava/checkpoint \
        --family llava --questions results/data/synthetic/eval.parquet --n 400
    .venv/bin/python bench/extraction_vs_naive.py --family llava --geometry paper --n 72
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def run_pattern(args) -> dict:
    import pandas as pd
    import torch

    from vrp.adapters import load_adapter
    from vrp.benchmark.images import decode_images
    from vrp.extract import ExtractionSettings, Extractor
    from vrp.scoring import candidate_sets

    torch.set_num_threads(args.threads)
    adapter = load_adapter(args.family, args.checkpoint)
    questions = pd.read_parquet(args.questions)
    # whole images, in table order: the questions of ~n/17 images
    keep = questions["image_id"].drop_duplicates().head(max(1, args.n // 17))
    questions = questions[questions["image_id"].isin(keep)]
    questions = questions[questions["task"] != "caption"].head(args.n).reset_index(drop=True)
    candidates = candidate_sets(pd.read_parquet(args.questions))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    answers, retained = [], 0
    start, cpu_start = time.perf_counter(), time.process_time()
    if args.pattern == "naive":
        from PIL import Image

        from vrp.extract import BLANK_GREY
        from vrp.scoring import CandidateIndex, readouts, score_answers

        index = CandidateIndex(adapter, candidates)

        def generate(image, question):
            inputs = adapter.encode([image], [question])
            with torch.no_grad():
                out = adapter.model.generate(
                    **inputs,
                    max_new_tokens=args.max_new_tokens,
                    do_sample=False,
                    output_logits=True,
                    output_attentions=True,
                    output_hidden_states=True,
                    return_dict_in_generate=True,
                )
            kept.append(out)
            return out.logits[0]  # first generated position's logits (1, V)

        kept = []
        for _, row in questions.iterrows():
            image = decode_images([row["image"]])[0]
            logits = generate(image, row["question"])
            if args.blank:
                generate(Image.new("RGB", image.size, BLANK_GREY), row["question"])
            # the same answer rule as vrp: the best-scoring candidate answer of the question's task
            # (first-token forms only: the naive pattern keeps no cache to score continuations)
            scores = score_answers(
                adapter, index, [row["task"]], torch.log_softmax(logits.float(), -1)
            )
            answers.append(
                readouts(logits, scores, [row["task"]], [row["answer"]], index)["prediction"][0]
            )
        for out in kept:
            for group in (out.attentions, out.hidden_states):
                for step in group:
                    retained += sum(t.numel() * t.element_size() for t in step)
    else:
        settings = ExtractionSettings(
            batch_size=args.batch_size,
            shard_size=args.batch_size,
            per_head=True,
            generation_fraction=0.0,
            prefix_sharing=args.pattern == "shared",
        )
        extractor = Extractor(adapter, candidates, settings)
        by_row = {}
        for rows in extractor.batches(questions):
            samples, arrays = extractor.run_batch(questions.iloc[rows])
            by_row.update(zip(rows, samples["prediction"]))
            retained += sum(a.nbytes for a in arrays.values())
        answers = [by_row[r] for r in range(len(questions))]
    seconds = time.perf_counter() - start
    # CPU seconds of this process: a fair clock on a shared machine (one thread, --threads 1)
    cpu_seconds = time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "pattern": args.pattern,
        "n": len(questions),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "samples_per_s": round(len(questions) / cpu_seconds, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "peak_rss_increase_mb": round((peak - base_rss) / 1024, 1),
        "retained_mb": round(retained / 2**20, 2),
        "answers": answers,
    }


def build_model(args) -> None:
    """Save a random-init model and its question table when no checkpoint is given."""
    from pathlib import Path

    from vrp.adapters import get_adapter_class
    from vrp.benchmark.synthetic import SyntheticBenchmarkConfig, generate_split
    from vrp.zoo.tokenizer import questions_tokenizer

    folder = Path(args.workdir)
    folder.mkdir(parents=True, exist_ok=True)
    questions = generate_split(
        SyntheticBenchmarkConfig(n_train_images=1, n_eval_images=max(2, args.n // 17 + 1)), "eval"
    )
    questions.to_parquet(folder / "eval.parquet", index=False)
    tiny = {"num_hidden_layers": 4}
    if args.geometry == "paper":
        if args.family != "llava":
            raise SystemExit(
                "--geometry paper builds a LLaVA (336 px, 14-px patches); pass --family llava"
            )
        tiny.update(image_size=336, patch_size=14)
    adapter = get_adapter_class(args.family).build_tiny(
        questions_tokenizer(questions), tiny, seed=0
    )
    adapter.save(folder / "checkpoint")
    args.checkpoint, args.questions = str(folder / "checkpoint"), str(folder / "eval.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", help="a saved model; none: build a random-init one (--geometry)"
    )
    parser.add_argument("--family", required=True)
    parser.add_argument("--questions", help="the checkpoint's question table (eval.parquet)")
    parser.add_argument(
        "--workdir", default="bench/out/extraction", help="where a built model is saved"
    )
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--max-new-tokens", type=int, default=2, help="naive pattern: answer word + eos"
    )
    parser.add_argument(
        "--no-blank",
        dest="blank",
        action="store_false",
        help="naive pattern: skip the blank-image generate (vrp always runs its blank pass)",
    )
    parser.add_argument(
        "--geometry",
        choices=["zoo", "paper"],
        default="zoo",
        help="without --checkpoint: zoo (64 px) or paper (a LLaVA at 336 px / 14-px patches)",
    )
    parser.add_argument("--pattern", choices=PATTERNS)
    args = parser.parse_args()
    if args.pattern:
        print(json.dumps(run_pattern(args)))
        return
    if not args.checkpoint:
        build_model(args)
    results = {}
    for pattern in PATTERNS:
        cmd = [sys.executable, __file__, *_forwarded(args), "--pattern", pattern]
        results[pattern] = json.loads(
            subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
        )
    naive = results["naive"]
    answers = {p: r.pop("answers") for p, r in results.items()}
    print(json.dumps(results, indent=2))
    for pattern in ("full", "shared"):
        ours = results[pattern]
        agree = sum(a == b for a, b in zip(answers["naive"], answers[pattern])) / naive["n"]
        print(
            f"{pattern}: speed-up {ours['samples_per_s'] / naive['samples_per_s']:.1f}x samples/s; "
            f"peak RSS increase {ours['peak_rss_increase_mb']} MB vs naive {naive['peak_rss_increase_mb']} MB "
            f"(ratio {ours['peak_rss_increase_mb'] / max(naive['peak_rss_increase_mb'], 1e-9):.3f}); "
            f"retained {ours['retained_mb']} MB vs {naive['retained_mb']} MB "
            f"(ratio {ours['retained_mb'] / naive['retained_mb']:.4f}); same first answer as naive {agree:.1%}"
        )
    same = answers["full"] == answers["shared"]
    print(
        f"shared vs full: {results['shared']['samples_per_s'] / results['full']['samples_per_s']:.1f}x samples/s, "
        f"identical answers: {same}"
    )


PATTERNS = ("naive", "full", "shared")


def _forwarded(args) -> list[str]:
    """The options a pattern's subprocess needs (the built model's paths included)."""
    return [
        "--checkpoint",
        args.checkpoint,
        "--family",
        args.family,
        "--questions",
        args.questions,
        "--n",
        str(args.n),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
        "--max-new-tokens",
        str(args.max_new_tokens),
        *([] if args.blank else ["--no-blank"]),
    ]


if __name__ == "__main__":
    main()
