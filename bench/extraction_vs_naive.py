"""Benchmark: vrp's one-pass extraction against the naive peer pattern, on one tiny zoo model.

The naive pattern (what peers do): one ``generate(..., output_attentions=True,
output_hidden_states=True, return_dict_in_generate=True)`` call per question, keeping every
returned tensor for later analysis. vrp: batched teacher-forced forwards whose hooks keep only
the last-token / image-span reductions. Both patterns also run the grey blank image (the
visual-attribution margin needs it), so they deliver the same analyses.

``--geometry paper`` swaps the trained zoo model for a random-init tiny LLaVA with the real
LLaVA-1.5 image geometry (336 px, 14-px patches: 576 image tokens per question), where the naive
pattern's full attention tensors (layers x heads x T x T per question) are what peers run into.

Each pattern runs in its own subprocess so peak resident memory (ru_maxrss) is measured cleanly;
"retained" is the bytes of tensors each pattern holds for the analyses after the run.

    .venv/bin/python bench/extraction_vs_naive.py --checkpoint results/zoo/llava/checkpoint \
        --family llava --questions results/data/synthetic/eval.parquet --n 400
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
    questions = questions[questions["task"] != "caption"].head(args.n).reset_index(drop=True)
    candidates = candidate_sets(pd.read_parquet(args.questions))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    answers, retained = [], 0
    start = time.perf_counter()
    if args.pattern == "naive":
        from PIL import Image

        from vrp.extract import BLANK_GREY
        from vrp.scoring import CandidateIndex, readouts, score_answers

        index = CandidateIndex(adapter, candidates)

        def generate(image, question):
            inputs = adapter.encode([image], [question])
            with torch.no_grad():
                out = adapter.model.generate(
                    **inputs, max_new_tokens=args.max_new_tokens, do_sample=False, output_logits=True,
                    output_attentions=True, output_hidden_states=True, return_dict_in_generate=True,
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
            scores = score_answers(adapter, index, [row["task"]], torch.log_softmax(logits.float(), -1))
            answers.append(readouts(logits, scores, [row["task"]], [row["answer"]], index)["prediction"][0])
        for out in kept:
            for group in (out.attentions, out.hidden_states):
                for step in group:
                    retained += sum(t.numel() * t.element_size() for t in step)
    else:
        settings = ExtractionSettings(batch_size=args.batch_size, shard_size=args.batch_size, per_head=True)
        extractor = Extractor(adapter, candidates, settings)
        for s in range(0, len(questions), args.batch_size):
            samples, arrays = extractor.run_batch(questions.iloc[s : s + args.batch_size])
            answers.extend(samples["prediction"].tolist())
            retained += sum(a.nbytes for a in arrays.values())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "pattern": args.pattern,
        "n": len(questions),
        "seconds": round(seconds, 2),
        "samples_per_s": round(len(questions) / seconds, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "peak_rss_increase_mb": round((peak - base_rss) / 1024, 1),
        "retained_mb": round(retained / 2**20, 2),
        "answers": answers,
    }


def build_paper_geometry(args) -> None:
    """Save a random-init tiny model with LLaVA-1.5's image geometry at ``args.checkpoint``."""
    from transformers import AutoTokenizer

    from vrp.adapters import get_adapter_class

    if args.family != "llava":
        raise SystemExit("--geometry paper builds a LLaVA (336 px, 14-px patches); pass --family llava")
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    adapter = get_adapter_class("llava").build_tiny(tokenizer, {"image_size": 336, "patch_size": 14}, seed=0)
    adapter.save(args.checkpoint)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--family", required=True)
    parser.add_argument("--questions", required=True)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=2, help="naive pattern: answer word + eos")
    parser.add_argument("--no-blank", dest="blank", action="store_false",
                        help="naive pattern: skip the blank-image generate (vrp always runs its blank pass)")
    parser.add_argument("--geometry", choices=["zoo", "paper"], default="zoo",
                        help="paper: build a random-init 336-px/14-px LLaVA (576 image tokens) at --checkpoint")
    parser.add_argument("--tokenizer", default="results/zoo/tokenizer", help="word-level tokenizer (paper geometry)")
    parser.add_argument("--pattern", choices=["naive", "vrp"])
    args = parser.parse_args()
    if args.geometry == "paper" and not args.pattern:
        build_paper_geometry(args)
    if args.pattern:
        print(json.dumps(run_pattern(args)))
        return
    results = {}
    for pattern in ("naive", "vrp"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--pattern", pattern]
        results[pattern] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    naive, ours = results["naive"], results["vrp"]
    agree = sum(a == b for a, b in zip(naive.pop("answers"), ours.pop("answers"))) / naive["n"]
    print(json.dumps({"naive": naive, "vrp": ours}, indent=2))
    print(f"speed-up: {ours['samples_per_s'] / naive['samples_per_s']:.1f}x samples/s")
    print(f"peak RSS increase: naive {naive['peak_rss_increase_mb']} MB, vrp {ours['peak_rss_increase_mb']} MB "
          f"(ratio {ours['peak_rss_increase_mb'] / max(naive['peak_rss_increase_mb'], 1e-9):.3f})")
    print(f"retained tensors: naive {naive['retained_mb']} MB, vrp {ours['retained_mb']} MB "
          f"(ratio {ours['retained_mb'] / naive['retained_mb']:.4f})")
    print(f"same first answer: {agree:.1%}")


if __name__ == "__main__":
    main()
